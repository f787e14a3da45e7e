"""The jobs from Python, on pandas DataFrames or paths, with the jobs' own configs.

For notebooks (what Darts and NeuralForecast users expect): each call is the job the command
line runs, with the same settings as keyword arguments (the fields of
:class:`~rnncast.pipeline.jobs.dataset.DatasetConfig`,
:class:`~rnncast.model.config.TrainConfig` and
:class:`~rnncast.pipeline.jobs.forecast.ForecastConfig`), so what a notebook does a scheduled
job reproduces::

    import rnncast.api as rc

    rc.build_dataset(frame, "out/data", num_steps=32, batch_size=8, horizon=14)
    rc.train("out/data", "out/model", units=32)
    forecasts = rc.forecast("out/model", frame, "out/forecasts")

A DataFrame is in the long format of ``schemas/input`` (``series_id``, ``timestamp``,
``value``, covariates). It is written once as Parquet under the temporary directory, named by
its content, so the same frame gives the same run (and the same output bytes) every time.
Outputs are the jobs' committed directories; ``forecast`` also returns the forecasts.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable

import pandas as pd

Data = pd.DataFrame | str


def build_dataset(data: Data, output: str, pipeline_options=None, **settings) -> dict:
    """Run the dataset job on ``data`` into ``output``; returns its ``metadata.json``.

    ``settings``: fields of ``DatasetConfig`` (``num_steps``, ``batch_size``, ``horizon``,
    ``freq``, ...; ``columns`` may be a preset name and ``timestamp_format`` is accepted, see
    :func:`input_settings`); ``pipeline_options``: Beam ``PipelineOptions`` (default:
    DirectRunner).
    """
    from rnncast.pipeline.jobs import dataset

    settings = input_settings(settings)
    config = dataset.DatasetConfig(input=input_path(data), output=output, **settings)
    return dataset.run_config(config, pipeline_options)


def train(data: str, model_dir: str, log: Callable[[str], None] = print, **settings) -> str:
    """Train on the dataset in ``data`` into ``model_dir`` and export it; returns the export
    directory. ``settings``: fields of ``TrainConfig`` (``cell``, ``units``, ``epochs``...)."""
    from rnncast.model import export
    from rnncast.model import train as training
    from rnncast.model.config import TrainConfig

    training.train(TrainConfig(data=data, model_dir=model_dir, **settings), log=log)
    return export.export_model(model_dir)


def forecast(model: str, data: Data, output: str, pipeline_options=None, **settings):
    """Forecast every series of ``data`` with ``model`` (a model directory or its
    ``export``) into ``output``; returns the forecasts as a DataFrame.

    ``settings``: fields of ``ForecastConfig`` (``horizon``, ``state_in``, ``state_out``...;
    ``columns`` and ``timestamp_format`` as in :func:`input_settings`).
    """
    from rnncast.pipeline.io import commit
    from rnncast.pipeline.jobs import forecast as forecast_job

    settings = input_settings(settings)
    config = forecast_job.ForecastConfig(
        model=export_dir(model), input=input_path(data), output=output, **settings
    )
    forecast_job.run_config(config, pipeline_options)
    return commit.read_committed_frame(output)


def input_settings(settings: dict) -> dict:
    """``settings`` with ``columns="nixtla"`` (a ``--columns`` preset name) and
    ``timestamp_format="%d/%m/%Y"`` (``--timestamp-format``) turned into the configs'
    ``columns`` (``InputColumns``); ValueError for an unknown preset or format."""
    from rnncast.pipeline.core.validation import InputColumns

    settings = dict(settings)
    columns = settings.get("columns")
    timestamp_format = settings.pop("timestamp_format", None)
    if isinstance(columns, InputColumns) and timestamp_format is None:
        return settings
    if columns is None or isinstance(columns, str):
        columns = InputColumns.from_flags(columns)
    settings["columns"] = InputColumns.from_flags(
        None,
        columns.series_id,
        columns.timestamp,
        columns.value,
        columns.covariates,
        timestamp_format or columns.timestamp_format,
    )
    return settings


def input_path(data: Data) -> str:
    """``data`` itself when it is a path; a DataFrame written as Parquet, named by content."""
    if isinstance(data, str | os.PathLike):
        return os.fspath(data)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame or a path, got {type(data).__name__}")
    from rnncast.pipeline.io import commit

    payload = commit.parquet_bytes(data)
    folder = os.path.join(tempfile.gettempdir(), "rnncast-frames")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, hashlib.sha256(payload).hexdigest()[:32] + ".parquet")
    if not os.path.exists(path):
        commit.write_bytes(path, payload, temporary=f"{path}.tmp-{os.getpid()}")
    return path


def export_dir(model: str) -> str:
    """A model directory's ``export`` folder, or ``model`` when it is an export already
    (:func:`rnncast.pipeline.io.model_loader.resolve_export`, quietly)."""
    from rnncast.pipeline.io.model_loader import resolve_export

    return resolve_export(os.fspath(model), flag=None)
