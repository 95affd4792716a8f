"""Errors of the scribble readers; every message names the offending file."""

__all__ = ["ScribbleError", "ScribbleFormatError", "UnknownTagError"]


class ScribbleError(ValueError):
    """Base class: every message names the offending file."""


class ScribbleFormatError(ScribbleError):
    """Malformed XML / text line / PNG."""


class UnknownTagError(ScribbleError):
    """A ScribbleSup tag that the tag map does not know."""
