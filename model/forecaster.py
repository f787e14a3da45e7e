"""The forecaster: a masked multi-layer RNN with a direct multi-horizon quantile head.

At every time step the model forecasts the next ``horizon`` values (forking sequences, as in
MQ-RNN): a point forecast and one forecast per quantile level, kept non-crossing by building
each quantile as the previous one plus a softplus increment. Inputs are the dataset's features
with the value column scaled per series, plus the ``observed`` flag as one more channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from model.rnn import MaskedStackedRNN

POINT_LOSSES = ("mse", "mae")
# What the head's outputs are added to: nothing, or the value at the step (channel 0 of the
# inputs, scaled), so that an untrained network forecasts "same as now" (naive) and learns
# the change (as LSTNet's linear highway and ES-RNN's level do).
ANCHORS = ("none", "last")


@keras.saving.register_keras_serializable(package="rnncast")
class QuantileHead(keras.layers.Layer):
    """Dense head: ``[B, T, U]`` -> point ``[B, T, H]`` and ordered quantiles ``[B, T, H, Q]``."""

    def __init__(self, horizon: int, num_quantiles: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.horizon = int(horizon)
        self.num_quantiles = int(num_quantiles)
        self.dense = keras.layers.Dense(self.horizon * (1 + self.num_quantiles), name="dense")

    def build(self, input_shape: Sequence[int | None]) -> None:
        self.dense.build(tuple(input_shape))
        self.built = True

    def call(self, hidden: Any) -> tuple[Any, Any]:
        raw = self.dense(hidden)
        shape = ops.shape(raw)
        raw = ops.reshape(raw, (shape[0], shape[1], self.horizon, 1 + self.num_quantiles))
        point = raw[..., 0]
        if self.num_quantiles == 0:
            return point, raw[..., 1:]
        lowest = raw[..., 1:2]
        steps = ops.softplus(raw[..., 2:])
        quantiles = ops.concatenate([lowest, lowest + ops.cumsum(steps, axis=-1)], axis=-1)
        return point, quantiles

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(horizon=self.horizon, num_quantiles=self.num_quantiles)
        return config


@keras.saving.register_keras_serializable(package="rnncast")
class RNNForecaster(keras.Model):
    """``(inputs [B,T,F], initial_state, sequence_length) -> (point, quantiles, final_state)``.

    Outputs past a row's ``sequence_length`` are exactly zero; the state is carried through
    unchanged there (see :class:`~model.rnn.MaskedStackedRNN`).
    """

    def __init__(
        self,
        cell_type: str = "gru",
        num_layers: int = 2,
        units: int = 64,
        dropout: float = 0.0,
        horizon: int = 24,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        anchor: str = "none",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
        self.anchor = anchor
        self.cell_type = cell_type
        self.num_layers = int(num_layers)
        self.units = int(units)
        self.dropout = float(dropout)
        self.horizon = int(horizon)
        self.quantiles = tuple(sorted(float(q) for q in quantiles))
        self.rnn = MaskedStackedRNN(cell_type, num_layers, units, dropout, name="rnn")
        self.head = QuantileHead(self.horizon, len(self.quantiles), name="head")

    def build(self, input_shape: Sequence[int | None]) -> None:
        input_shape = tuple(input_shape)
        self.rnn.build(input_shape)
        self.head.build((input_shape[0], input_shape[1], self.units))
        self.built = True

    @property
    def state_size(self) -> list[int]:
        return self.rnn.state_size

    def zero_state(self, batch_size: Any) -> list[Any]:
        return self.rnn.zero_state(batch_size)

    def call(
        self,
        inputs: Any,
        initial_state: Sequence[Any] | None = None,
        sequence_length: Any | None = None,
        training: bool | None = None,
    ) -> tuple[Any, Any, list[Any]]:
        hidden, state = self.rnn(inputs, initial_state, sequence_length, training=training)
        point, quantiles = self.head(hidden)
        if self.anchor == "last":
            level = inputs[..., :1]
            point = point + level
            quantiles = quantiles + level[..., None]
        steps = ops.shape(inputs)[1]
        if sequence_length is None:
            return point, quantiles, state
        valid = ops.less(
            ops.expand_dims(ops.arange(steps, dtype="int32"), 0),
            ops.expand_dims(ops.cast(sequence_length, "int32"), 1),
        )
        point = ops.where(valid[:, :, None], point, ops.zeros_like(point))
        quantiles = ops.where(valid[:, :, None, None], quantiles, ops.zeros_like(quantiles))
        return point, quantiles, state

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cell_type": self.cell_type,
            "num_layers": self.num_layers,
            "units": self.units,
            "dropout": self.dropout,
            "horizon": self.horizon,
            "quantiles": list(self.quantiles),
            "anchor": self.anchor,
        }


def model_inputs(inputs: tf.Tensor, observed: tf.Tensor) -> tf.Tensor:
    """The network's input: the (scaled) features plus the observed flag as a channel."""
    return tf.concat([inputs, tf.cast(observed, inputs.dtype)[..., None]], axis=-1)


def reset_state(state: Sequence[tf.Tensor], reset: tf.Tensor) -> list[tf.Tensor]:
    """Zero the state of the lanes whose ``reset`` flag is set; other lanes keep theirs."""
    return [tf.where(reset[:, None], tf.zeros_like(s), s) for s in state]


def masked_loss_sums(
    point: tf.Tensor,
    quantiles: tf.Tensor,
    targets: tf.Tensor,
    mask: tf.Tensor,
    quantile_levels: Sequence[float],
    point_loss: str,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Sum of per-target losses over the valid targets, and their count.

    The loss of one target is the point loss (``mse`` or ``mae``) plus the pinball loss
    averaged over the quantile levels. Dividing the sum by the count averages over valid
    targets only, like TF1's ``sequence_loss_by_example``.
    """
    if point_loss not in POINT_LOSSES:
        raise ValueError(f"point loss must be one of {POINT_LOSSES}, got {point_loss!r}")
    weight = tf.cast(mask, point.dtype)
    error = targets - point
    per_target = tf.square(error) if point_loss == "mse" else tf.abs(error)
    if quantile_levels:
        levels = tf.constant(quantile_levels, point.dtype)
        diff = targets[..., None] - quantiles
        pinball = tf.maximum(levels * diff, (levels - 1.0) * diff)
        per_target = per_target + tf.reduce_mean(pinball, axis=-1)
    return tf.reduce_sum(per_target * weight), tf.reduce_sum(weight)
