"""Errors that reach the user as one line.

Library code raises these with a message that names the file and the place
(`training.json: task 007bbfb7, train[2].output row 3 has 4 cells, row 0 has 3`);
the command line prints that line and exits with status 2, never a traceback.
"""


class ArcEfeError(Exception):
    """Base class for errors caused by user input; the message is shown as is."""


class DataError(ArcEfeError):
    """A task, grid or solutions file that does not follow the ARC format."""


class SourceError(ArcEfeError):
    """A data source that cannot be found or recognised."""


class SubmissionError(ArcEfeError):
    """A submission file that cannot be read at all (not JSON, wrong top-level type)."""


class MalformedGridError(ValueError):
    """Answer tokens that do not spell a well-formed grid."""


class ConfigError(ArcEfeError, ValueError):
    """A setting that cannot work (a negative learning rate, an unknown preset, ...)."""
