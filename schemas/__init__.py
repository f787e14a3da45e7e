"""Versioned, machine-readable data contracts of rnncast.

Each contract is a JSON file named ``<name>.v<version>.json`` in this package. Code loads the
contracts through :func:`load` instead of repeating field names as literals.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

INPUT = "input"
TFRECORD = "tfrecord"
METADATA = "metadata"
REJECTED = "rejected"
FORECAST = "forecast"
STATE = "state"
EVALUATION = "evaluation"

CURRENT_VERSIONS = {
    INPUT: 1,
    TFRECORD: 1,
    METADATA: 1,
    REJECTED: 1,
    FORECAST: 1,
    STATE: 1,
    EVALUATION: 1,
}


@functools.cache
def load(name: str, version: int | None = None) -> dict[str, Any]:
    """Return the parsed contract ``name`` at ``version`` (default: the current one)."""
    version = CURRENT_VERSIONS[name] if version is None else version
    text = resources.files(__name__).joinpath(f"{name}.v{version}.json").read_text("utf-8")
    return json.loads(text)


def rejection_reasons() -> tuple[str, ...]:
    """All reasons a row may be rejected for, in contract order."""
    return tuple(load(INPUT)["rejection_reasons"])


def tfrecord_feature_names() -> tuple[str, ...]:
    """Names of the features of one TFRecord row, in contract order."""
    return tuple(load(TFRECORD)["features"])


def arrow_type(spec: str):
    """The Arrow type a contract's column ``type`` names (``int64``, ``list<float32>``, ...)."""
    import pyarrow as pa

    if spec.startswith("list<") and spec.endswith(">"):
        return pa.list_(arrow_type(spec[5:-1]))
    if spec.startswith("timestamp[") and spec.endswith("]"):
        return pa.timestamp(spec[10:-1])
    return {"string": pa.string(), "float32": pa.float32(), "float64": pa.float64(),
            "int32": pa.int32(), "int64": pa.int64()}[spec]  # fmt: skip


def schema_version_string() -> str:
    """A compact identifier of the contract versions this code writes, e.g. ``input1-tfrecord1``."""
    return "-".join(f"{name}{version}" for name, version in sorted(CURRENT_VERSIONS.items()))
