"""The installed ``rnncast`` command, run in subprocesses as a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import jsonschema
import numpy as np
import pandas as pd
import pytest

from rnncast import schemas
from rnncast.pipeline.beam import flags
from rnncast.pipeline.cli import HANDLERS

RNNCAST = [sys.executable, "-m", "rnncast"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def rnncast(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*RNNCAST, *args], capture_output=True, text=True, env=ENV, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def test_help_lists_subcommands():
    out = rnncast("--help").stdout
    for command in HANDLERS:
        assert re.search(rf"^\s+{command}\s", out, re.M), command


def test_dataset_help_explains_every_flag():
    out = rnncast("dataset", "--help").stdout
    parser = flags.DATASET.help_parser()
    listed = [a.option_strings[0] for a in parser._actions if a.option_strings and a.dest != "help"]
    assert len(listed) >= 20
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings[0]} has no help text"
            assert action.option_strings[0] in out
    assert "--runner" in out  # Beam options are mentioned


def test_errors_are_one_clear_line_not_a_traceback(tmp_path):
    result = rnncast(
        "dataset",
        "--input",
        str(tmp_path / "nope.csv"),
        "--output",
        str(tmp_path / "o"),
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{tmp_path / 'nope.csv'}: no input files found" in result.stderr


@pytest.mark.parametrize("extension", ["csv", "parquet"])
def test_synthetic_then_dataset_through_the_cli(tmp_path, extension):
    data = tmp_path / f"syn.{extension}"
    rnncast(
        "synthetic",
        "--output",
        str(data),
        "--num-series",
        "3",
        "--min-length",
        "100",
        "--max-length",
        "200",
    )
    result = rnncast(
        "dataset",
        "--input",
        str(data),
        "--output",
        str(tmp_path / "out"),
        "--num-steps",
        "16",
        "--batch-size",
        "4",
        "--horizon",
        "4",
        "--direct_num_workers",
        "1",
    )
    assert "rows read" in result.stdout and "padding waste" in result.stdout
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert metadata["counts"]["rows_rejected"] == 0 and metadata["num_series"] == 3


def test_demo_runs_the_whole_flow_on_embedded_data(tmp_path):
    """The main command's flow end to end through the CLI in a subprocess (few epochs):
    dataset -> train -> export -> forecast -> evaluate, with the accuracy table printed."""
    result = rnncast("demo", "--output", str(tmp_path / "demo"), "--epochs", "2")
    assert "committed (4 series, freq D" in result.stdout
    assert "epoch 2/2" in result.stdout
    demo = tmp_path / "demo"
    for marker in ("dataset/_SUCCESS", "forecasts/_SUCCESS", "state/_SUCCESS"):
        assert (demo / marker).exists(), marker
    assert (demo / "model" / "export" / "saved_model.pb").exists()
    metadata = json.loads((demo / "forecasts" / "metadata.json").read_text())
    assert metadata["counts"]["series_by_status"]["full"] == 4
    dataset = json.loads((demo / "dataset" / "metadata.json").read_text())
    assert dataset["splits"]["train"]["padding_waste"] <= 0.05

    summary = json.loads((demo / "evaluation" / "evaluation.json").read_text())
    jsonschema.validate(summary, schemas.load(schemas.EVALUATION)["json_schema"])
    assert summary["counts"]["rows_read"] == summary["counts"]["rows_accepted"] == 4 * 1461
    assert len(summary["origins"]) == 6 and summary["season"] == 7
    methods = {row["method"]: row for row in summary["overall"]}
    expected = {"rnncast", "naive", "seasonal_naive", *summary["classical"]}
    assert set(methods) == expected
    for row in methods.values():
        assert row["forecasts"] == 4 * 6
        assert np.isfinite([row["mase"], row["smape"], row["scaled_pinball"], row["wql"]]).all()
    assert "| rnncast |" in result.stdout and "| seasonal_naive |" in result.stdout
    assert "summary.md" in result.stdout
    for name in summary["files"]["plots"]:
        assert (demo / "evaluation" / name).read_bytes()[:4] == b"\x89PNG"
    metrics = pd.read_parquet(demo / "evaluation" / "metrics.parquet")
    assert len(metrics) == 4 * 6 * len(expected)


@pytest.mark.parametrize("command", ["train", "export", "forecast", "evaluate", "stream"])
def test_each_command_explains_its_flags(command):
    out = rnncast(command, "--help").stdout
    assert "--help" in out and out.count("--") >= 2
