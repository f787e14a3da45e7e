"""Rows -> ``tf.train.Example`` bytes, in the layout of ``schemas/tfrecord``."""

from __future__ import annotations

import numpy as np

from rnncast.pipeline.core.chunking import Rows
from rnncast.pipeline.core.series import NS_PER_SECOND
from rnncast.pipeline.io.tfrecord import encode_example


def encode_rows(
    series_id: str,
    rows: Rows,
    timestamp: np.ndarray,
    loc: float,
    scale: float,
    lanes: np.ndarray | int,
    reset: np.ndarray,
) -> list[bytes]:
    """Serialise ``rows`` of one series; ``timestamp`` is the series' grid (ns)."""
    lanes = np.broadcast_to(np.asarray(lanes, dtype=np.int64), (len(rows),))
    start_time = timestamp[rows.start] // NS_PER_SECOND
    id_bytes = series_id.encode("utf-8")
    location = np.float32(loc)
    spread = np.float32(scale)
    out = []
    for i in range(len(rows)):
        features = {
            "series_id": id_bytes,
            "chunk_index": int(rows.chunk_index[i]),
            "lane": int(lanes[i]),
            "sequence_length": int(rows.sequence_length[i]),
            "reset": int(reset[i]),
            "start_time": int(start_time[i]),
            "values": rows.values[i],
            "observed": rows.observed[i],
            "lookahead": rows.lookahead[i],
            "lookahead_observed": rows.lookahead_observed[i],
            "target_start": int(rows.target_start[i]),
            "loc": np.asarray([location]),
            "scale": np.asarray([spread]),
        }
        out.append(encode_example(features))
    return out


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
