"""Training, checkpoints, resume and export of the forecaster, on real dataset-job output."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_job, write_csv

from rnncast.errors import TrainError
from rnncast.model import checkpoint
from rnncast.model.config import TrainConfig
from rnncast.model.export import export_model, load_trained
from rnncast.model.forecaster import model_inputs
from rnncast.model.train import Trainer, evaluate_split, train
from rnncast.pipeline.core import synthetic
from rnncast.pipeline.io.reader import load_metadata, make_dataset

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
SMALL_MODEL = dict(cell="gru", layers=1, units=24, dropout=0.0, learning_rate=1e-2)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("learnable")
    frame = synthetic.generate(8, 600, 800, seed=11, gap_fraction=0.005)
    source = write_csv(frame, tmp / "series.csv")
    run_job(
        source,
        tmp / "data",
        num_steps=24,
        batch_size=8,
        horizon=6,
        validation_fraction=0.2,
        validation_warmup_steps=48,
    )
    return str(tmp / "data")


@pytest.fixture(scope="module")
def trained(dataset_dir, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("model") / "m")
    config = TrainConfig(data=dataset_dir, model_dir=model_dir, epochs=12, **SMALL_MODEL)
    summary = train(config, log=lambda _: None)
    export_model(model_dir)
    return config, summary


def test_training_beats_naive_and_quantiles_cover(trained):
    config, summary = trained
    model, metadata, _ = load_trained(config.model_dir)
    trainer = Trainer(config, metadata)
    for target, source in zip(trainer.model.variables, model.variables):
        target.assign(source)
    result = evaluate_split(trainer, make_dataset(config.data, "validation"))
    assert result["targets"] > 1000
    assert result["loss"] < 0.7 * result["naive_loss"], result
    assert abs(result["coverage"] - result["nominal_coverage"]) < 0.15, result
    assert np.isclose(result["loss"], summary["state"]["best_val_loss"], rtol=1e-4)
    losses = [h["val_loss"] for h in summary["history"]]
    assert min(losses) < losses[0]


def _scalars(run_dir) -> dict[str, dict[int, float]]:
    """Every scalar of a TensorBoard run folder's event files: tag -> {step: value}."""
    found: dict[str, dict[int, float]] = {}
    for name in sorted(os.listdir(run_dir)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(run_dir, name)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                found.setdefault(value.tag, {})[int(event.step)] = number
    return found


def test_tensorboard_overlays_train_and_validation_loss(trained):
    config, summary = trained
    logs = os.path.join(config.model_dir, "logs")
    assert sorted(os.listdir(logs)) == ["train", "validation"]
    train_run = _scalars(os.path.join(logs, "train"))
    validation_run = _scalars(os.path.join(logs, "validation"))
    # The same tag in both runs, so TensorBoard draws them in one chart.
    assert set(validation_run) == {"loss"}
    assert set(train_run) == {"loss", "timesteps_per_second", "learning_rate"}
    history = summary["history"]
    epochs = [h["epoch"] for h in history]
    assert sorted(train_run["loss"]) == sorted(validation_run["loss"]) == epochs
    np.testing.assert_allclose(
        [train_run["loss"][e] for e in epochs], [h["train_loss"] for h in history], rtol=1e-6
    )
    np.testing.assert_allclose(
        [validation_run["loss"][e] for e in epochs], [h["val_loss"] for h in history], rtol=1e-6
    )


def _validation_histories(data_dir):
    batch = next(iter(make_dataset(data_dir, "validation", scale=False)))
    return {
        "inputs": batch["inputs"].numpy(),
        "observed": batch["observed"].numpy().astype(np.float32),
        "sequence_length": batch["sequence_length"].numpy().astype(np.int32),
        "loc": batch["loc"].numpy(),
        "scale": batch["scale"].numpy(),
    }


def _in_memory_forecast(model, histories):
    x = histories["inputs"].copy()
    x[..., 0] = (x[..., 0] - histories["loc"][:, None]) / histories["scale"][:, None]
    lengths = histories["sequence_length"]
    point, quantiles, _ = model(
        model_inputs(tf.constant(x), tf.constant(histories["observed"])), None, lengths
    )
    last = np.maximum(lengths - 1, 0)
    rows = np.arange(len(lengths))
    scale, loc = histories["scale"], histories["loc"]
    return (
        point.numpy()[rows, last] * scale[:, None] + loc[:, None],
        quantiles.numpy()[rows, last] * scale[:, None, None] + loc[:, None, None],
    )


LOADER = r"""
import sys, numpy as np, tensorflow as tf
export, data, out = sys.argv[1:]
h = dict(np.load(data))
m = tf.saved_model.load(export)
f = m.forecast(h["inputs"], h["observed"], h["sequence_length"], h["loc"], h["scale"])
# step over two halves with the carried state equals one pass.
T = h["inputs"].shape[1]; half = T // 2
first = np.minimum(h["sequence_length"], half).astype(np.int32)
second = (h["sequence_length"] - first).astype(np.int32)
state = np.zeros_like(m.step(h["inputs"][:, :1], h["observed"][:, :1], np.zeros_like(first),
                              h["loc"], h["scale"],
                              np.zeros((%d, len(first), %d), np.float32))["state"])
a = m.step(h["inputs"][:, :half], h["observed"][:, :half], first, h["loc"], h["scale"], state)
b = m.step(h["inputs"][:, half:], h["observed"][:, half:], second, h["loc"], h["scale"], a["state"])
full = m.step(h["inputs"], h["observed"], h["sequence_length"], h["loc"], h["scale"], state)
np.savez(out, point=f["point"].numpy(), quantiles=f["quantiles"].numpy(),
         chunked=b["state"].numpy(), full=full["state"].numpy(),
         rnncast_imported=np.array(any(k.split(".")[0] in ("model", "pipeline", "schemas")
                                       for k in sys.modules)))
"""


def test_export_loads_in_a_fresh_process_and_matches_in_memory(trained, tmp_path):
    config, _ = trained
    model, _, _ = load_trained(config.model_dir)
    histories = _validation_histories(config.data)
    np.savez(tmp_path / "h.npz", **histories)
    script = LOADER % (len(model.state_size), model.units)
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            os.path.join(config.model_dir, "export"),
            str(tmp_path / "h.npz"),
            str(tmp_path / "out.npz"),
        ],
        check=True,
        env=ENV,
        cwd=tmp_path,
        timeout=300,
    )
    out = np.load(tmp_path / "out.npz")
    assert not out["rnncast_imported"]
    point, quantiles = _in_memory_forecast(model, histories)
    np.testing.assert_allclose(out["point"], point, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(out["quantiles"], quantiles, atol=1e-4, rtol=1e-5)
    assert (np.diff(out["quantiles"], axis=-1) >= 0).all(), "quantiles cross"
    np.testing.assert_allclose(out["chunked"], out["full"], atol=1e-5)
    with open(os.path.join(config.model_dir, "export", "rnncast_model.json")) as handle:
        description = json.load(handle)
    assert description["quantiles"] == [0.1, 0.5, 0.9] and description["horizon"] == 6
    assert description["feature_names"] == load_metadata(config.data)["feature_names"]


def test_keras_file_loads_in_safe_mode(trained):
    import keras

    config, _ = trained
    model, _, _ = load_trained(config.model_dir)
    loaded = keras.saving.load_model(
        os.path.join(config.model_dir, "export", "model.keras"), safe_mode=True
    )
    histories = _validation_histories(config.data)
    x = model_inputs(tf.constant(histories["inputs"]), tf.constant(histories["observed"]))
    lengths = histories["sequence_length"]
    for a, b in zip(model(x, None, lengths)[:2], loaded(x, None, lengths)[:2]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


SAFE_LOAD = r"""
import sys
order, path, data, out = sys.argv[1:]
for name in order.split(","):
    __import__(name)  # the Keras classes are known whichever comes first
import keras, numpy as np
model = keras.saving.load_model(path, safe_mode=True)
h = dict(np.load(data))
x = np.concatenate([h["inputs"], h["observed"][..., None]], axis=-1)
point, quantiles, _ = model(x, None, h["sequence_length"])
np.savez(out, point=point.numpy(), quantiles=quantiles.numpy(), name=type(model).__name__)
"""


@pytest.mark.parametrize("order", ["rnncast,keras", "keras,rnncast", "tensorflow,rnncast"])
def test_keras_file_loads_in_a_fresh_process_after_import_rnncast(trained, tmp_path, order):
    config, _ = trained
    model, _, _ = load_trained(config.model_dir)
    histories = _validation_histories(config.data)
    x = model_inputs(tf.constant(histories["inputs"]), tf.constant(histories["observed"]))
    np.savez(tmp_path / "h.npz", **histories)
    path = os.path.join(config.model_dir, "export", "model.keras")
    done = subprocess.run(
        [sys.executable, "-c", SAFE_LOAD, order, path, tmp_path / "h.npz", tmp_path / "o.npz"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = np.load(tmp_path / "o.npz")
    assert str(got["name"]) == "RNNForecaster"
    point, quantiles, _ = model(x, None, histories["sequence_length"])
    np.testing.assert_allclose(got["point"], point.numpy(), atol=1e-6)
    np.testing.assert_allclose(got["quantiles"], quantiles.numpy(), atol=1e-6)


def _checkpoint_arrays(directory):
    pointer = checkpoint.latest(directory)
    with np.load(os.path.join(directory, pointer["file"])) as arrays:
        return pointer["state"], [arrays[k] for k in sorted(arrays.files)]


def test_seeded_runs_reproduce(dataset_dir, tmp_path):
    for name in ("a", "b"):
        train(
            TrainConfig(
                dataset_dir,
                str(tmp_path / name),
                epochs=2,
                dropout=0.2,
                **{k: v for k, v in SMALL_MODEL.items() if k != "dropout"},
            ),
            log=lambda _: None,
        )
    state_a, arrays_a = _checkpoint_arrays(str(tmp_path / "a" / "checkpoints"))
    state_b, arrays_b = _checkpoint_arrays(str(tmp_path / "b" / "checkpoints"))
    assert state_a == state_b
    for x, y in zip(arrays_a, arrays_b):
        np.testing.assert_array_equal(x, y)
    train(
        TrainConfig(
            dataset_dir,
            str(tmp_path / "c"),
            epochs=2,
            seed=1,
            dropout=0.2,
            **{k: v for k, v in SMALL_MODEL.items() if k != "dropout"},
        ),
        log=lambda _: None,
    )
    _, arrays_c = _checkpoint_arrays(str(tmp_path / "c" / "checkpoints"))
    assert any(not np.array_equal(x, y) for x, y in zip(arrays_a, arrays_c))


def _train_command(data, model_dir, epochs):
    return [
        sys.executable,
        "-m",
        "rnncast",
        "train",
        "--data",
        data,
        # The "=" form: the command line once looked for "--model-dir" by hand and, given
        # this form, trained without exporting.
        f"--model-dir={model_dir}",
        "--epochs",
        str(epochs),
        "--cell",
        "lstm",
        "--layers",
        "2",
        "--units",
        "16",
        "--dropout",
        "0.1",
        "--learning-rate",
        "0.005",
        "--patience",
        "100",
    ]


def test_kill_and_resume_reaches_the_same_weights(dataset_dir, tmp_path):
    epochs = 8
    whole = str(tmp_path / "whole")
    subprocess.run(
        _train_command(dataset_dir, whole, epochs),
        check=True,
        env=ENV,
        timeout=600,
        capture_output=True,
    )
    assert os.path.exists(os.path.join(whole, "export", "weights.npz"))
    killed = str(tmp_path / "killed")
    process = subprocess.Popen(
        _train_command(dataset_dir, killed, epochs),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pointer_path = os.path.join(killed, "checkpoints", "latest.json")
    deadline = time.time() + 300
    while time.time() < deadline:
        pointer = (
            checkpoint.latest(os.path.dirname(pointer_path))
            if os.path.exists(pointer_path)
            else None
        )
        if pointer and pointer["state"]["epoch"] >= 2:
            break
        time.sleep(0.02)
    time.sleep(random.Random(0).uniform(0.0, 0.3))  # somewhere inside a later epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_at = checkpoint.latest(os.path.join(killed, "checkpoints"))["state"]["epoch"]
    assert 2 <= interrupted_at < epochs, "the run must be killed mid-way"
    resumed = subprocess.run(
        _train_command(dataset_dir, killed, epochs),
        check=True,
        env=ENV,
        timeout=600,
        capture_output=True,
        text=True,
    )
    assert f"resuming after epoch {interrupted_at}" in resumed.stdout
    state_w, arrays_w = _checkpoint_arrays(os.path.join(whole, "checkpoints"))
    state_k, arrays_k = _checkpoint_arrays(os.path.join(killed, "checkpoints"))
    assert state_w == state_k
    for x, y in zip(arrays_w, arrays_k):
        np.testing.assert_array_equal(x, y)  # bitwise: op determinism, seeds per epoch
    with open(os.path.join(killed, "history.json")) as handle:
        history = json.load(handle)
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))


def test_half_written_or_corrupt_checkpoints(trained, tmp_path):
    config, _ = trained
    directory = os.path.join(config.model_dir, "checkpoints")
    before = checkpoint.latest(directory)
    # A crash while writing leaves a temporary file and no pointer to it.
    with open(os.path.join(directory, "ckpt-999999.npz.tmp-1"), "wb") as handle:
        handle.write(b"half")
    model, metadata, _ = load_trained(config.model_dir)
    trainer = Trainer(config, metadata)
    state = checkpoint.restore(directory, trainer.variables)
    assert state == before["state"]
    target = os.path.join(directory, before["file"])
    with open(target, "rb") as handle:
        data = bytearray(handle.read())
    data[len(data) // 2] ^= 0xFF
    copy = tmp_path / "ckpts"
    copy.mkdir()
    (copy / before["file"]).write_bytes(bytes(data))
    (copy / "latest.json").write_text(json.dumps(before))
    with pytest.raises(ValueError, match="SHA-256"):
        checkpoint.restore(str(copy), trainer.variables)


@pytest.mark.parametrize("damage", ["flip_newest", "truncate_pointer", "delete_newest"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_and_says_so(
    trained, tmp_path, damage
):
    config, _ = trained
    source = os.path.join(config.model_dir, "checkpoints")
    directory = tmp_path / "checkpoints"
    shutil.copytree(source, directory)
    newest = checkpoint.latest(str(directory))
    kept = sorted(p.name for p in directory.glob("ckpt-*.npz"))
    assert len(kept) == 2 and kept[-1] == newest["file"]
    previous = json.loads((directory / kept[0].replace(".npz", ".json")).read_text())
    if damage == "flip_newest":
        data = bytearray((directory / newest["file"]).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (directory / newest["file"]).write_bytes(bytes(data))
    elif damage == "truncate_pointer":
        text = (directory / "latest.json").read_text()
        (directory / "latest.json").write_text(text[: len(text) // 2])
    else:
        (directory / newest["file"]).unlink()
    _, metadata, _ = load_trained(config.model_dir)
    trainer = Trainer(config, metadata)
    warnings = []
    state = checkpoint.restore(str(directory), trainer.variables, warn=warnings.append)
    if damage == "truncate_pointer":
        # The newest checkpoint itself is intact: its own sidecar still describes it.
        assert state == newest["state"]
        assert len(warnings) == 1 and "latest.json: unreadable" in warnings[0]
        return
    assert state == previous["state"] and state["epoch"] == newest["state"]["epoch"] - 1
    assert len(warnings) == 1
    assert (
        newest["file"] in warnings[0]
        and f"restored the previous intact checkpoint {kept[0]}" in warnings[0]
    )
    with np.load(directory / kept[0]) as arrays:
        for i, variable in enumerate(trainer.variables):
            np.testing.assert_array_equal(variable.numpy(), arrays[f"v{i:05d}"])


def test_no_intact_checkpoint_is_one_clear_error(trained, tmp_path, capsys):
    from rnncast.pipeline import cli

    config, _ = trained
    copy = tmp_path / "m"
    shutil.copytree(config.model_dir, copy, ignore=shutil.ignore_patterns("export*"))
    for path in (copy / "best").glob("ckpt-*.npz"):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    assert cli.main(["export", "--model-dir", str(copy)]) == 2
    err = capsys.readouterr().err
    assert f"{copy / 'best'}: no intact checkpoint" in err and "SHA-256" in err


@pytest.mark.parametrize("name", ["train_config.json", "dataset_metadata.json"])
def test_truncated_model_dir_files_are_one_clear_error(trained, tmp_path, capsys, name):
    from rnncast.pipeline import cli

    config, _ = trained
    copy = tmp_path / "m"
    shutil.copytree(config.model_dir, copy, ignore=shutil.ignore_patterns("export*"))
    text = (copy / name).read_text()
    (copy / name).write_text(text[: len(text) // 2])
    command = ["export", "--model-dir", str(copy)]
    if name == "train_config.json":  # train reads it first; export reads both
        command = ["train", "--data", config.data, "--model-dir", str(copy)]
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert f"{copy / name}: not valid JSON" in err and "new" in err


def test_model_dir_with_other_settings_is_refused(trained):
    config, _ = trained
    other = TrainConfig(config.data, config.model_dir, epochs=12, **{**SMALL_MODEL, "units": 8})
    with pytest.raises(TrainError, match="other settings"):
        train(other, log=lambda _: None)


def test_fine_tuning_starts_from_the_source_weights(trained, dataset_dir, tmp_path):
    config, _ = trained
    source = _checkpoint_arrays(os.path.join(config.model_dir, "best"))[1]
    logged = []
    # A learning rate too small to move anything: the run's weights are the source's.
    train(
        TrainConfig(
            dataset_dir,
            str(tmp_path / "tuned"),
            epochs=1,
            init_from=config.model_dir,
            **{**SMALL_MODEL, "learning_rate": 1e-12},
        ),
        log=logged.append,
    )
    assert any("initialised from" in line for line in logged)
    tuned = _checkpoint_arrays(str(tmp_path / "tuned" / "best"))[1]
    for x, y in zip(source, tuned):
        np.testing.assert_allclose(x, y, atol=1e-6)
    settings = json.loads((tmp_path / "tuned" / "train_config.json").read_text())
    assert settings["train"]["init_from"] == config.model_dir
    with pytest.raises(TrainError, match="do not fit"):
        train(
            TrainConfig(
                dataset_dir,
                str(tmp_path / "wide"),
                epochs=1,
                init_from=config.model_dir,
                **{**SMALL_MODEL, "units": 8},
            ),
            log=lambda _: None,
        )
    with pytest.raises(TrainError, match="no best checkpoint"):
        train(
            TrainConfig(dataset_dir, str(tmp_path / "x"), epochs=1, init_from=str(tmp_path)),
            log=lambda _: None,
        )


def test_calibration_is_recorded_and_the_export_applies_it(trained):
    """Training ends by calibrating the 80 % interval on the validation split; the export's
    model carries the factors, so its quantiles are the raw ones spread by them around the
    median, and the validation coverage moves to the nominal level."""
    from rnncast.model.config import CALIBRATION_FILE
    from rnncast.model.export import EXPORT_DIR, MODEL_CONFIG

    config, _ = trained
    with open(os.path.join(config.model_dir, CALIBRATION_FILE), encoding="utf-8") as handle:
        record = json.load(handle)
    model, metadata, _ = load_trained(config.model_dir)
    assert list(model.interval_scale) == record["interval_scale"]
    assert len(record["interval_scale"]) == metadata["horizon"]
    assert record["coverage_after"] >= record["nominal_coverage"] - 0.01
    assert abs(record["coverage_after"] - record["nominal_coverage"]) < 0.02, record
    with open(os.path.join(config.model_dir, EXPORT_DIR, MODEL_CONFIG), encoding="utf-8") as f:
        exported = json.load(f)
    assert json.dumps(record["interval_scale"]) in json.dumps(exported)
    raw = Trainer(config, metadata).model
    for target, source in zip(raw.variables, model.variables, strict=True):
        target.assign(source)
    batch = next(iter(make_dataset(config.data, "validation")))
    x = model_inputs(batch["inputs"], batch["observed"])
    _, calibrated, _ = model(x, None, batch["sequence_length"])
    _, plain, _ = raw(x, None, batch["sequence_length"])
    median = plain.numpy()[..., 1:2]
    factors = np.asarray(record["interval_scale"])[None, None, :, None]
    np.testing.assert_allclose(calibrated, median + factors * (plain.numpy() - median), atol=1e-4)


def test_default_lags_anchor_and_step_budget_follow_the_data():
    from rnncast.model.config import model_anchor
    from rnncast.model.flags import parse_lags
    from rnncast.model.train import passes_per_epoch

    hourly = {"1": 0.33, "24": 0.31, "168": 0.23}  # counts with a weekly cycle
    assert model_anchor("auto", (168, 24), hourly) == ("seasonal", (168, 24))
    daily = {"1": 0.66, "7": 0.19, "364": 0.165}
    assert model_anchor("auto", (7, 364), daily) == ("seasonal", (364, 7))
    assert model_anchor("auto", (7,), daily) == ("seasonal", (7,))  # 364 not usable here
    assert model_anchor("auto", (12,), {"1": 0.48, "12": 0.61}) == ("last", (12,))
    assert model_anchor("auto", (7,), None) == ("last", (7,))  # a dataset from before
    assert model_anchor("auto", (), {"1": 0.5}) == ("last", ())
    assert model_anchor("seasonal", (), None) == ("last", ())  # no season: the last value
    assert model_anchor("none", (7,), daily) == ("none", (7,))
    # Lags must fit in what training sees unbroken: the shorter of a series and a lane.
    from rnncast.model.config import model_lags

    config = TrainConfig(data="", model_dir="")
    one_long_series = {
        "freq": "D",
        "num_steps": 64,
        "series": {"ridership": {"train_length": 5000}},
        "splits": {"train": {"batches_per_stream": 5}},  # 16 lanes of 320 days
    }
    assert model_lags(config, one_long_series) == (7,)
    one_lane = {**one_long_series, "splits": {"train": {"batches_per_stream": 80}}}
    assert model_lags(config, one_lane) == (7, 364)
    assert model_lags(TrainConfig(data="", model_dir="", lags=(364,)), one_long_series) == (364,)
    assert (
        parse_lags("auto") is None
        and parse_lags("none") == ()
        and parse_lags("24,168")
        == (
            24,
            168,
        )
    )
    with pytest.raises(TrainError, match="--lags must be"):
        parse_lags("daily")
    # 5 batches per pass, at least 50 per epoch: 10 passes per epoch.
    assert passes_per_epoch(5, 50) == 10 and passes_per_epoch(23, 50) == 3
    assert passes_per_epoch(80, 50) == 1 and passes_per_epoch(0, 50) == 1
    assert passes_per_epoch(5, 0) == 1


def test_step_budget_repeats_passes_within_an_epoch(dataset_dir, tmp_path):
    """With a floor on steps above one pass per epoch, an epoch makes several passes (in
    its own seeded orders) and the learning-rate schedule spans all of their steps."""
    metadata = load_metadata(dataset_dir)
    per_pass = sum(f["batches"] for f in metadata["splits"]["train"]["files"])
    config = TrainConfig(
        data=dataset_dir,
        model_dir=str(tmp_path / "m"),
        epochs=2,
        min_batches_per_epoch=2 * per_pass + 1,
        **SMALL_MODEL,
    )
    trainer = Trainer(config, metadata)
    assert trainer.passes_per_epoch == 3 and trainer.steps_per_epoch == 3 * per_pass
    train(config, log=lambda _: None)
    restored = Trainer(config, metadata)
    checkpoint.restore(str(tmp_path / "m" / "checkpoints"), restored.variables)
    assert int(restored.optimizer.iterations) == 2 * 3 * per_pass


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_shows_batches_eta_and_loss_and_leaves_the_weights_alone(
    dataset_dir, tmp_path
):
    streams = {"always": _Terminal(), "never": _Terminal(), "auto": io.StringIO()}
    logs = {}
    for mode, stream in streams.items():
        lines = []
        train(
            TrainConfig(dataset_dir, str(tmp_path / mode), epochs=2, **SMALL_MODEL),
            log=lines.append,
            progress=mode,
            stream=stream,
        )
        logs[mode] = lines
        export_model(str(tmp_path / mode), servable=False)
    bar = streams["always"].getvalue()
    steps = Trainer(
        TrainConfig(dataset_dir, str(tmp_path / "x"), **SMALL_MODEL), load_metadata(dataset_dir)
    ).steps_per_epoch
    for epoch in (1, 2):
        assert f"\repoch {epoch}/2 [" in bar
        assert f" 1/{steps} ETA " in bar and f" {steps}/{steps} ETA 0s" in bar
    assert re.search(r"ETA \d+s \(\d+s\) loss \d+\.\d{4}", bar)
    assert "validating" in bar
    # Never: nothing at all; auto on a pipe: only the line before the first batch.
    assert streams["never"].getvalue() == ""
    assert streams["auto"].getvalue().splitlines() == [
        f"rnncast train: training from epoch 1, {steps} batches per epoch (the first batch "
        "also builds the training step)"
    ]
    assert "\r" not in "".join(logs["always"]) and len(logs["always"]) == len(logs["never"])
    weights = {mode: (tmp_path / mode / "export" / "weights.npz").read_bytes() for mode in streams}
    assert weights["always"] == weights["never"] == weights["auto"]


def test_xla_compiled_training_reproduces_and_tracks_the_plain_steps(dataset_dir, tmp_path):
    # --jit-compile: same seed, same bytes (dropout included); without dropout, the same
    # training as the plain steps up to float rounding (XLA fuses the gate arithmetic
    # differently). With dropout the masks differ: TensorFlow's stateless random ops draw
    # other numbers under XLA, so that comparison would mean nothing.
    runs = {
        "xla-a": dict(jit_compile=True, dropout=0.2),
        "xla-b": dict(jit_compile=True, dropout=0.2),
        "xla": dict(jit_compile=True, dropout=0.0),
        "plain": dict(jit_compile=False, dropout=0.0),
    }
    model = {k: v for k, v in SMALL_MODEL.items() if k != "dropout"}
    for name, settings in runs.items():
        config = TrainConfig(dataset_dir, str(tmp_path / name), epochs=2, **model, **settings)
        train(config, log=lambda _: None)
    arrays = {name: _checkpoint_arrays(str(tmp_path / name / "checkpoints")) for name in runs}
    assert arrays["xla-a"][0] == arrays["xla-b"][0]
    for x, y in zip(arrays["xla-a"][1], arrays["xla-b"][1], strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(arrays["xla"][1], arrays["plain"][1], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-4)
    with pytest.raises(TrainError, match="--jit-compile works with --distribution none only"):
        TrainConfig(
            dataset_dir, str(tmp_path / "d"), jit_compile=True, distribution="mirrored"
        ).check()


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="CPU loop choice")
def test_the_trainer_picks_the_time_loop_by_cell_and_lanes(trained):
    """On CPU the plain step hoists the input projections up to HOISTED_MAX_LANES lanes per
    device (where that was measured faster) and runs Keras' own loop above; an XLA step keeps
    the hoisted loop; either loop computes the same (test_model_rnn)."""
    config, _ = trained
    _, metadata, _ = load_trained(config.model_dir)

    def loop(cell: str, lanes: int, jit: bool = False) -> str:
        trainer = Trainer(
            dataclasses.replace(config, cell=cell, jit_compile=jit),
            dict(metadata, batch_size=lanes),
        )
        return trainer.model.rnn.time_loop

    assert [loop("gru", 64), loop("gru", 128)] == ["hoisted", "keras"]
    assert [loop("lstm", 32), loop("lstm", 64)] == ["hoisted", "keras"]
    assert loop("lstm", 256, jit=True) == "hoisted"
