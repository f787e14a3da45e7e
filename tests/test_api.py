"""rnncast.api: the jobs on DataFrames, equal to the command line on the same rows."""

from __future__ import annotations

import pandas as pd
import pytest

import rnncast.api as rc
from rnncast.pipeline import cli
from rnncast.pipeline.core import synthetic
from rnncast.pipeline.io import commit

SETTINGS = {"num_steps": 16, "batch_size": 4, "horizon": 4}


def test_notebook_flow_on_dataframes_equals_the_command_line(tmp_path):
    frame = synthetic.generate(4, 240, 300, seed=3, gap_fraction=0.0)
    first = rc.build_dataset(frame, str(tmp_path / "data"), **SETTINGS)
    # The same frame is the same run: same id, same files.
    assert rc.build_dataset(frame, str(tmp_path / "again"), **SETTINGS)["run_id"] == first["run_id"]
    export = rc.train(
        str(tmp_path / "data"),
        str(tmp_path / "model"),
        log=lambda _: None,
        layers=1,
        units=8,
        epochs=1,
        min_batches_per_epoch=0,
    )
    forecasts = rc.forecast(str(tmp_path / "model"), frame, str(tmp_path / "forecasts"))
    assert sorted(forecasts["series_id"].unique()) == sorted(frame["series_id"].unique())
    assert len(forecasts) == 4 * SETTINGS["horizon"]

    path = tmp_path / "series.parquet"
    frame.to_parquet(path, index=False)
    command = ["forecast", "--model", export, "--input", str(path), "--output"]
    assert cli.main([*command, str(tmp_path / "by-cli")]) == 0
    pd.testing.assert_frame_equal(forecasts, commit.read_committed_frame(str(tmp_path / "by-cli")))


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(TypeError, match="DataFrame or a path, got list"):
        rc.build_dataset([1, 2], str(tmp_path / "data"))
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_step'"):
        rc.build_dataset(str(tmp_path / "x.csv"), str(tmp_path / "data"), num_step=3)
