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
