"""Inference in original units: the one ``step``/``forecast`` implementation and the weights.

The export's SavedModel signatures and the jobs' model (built from rnncast's code, weights
loaded as data; see ``rnncast.pipeline.io.model_loader``) both call :func:`step_function`
(the jobs' small calls run its numpy twin, ``rnncast.model.numpy_step``, which the tests hold
to it), so they run the same math: scale the value column with the per-series
``loc``/``scale``, advance the network from the given state, invert the scaling (clipping at
zero for a ``nonnegative`` model) and zero the steps past each row's length.

The weights are the model's variables in the order of ``model.variables``: written by
``rnncast.model.checkpoint.to_npz`` (``weights.npz`` in the export) and fingerprinted by
:func:`weights_fingerprint` (SHA-256 over each array's bytes, in that order).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from rnncast.model.forecaster import RNNForecaster, model_inputs

WEIGHTS_FILE = "weights.npz"

StepFunction = Callable[..., dict]


def weights_fingerprint(variables: Sequence[Any]) -> str:
    """SHA-256 (hex) over the bytes of every variable's value, in order."""
    digest = hashlib.sha256()
    for variable in variables:
        digest.update(np.asarray(variable.numpy()).tobytes())
    return digest.hexdigest()


def _scaled_inputs(inputs, observed, loc, scale):
    value = (inputs[..., :1] - loc[:, None, None]) / scale[:, None, None]
    return model_inputs(tf.concat([value, inputs[..., 1:]], axis=-1), observed)


def _unscale(values, loc, scale, extra_axes):
    shape = (-1,) + (1,) * extra_axes
    return values * tf.reshape(scale, shape) + tf.reshape(loc, shape)


def step_function(model: RNNForecaster) -> StepFunction:
    """``step(inputs [B,T,F], observed [B,T], sequence_length [B], loc [B], scale [B],
    state [S,B,U]) -> {point [B,T,H], quantiles [B,T,H,Q], state [S,B,U]}`` in original units;
    outputs past a row's length are 0."""
    num_states = len(model.state_size)

    def step(inputs, observed, sequence_length, loc, scale, state):
        x = _scaled_inputs(inputs, observed, loc, scale)
        point, quantiles, new_state = model(
            x, tf.unstack(state, num=num_states), sequence_length, training=False
        )
        valid = tf.sequence_mask(sequence_length, tf.shape(inputs)[1])
        point, quantiles = _unscale(point, loc, scale, 2), _unscale(quantiles, loc, scale, 3)
        if model.nonnegative:
            point, quantiles = tf.maximum(point, 0.0), tf.maximum(quantiles, 0.0)
        point = tf.where(valid[:, :, None], point, 0.0)
        quantiles = tf.where(valid[:, :, None, None], quantiles, 0.0)
        return {"point": point, "quantiles": quantiles, "state": tf.stack(new_state)}

    return step


def forecast_function(model: RNNForecaster, step: StepFunction) -> StepFunction:
    """``forecast(inputs, observed, sequence_length, loc, scale) -> {point [B,H],
    quantiles [B,H,Q]}``: ``step`` from a zero state, read at each row's last valid step."""
    num_states = len(model.state_size)

    def forecast(inputs, observed, sequence_length, loc, scale):
        batch = tf.shape(inputs)[0]
        state = tf.zeros([num_states, batch, model.units])
        out = step(inputs, observed, sequence_length, loc, scale, state)
        last = tf.maximum(sequence_length - 1, 0)
        return {
            "point": tf.gather(out["point"], last, axis=1, batch_dims=1),
            "quantiles": tf.gather(out["quantiles"], last, axis=1, batch_dims=1),
        }

    return forecast


def forecast_signature(num_features: int) -> list[tf.TensorSpec]:
    """Input signature of ``forecast`` (and the first five inputs of ``step``)."""
    return [
        tf.TensorSpec([None, None, num_features], tf.float32, name="inputs"),
        tf.TensorSpec([None, None], tf.float32, name="observed"),
        tf.TensorSpec([None], tf.int32, name="sequence_length"),
        tf.TensorSpec([None], tf.float32, name="loc"),
        tf.TensorSpec([None], tf.float32, name="scale"),
    ]


def step_signature(model: RNNForecaster, num_features: int) -> list[tf.TensorSpec]:
    """Input signature of ``step``."""
    state = tf.TensorSpec([len(model.state_size), None, model.units], tf.float32, name="state")
    return [*forecast_signature(num_features), state]


class CompiledStep:
    """:func:`step_function` of ``model`` as one concrete function, numpy in and numpy out
    (the jobs' TensorFlow step; ``jit_compile``: compiled with XLA, one program per input
    shape, on the masked path, which gives padded lanes and steps their exact meaning: XLA
    cannot compile the graph branch between the masked and unmasked paths around Keras'
    loops)."""

    def __init__(self, model: RNNForecaster, num_features: int, jit_compile: bool = False):
        if jit_compile:
            model.rnn.padding_path = "masked"
        try:
            step = tf.function(
                step_function(model),
                input_signature=step_signature(model, num_features),
                jit_compile=jit_compile,
            )
            # One concrete function: calls skip tf.function's per-call dispatch.
            self._step = step.get_concrete_function()
        finally:
            model.rnn.padding_path = "branch"
        signature = self._step.structured_input_signature[0]
        self._input_dtypes = [spec.dtype.as_numpy_dtype for spec in signature]

    def __call__(self, *args: Any) -> dict[str, np.ndarray]:
        # Tensors of the signature's dtypes: handing numpy arrays to the concrete function
        # converts them through its argument binding, about a third of a small call's cost.
        tensors = [tf.constant(np.asarray(a, d)) for a, d in zip(args, self._input_dtypes)]
        return {k: v.numpy() for k, v in self._step(*tensors).items()}
