"""How predictable the embedded datasets are for the naive baselines: per series, the
standard deviation and the in-sample mean absolute error of the naive (lag 1) and seasonal
naive (lag m) forecasts, i.e. MASE's two possible scales. Prints one table per dataset.

    .venv/bin/python benchmarks/profile_data.py
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rnncast.pipeline import EMBEDDED_DATASETS, embedded_data_path  # noqa: E402
from rnncast.pipeline.beam.transforms import FrequencyVotes  # noqa: E402
from rnncast.pipeline.core import backtest, metrics
from rnncast.pipeline.core import series as series_lib  # noqa: E402
from rnncast.pipeline.core.validation import InputColumns  # noqa: E402
from rnncast.pipeline.io import observations  # noqa: E402


def main() -> None:
    for name in EMBEDDED_DATASETS:
        loaded = observations.load_input(embedded_data_path(name), InputColumns())
        votes = FrequencyVotes()
        counts = votes.create_accumulator()
        for obs in loaded.series.values():
            counts = votes.add_input(counts, series_lib.frequency_vote(obs.timestamp))
        freq = votes.extract_output(counts)["freq"]
        season = metrics.default_season(freq)
        rows = []
        for series_id, obs in loaded.series.items():
            regular, _ = series_lib.regularise(series_id, obs, freq, "ffill")
            values = regular.value
            rows.append(
                {
                    "series_id": series_id,
                    "points": len(values),
                    "std": float(np.std(values)),
                    "naive_mae (lag 1)": metrics.seasonal_naive_scale(values, 1),
                    f"seasonal_naive_mae (lag {season})": metrics.seasonal_naive_scale(
                        values, season
                    ),
                }
            )
        table = pd.DataFrame(rows)
        print(f"\n{name}: {embedded_data_path(name)} (freq {freq}, season {season})")
        print(backtest.markdown_table(table, list(table.columns)))


if __name__ == "__main__":
    main()
