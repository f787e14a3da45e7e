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
``weights.npz`` holds the weights as plain arrays (``v00000``... in the order of
``model.variables``, no pickle; ``fingerprint`` in ``rnncast_model.json`` is their SHA-256): the
rnncast jobs build the network from rnncast's code and the config and load only these, never
the SavedModel's graph. ``model.keras`` holds the Keras model (loadable with
``safe_mode=True``). Both signatures run ``rnncast.model.inference.step_function``, the
code the jobs run.
"""

from __future__ import annotations

import json
import os
import shutil

import keras
import tensorflow as tf

from rnncast import schemas
from rnncast.errors import ExportError
from rnncast.model import checkpoint, inference
from rnncast.model.config import (
    CALIBRATION_FILE,
    CONFIG_FILE,
    DATASET_FILE,
    TrainConfig,
    build_model,
)
from rnncast.model.forecaster import RNNForecaster
from rnncast.pipeline.io import commit

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
    # Runs from before level-free inputs saw the level and had no lags.
    train_settings = {"inputs": "level", "lags": [], **settings["train"]}
    config = TrainConfig(
        data="",
        model_dir=model_dir,
        **{**train_settings, "quantiles": tuple(train_settings["quantiles"])},
    )
    calibration_path = os.path.join(model_dir, CALIBRATION_FILE)
    interval_scale = (
        commit.read_json(calibration_path, fix)["interval_scale"]
        if os.path.exists(calibration_path)
        else None
    )
    model = build_model(config, metadata, interval_scale)
    try:
        restored = checkpoint.restore(os.path.join(model_dir, "best"), model.variables)
    except checkpoint.CheckpointError as err:
        raise ExportError(f"{err}; or retrain into a new --model-dir") from err
    if restored is None:
        raise ExportError(f"{model_dir}/best: no checkpoint; training has not finished an epoch")
    return model, metadata, settings


def export_model(model_dir: str, servable: bool = True) -> str:
    """Write ``MODEL_DIR/export`` (atomically: a temporary directory, then a rename).

    ``servable=False`` leaves out the SavedModel and the Keras file, which rnncast's own jobs
    never read (they load ``weights.npz`` as data); ``rnncast evaluate`` trains a model per
    refit and skips them, as writing them takes most of the export's time.
    """
    model, metadata, settings = load_trained(model_dir)
    final = os.path.join(model_dir, EXPORT_DIR)
    staging = final + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    if servable:
        num_features = len(metadata["feature_names"])
        step = inference.step_function(model)
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "step", step, input_signature=inference.step_signature(model, num_features)
        )
        archive.add_endpoint(
            "forecast",
            inference.forecast_function(model, step),
            input_signature=inference.forecast_signature(num_features),
        )
        # The CPU loop's hand-written gradient captures its forward loop's arrays, which a
        # SavedModel cannot hold; serving never differentiates, so the gradient is not saved.
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
        archive.write_out(staging, options=options, verbose=False)
        model.save(os.path.join(staging, KERAS_FILE))
    else:
        os.makedirs(staging)
    with open(os.path.join(staging, inference.WEIGHTS_FILE), "wb") as handle:
        handle.write(checkpoint.to_npz(model.variables))
    description = {
        "schema_version": dict(schemas.CURRENT_VERSIONS),
        "model": model.get_config(),
        "training": settings["train"],
        "fingerprint": inference.weights_fingerprint(model.variables),
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
