"""User-facing errors: one line, printed by the CLI without a traceback."""


class NoisevisionError(Exception):
    """A problem with the user's input or environment, with a one-line message saying what to do."""


class FieldError(NoisevisionError):
    """A bad value of a named setting (a TrainConfig field, a function's argument). The message says
    `{field}` where it names the setting, so that the CLI can name the option a user typed instead
    (`naming`)."""

    def __init__(self, field: str, message: str):
        self.field, self.template = field, message
        super().__init__(self.naming(field))

    def naming(self, name: str) -> str:
        """The message with the setting called `name` (e.g. its command-line flag)."""
        return self.template.replace("{field}", name)

    def __reduce__(self):  # pickled across processes with both arguments
        return type(self), (self.field, self.template)


class UnknownNameError(NoisevisionError):
    """A name (generator, preset, method, dataset …) that is not registered."""


def unknown_name(kind: str, name: str, known: list[str]) -> UnknownNameError:
    """Error for an unknown `name` that suggests the closest registered names."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(known))}"
    return UnknownNameError(f"unknown {kind} '{name}': {hint}")


def at_least_one(*options: tuple[str, int | float | None]) -> None:
    """FieldError for the first (name, value) given below 1 (None: not given)."""
    for name, value in options:
        if value is not None and value < 1:
            raise FieldError(name, f"{{field}} must be at least 1, got {value}")


def worker_exception(text: str) -> tuple[str, str] | None:
    """(type name, message) of a DataLoader worker's own exception, from the message of the error
    torch re-raises for it (the worker's whole traceback: its last line is the exception); None for
    any other message."""
    if "Original Traceback" not in text:
        return None
    last = text.rstrip().splitlines()[-1]
    kind, sep, message = last.partition(": ")
    return (kind, message) if sep else ("", last)


class StopRequested(Exception):
    """Work stopped on a signal (SIGTERM, SIGUSR1) after saving its state; running it again resumes.

    `saved` says what was kept, e.g. "checkpoint written at epoch 3, step 10/136".
    """

    def __init__(self, signum: int, saved: str):
        import signal

        self.signum = signum
        super().__init__(f"{signal.Signals(signum).name}: {saved}; run the same command again to resume")


def checkpoint_place(epoch: int, step: int, steps: int) -> str:
    """Where a training checkpoint resumes, (epoch, step) as stored in it, in words."""
    where = f"epoch {epoch + 1}, step {step}/{steps}" if step else f"the end of epoch {epoch}"
    return f"checkpoint written at {where}"
