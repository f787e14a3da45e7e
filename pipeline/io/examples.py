"""Rows -> ``tf.train.Example`` bytes, in the layout of ``schemas/tfrecord``."""

from __future__ import annotations

import numpy as np

from rnncast.pipeline.core.chunking import Rows
from rnncast.pipeline.core.series import NS_PER_SECOND
from rnncast.pipeline.io.tfrecord import (
    FLOAT_LIST,
    INT64_LIST,
    encode_entry,
    encode_example,
    entry_header,
    varint,
)


def encode_rows(
    series_id: str,
    rows: Rows,
    timestamp: np.ndarray,
    loc: float,
    scale: float,
    lanes: np.ndarray | int,
    reset: np.ndarray,
) -> list[bytes]:
    """Serialise ``rows`` of one series; ``timestamp`` is the series' grid (ns).

    Byte-for-byte :func:`encode_example` of each row's features (see
    :func:`row_features`), without building them row by row: the arrays are converted once
    for all rows and each record is a join of per-row slices and cached field headers.
    """
    n = len(rows)
    if n == 0:
        return []
    lanes = np.broadcast_to(np.asarray(lanes, dtype=np.int64), (n,))
    start_time = timestamp[rows.start] // NS_PER_SECOND
    # Every column: one piece of bytes per row, in the sorted feature order of encode_example.
    columns = {
        "series_id": [encode_entry("series_id", series_id.encode("utf-8"))] * n,
        "loc": [encode_entry("loc", np.asarray([np.float32(loc)]))] * n,
        "scale": [encode_entry("scale", np.asarray([np.float32(scale)]))] * n,
        "chunk_index": _int_column("chunk_index", rows.chunk_index),
        "lane": _int_column("lane", lanes),
        "sequence_length": _int_column("sequence_length", rows.sequence_length),
        "reset": _int_column("reset", np.asarray(reset)),
        "start_time": _int_column("start_time", start_time),
        "target_start": _int_column("target_start", rows.target_start),
        "values": _array_column("values", rows.values),
        "observed": _array_column("observed", rows.observed),
        "lookahead": _array_column("lookahead", rows.lookahead),
        "lookahead_observed": _array_column("lookahead_observed", rows.lookahead_observed),
    }
    ordered = [columns[name] for name in sorted(columns)]
    out = []
    for pieces in zip(*ordered):
        body = b"".join(pieces)
        out.append(b"\x0a" + varint(len(body)) + body)
    return out


def row_features(
    series_id: str,
    rows: Rows,
    timestamp: np.ndarray,
    loc: float,
    scale: float,
    lanes: np.ndarray | int,
    reset: np.ndarray,
    i: int,
) -> dict:
    """The features of row ``i`` as :func:`encode_example` takes them (the reference of
    :func:`encode_rows`)."""
    lane = np.broadcast_to(np.asarray(lanes, dtype=np.int64), (len(rows),))[i]
    return {
        "series_id": series_id.encode("utf-8"),
        "chunk_index": int(rows.chunk_index[i]),
        "lane": int(lane),
        "sequence_length": int(rows.sequence_length[i]),
        "reset": int(reset[i]),
        "start_time": int(timestamp[rows.start[i]] // NS_PER_SECOND),
        "values": rows.values[i],
        "observed": rows.observed[i],
        "lookahead": rows.lookahead[i],
        "lookahead_observed": rows.lookahead_observed[i],
        "target_start": int(rows.target_start[i]),
        "loc": np.asarray([np.float32(loc)]),
        "scale": np.asarray([np.float32(scale)]),
    }


def _int_column(name: str, values: np.ndarray) -> list[bytes]:
    """One scalar int64 feature per row: a cached header per varint length + the varint."""
    encoded = [varint(int(v)) for v in np.asarray(values, dtype=np.int64).ravel()]
    return [entry_header(name, INT64_LIST, len(e)) + e for e in encoded]


def _array_column(name: str, values: np.ndarray) -> list[bytes]:
    """One packed list per row of ``values`` [n, ...]: float32 -> float_list, ints ->
    int64_list (one byte per value when all are in [0, 128), as protobuf packs them)."""
    n = len(values)
    flat = values.reshape(n, -1)
    if flat.dtype.kind == "f":
        payload, kind = flat.astype("<f4", copy=False), FLOAT_LIST
    elif flat.size == 0 or (flat.min() >= 0 and flat.max() < 128):
        payload, kind = flat.astype(np.uint8), INT64_LIST
    else:  # large or negative ints: varints of varying length, row by row
        return [encode_entry(name, np.asarray(row, dtype=np.int64)) for row in flat]
    width = payload.shape[1] * payload.itemsize
    header = entry_header(name, kind, width)
    data = np.ascontiguousarray(payload).tobytes()
    return [header + data[i * width : (i + 1) * width] for i in range(n)]


def encode_empty_row(lane: int, num_steps: int, num_features: int, horizon: int) -> bytes:
    """An empty lane: no valid steps, state reset, no targets."""
    return encode_example(
        {
            "series_id": b"",
            "chunk_index": -1,
            "lane": lane,
            "sequence_length": 0,
            "reset": 1,
            "start_time": 0,
            "values": np.zeros(num_steps * num_features, np.float32),
            "observed": np.zeros(num_steps, np.int64),
            "lookahead": np.zeros(horizon, np.float32),
            "lookahead_observed": np.zeros(horizon, np.int64),
            "target_start": num_steps + horizon,
            "loc": np.zeros(1, np.float32),
            "scale": np.ones(1, np.float32),
        }
    )
