"""Errors that mean "the user's input is wrong": the CLI prints them as one line and exits 2.

Everything else is a bug and keeps its traceback.
"""

__all__ = ["InputError", "NotIdentifiableError"]


class InputError(ValueError):
    """Bad input from a user: a malformed spec or CSV, an unknown name, a missing file.

    The message must name the problem (and the allowed values, where there are
    some) in one line.
    """


class NotIdentifiableError(InputError):
    """The data cannot identify the model being fitted (too few points, a degenerate design,
    an optimum on the boundary); the message says why. Fitters raise it instead of
    returning a wrong answer."""
