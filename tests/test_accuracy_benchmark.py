"""benchmarks/accuracy.py in --quick mode on one small real dataset: the real `rnncast
evaluate` runs end to end and the tables have every method with a finite MASE (keeps the
issue-12 benchmark from rotting); plus the origin and flag choices on the manifest."""

from __future__ import annotations

import importlib.util
import json
import math
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def accuracy():
    spec = importlib.util.spec_from_file_location("accuracy", ROOT / "benchmarks" / "accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manifest_choices_keep_validation_origins_before_the_test_origins(accuracy):
    manifest = accuracy.load_manifest()
    assert len(manifest) >= 6
    for meta in manifest.values():
        count = accuracy.origin_count(meta)
        flags = accuracy.evaluate_flags(meta, count, quick=False)
        # One training per run, on the history before the first scored origin.
        assert flags[flags.index("--refit-every") + 1] == str(count)
        assert flags[flags.index("--origin-every") + 1] == str(meta["horizon"])
        # The shortest series keeps history before the first validation origin.
        assert meta["min_length"] - 2 * count * meta["horizon"] > meta["season"]
        classical = flags[flags.index("--classical") + 1].split(",")
        assert ("MSTL" in classical) == (meta["freq"] in ("h", "D"))
    hourly = accuracy.evaluate_flags(manifest["auckland_pedestrians_hourly"], 3, quick=False)
    assert hourly[hourly.index("--mstl-seasons") + 1] == "24,168"


def test_quick_run_on_a_small_real_dataset(accuracy, tmp_path, capsys):
    name = "txhousing_monthly"
    assert accuracy.main(["--quick", "--datasets", name, "--output", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "accuracy.json").read_text())
    assert result["quick"] and result["split"] == "test"
    (dataset,) = result["results"]
    methods = [row["method"] for row in dataset["table"]]
    # The stock peer is scored where it is installed (the 'peers' extra; not in CI's 'dev').
    peer = [accuracy.PEER] if accuracy.peer_available() else []
    assert methods == ["rnncast", "seasonal_naive", "naive", "AutoETS", "AutoTheta", *peer]
    for row in dataset["table"]:
        assert math.isfinite(row["mase"]) and row["mase"] > 0
        assert row["pairs"] == accuracy.QUICK_SERIES and row["not_scored"] == 0
    assert dataset["train_seconds"] > 0 and len(dataset["origins"]) == 1
    markdown = (tmp_path / "accuracy.md").read_text()
    assert "| rnncast |" in markdown and "| AutoTheta |" in markdown
    assert f"| {name} |" in markdown  # the summary row
    assert ("| LightGBM |" in markdown) == bool(peer)
    assert "rnncast_over_snaive" in capsys.readouterr().out
