"""Crash-safe training checkpoints: plain ``.npz`` arrays (no pickle) plus a JSON pointer.

The arrays of a model's variables are written as ``v00000``, ``v00001``, ... in the order of
``model.variables`` (:func:`to_npz`, byte-deterministic) and read back as data only
(:func:`read_npz`, ``allow_pickle=False``; :func:`assign` checks count, shapes and dtypes). The
export's ``weights.npz`` uses the same format.

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
import zipfile
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


def to_npz(variables: Sequence[Any]) -> bytes:
    """The values of ``variables`` as ``.npz`` bytes: arrays ``v00000``... in order, no pickle,
    fixed zip timestamps (the same values always give the same bytes); ``np.load`` reads it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i, variable in enumerate(variables):
            info = zipfile.ZipInfo(f"v{i:05d}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as handle:
                # np.asarray keeps 0-d values 0-d (np.ascontiguousarray would make them [1]).
                array = np.asarray(variable.numpy())
                np.lib.format.write_array(handle, array, allow_pickle=False)
    return buffer.getvalue()


def read_npz(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of ``.npz`` bytes, read as data (``allow_pickle=False``); ValueError (zip or
    array errors included) when they cannot be read."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(f"not a readable .npz file ({err})") from err


def assign(arrays: dict[str, np.ndarray], variables: Sequence[Any]) -> None:
    """Assign ``arrays`` (as :func:`to_npz` names them) to ``variables``; ValueError saying
    what differs when the names, shapes or dtypes do not match the variables'."""
    expected = [f"v{i:05d}" for i in range(len(variables))]
    if sorted(arrays) != expected:
        raise ValueError(
            f"holds {len(arrays)} arrays, the model has {len(variables)} variables"
            if len(arrays) != len(variables)
            else f"array names {sorted(arrays)[:3]}... are not v00000..v{len(variables) - 1:05d}"
        )
    for name, variable in zip(expected, variables):
        array = arrays[name]
        shape = tuple(variable.shape)
        dtype = np.dtype(getattr(variable.dtype, "as_numpy_dtype", variable.dtype))
        if array.shape != shape or array.dtype != dtype:
            raise ValueError(
                f"array {name} is {array.dtype}{list(array.shape)}, the model's variable "
                f"{getattr(variable, 'path', name)} is {dtype}{list(shape)}"
            )
    for name, variable in zip(expected, variables):
        variable.assign(arrays[name])


def save(directory: str, step: int, variables: Sequence[Any], state: dict, keep: int = 2) -> str:
    """Save ``variables`` (Keras/TF variables, in a fixed order) and ``state`` as checkpoint
    ``step``; keep the newest ``keep`` checkpoints."""
    os.makedirs(directory, exist_ok=True)
    data = to_npz(variables)
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
    try:
        assign(read_npz(data), variables)
    except ValueError as err:
        raise ValueError(
            f"{path}: {err}; the model directory belongs to a different model configuration"
        ) from err
    return pointer["state"]
