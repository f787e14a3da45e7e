"""Errors of the model package that carry a user-facing message; cheap to import."""


class TrainError(ValueError):
    """Training cannot start or resume; the message says why and what to do."""


class ExportError(ValueError):
    """A model directory cannot be exported; the message says why and what to do."""
