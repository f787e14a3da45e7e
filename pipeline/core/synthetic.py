"""Deterministic synthetic long-format series for tests and benchmarks.

Each series has its own length, start time, level, trend, daily and weekly seasonality,
AR(1) noise, isolated missing points and occasional missing stretches. Series ``i`` depends
only on ``(seed, i)``, so a larger set extends a smaller one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def generate_series(
    index: int,
    length: int,
    seed: int = 0,
    freq_seconds: int = 3600,
    gap_fraction: float = 0.01,
    num_covariates: int = 0,
) -> pd.DataFrame:
    """One synthetic series (rows with gaps removed) in long format."""
    rng = np.random.default_rng([seed, index])
    start = np.datetime64("2020-01-01T00:00:00", "s") + np.timedelta64(
        int(rng.integers(0, 24 * 365)) * freq_seconds, "s"
    )
    step = np.arange(length)
    hours = step * freq_seconds / 3600.0
    level = rng.uniform(5, 100)
    value = (
        level
        + rng.normal(0, 0.02) * level * step / max(length, 1)
        + rng.uniform(0.05, 0.3) * level * np.sin(2 * np.pi * hours / 24 + rng.uniform(0, 6.3))
        + rng.uniform(0.0, 0.15) * level * np.sin(2 * np.pi * hours / 168 + rng.uniform(0, 6.3))
    )
    noise = rng.normal(0, 0.05 * level, length)
    ar = np.empty(length)
    ar[0] = noise[0] if length else 0.0
    phi = rng.uniform(0.3, 0.8)
    for t in range(1, length):  # AR(1) noise; cheap next to the job itself
        ar[t] = phi * ar[t - 1] + noise[t]
    value = value + ar
    keep = rng.random(length) >= gap_fraction
    if length > 200 and rng.random() < 0.3:
        gap_start = int(rng.integers(1, length - 100))
        keep[gap_start : gap_start + int(rng.integers(5, 50))] = False
    if length:
        keep[0] = True
    timestamps = start + step.astype("timedelta64[s]") * freq_seconds
    frame = pd.DataFrame(
        {
            "series_id": f"series-{index:06d}",
            "timestamp": timestamps[keep].astype("datetime64[ns]"),
            "value": np.round(value[keep], 4),
        }
    )
    for k in range(num_covariates):
        frame[f"covariate_{k}"] = np.round(
            np.cos(2 * np.pi * hours[keep] / (24 * (k + 1))) + rng.normal(0, 0.1, keep.sum()), 4
        )
    return frame


def generate(
    num_series: int,
    min_length: int,
    max_length: int,
    seed: int = 0,
    freq_seconds: int = 3600,
    gap_fraction: float = 0.01,
    num_covariates: int = 0,
) -> pd.DataFrame:
    """``num_series`` series with lengths uniform in ``[min_length, max_length]``."""
    lengths = np.random.default_rng([seed, 2**31]).integers(min_length, max_length + 1, num_series)
    frames = [
        generate_series(i, int(n), seed, freq_seconds, gap_fraction, num_covariates)
        for i, n in enumerate(lengths)
    ]
    return pd.concat(frames, ignore_index=True)


def write(frame: pd.DataFrame, path: str) -> None:
    """Write a long-format frame as CSV (ISO timestamps) or Parquet, by extension."""
    if path.endswith((".parquet", ".pq")):
        frame.to_parquet(path, index=False)
        return
    out = frame.copy()
    out["timestamp"] = pd.DatetimeIndex(out["timestamp"]).strftime("%Y-%m-%dT%H:%M:%S")
    out.to_csv(path, index=False)
