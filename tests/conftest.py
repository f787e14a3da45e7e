"""Shared helpers: run the real dataset job on small frames and read its TFRecords back."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, settings

settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    # Examples run real Beam jobs; shrinking them can take minutes, so report the first failure.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    print_blob=True,
)
settings.load_profile("ci")


def write_csv(frame: pd.DataFrame, path) -> str:
    out = frame.copy()
    if "timestamp" in out and np.issubdtype(out["timestamp"].dtype, np.datetime64):
        out["timestamp"] = pd.DatetimeIndex(out["timestamp"]).strftime("%Y-%m-%dT%H:%M:%S")
    out.to_csv(path, index=False)
    return str(path)


def run_job(input_path, output_dir, pipeline_args=(), **fields) -> dict:
    """The dataset job as a library call: ``DatasetConfig(input, output, **fields)`` run by
    ``run_config`` (which checks the config, as ``rnncast dataset`` does) with the Beam options
    in ``pipeline_args``; returns the committed metadata. Tests of the command line itself call
    ``dataset_job.run(argv)`` or ``cli.main``."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from rnncast.pipeline.jobs import dataset as dataset_job

    config = dataset_job.DatasetConfig(input=str(input_path), output=str(output_dir), **fields)
    return dataset_job.run_config(config, PipelineOptions(list(pipeline_args)))


def read_split(data_dir, split: str) -> dict[str, np.ndarray]:
    """All rows of ``split`` in file order, parsed with TensorFlow (targets derived)."""
    import tensorflow as tf

    from rnncast.pipeline.io.reader import data_files, load_metadata, parse_rows

    metadata = load_metadata(str(data_dir))
    paths = data_files(str(data_dir), metadata, split)
    records = [
        r.numpy() for p in paths for r in tf.data.TFRecordDataset(p, compression_type="GZIP")
    ]
    if not records:
        return {}
    raw = parse_rows(tf.constant(records), metadata, scale=False)
    out = {k: v.numpy() for k, v in raw.items()}
    out["file_index"] = np.concatenate(
        [
            np.full(sum(1 for _ in tf.data.TFRecordDataset(p, compression_type="GZIP")), i)
            for i, p in enumerate(paths)
        ]
    )
    out["series_id"] = np.array([s.decode() for s in out["series_id"]], dtype=object)
    spec_rows = tf.io.parse_example(tf.constant(records), _target_start_spec())
    out["target_start"] = spec_rows["target_start"].numpy()
    return out


def _target_start_spec():
    import tensorflow as tf

    return {"target_start": tf.io.FixedLenFeature([], tf.int64)}


@pytest.fixture
def embedded_csv() -> str:
    from rnncast.pipeline import embedded_data_path

    return embedded_data_path("hourly")
