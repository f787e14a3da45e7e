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
import logging
import os
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rnncast.pipeline.io.commit import write_bytes

POINTER = "latest.json"


def _temporary(directory: str, name: str) -> str:
    # Per process: two workers of a multi-worker run may write the same checkpoint.
    return os.path.join(directory, f"{name}.tmp-{os.getpid()}")


def _sidecar(name: str) -> str:
    return name[: -len(".npz")] + ".json"


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
    ``step``; keep the newest ``keep`` checkpoints.

    Each checkpoint has a JSON sidecar with its SHA-256 and state, so that when the newest one
    is damaged (or ``latest.json`` is), :func:`restore` can fall back to the previous one.
    """
    os.makedirs(directory, exist_ok=True)
    data = to_npz(variables)
    name = f"ckpt-{step:06d}.npz"
    write_bytes(os.path.join(directory, name), data, temporary=_temporary(directory, name))
    pointer = {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "state": state}
    encoded = json.dumps(pointer, indent=2, sort_keys=True).encode()
    sidecar = _sidecar(name)
    write_bytes(os.path.join(directory, sidecar), encoded, _temporary(directory, sidecar))
    write_bytes(os.path.join(directory, POINTER), encoded, _temporary(directory, POINTER))
    kept = sorted(f for f in os.listdir(directory) if f.startswith("ckpt-") and f.endswith(".npz"))
    for old in kept[:-keep]:
        os.remove(os.path.join(directory, old))
        if os.path.exists(os.path.join(directory, _sidecar(old))):
            os.remove(os.path.join(directory, _sidecar(old)))
    return os.path.join(directory, name)


def _read_pointer(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        pointer = json.load(handle)
    if not isinstance(pointer, dict) or not {"file", "sha256", "state"} <= pointer.keys():
        raise ValueError("not a checkpoint pointer (needs file, sha256 and state)")
    return pointer


def latest(directory: str) -> dict | None:
    """The pointer of the newest complete checkpoint, or None when there is none.

    Raises :class:`CheckpointError` when ``latest.json`` exists but cannot be read."""
    path = os.path.join(directory, POINTER)
    if not os.path.exists(path):
        return None
    try:
        return _read_pointer(path)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable ({err})") from err


class CheckpointError(ValueError):
    """No intact checkpoint could be restored; the message names the files and what broke."""


def _candidates(directory: str, problems: list[str]) -> list[dict]:
    """Pointers to try, newest first: ``latest.json``, then every checkpoint's sidecar."""
    pointers = []
    try:
        pointer = latest(directory)
        if pointer is not None:
            pointers.append(pointer)
    except CheckpointError as err:
        problems.append(str(err))
    sidecars = sorted(
        (f for f in os.listdir(directory) if f.startswith("ckpt-") and f.endswith(".json")),
        reverse=True,
    )
    for name in sidecars:
        path = os.path.join(directory, name)
        try:
            pointer = _read_pointer(path)
        except (OSError, ValueError, UnicodeDecodeError) as err:
            problems.append(f"{path}: unreadable ({err})")
            continue
        if all(pointer["file"] != p["file"] for p in pointers):
            pointers.append(pointer)
    return sorted(pointers, key=lambda p: p["file"], reverse=True)


def _load_arrays(directory: str, pointer: dict) -> dict[str, np.ndarray]:
    path = os.path.join(directory, pointer["file"])
    if os.path.basename(pointer["file"]) != pointer["file"]:
        raise CheckpointError(f"{path}: a checkpoint pointer must name a file in {directory}")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from err
    if hashlib.sha256(data).hexdigest() != pointer["sha256"]:
        raise CheckpointError(f"{path}: checkpoint does not match its SHA-256 in {POINTER}")
    try:
        return read_npz(data)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from err


def restore(
    directory: str, variables: Sequence[Any], warn: Callable[[str], None] | None = None
) -> dict | None:
    """Assign the newest intact checkpoint to ``variables``; return its state, or None when
    ``directory`` holds no checkpoint.

    A damaged newest checkpoint (or ``latest.json``) is skipped for the previous intact one,
    and ``warn`` (default: a logging warning) says which; when none is intact,
    :class:`CheckpointError` names what was found. A checkpoint whose arrays do not fit
    ``variables`` (another model configuration) raises ``ValueError`` at once.
    """
    warn = warn or logging.getLogger(__name__).warning
    if not os.path.isdir(directory):
        return None
    problems: list[str] = []
    candidates = _candidates(directory, problems)
    if not candidates:
        if problems:
            raise CheckpointError(
                f"{directory}: no intact checkpoint ({'; '.join(problems)}); delete the "
                "directory to start training afresh"
            )
        return None
    for pointer in candidates:
        try:
            arrays = _load_arrays(directory, pointer)
        except (CheckpointError, ValueError, OSError, EOFError) as err:
            problems.append(str(err))
            continue
        path = os.path.join(directory, pointer["file"])
        try:
            assign(arrays, variables)
        except ValueError as err:
            raise ValueError(
                f"{path}: {err}; the model directory belongs to a different model configuration"
            ) from err
        if problems:
            warn(
                f"{directory}: skipped damaged checkpoint data ({'; '.join(problems)}); "
                f"restored the previous intact checkpoint {pointer['file']}"
            )
        return pointer["state"]
    raise CheckpointError(
        f"{directory}: no intact checkpoint ({'; '.join(problems)}); delete the directory to "
        "start training afresh"
    )
