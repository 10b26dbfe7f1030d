"""Exceptions the stages turn into one clear message and a non-zero exit."""


class NeurovisionError(Exception):
    """Base class: a problem the user can fix (bad input, bad parameter, missing file)."""


class ParamError(NeurovisionError, ValueError):
    """A parameter in params.yaml is unknown or has a bad value."""


class DataError(NeurovisionError, ValueError):
    """An input file is missing, unreadable, or not what the pipeline expects."""
