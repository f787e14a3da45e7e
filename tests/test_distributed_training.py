"""Distributed training equals one device, dropout included, and only the chief writes.

Every replica takes its lanes of each batch; dropout masks are drawn for the whole batch with
the seed one device would use and sliced to the replica's lanes, so N replicas make the same
updates as one device up to the order of the gradient sums.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from conftest import write_csv

from rnncast.errors import TrainError
from rnncast.model import checkpoint
from rnncast.model.config import chief_in_tf_config
from rnncast.pipeline.core import synthetic
from rnncast.pipeline.jobs import dataset as dataset_job

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
MODEL_FLAGS = ["--cell", "lstm", "--layers", "2", "--units", "8", "--epochs", "2"]
MODEL_FLAGS += ["--dropout", "0.3", "--seed", "3"]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distributed")
    frame = synthetic.generate(8, 300, 400, seed=4, gap_fraction=0.01)
    source = write_csv(frame, tmp / "series.csv")
    config = dataset_job.DatasetConfig(
        input=source, output=str(tmp / "data"), num_steps=16, batch_size=4, horizon=4
    )
    dataset_job.run_config(config, PipelineOptions([]))
    return str(tmp / "data")


def _weights(model_dir: str) -> list[np.ndarray]:
    directory = os.path.join(model_dir, "checkpoints")
    pointer = checkpoint.latest(directory)
    with np.load(os.path.join(directory, pointer["file"])) as arrays:
        return [arrays[k] for k in sorted(arrays.files)]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _train(data: str, model_dir: str, *extra: str, env=None) -> subprocess.Popen:
    command = [sys.executable, "-m", "rnncast", "train", "--data", data]
    command += ["--model-dir", model_dir, *MODEL_FLAGS, *extra]
    return subprocess.Popen(
        command, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_worker_processes_equal_one_device_with_dropout_and_only_the_chief_writes(
    dataset_dir, tmp_path
):
    single = _train(dataset_dir, str(tmp_path / "single"))
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    workers = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = dict(ENV, TF_CONFIG=json.dumps(config))
        # Each worker gets its own directory: the one that is not the chief must not create
        # its own (on a shared file system both would name the same folder).
        workers.append(
            _train(
                dataset_dir,
                str(tmp_path / f"worker{index}"),
                "--distribution",
                "multi-worker",
                env=env,
            )
        )
    outputs = [p.communicate(timeout=600) for p in [single, *workers]]
    for process, (_, err) in zip([single, *workers], outputs):
        assert process.returncode == 0, err[-3000:]
    chief, other = tmp_path / "worker0", tmp_path / "worker1"
    assert not other.exists(), sorted(p.name for p in other.rglob("*"))
    assert "the chief writes" in outputs[2][0]
    # The chief wrote everything: checkpoints, best weights, history, logs, the export.
    for name in ("checkpoints", "best", "history.json", "logs", "export", "train_config.json"):
        assert (chief / name).exists(), name
    # One TensorBoard event file per run (train/, validation/): one writer, the chief's.
    runs = sorted((chief / "logs").iterdir())
    assert [r.name for r in runs] == ["train", "validation"]
    assert all(len(list(r.iterdir())) == 1 for r in runs)
    # Same updates as one device (dropout on): only the order of the gradient sums differs.
    single_weights, chief_weights = _weights(str(tmp_path / "single")), _weights(str(chief))
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(single_weights, chief_weights))
    assert worst < 1e-4, worst
    history = [json.loads((d / "history.json").read_text()) for d in (tmp_path / "single", chief)]
    np.testing.assert_allclose(
        [h["train_loss"] for h in history[0]], [h["train_loss"] for h in history[1]], rtol=1e-5
    )


MIRRORED = r"""
import sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from rnncast.model import checkpoint
from rnncast.model.config import TrainConfig
from rnncast.model.train import train

data, out, cell, dropout = sys.argv[1:]
arrays = {}
for mode in ("none", "mirrored"):
    train(TrainConfig(data, f"{out}/{mode}", cell=cell, layers=2, units=8, epochs=2,
                      dropout=float(dropout), distribution=mode), log=lambda _: None)
    pointer = checkpoint.latest(f"{out}/{mode}/checkpoints")
    with np.load(f"{out}/{mode}/checkpoints/{pointer['file']}") as npz:
        arrays[mode] = [npz[k] for k in sorted(npz.files)]
print("REPLICAS", tf.distribute.MirroredStrategy().num_replicas_in_sync)
pairs = zip(arrays["none"], arrays["mirrored"])
print("WORST", max(float(np.max(np.abs(a - b))) for a, b in pairs))
"""


@pytest.mark.parametrize("cell, dropout", [("lstm", "0.0"), ("gru", "0.3")])
def test_two_mirrored_replicas_equal_one_device(dataset_dir, tmp_path, cell, dropout):
    # Same math, lanes split over two replicas: only the summation order differs. With
    # dropout, before masks were drawn for the whole batch, each replica drew its own over
    # its half of the lanes and the weights differed by about 6e-2 after two epochs.
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, dataset_dir, str(tmp_path), cell, dropout],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split() for line in result.stdout.splitlines() if line[:1].isupper())
    assert lines["REPLICAS"] == "2"
    assert float(lines["WORST"]) < 1e-4, lines["WORST"]


@pytest.mark.parametrize(
    "tf_config, chief",
    [
        (None, True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
        (
            {
                "cluster": {"chief": ["c:0"], "worker": ["a:1"]},
                "task": {"type": "worker", "index": 0},
            },
            False,
        ),
        (
            {
                "cluster": {"chief": ["c:0"], "worker": ["a:1"]},
                "task": {"type": "chief", "index": 0},
            },
            True,
        ),
    ],
)
def test_the_chief_is_tensorflows(tf_config, chief):
    assert chief_in_tf_config(json.dumps(tf_config) if tf_config else None) is chief


def test_a_broken_tf_config_is_a_clear_error():
    with pytest.raises(TrainError, match="TF_CONFIG: not valid JSON"):
        chief_in_tf_config("{cluster")
