"""Dead letters: the rows a job could not use, with their source, row number and reason.

Frames in the layout of ``schemas/rejected`` (one row per rejected input row), and their
serialisation as the sorted JSON lines every job writes under ``rejected/``.
"""

from __future__ import annotations

import collections
import json

import numpy as np
import pandas as pd

from rnncast import schemas
from rnncast.pipeline.core import series as series_lib

REJECTED_COLUMNS = tuple(schemas.load(schemas.REJECTED)["fields"])


_DETAILS = schemas.load(schemas.INPUT)["rejection_reasons"]


def empty_rejected() -> pd.DataFrame:
    """A dead-letter frame with no rows (a copy: callers may add to it)."""
    return _EMPTY_REJECTED.copy()


# Built once: constructing it costs ~0.4 ms, paid by every series of every pass otherwise.
_EMPTY_REJECTED = pd.DataFrame({c: pd.Series([], dtype=object) for c in REJECTED_COLUMNS})


def rejected_frame(
    source: str, row_numbers: np.ndarray, reasons: list[str] | np.ndarray, rows: list[dict]
) -> pd.DataFrame:
    """Build dead-letter records; ``rows`` are the rejected rows' fields as read."""
    reasons = list(reasons)
    return pd.DataFrame(
        {
            "source": [source] * len(reasons),
            "row_number": np.asarray(row_numbers, dtype=np.int64),
            "reason": reasons,
            "detail": [_DETAILS[r] for r in reasons],
            "row": [json.dumps(r, sort_keys=True, default=str) for r in rows],
        },
        columns=list(REJECTED_COLUMNS),
    )


def _rows_of(observations: series_lib.Observations, positions: np.ndarray) -> list[dict]:
    out = []
    for p in positions:
        row = {
            "timestamp": pd.Timestamp(int(observations.timestamp[p]), unit="ns").isoformat(),
            "value": float(observations.value[p]),
        }
        for k in range(observations.covariates.shape[1]):
            row[f"covariate_{k}"] = float(observations.covariates[p, k])
        out.append(row)
    return out


def rejected_observations(
    series_id: str, observations: series_lib.Observations, positions: np.ndarray, reason: str
) -> pd.DataFrame:
    """Dead-letter frame for rows of one series that were parsed but rejected (one reason)."""
    positions = np.asarray(positions, dtype=np.int64)
    frames = []
    for source_index in np.unique(observations.source_index[positions]):
        here = positions[observations.source_index[positions] == source_index]
        rows = _rows_of(observations, here)
        for row in rows:
            row["series_id"] = series_id
        frames.append(
            rejected_frame(
                observations.sources[source_index],
                observations.row_number[here],
                [reason] * len(here),
                rows,
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else empty_rejected()


def sorted_rejected(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """All dead-letter rows of ``frames`` in one table, in (source, row, reason) order."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_rejected()
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["source", "row_number", "reason"], kind="stable").reset_index(
        drop=True
    )


def rejected_payload(frames: list[pd.DataFrame]) -> tuple[bytes, int, dict[str, int]]:
    """Dead-letter frames as sorted JSON lines (``schemas/rejected``, keys sorted):
    ``(bytes, records, counts per reason)``."""
    table = sorted_rejected(frames)
    lines = [
        json.dumps(
            {
                "source": r.source,
                "row_number": int(r.row_number),
                "reason": r.reason,
                "detail": r.detail,
                "row": json.loads(r.row),
            },
            sort_keys=True,
        )
        for r in table.itertuples(index=False)
    ]
    payload = ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")
    counts = collections.Counter(table["reason"].tolist())
    return payload, len(lines), dict(sorted(counts.items()))


def deduplicated(
    series_id: str, rows: series_lib.Observations, max_gap_steps: float = 0.0
) -> tuple[series_lib.Observations, list[pd.DataFrame]]:
    """One series' unique rows, and the dead letters of the others: repeated timestamps
    (the reasons of :func:`~rnncast.pipeline.core.series.deduplicate`) and, when
    ``max_gap_steps`` is set, points beyond a gap at its ends (``isolated_by_gap``). Every
    job reads a series through this, so they all keep the same points."""
    unique, repeated = series_lib.deduplicate(rows)
    frames = [
        rejected_observations(series_id, rows, positions, reason)
        for reason, positions in repeated.items()
        if len(positions)
    ]
    isolated = series_lib.isolated_by_gap(unique.timestamp, max_gap_steps)
    if isolated.any():
        frames.append(
            rejected_observations(series_id, unique, np.flatnonzero(isolated), "isolated_by_gap")
        )
        unique = unique.subset(~isolated)
    return unique, frames
