"""The model the forecast and stream jobs run: rnncast's own network, weights loaded as data.

An export's SavedModel is a program (its graph runs whatever ops it holds), so the jobs never
load it. :func:`load_model` reads ``rnncast_model.json`` (:func:`read_model_info`),
builds ``RNNForecaster`` from rnncast's code and the config there, reads ``weights.npz`` with
``allow_pickle=False``, checks the arrays against the built model's variables (count, shapes,
dtypes), recomputes the weights fingerprint and refuses the export when it differs from the
one in ``rnncast_model.json``. :meth:`LoadedModel.step` has the contract of the SavedModel's
``step`` signature and runs the same code (``rnncast.model.inference.step_function``).
"""

from __future__ import annotations

import json
import sys

import numpy as np
from apache_beam.io.filesystems import FileSystems

from rnncast.errors import ModelError
from rnncast.pipeline.core.forecasting import MODEL_FILE, REEXPORT, ModelInfo

EXPORT = "export"  # MODEL_DIR/export, where rnncast train and rnncast export write


def resolve_export(model: str, flag: str | None = "--model") -> str:
    """The export ``model`` names: ``model`` itself when it holds ``rnncast_model.json``,
    ``MODEL_DIR/export`` when ``model`` is a model directory with an export (said in one
    stderr line naming ``flag``; None: quietly), else ``model`` unchanged (then
    :func:`read_model_info` refuses it)."""
    if not model or FileSystems.exists(FileSystems.join(model, MODEL_FILE)):
        return model
    nested = FileSystems.join(model.rstrip("/"), EXPORT)
    if not FileSystems.exists(FileSystems.join(nested, MODEL_FILE)):
        return model
    if flag:
        print(
            f"rnncast: {flag} {model} is a model directory; using its export {nested}",
            file=sys.stderr,
        )
    return nested


def read_model_info(export_dir: str) -> ModelInfo:
    """Read and check ``EXPORT_DIR/rnncast_model.json`` (ModelError naming the file)."""
    path = FileSystems.join(export_dir, MODEL_FILE)
    if not FileSystems.exists(path):
        raise ModelError(
            f"{export_dir}: not an rnncast export or model directory (no {MODEL_FILE} in it "
            f"or in {EXPORT}/); pass MODEL_DIR or MODEL_DIR/{EXPORT} written by 'rnncast "
            "train' or 'rnncast export'"
        )
    try:
        with FileSystems.open(path) as handle:
            info = json.loads(handle.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: corrupt JSON ({err}); {REEXPORT}") from err
    return ModelInfo.from_json(info, export_dir, path)


class LoadedModel:
    """An export's network, ready to run: ``step(inputs, observed, sequence_length, loc,
    scale, state) -> {"point", "quantiles", "state"}`` (numpy in, numpy out)."""

    def __init__(self, info: ModelInfo):
        import tensorflow as tf

        from rnncast.model import checkpoint, inference
        from rnncast.model.forecaster import RNNForecaster

        self.info = info
        weights = FileSystems.join(info.path, inference.WEIGHTS_FILE)
        if not FileSystems.exists(weights):
            raise ModelError(
                f"{weights}: not found; the export was written by an older rnncast, whose jobs "
                f"ran its SavedModel; {REEXPORT}"
            )
        config = FileSystems.join(info.path, MODEL_FILE)
        num_features = len(info.feature_names)
        try:
            model = RNNForecaster.from_config(info.network)
            model.build((1, info.num_steps, num_features + 1))
        except (TypeError, ValueError, KeyError) as err:
            raise ModelError(f"{config}: 'model' cannot be built ({err}); {REEXPORT}") from err
        if (tuple(model.state_size), model.horizon, model.quantiles) != (
            info.state_size,
            info.horizon,
            tuple(sorted(info.quantiles)),
        ):
            raise ModelError(
                f"{config}: 'model' disagrees with state_size, horizon or quantiles; {REEXPORT}"
            )
        with FileSystems.open(weights) as handle:
            data = handle.read()
        try:
            checkpoint.assign(checkpoint.read_npz(data), model.variables)
        except ValueError as err:
            raise ModelError(f"{weights}: {err}; {REEXPORT}") from err
        fingerprint = inference.weights_fingerprint(model.variables)
        if fingerprint != info.fingerprint:
            raise ModelError(
                f"{weights}: weights fingerprint {fingerprint} does not match {config}'s "
                f"{info.fingerprint}; {REEXPORT}"
            )
        self.fingerprint = fingerprint
        self.network = model  # the built RNNForecaster, weights assigned
        step = tf.function(
            inference.step_function(model),
            input_signature=inference.step_signature(model, num_features),
        )
        # One concrete function: calls skip tf.function's per-call dispatch.
        self._step = step.get_concrete_function()

    def step(self, inputs, observed, sequence_length, loc, scale, state) -> dict[str, np.ndarray]:
        out = self._step(inputs, observed, sequence_length, loc, scale, state)
        return {k: v.numpy() for k, v in out.items()}


def load_model(export_dir: str) -> LoadedModel:
    """The checked network of ``export_dir`` (ModelError naming the file and the fix)."""
    return LoadedModel(read_model_info(export_dir))


def worker_model(model: ModelInfo) -> LoadedModel:
    """Load ``model`` in a worker; refuse an export that changed since the job checked it."""
    loaded = load_model(model.path)
    if loaded.fingerprint != model.fingerprint:
        raise ModelError(
            f"{model.path}: the export changed while the job ran (fingerprint "
            f"{loaded.fingerprint}, expected {model.fingerprint}); rerun the job"
        )
    return loaded
