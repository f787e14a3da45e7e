"""The state store: directories of per-series RNN states that let the next forecast run read
only what is new (``--state-out`` / ``--state-in``; ``schemas/state``)."""

from __future__ import annotations

import hashlib

from apache_beam.io.filesystems import FileSystems

from rnncast import schemas
from rnncast.errors import ModelError
from rnncast.pipeline.core import forecasting
from rnncast.pipeline.io import commit


def load_state_files(state_dir: str, model: forecasting.ModelInfo) -> tuple[list[str], str]:
    """Files of a committed state directory, checked against the model; and its run id."""
    path = FileSystems.join(state_dir, commit.METADATA)
    if not FileSystems.exists(path):
        raise ModelError(f"{path}: not found; --state-in must be a --state-out of an earlier run")
    try:
        metadata = commit.read_json(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelError(
            f"{path}: corrupt state metadata ({err}); rerun without --state-in"
        ) from err
    if commit.job_of(metadata) != commit.STATE:
        holds = commit.JOBS.get(commit.job_of(metadata), "no rnncast output")
        raise ModelError(
            f"{state_dir}: not a state directory (it holds {holds}); --state-in must be a "
            "--state-out of an earlier run"
        )
    if metadata.get("model_fingerprint") != model.fingerprint:
        raise ModelError(
            f"{state_dir}: state was written by model {metadata.get('model_fingerprint')}, not "
            f"by {model.path} ({model.fingerprint}); run without --state-in to start afresh"
        )
    files = [FileSystems.join(state_dir, e["name"]) for e in metadata["files"]]
    for entry, file in zip(metadata["files"], files):
        if not FileSystems.exists(file):
            raise ModelError(f"{file}: listed in {path} but missing; run without --state-in")
        with FileSystems.open(file) as source:
            if hashlib.sha256(source.read()).hexdigest() != entry["sha256"]:
                raise ModelError(
                    f"{file}: corrupt (SHA-256 differs from {path}); run without --state-in"
                )
    return files, metadata["run_id"]


def state_metadata(run_id: str, model: forecasting.ModelInfo, files: list[dict]) -> dict:
    """``metadata.json`` of a state directory (what :func:`load_state_files` checks)."""
    return {
        **commit.metadata_header(schemas.STATE, commit.STATE, run_id),
        "model_fingerprint": model.fingerprint,
        "state_size": list(model.state_size),
        "horizon": model.horizon,
        "quantiles": list(model.quantiles),
        "num_series": sum(f["records"] for f in files),
        "files": list(files),
    }
