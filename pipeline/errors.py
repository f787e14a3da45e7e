"""Errors that carry a user-facing message (file and fix); cheap to import."""


class DatasetError(ValueError):
    """A dataset directory cannot be read; the message names the file and the fix."""


class ModelError(ValueError):
    """An exported model or a saved state cannot be used; the message names the path."""


class OutputError(ValueError):
    """An output directory cannot be written (it belongs to another job or to no job); the
    message names the directory and the fix."""
