"""The errors rnncast reports to its users: each message names the file or flag and the fix.

All derive from :class:`RnncastError`, which the command line catches once and prints as one
line (exit code 2); anything else is a bug and keeps its traceback. Cheap to import.
"""


class RnncastError(ValueError):
    """A problem the user can fix; the message names the file or flag and the fix."""


class InputError(RnncastError):
    """An input problem the user must fix; the message names the file and the fix."""


class RejectedRowsError(InputError):
    """Too many rows were rejected to commit the run; the staged dead letters are kept so the
    user can read them (the message names their directory)."""


class JobArgumentError(RnncastError):
    """A flag problem; the message says which flag and how to fix it."""


class DatasetError(RnncastError):
    """A dataset directory cannot be read; the message names the file and the fix."""


class ModelError(RnncastError):
    """An exported model or a saved state cannot be used; the message names the path."""


class OutputError(RnncastError):
    """An output location cannot be used: no filesystem for its scheme, not a directory, not
    writable, or it belongs to another job (or to no job); the message names the location
    and the fix."""


class CorruptFileError(RnncastError):
    """A file rnncast wrote earlier cannot be parsed (truncated, edited, another format); the
    message names the file and how to get a good one back."""


class TrainError(RnncastError):
    """Training cannot start or resume; the message says why and what to do."""


class ExportError(RnncastError):
    """A model directory cannot be exported; the message says why and what to do."""
