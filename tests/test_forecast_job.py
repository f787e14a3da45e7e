"""The forecast job on DirectRunner with a real exported model: equality with the SavedModel,
incremental runs equal to full recomputes, statuses, errors and runner modes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from conftest import run_job, write_csv

from rnncast.errors import InputError, ModelError
from rnncast.model.config import TrainConfig
from rnncast.model.export import export_model
from rnncast.model.train import train
from rnncast.pipeline.core import series as series_lib
from rnncast.pipeline.core import synthetic
from rnncast.pipeline.core.series import model_features
from rnncast.pipeline.core.validation import InputColumns
from rnncast.pipeline.io.model_loader import load_model, read_model_info
from rnncast.pipeline.io.state_store import load_state_files
from rnncast.pipeline.jobs import forecast as forecast_job

HOUR = pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fmodel")
    frame = synthetic.generate(6, 300, 400, seed=21, gap_fraction=0.01, num_covariates=1)
    source = write_csv(frame, tmp / "train.csv")
    run_job(
        source,
        tmp / "data",
        num_steps=16,
        batch_size=4,
        horizon=5,
        columns=InputColumns(covariates=("covariate_0",)),
    )
    config = TrainConfig(
        str(tmp / "data"), str(tmp / "model"), cell="lstm", layers=2, units=8, epochs=1, dropout=0.0
    )
    train(config, log=lambda _: None)
    return export_model(config.model_dir), frame


def forecast(model, data, output, pipeline_args=(), **fields):
    """The forecast job as a library call: ``ForecastConfig(model, input, output, **fields)``
    run by ``run_config`` (which checks the config against the model, as ``rnncast forecast``
    does) with the Beam options in ``pipeline_args``; returns the committed metadata."""
    config = forecast_job.ForecastConfig(
        model=str(model), input=str(data), output=str(output), **fields
    )
    return forecast_job.run_config(config, PipelineOptions(list(pipeline_args)))


def read_forecasts(output) -> pd.DataFrame:
    metadata = json.loads((output / "metadata.json").read_text())
    return pd.concat([pd.read_parquet(output / f["name"]) for f in metadata["files"]])


def series_frame(frame, newcomer=True):
    """The training series plus one series the model has never seen."""
    if not newcomer:
        return frame
    extra = synthetic.generate_series(99, 120, seed=5, num_covariates=1)
    extra["series_id"] = "newcomer"
    return pd.concat([frame, extra], ignore_index=True)


def test_job_output_equals_the_savedmodel_forecast_signature(exported, tmp_path):
    model_path, frame = exported
    frame = series_frame(frame)
    source = write_csv(frame, tmp_path / "in.csv")
    metadata = forecast(model_path, source, tmp_path / "out")
    got = read_forecasts(tmp_path / "out")
    assert metadata["counts"]["series_by_status"]["full"] == 7
    with open(os.path.join(model_path, "rnncast_model.json")) as handle:
        info = json.load(handle)
    module = tf.saved_model.load(model_path)
    for sid, group in frame.groupby("series_id"):
        ts = pd.DatetimeIndex(group["timestamp"]).as_unit("ns").asi8
        order = np.argsort(ts)
        obs = series_lib.Observations(
            ts[order],
            group["value"].to_numpy()[order],
            group[["covariate_0"]].to_numpy()[order],
            np.zeros(len(ts), np.int32),
            np.arange(len(ts)),
            ("x",),
        )
        regular, _ = series_lib.regularise(sid, obs, info["freq"], info["fill"])
        feats = model_features(regular, tuple(info["calendar_features"]))
        if sid in info["series"]:
            loc, scale = info["series"][sid]["loc"], info["series"][sid]["scale"]
        else:
            head = regular.value[regular.observed][:16]
            loc, scale = float(np.mean(head)), float(np.std(head))
        out = module.forecast(
            feats[None],
            regular.observed[None].astype(np.float32),
            np.array([len(feats)], np.int32),
            np.array([loc], np.float32),
            np.array([scale], np.float32),
        )
        mine = got[got.series_id == sid].sort_values("step")
        np.testing.assert_allclose(mine["forecast"], out["point"].numpy()[0], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(
            mine[["q0.1", "q0.5", "q0.9"]], out["quantiles"].numpy()[0], rtol=1e-5, atol=1e-4
        )
        assert (mine["origin"] == pd.Timestamp(regular.timestamp[-1])).all()
        assert (mine["timestamp"] == mine["origin"] + mine["step"] * HOUR).all()
        assert set(mine["scaling"]) == {"training" if sid in info["series"] else "own_history"}


def _step_arguments(info, lengths, width: int, rng) -> tuple:
    """``step``'s arguments for ``len(lengths)`` lanes of ``width`` steps: random inputs, some
    points not observed, a carried state."""
    lanes = len(lengths)
    S, U = len(info.state_size), info.state_size[0]
    return (
        rng.normal(size=(lanes, width, len(info.feature_names))).astype(np.float32),
        (rng.random((lanes, width)) > 0.2).astype(np.float32),
        np.asarray(lengths, np.int32),
        rng.normal(size=lanes).astype(np.float32),
        (1 + rng.random(lanes)).astype(np.float32),
        rng.normal(size=(S, lanes, U)).astype(np.float32),
    )


def _assert_same_outputs(got: dict, want: dict) -> None:
    for name in ("point", "quantiles", "state"):
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_the_xla_step_equals_the_plain_step_at_any_width_and_length(exported):
    # --jit-compile pads each call to a power-of-two shape and takes the masked path: padded
    # lanes and steps must not change any real lane (lengths 0, 1, W - 1, W; carried state).
    model_path, _ = exported
    # Every call in TensorFlow (small calls would run the numpy step, tested below); with
    # --jit-compile every call runs XLA, whatever its size.
    plain = load_model(model_path, numpy_max_lane_steps=0)
    xla = load_model(model_path, jit_compile=True)
    assert xla.numpy_max_lane_steps == 0
    rng = np.random.default_rng(3)
    for lanes, width in [(5, 7), (1, 1), (4, plain.info.num_steps)]:
        lengths = np.array([width, 0, 1, max(width - 1, 0), width][:lanes], np.int32)
        args = _step_arguments(plain.info, lengths, width, rng)
        want, got = plain.step(*args), xla.step(*args)
        _assert_same_outputs(got, want)
        empty = lengths == 0
        np.testing.assert_array_equal(got["state"][:, empty], args[5][:, empty])
        assert not got["point"][empty].any()


def test_the_loaded_model_runs_small_calls_in_numpy_and_large_ones_in_tensorflow(exported):
    model_path, _ = exported
    mixed = load_model(model_path)  # the default: small calls in numpy
    tensorflow_only = load_model(model_path, numpy_max_lane_steps=0)
    info = mixed.info
    calls = []
    original = mixed._numpy_step
    mixed._numpy_step = lambda *a: calls.append(np.shape(a[0])) or original(*a)
    rng = np.random.default_rng(0)
    for lanes, width in [(12, 1), (3, info.num_steps), (300, 64)]:
        lengths = rng.integers(0, width + 1, lanes).astype(np.int32)
        args = _step_arguments(info, lengths, width, rng)
        _assert_same_outputs(mixed.step(*args), tensorflow_only.step(*args))
    # 300 x 64 lane-steps are above the threshold: TensorFlow ran that one.
    features = len(info.feature_names)
    assert calls == [(12, 1, features), (3, info.num_steps, features)]


def test_jit_compile_forecasts_equal_the_plain_job_in_full_and_incremental_runs(exported, tmp_path):
    model_path, frame = exported
    frame = series_frame(frame)
    cut = frame.timestamp.max() - 20 * HOUR
    first = write_csv(frame[frame.timestamp <= cut], tmp_path / "first.csv")
    whole = write_csv(frame, tmp_path / "whole.csv")
    from rnncast.pipeline import cli

    runs = {}
    for jit in (False, True):
        flags = ["--jit-compile"] if jit else []
        state = tmp_path / f"state-{jit}"
        assert cli.main(["forecast", "--model", str(model_path), "--input", str(first),
                         "--output", str(tmp_path / f"a-{jit}"), "--state-out", str(state),
                         *flags]) == 0  # fmt: skip
        out = tmp_path / f"b-{jit}"
        assert cli.main(["forecast", "--model", str(model_path), "--input", str(whole),
                         "--output", str(out), "--state-in", str(state), *flags]) == 0  # fmt: skip
        runs[jit] = (read_forecasts(tmp_path / f"a-{jit}"), read_forecasts(out))
    for plain, xla in zip(runs[False], runs[True]):
        plain = plain.sort_values(["series_id", "step"]).reset_index(drop=True)
        xla = xla.sort_values(["series_id", "step"]).reset_index(drop=True)
        assert list(xla.status) == list(plain.status) and list(xla.origin) == list(plain.origin)
        columns = ["forecast", "q0.1", "q0.5", "q0.9"]
        np.testing.assert_allclose(xla[columns], plain[columns], rtol=1e-5, atol=1e-5)
    assert {"from_state", "incremental"} == set(runs[True][1].status)


def test_incremental_runs_equal_full_recompute(exported, tmp_path):
    model_path, frame = exported
    frame = series_frame(frame)
    end = frame.groupby("series_id")["timestamp"].max()
    cut = {sid: t - 30 * HOUR for sid, t in end.items()}
    cut2 = {sid: t - 10 * HOUR for sid, t in end.items()}
    first = frame[frame.apply(lambda r: r.timestamp <= cut[r.series_id], axis=1)]
    first = first[first.series_id != "newcomer"]  # appears only in a later run
    second_full = frame[frame.apply(lambda r: r.timestamp <= cut2[r.series_id], axis=1)]
    new_points = second_full[
        second_full.apply(lambda r: r.timestamp > cut[r.series_id], axis=1)
        | (second_full.series_id == "newcomer")
    ]
    new_points = new_points[new_points.series_id != "series-000002"]  # no new points
    second_full = pd.concat(
        [
            second_full[second_full.series_id != "series-000002"],
            first[first.series_id == "series-000002"],
        ]
    )
    runs = [
        (first, first, None),
        (new_points, second_full, "s1"),
        (frame, frame, "s2"),
    ]
    for k, (incremental_input, full_input, state_in) in enumerate(runs, start=1):
        inc = write_csv(incremental_input, tmp_path / f"inc{k}.csv")
        full = write_csv(full_input, tmp_path / f"full{k}.csv")
        meta = forecast(
            model_path,
            inc,
            tmp_path / f"inc-out{k}",
            state_out=str(tmp_path / f"s{k}"),
            state_in=str(tmp_path / state_in) if state_in else None,
        )
        forecast(model_path, full, tmp_path / f"full-out{k}")
        a = read_forecasts(tmp_path / f"inc-out{k}").sort_values(["series_id", "step"])
        b = read_forecasts(tmp_path / f"full-out{k}").sort_values(["series_id", "step"])
        assert list(a.series_id) == list(b.series_id) and list(a.origin) == list(b.origin)
        # Within 1e-5 in model units: differences divided by each series' scale.
        state = pd.read_parquet(tmp_path / f"s{k}" / "state").set_index("series_id")["scale"]
        scale = a["series_id"].map(state).to_numpy()[:, None]
        columns = ["forecast", "q0.1", "q0.5", "q0.9"]
        difference = np.abs(a[columns].to_numpy() - b[columns].to_numpy()) / scale
        assert difference.max() < 1e-5, difference.max()
        statuses = meta["counts"]["series_by_status"]
        if k == 2:
            assert statuses["incremental"] == 5 and statuses["from_state"] == 1
            assert statuses["full"] == 1  # the newcomer
        if k == 3:
            # The whole history is given again: consumed points are skipped, not re-counted;
            # series-000002 continues over everything after its first-run state.
            assert statuses["incremental"] == 7
            assert meta["counts"]["rows_skipped"] > 0


def test_rewritten_history_is_recomputed_and_reported(exported, tmp_path):
    model_path, frame = exported
    source = write_csv(frame, tmp_path / "a.csv")
    forecast(model_path, source, tmp_path / "o1", state_out=str(tmp_path / "s1"))
    changed = frame.copy()
    changed.loc[changed.index[5], "value"] += 10.0  # series-000000, long consumed
    source = write_csv(changed, tmp_path / "b.csv")
    meta = forecast(model_path, source, tmp_path / "o2", state_in=str(tmp_path / "s1"))
    assert meta["counts"]["series_by_status"]["recomputed"] == 1
    forecast(model_path, source, tmp_path / "o3")
    a, b = read_forecasts(tmp_path / "o2"), read_forecasts(tmp_path / "o3")
    np.testing.assert_allclose(a["forecast"], b["forecast"], rtol=1e-5, atol=1e-4)


def test_statuses_for_series_that_cannot_be_forecast(exported, tmp_path):
    model_path, frame = exported
    short = pd.DataFrame(
        {
            "series_id": "tiny",
            "value": [1.0, 2.0, 3.0],
            "timestamp": pd.date_range("2021-01-01", periods=3, freq="h"),
            "covariate_0": [0.0, 0.0, 0.0],
        }
    )
    only = pd.concat([frame[frame.series_id == "series-000001"], short])
    source = write_csv(only, tmp_path / "in.csv")
    meta = forecast(model_path, source, tmp_path / "out")
    statuses = meta["counts"]["series_by_status"]
    assert statuses == {
        "full": 1,
        "incremental": 0,
        "recomputed": 0,
        "from_state": 0,
        "too_short": 1,
        "no_data": 5,
    }
    rows = read_forecasts(tmp_path / "out")
    status_rows = rows[rows.status.isin(["too_short", "no_data"])]
    assert len(status_rows) == 6 and status_rows["forecast"].isna().all()


def test_clear_errors(exported, tmp_path):
    model_path, frame = exported
    source = write_csv(frame, tmp_path / "in.csv")
    with pytest.raises(ModelError, match="not an rnncast export"):
        forecast(str(tmp_path / "nope"), source, tmp_path / "o")
    (tmp_path / "empty.csv").write_text("series_id,timestamp,value,covariate_0\n")
    with pytest.raises(InputError, match="no data rows"):
        forecast(model_path, tmp_path / "empty.csv", tmp_path / "o")
    forecast(model_path, source, tmp_path / "o1", state_out=str(tmp_path / "s"))
    state_file = next((tmp_path / "s" / "state").glob("*.parquet"))
    meta_path = tmp_path / "s" / "metadata.json"
    original = meta_path.read_text()
    meta_path.write_text(original.replace('"model_fingerprint": "', '"model_fingerprint": "x'))
    with pytest.raises(ModelError, match="state was written by model"):
        forecast(model_path, source, tmp_path / "o2", state_in=str(tmp_path / "s"))
    meta_path.write_text(original)
    state_file.write_bytes(state_file.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match=f"{state_file}: corrupt"):
        forecast(model_path, source, tmp_path / "o2", state_in=str(tmp_path / "s"))


def test_multi_processing_gives_the_same_output(exported, tmp_path):
    model_path, frame = exported
    source = write_csv(frame, tmp_path / "in.csv")
    forecast(model_path, source, tmp_path / "a", state_out=str(tmp_path / "sa"))
    forecast(
        model_path,
        source,
        tmp_path / "b",
        ["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"],
        state_out=str(tmp_path / "sb"),
        lanes=2,
    )
    pd.testing.assert_frame_equal(
        read_forecasts(tmp_path / "a"), read_forecasts(tmp_path / "b"), rtol=1e-6
    )
    # Rerunning the same job into the same output gives the same files.
    before = (tmp_path / "a" / "metadata.json").read_bytes()
    forecast(model_path, source, tmp_path / "a", state_out=str(tmp_path / "sa"))
    assert (tmp_path / "a" / "metadata.json").read_bytes() == before


def _schedule(model_path, data, root, date, **kwargs):
    from rnncast.pipeline.jobs.schedule import schedule_run

    return schedule_run(model_path, str(data), str(root), date, **kwargs)


def test_scheduled_runs_twice_and_after_a_crash_before_the_pointer_moves(exported, tmp_path):
    model_path, frame = exported
    end = frame.groupby("series_id")["timestamp"].transform("max")
    periods = [
        frame[frame.timestamp <= end - 20 * HOUR],
        frame[(frame.timestamp > end - 20 * HOUR) & (frame.timestamp <= end - 10 * HOUR)],
        frame[frame.timestamp > end - 10 * HOUR],
    ]
    inputs = [write_csv(p, tmp_path / f"day{i}.csv") for i, p in enumerate(periods, 1)]
    dates = ["2026-01-01", "2026-01-02", "2026-01-03"]

    clean = tmp_path / "clean"
    for source, date in zip(inputs, dates):
        _schedule(model_path, source, clean, date)
    assert (clean / "LATEST").read_text().strip() == dates[-1]

    crashed = tmp_path / "crashed"
    for source, date in zip(inputs[:2], dates[:2]):
        _schedule(model_path, source, crashed, date)

    def crash():
        raise RuntimeError("killed between committing state and moving LATEST")

    with pytest.raises(RuntimeError):
        _schedule(model_path, inputs[2], crashed, dates[2], after_forecast=crash)
    assert (crashed / "LATEST").read_text().strip() == dates[1]  # still the previous state
    meta = _schedule(model_path, inputs[2], crashed, dates[2])  # the scheduler's retry
    assert meta["counts"]["rows_skipped"] == 0, "nothing may be consumed twice"
    assert meta["counts"]["series_by_status"]["incremental"] == 6
    for root in (clean, crashed):
        assert (root / "LATEST").read_text().strip() == dates[-1]
    pd.testing.assert_frame_equal(
        read_forecasts(clean / "forecasts" / dates[-1]),
        read_forecasts(crashed / "forecasts" / dates[-1]),
    )
    # Retrying a finished period gives the same outputs; going back in time is refused.
    _schedule(model_path, inputs[2], clean, dates[-1])
    pd.testing.assert_frame_equal(
        read_forecasts(clean / "forecasts" / dates[-1]),
        read_forecasts(crashed / "forecasts" / dates[-1]),
    )
    with pytest.raises(ModelError, match="not after the latest run"):
        _schedule(model_path, inputs[0], clean, "2025-12-31")
    # The incremental chain equals one forecast over the whole history.
    forecast(model_path, write_csv(frame, tmp_path / "all.csv"), tmp_path / "whole")
    a = read_forecasts(clean / "forecasts" / dates[-1]).sort_values(["series_id", "step"])
    b = read_forecasts(tmp_path / "whole").sort_values(["series_id", "step"])
    np.testing.assert_allclose(a["forecast"], b["forecast"], rtol=1e-5, atol=1e-4)


def tree(directory) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_output_directories_of_other_jobs_are_refused_untouched(exported, tmp_path, capsys):
    from rnncast.errors import OutputError
    from rnncast.pipeline import cli
    from rnncast.pipeline.io.reader import make_dataset

    model_path, frame = exported
    source = write_csv(frame, tmp_path / "in.csv")
    data = tmp_path / "data"
    run_job(source, data, num_steps=16, batch_size=4, horizon=5)
    dataset = tree(data)

    def cli_error(*argv):
        assert cli.main([*map(str, argv)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return err

    base = ("forecast", "--model", model_path, "--input", source)
    err = cli_error(*base, "--output", data)
    assert f"{data}: holds a dataset written by 'rnncast dataset'" in err
    assert "Choose another output directory" in err
    err = cli_error(*base, "--output", tmp_path / "f", "--state-out", data)
    assert f"{data}: holds a dataset" in err and not (tmp_path / "f").exists()
    assert tree(data) == dataset  # byte-identical, and still a dataset
    assert next(iter(make_dataset(str(data), "train")))["inputs"].shape[:2] == (4, 16)

    both = tmp_path / "both"
    err = cli_error(*base, "--output", both, "--state-out", f"{both}/")
    assert f"--output and --state-out are both {both}" in err and not both.exists()

    forecast(model_path, source, tmp_path / "f", state_out=str(tmp_path / "s"))
    forecasts = tree(tmp_path / "f")
    assert json.loads(forecasts["metadata.json"])["job"] == "forecast"
    err = cli_error("dataset", "--input", source, "--output", tmp_path / "f", "--horizon", 5)
    assert f"{tmp_path / 'f'}: holds forecasts written by 'rnncast forecast --output'" in err
    with pytest.raises(OutputError, match=f"{tmp_path / 's'}: holds a state directory"):
        forecast(model_path, source, tmp_path / "s")
    with pytest.raises(OutputError, match=f"{tmp_path / 'f'}: holds forecasts"):
        forecast(model_path, source, tmp_path / "o", state_out=str(tmp_path / "f"))
    with pytest.raises(ModelError, match=f"{data}: not a state directory"):
        forecast(model_path, source, tmp_path / "o", state_in=str(data))
    assert tree(tmp_path / "f") == forecasts and not (tmp_path / "o").exists()


@pytest.mark.parametrize("point", ["move", "replaced_record", "metadata", "delete_stale"])
def test_crash_while_committing_state_leaves_the_old_or_the_new_state(
    exported, tmp_path, monkeypatch, point
):
    """Every commit step is crashed in tests/test_commit.py (same code); here the steps around
    the switch, read back through the forecast job's own state loading."""
    import shutil

    from rnncast.pipeline.io import commit

    model_path, frame = exported
    model = read_model_info(model_path)
    end = frame.groupby("series_id")["timestamp"].transform("max")
    early = write_csv(frame[frame.timestamp <= end - 10 * HOUR], tmp_path / "early.csv")
    full = write_csv(frame, tmp_path / "full.csv")
    forecast(model_path, early, tmp_path / "o1", state_out=str(tmp_path / "old"))
    forecast(model_path, full, tmp_path / "o2", state_out=str(tmp_path / "new"))
    state = tmp_path / "state"
    shutil.copytree(tmp_path / "old", state)

    def step(name, output):
        if name == point and output == str(state):
            raise KeyboardInterrupt(f"crash after {point}")

    monkeypatch.setattr(commit, "_step", step)
    with pytest.raises(KeyboardInterrupt):
        forecast(model_path, full, tmp_path / "o3", state_out=str(state))
    monkeypatch.undo()
    files, _ = load_state_files(str(state), model)
    switched = commit.STEPS.index(point) >= commit.STEPS.index("metadata")
    expected = tmp_path / ("new" if switched else "old")
    assert [Path(f).read_bytes() for f in files] == [
        (expected / n).read_bytes()
        for n in (e["name"] for e in json.loads((expected / "metadata.json").read_text())["files"])
    ]
    # Continuing from it works, and the retry leaves what a clean run leaves.
    forecast(model_path, full, tmp_path / "o4", state_in=str(state))
    forecast(model_path, full, tmp_path / "o3", state_out=str(state))
    assert tree(state) == tree(tmp_path / "new")


def _arrow_fields(path) -> list[tuple[str, object]]:
    import pyarrow.parquet as pq

    return [(f.name, f.type) for f in pq.read_schema(path)]


def _check_rejected(path) -> int:
    from rnncast import schemas

    fields = schemas.load(schemas.REJECTED)["fields"]
    python = {"string": str, "int64": int, "object": dict}
    lines = Path(path).read_text().splitlines()
    for line in lines:
        record = json.loads(line)
        assert list(record) == list(fields) or set(record) == set(fields), record
        for name, spec in fields.items():
            assert isinstance(record[name], python[spec["type"]]), (name, record)
        assert record["reason"] in schemas.rejection_reasons()
    return len(lines)


def test_written_files_match_their_contracts(exported, tmp_path):
    """Every file the dataset and forecast jobs write (Parquet column names and Arrow types,
    JSON/JSONL fields) against schemas/*.json; and older state files (list<double>) still
    read."""
    import jsonschema
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rnncast import schemas
    from rnncast.pipeline.core import forecasting

    model_path, frame = exported
    model = read_model_info(model_path)
    source = write_csv(frame, tmp_path / "in.csv")
    with open(source, "a", encoding="utf-8") as sink:
        sink.write("series_000,2020-01-01T00:00:00,not-a-number,1.0\n")
    data = tmp_path / "data"
    metadata = run_job(source, data, num_steps=16, batch_size=4, horizon=5)
    jsonschema.validate(
        json.loads((data / "metadata.json").read_text()),
        schemas.load(schemas.METADATA)["json_schema"],
    )
    assert [_check_rejected(data / e["name"]) for e in metadata["rejected_files"]] == [1]

    out, state = tmp_path / "f", tmp_path / "s"
    forecast(model_path, source, out, state_out=str(state))
    contract = schemas.load(schemas.FORECAST)
    meta = json.loads((out / "metadata.json").read_text())
    jsonschema.validate(meta, contract["metadata_json_schema"])
    types = {n: schemas.arrow_type(c["type"]) for n, c in contract["columns"].items()}
    types |= {q: pa.float64() for q in model.quantile_columns}  # one float64 per level
    for entry in meta["files"]:
        fields = _arrow_fields(out / entry["name"])
        assert fields == [(n, types[n]) for n in forecasting.forecast_columns(model)]
    assert [_check_rejected(out / e["name"]) for e in meta["rejected_files"]] == [1]

    contract = schemas.load(schemas.STATE)
    state_meta = json.loads((state / "metadata.json").read_text())
    jsonschema.validate(state_meta, contract["metadata_json_schema"])
    expected = [(n, schemas.arrow_type(c["type"])) for n, c in contract["columns"].items()]
    assert expected[8] == ("state", pa.list_(pa.float32()))
    for entry in state_meta["files"]:
        assert _arrow_fields(state / entry["name"]) == expected

    # A state directory written before the state column was float32 still continues.
    old = tmp_path / "old-state"
    old.mkdir()
    (old / "state").mkdir()
    for entry in state_meta["files"]:
        table = pq.read_table(state / entry["name"])
        at = table.schema.get_field_index("state")
        table = table.set_column(at, "state", table["state"].cast(pa.list_(pa.float64())))
        pq.write_table(table, old / entry["name"])
        data_bytes = (old / entry["name"]).read_bytes()
        entry.update(bytes=len(data_bytes), sha256=hashlib.sha256(data_bytes).hexdigest())
    (old / "metadata.json").write_text(json.dumps(state_meta))
    again = forecast(model_path, source, tmp_path / "g1", state_in=str(state))
    legacy = forecast(model_path, source, tmp_path / "g2", state_in=str(old))
    assert legacy["counts"]["series_by_status"] == again["counts"]["series_by_status"]
    pd.testing.assert_frame_equal(
        read_forecasts(tmp_path / "g1"), read_forecasts(tmp_path / "g2"), rtol=1e-6
    )


# --- the jobs run rnncast's network with the export's weights, never its graph -------------


def _foreign_savedmodel(directory, marker, info):
    """A SavedModel with the signatures of an rnncast export whose functions write ``marker``
    and return zeros: a graph that is not rnncast's."""
    F, S, U = len(info["feature_names"]), len(info["state_size"]), info["state_size"][0]
    H, Q = info["horizon"], len(info["quantiles"])
    common = [
        tf.TensorSpec([None, None, F], tf.float32),
        tf.TensorSpec([None, None], tf.float32),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.float32),
        tf.TensorSpec([None], tf.float32),
    ]

    class Foreign(tf.Module):
        @tf.function(input_signature=[*common, tf.TensorSpec([S, None, U], tf.float32)])
        def step(self, inputs, observed, sequence_length, loc, scale, state):
            tf.io.write_file(marker, "the export's graph ran")
            shape = tf.shape(inputs)
            return {
                "point": tf.zeros([shape[0], shape[1], H]),
                "quantiles": tf.zeros([shape[0], shape[1], H, Q]),
                "state": state,
            }

        @tf.function(input_signature=common)
        def forecast(self, inputs, observed, sequence_length, loc, scale):
            tf.io.write_file(marker, "the export's graph ran")
            batch = tf.shape(inputs)[0]
            return {"point": tf.zeros([batch, H]), "quantiles": tf.zeros([batch, H, Q])}

    module = Foreign()
    tf.saved_model.save(
        module, str(directory), signatures={"step": module.step, "forecast": module.forecast}
    )


def test_a_foreign_savedmodel_next_to_genuine_weights_never_runs(exported, tmp_path):
    model_path, frame = exported
    info = json.loads(Path(model_path, "rnncast_model.json").read_text())
    marker = tmp_path / "marker"
    foreign = tmp_path / "foreign"
    _foreign_savedmodel(foreign, str(marker), info)
    # The trap is live: the foreign graph writes the marker when it runs.
    loaded = tf.saved_model.load(str(foreign))
    state = np.zeros([len(info["state_size"]), 1, info["state_size"][0]], np.float32)
    loaded.step(
        np.zeros([1, 2, len(info["feature_names"])], np.float32),
        np.ones([1, 2], np.float32),
        np.array([2], np.int32),
        np.zeros([1], np.float32),
        np.ones([1], np.float32),
        state,
    )
    assert marker.exists()
    marker.unlink()
    for name in ("rnncast_model.json", "weights.npz"):
        shutil.copy(os.path.join(model_path, name), foreign / name)
    source = write_csv(
        frame[frame.series_id.isin(["series-000000", "series-000003"])], tmp_path / "in.csv"
    )
    forecast(str(foreign), source, tmp_path / "from-foreign")
    forecast(model_path, source, tmp_path / "genuine")
    assert not marker.exists(), "the job ran the export's SavedModel graph"
    got = read_forecasts(tmp_path / "from-foreign")
    pd.testing.assert_frame_equal(got, read_forecasts(tmp_path / "genuine"))
    assert set(got.status) == {"full", "no_data"} and got["forecast"].abs().sum() > 0


def _rewrite_weights(path, change):
    with np.load(path, allow_pickle=False) as arrays:
        values = {name: arrays[name] for name in arrays.files}
    change(values)
    np.savez(path, **values)


def _nudge_a_weight(values):
    values["v00000"] = values["v00000"].copy()
    values["v00000"].flat[0] += 1e-3


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_json(path, edit):
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))


TAMPERING = {
    "a weight changed": (
        "weights.npz",
        lambda d: _rewrite_weights(d / "weights.npz", _nudge_a_weight),
        r"weights fingerprint [0-9a-f]{64} does not match .*rnncast_model.json's",
    ),
    "a byte flipped": (
        "weights.npz",
        lambda d: _flip_a_byte(d / "weights.npz"),
        "weights.npz: (not a readable .npz file|weights fingerprint)",
    ),
    "fingerprint edited": (
        "weights.npz",
        lambda d: _edit_json(d / "rnncast_model.json", lambda i: i.update(fingerprint="0" * 64)),
        "does not match .*rnncast_model.json's 0000",
    ),
    "an array of another shape": (
        "weights.npz",
        lambda d: _rewrite_weights(
            d / "weights.npz", lambda v: v.update(v00000=np.zeros((3, 3), np.float32))
        ),
        r"array v00000 is float32\[3, 3\], the model's variable .* is float32",
    ),
    "an array missing": (
        "weights.npz",
        lambda d: _rewrite_weights(d / "weights.npz", lambda v: v.pop(sorted(v)[-1])),
        "holds .* arrays, the model has .* variables",
    ),
    "an older export without weights": (
        "weights.npz",
        lambda d: (d / "weights.npz").unlink(),
        "not found; the export was written by an older rnncast.*rnncast export --model-dir",
    ),
    "corrupt rnncast_model.json": (
        "rnncast_model.json",
        lambda d: (d / "rnncast_model.json").write_text('{"fingerprint": '),
        "corrupt JSON",
    ),
    "a key missing": (
        "rnncast_model.json",
        lambda d: _edit_json(d / "rnncast_model.json", lambda i: i.pop("model")),
        "missing model",
    ),
    "a config that cannot be built": (
        "rnncast_model.json",
        lambda d: _edit_json(d / "rnncast_model.json", lambda i: i["model"].update(units="many")),
        "'model' cannot be built",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
@pytest.mark.parametrize("command", ["forecast", "stream"])
def test_tampered_or_old_exports_are_refused_with_one_message(
    exported, tmp_path, capsys, case, command
):
    from rnncast.pipeline.cli import main

    model_path, frame = exported
    named, tamper, message = TAMPERING[case]
    copy = tmp_path / "export"
    shutil.copytree(model_path, copy)
    tamper(copy)
    source = write_csv(frame[frame.series_id == "series-000000"], tmp_path / "in.csv")
    flags = ["--input", source]
    if command == "stream":  # bounded, should the export ever be accepted
        flags = ["--input-pattern", source, "--max-files", "1", "--stop-after-seconds", "5"]
    capsys.readouterr()
    code = main([command, "--model", str(copy), *flags, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert f"rnncast {command}: error: {copy / named}: " in err, err
    assert re.search(message, err), err
    assert "re-export the model with 'rnncast export --model-dir MODEL_DIR'" in err
    assert not (tmp_path / "out").exists()


def test_the_export_writes_its_weights_as_plain_deterministic_arrays(exported):
    from rnncast.model import checkpoint, inference
    from rnncast.pipeline.io.model_loader import load_model

    model_path, _ = exported
    data = Path(model_path, "weights.npz").read_bytes()
    loaded = load_model(model_path)
    variables = loaded.network.variables
    assert checkpoint.to_npz(variables) == data  # the same values give the same bytes
    info = json.loads(Path(model_path, "rnncast_model.json").read_text())
    assert inference.weights_fingerprint(variables) == info["fingerprint"]
    with np.load(os.path.join(model_path, "weights.npz"), allow_pickle=False) as arrays:
        assert arrays.files == [f"v{i:05d}" for i in range(len(variables))]


def test_a_typo_timestamp_years_ahead_is_a_dead_letter_not_a_forecast_origin(exported, tmp_path):
    """The forecast job reads series like the dataset job: one point a decade after the rest
    (a typo) is rejected as isolated_by_gap instead of becoming 87,000 filled steps."""
    model_path, frame = exported
    typo = frame[frame["series_id"] == frame["series_id"].iloc[0]].tail(1).copy()
    typo["timestamp"] = typo["timestamp"] + pd.Timedelta(days=3650)
    source = write_csv(pd.concat([frame, typo], ignore_index=True), tmp_path / "in.csv")
    metadata = forecast(model_path, source, tmp_path / "o", max_rejected_fraction=1.0)
    counts = metadata["counts"]
    assert counts["rejected_by_reason"]["isolated_by_gap"] == 1
    assert counts["rows_read"] == counts["rows_accepted"] + counts["rows_rejected"]
    clean = forecast(model_path, write_csv(frame, tmp_path / "clean.csv"), tmp_path / "c")
    pd.testing.assert_frame_equal(read_forecasts(tmp_path / "o"), read_forecasts(tmp_path / "c"))
    assert clean["counts"]["rejected_by_reason"]["isolated_by_gap"] == 0


def test_heartbeat_counts_rows_and_series_without_changing_the_output(
    exported, tmp_path, monkeypatch, capfd
):
    model_path, frame = exported
    source = write_csv(frame, tmp_path / "in.csv")
    lines = {}
    for name, seconds in (("beat", "0"), ("quiet", "-1")):
        monkeypatch.setenv("RNNCAST_HEARTBEAT_SECONDS", seconds)
        capfd.readouterr()
        forecast(model_path, source, tmp_path / name)
        lines[name] = re.findall(
            r"^rnncast forecast: ([\d,]+) rows read, ([\d,]+) series through the model",
            capfd.readouterr().err,
            re.MULTILINE,
        )
    assert lines["quiet"] == []
    metadata = json.loads((tmp_path / "beat" / "metadata.json").read_text())
    rows, series = (int(v.replace(",", "")) for v in lines["beat"][-1])
    assert rows == metadata["counts"]["rows_read"] == len(frame)
    assert series == frame["series_id"].nunique()
    assert (tmp_path / "beat" / "metadata.json").read_bytes() == (
        tmp_path / "quiet" / "metadata.json"
    ).read_bytes()
    pd.testing.assert_frame_equal(
        read_forecasts(tmp_path / "beat"), read_forecasts(tmp_path / "quiet"), check_exact=True
    )
