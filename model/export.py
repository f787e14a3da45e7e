"""Export of a trained forecaster: a SavedModel with ``step`` and ``forecast`` signatures.

The SavedModel loads with ``tf.saved_model.load`` in a process that has never imported
rnncast. Both signatures take the dataset's raw features (column 0 is the value in its
original units) and the per-series ``loc``/``scale``; they scale on the way in and invert the
scaling on the way out, so results are in original units.

- ``step(inputs [B,T,F], observed [B,T], sequence_length [B], loc [B], scale [B],
  state [S,B,U])`` -> ``point [B,T,H]``, ``quantiles [B,T,H,Q]``, ``state [S,B,U]``: advance
  the RNN over a chunk from a given state (the building block of incremental inference).
- ``forecast(inputs, observed, sequence_length, loc, scale)`` -> ``point [B,H]``,
  ``quantiles [B,H,Q]``: the H-step forecast from the last valid step of each padded history,
  starting from a zero state.

``rnncast_model.json`` beside it carries the model config, feature names, quantiles, horizon,
frequency, schema version and the per-series scaling of the training data (JSON, no pickle);
``model.keras`` holds the Keras model (loadable with ``safe_mode=True``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

import schemas
from model import checkpoint
from model.errors import ExportError
from model.forecaster import RNNForecaster, model_inputs
from model.train import CONFIG_FILE, DATASET_FILE, TrainConfig, build_model
from pipeline import commit

EXPORT_DIR = "export"
MODEL_CONFIG = "rnncast_model.json"
KERAS_FILE = "model.keras"


def load_trained(model_dir: str) -> tuple[RNNForecaster, dict, dict]:
    """The best model of a training run, its dataset metadata and its training settings."""
    paths = [os.path.join(model_dir, name) for name in (CONFIG_FILE, DATASET_FILE)]
    for path in paths:
        if not os.path.exists(path):
            raise ExportError(f"{path}: not found; train a model into {model_dir} first")
    fix = f"rerun 'rnncast train --model-dir {model_dir}' into a new directory"
    settings = commit.read_json(paths[0], fix)
    metadata = commit.read_json(paths[1], fix)
    config = TrainConfig(
        data="",
        model_dir=model_dir,
        **{**settings["train"], "quantiles": tuple(settings["train"]["quantiles"])},
    )
    model = build_model(config, metadata)
    try:
        restored = checkpoint.restore(os.path.join(model_dir, "best"), model.variables)
    except checkpoint.CheckpointError as err:
        raise ExportError(f"{err}; or retrain into a new --model-dir") from err
    if restored is None:
        raise ExportError(f"{model_dir}/best: no checkpoint; training has not finished an epoch")
    return model, metadata, settings


def _scaled_inputs(inputs, observed, loc, scale):
    value = (inputs[..., :1] - loc[:, None, None]) / scale[:, None, None]
    return model_inputs(tf.concat([value, inputs[..., 1:]], axis=-1), observed)


def export_model(model_dir: str) -> str:
    """Write ``MODEL_DIR/export`` (atomically: a temporary directory, then a rename)."""
    model, metadata, settings = load_trained(model_dir)
    num_features = len(metadata["feature_names"])
    num_states = len(model.state_size)
    units = model.units

    def unscale(values, loc, scale, extra_axes):
        shape = (-1,) + (1,) * extra_axes
        return values * tf.reshape(scale, shape) + tf.reshape(loc, shape)

    def step(inputs, observed, sequence_length, loc, scale, state):
        x = _scaled_inputs(inputs, observed, loc, scale)
        point, quantiles, new_state = model(
            x, tf.unstack(state, num=num_states), sequence_length, training=False
        )
        valid = tf.sequence_mask(sequence_length, tf.shape(inputs)[1])
        point = tf.where(valid[:, :, None], unscale(point, loc, scale, 2), 0.0)
        quantiles = tf.where(valid[:, :, None, None], unscale(quantiles, loc, scale, 3), 0.0)
        return {"point": point, "quantiles": quantiles, "state": tf.stack(new_state)}

    def forecast(inputs, observed, sequence_length, loc, scale):
        batch = tf.shape(inputs)[0]
        state = tf.zeros([num_states, batch, units])
        out = step(inputs, observed, sequence_length, loc, scale, state)
        last = tf.maximum(sequence_length - 1, 0)
        return {
            "point": tf.gather(out["point"], last, axis=1, batch_dims=1),
            "quantiles": tf.gather(out["quantiles"], last, axis=1, batch_dims=1),
        }

    features = tf.TensorSpec([None, None, num_features], tf.float32, name="inputs")
    common = [
        features,
        tf.TensorSpec([None, None], tf.float32, name="observed"),
        tf.TensorSpec([None], tf.int32, name="sequence_length"),
        tf.TensorSpec([None], tf.float32, name="loc"),
        tf.TensorSpec([None], tf.float32, name="scale"),
    ]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "step",
        step,
        input_signature=[*common, tf.TensorSpec([num_states, None, units], tf.float32, "state")],
    )
    archive.add_endpoint("forecast", forecast, input_signature=common)

    final = os.path.join(model_dir, EXPORT_DIR)
    staging = final + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    archive.write_out(staging, verbose=False)
    model.save(os.path.join(staging, KERAS_FILE))
    weights_digest = hashlib.sha256()
    for variable in model.variables:
        weights_digest.update(np.asarray(variable.numpy()).tobytes())
    description = {
        "schema_version": dict(schemas.CURRENT_VERSIONS),
        "model": model.get_config(),
        "training": settings["train"],
        "fingerprint": weights_digest.hexdigest(),
        "feature_names": metadata["feature_names"],
        "calendar_features": metadata["calendar_features"],
        "covariates": metadata["covariates"],
        "quantiles": list(model.quantiles),
        "horizon": metadata["horizon"],
        "num_steps": metadata["num_steps"],
        "freq": metadata["freq"],
        "scaling": metadata["scaling"],
        "fill": metadata["fill"],
        "state_size": model.state_size,
        "state_names": model.rnn.state_names(),
        "series": {
            sid: {"loc": info["loc"], "scale": info["scale"], "end": info["end"]}
            for sid, info in metadata["series"].items()
        },
        "dataset": settings["dataset"],
        "signatures": {
            "step": "inputs[B,T,F], observed[B,T], sequence_length[B], loc[B], scale[B], "
            "state[S,B,U] -> point[B,T,H], quantiles[B,T,H,Q], state[S,B,U]",
            "forecast": "inputs[B,T,F], observed[B,T], sequence_length[B], loc[B], scale[B] "
            "-> point[B,H], quantiles[B,H,Q] (original units)",
        },
    }
    with open(os.path.join(staging, MODEL_CONFIG), "w", encoding="utf-8") as handle:
        json.dump(description, handle, indent=2, sort_keys=True)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    return final
