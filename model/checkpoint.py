"""Crash-safe training checkpoints: plain ``.npz`` arrays (no pickle) plus a JSON pointer.

A checkpoint is written under a temporary name, flushed to disk and renamed; only then does
``latest.json`` (itself replaced atomically) point at it, with its SHA-256. A process killed at
any moment therefore leaves either the previous checkpoint or the new one as the restored one,
never a half-written file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

POINTER = "latest.json"


def _atomic_write(path: str, data: bytes) -> None:
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def save(directory: str, step: int, variables: Sequence[Any], state: dict, keep: int = 2) -> str:
    """Save ``variables`` (Keras/TF variables, in a fixed order) and ``state`` as checkpoint
    ``step``; keep the newest ``keep`` checkpoints."""
    os.makedirs(directory, exist_ok=True)
    arrays = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(variables)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    name = f"ckpt-{step:06d}.npz"
    _atomic_write(os.path.join(directory, name), data)
    pointer = {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "state": state}
    _atomic_write(
        os.path.join(directory, POINTER), json.dumps(pointer, indent=2, sort_keys=True).encode()
    )
    kept = sorted(f for f in os.listdir(directory) if f.startswith("ckpt-") and f.endswith(".npz"))
    for old in kept[:-keep]:
        os.remove(os.path.join(directory, old))
    return os.path.join(directory, name)


def latest(directory: str) -> dict | None:
    """The pointer of the newest complete checkpoint, or None when there is none."""
    path = os.path.join(directory, POINTER)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def restore(directory: str, variables: Sequence[Any]) -> dict | None:
    """Assign the newest complete checkpoint to ``variables``; return its state, or None."""
    pointer = latest(directory)
    if pointer is None:
        return None
    path = os.path.join(directory, pointer["file"])
    with open(path, "rb") as handle:
        data = handle.read()
    if hashlib.sha256(data).hexdigest() != pointer["sha256"]:
        raise ValueError(f"{path}: checkpoint does not match its SHA-256 in {POINTER}")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        if len(arrays.files) != len(variables):
            raise ValueError(
                f"{path}: holds {len(arrays.files)} arrays, the model has {len(variables)} "
                "variables; the model directory belongs to a different model configuration"
            )
        for i, variable in enumerate(variables):
            variable.assign(arrays[f"v{i:05d}"])
    return pointer["state"]
