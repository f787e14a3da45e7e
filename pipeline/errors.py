"""Errors that carry a user-facing message (file and fix); cheap to import."""


class DatasetError(ValueError):
    """A dataset directory cannot be read; the message names the file and the fix."""


class ModelError(ValueError):
    """An exported model or a saved state cannot be used; the message names the path."""


class OutputError(ValueError):
    """An output location cannot be used: no filesystem for its scheme, not a directory, not
    writable, or it belongs to another job (or to no job); the message names the location
    and the fix."""


class CorruptFileError(ValueError):
    """A file rnncast wrote earlier cannot be parsed (truncated, edited, another format); the
    message names the file and how to get a good one back."""
