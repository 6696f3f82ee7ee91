"""User-facing errors: one line, printed by the CLI without a traceback."""


class NoisevisionError(Exception):
    """A problem with the user's input or environment, with a one-line message saying what to do."""


class UnknownNameError(NoisevisionError):
    """A name (generator, preset, method, dataset …) that is not registered."""


def unknown_name(kind: str, name: str, known: list[str]) -> UnknownNameError:
    """Error for an unknown `name` that suggests the closest registered names."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(known))}"
    return UnknownNameError(f"unknown {kind} '{name}': {hint}")


class StopRequested(Exception):
    """Work stopped on a signal (SIGTERM, SIGUSR1) after saving its state; running it again resumes."""

    def __init__(self, signum: int, epoch: int, step: int, steps: int):
        """(epoch, step): where training resumes, as the checkpoint stores it."""
        import signal

        self.signum = signum
        name = signal.Signals(signum).name
        where = f"epoch {epoch + 1}, step {step}/{steps}" if step else f"the end of epoch {epoch}"
        super().__init__(f"{name}: checkpoint written at {where}; run the same command again to resume")
