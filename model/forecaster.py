"""The forecaster: a masked multi-layer RNN with a direct multi-horizon quantile head.

At every time step the model forecasts the next ``horizon`` values (forking sequences, as in
MQ-RNN): a point forecast and one forecast per quantile level, kept non-crossing by building
each quantile as the previous one plus a softplus increment. Inputs are the dataset's features
with the value column scaled per series, plus the ``observed`` flag as one more channel.

Two options make the network level-free, which is what long trending series need (issue 12):
``inputs="change"`` replaces the scaled value by its changes over one step and over each
seasonal lag (DeepAR-style lags, as differences), and ``anchor`` adds the network's output to
a baseline (the last value, or seasonal naive as in ES-RNN), so that an untrained network
forecasts the baseline and a level the network never saw in training is not pulled back
toward the training mean. The past values both need are carried in the state
(:class:`LagMemory`), so chunked, incremental and stream inference see exactly what one
unchunked pass sees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from rnncast.model.config import ANCHORS, INPUTS, POINT_LOSSES
from rnncast.model.rnn import MaskedStackedRNN


@keras.saving.register_keras_serializable(package="rnncast")
class LagMemory(keras.layers.Layer):
    """The last ``length`` values of a lane (scaled, input channel 0) and their observed flags.

    The memory is part of the model's recurrent state, so it is carried across batches,
    zeroed by ``reset`` (a zero memory reads as "not observed") and saved per series by the
    jobs like the RNN state. It is stored as ``len(state_size)`` tensors of ``slot_size``
    floats (values, then flags, zero-padded) so that the whole state stays one
    ``[S, B, units]`` stack for the jobs and the exported signatures.

    Call arguments:
        value: ``[B, T]`` scaled values.
        observed: ``[B, T]`` 1.0 where the value was observed, 0.0 where it was filled.
        slots: the memory's state tensors (``[B, slot_size]`` each).
        sequence_length: ``[B]`` valid steps per row; steps past it are not remembered.

    Returns:
        ``(values, flags, new_slots)``: ``values`` and ``flags`` are ``[B, length + T]``, the
        remembered past followed by this batch (position ``length + t`` is step ``t``, so the
        value ``s`` steps before step ``t`` is at ``length + t - s``), and ``new_slots`` the
        memory after the last valid step of each row.
    """

    def __init__(self, length: int, slot_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(length) < 1 or int(slot_size) < 1:
            raise ValueError(f"length and slot_size must be >= 1, got {length}, {slot_size}")
        self.length = int(length)
        self.slot_size = int(slot_size)

    @property
    def state_size(self) -> list[int]:
        return [self.slot_size] * math.ceil(2 * self.length / self.slot_size)

    def call(
        self, value: Any, observed: Any, slots: Sequence[Any], sequence_length: Any
    ) -> tuple[Any, Any, list[Any]]:
        length = self.length
        packed = tf.concat(list(slots), axis=-1)
        values = tf.concat([packed[:, :length], value], axis=1)
        flags = tf.concat([packed[:, length : 2 * length], observed], axis=1)
        # The memory after a row's last valid step: the `length` positions ending there (a row
        # of length 0 keeps its memory).
        index = tf.cast(sequence_length, tf.int32)[:, None] + tf.range(length)[None, :]
        kept = [tf.gather(values, index, batch_dims=1), tf.gather(flags, index, batch_dims=1)]
        padding = len(self.state_size) * self.slot_size - 2 * length
        if padding:
            kept.append(tf.zeros_like(packed[:, :padding]))
        new_slots = tf.split(tf.concat(kept, axis=-1), len(self.state_size), axis=-1)
        return values, flags, new_slots

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(length=self.length, slot_size=self.slot_size)
        return config


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

    ``inputs`` are the dataset's features with the scaled value first and the observed flag
    last (:func:`model_inputs`). Outputs past a row's ``sequence_length`` are exactly zero;
    the state is carried through unchanged there (see :class:`~rnncast.model.rnn.MaskedStackedRNN`).

    Args:
        anchor: What the outputs are added to (:data:`ANCHORS`); ``"seasonal"`` uses
            ``lags[0]`` as the season and falls back to the last value where the value one
            season back was not observed.
        inputs: ``"level"`` (the scaled value) or ``"change"`` (the value's change over one
            step and over every lag, with flags saying whether that past value was observed).
        lags: Seasonal lags in steps, the main season first, e.g. ``(24, 168)`` for hourly
            data. With ``inputs="change"`` or ``anchor="seasonal"`` the state carries the last
            ``max(lags)`` values (:class:`LagMemory`).
        interval_scale: Per horizon step, the factor applied to the quantiles' distance from
            their center (the median quantile, or the point forecast without one), set by
            calibration after training (:mod:`model.calibration`); ``None``: unscaled.
        nonnegative: The series never go below zero: forecasts in original units are
            clipped at zero. The network works in scaled units, so the clip is applied after
            unscaling, by :func:`rnncast.model.inference.step_function`; the flag lives here so the
            jobs and the export read it from the model's config.
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
        inputs: str = "level",
        lags: Sequence[int] = (),
        interval_scale: Sequence[float] | None = None,
        nonnegative: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
        lags = tuple(int(lag) for lag in lags)
        if any(lag < 1 for lag in lags) or len(set(lags)) != len(lags):
            raise ValueError(f"lags must be distinct positive steps, got {list(lags)}")
        if anchor == "seasonal" and not lags:
            raise ValueError("anchor 'seasonal' needs a season: lags must not be empty")
        if interval_scale is not None:
            interval_scale = tuple(float(f) for f in interval_scale)
            if len(interval_scale) != int(horizon) or not all(f > 0 for f in interval_scale):
                raise ValueError(
                    f"interval_scale must hold {horizon} positive factors, got {interval_scale}"
                )
        self.anchor = anchor
        self.inputs = inputs
        self.lags = lags
        self.interval_scale = interval_scale
        self.nonnegative = bool(nonnegative)
        self.cell_type = cell_type
        self.num_layers = int(num_layers)
        self.units = int(units)
        self.dropout = float(dropout)
        self.horizon = int(horizon)
        self.quantiles = tuple(sorted(float(q) for q in quantiles))
        self.rnn = MaskedStackedRNN(cell_type, num_layers, units, dropout, name="rnn")
        self.head = QuantileHead(self.horizon, len(self.quantiles), name="head")
        # The changes the network sees: over one step and over every lag.
        self.change_lags = tuple(sorted({1, *lags})) if inputs == "change" else ()
        needs_memory = inputs == "change" or anchor == "seasonal"
        self.memory = (
            LagMemory(max((1, *lags)), self.units, name="memory") if needs_memory else None
        )

    def build(self, input_shape: Sequence[int | None]) -> None:
        input_shape = tuple(input_shape)
        features = (
            input_shape[-1] - 1 + 2 * len(self.change_lags) if self.change_lags else input_shape[-1]
        )
        self.rnn.build((*input_shape[:-1], features))
        self.head.build((input_shape[0], input_shape[1], self.units))
        if self.memory is not None:
            self.memory.build(None)
        self.built = True

    @property
    def state_size(self) -> list[int]:
        memory = self.memory.state_size if self.memory is not None else []
        return self.rnn.state_size + memory

    def zero_state(self, batch_size: Any) -> list[Any]:
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in self.state_size]

    def call(
        self,
        inputs: Any,
        initial_state: Sequence[Any] | None = None,
        sequence_length: Any | None = None,
        training: bool | None = None,
        lanes: tuple[Any, Any] | None = None,
    ) -> tuple[Any, Any, list[Any]]:
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        batch, steps = ops.shape(inputs)[0], ops.shape(inputs)[1]
        if initial_state is None:
            initial_state = self.zero_state(batch)
        state = list(initial_state)
        rnn_count = len(self.rnn.state_size)
        rnn_state, memory_state = state[:rnn_count], state[rnn_count:]
        lengths = (
            ops.full((batch,), steps, dtype="int32")
            if sequence_length is None
            else ops.cast(ops.reshape(sequence_length, (-1,)), "int32")
        )
        valid = ops.less(ops.expand_dims(ops.arange(steps, dtype="int32"), 0), lengths[:, None])
        level = inputs[..., 0]
        network_inputs = inputs
        if self.memory is not None:
            # Padding is never remembered, and zeroed so no garbage reaches a lag.
            value = ops.where(valid, level, ops.zeros_like(level))
            observed = ops.where(valid, inputs[..., -1], ops.zeros_like(level))
            values, flags, memory_state = self.memory(value, observed, memory_state, lengths)
            if self.change_lags:
                network_inputs = self._change_inputs(inputs, value, values, flags, steps)
        hidden, rnn_state = self.rnn(
            network_inputs, rnn_state, sequence_length, training=training, lanes=lanes
        )
        point, quantiles = self.head(hidden)
        if self.anchor == "last":
            baseline = level[..., None]
        elif self.anchor == "seasonal":
            baseline = self._seasonal_naive(value, values, flags, steps)
        if self.anchor != "none":
            point = point + baseline
            quantiles = quantiles + baseline[..., None]
        if self.interval_scale is not None and self.quantiles:
            center = self.quantile_center(point, quantiles)
            factor = ops.reshape(
                ops.convert_to_tensor(self.interval_scale, quantiles.dtype), (1, 1, -1, 1)
            )
            quantiles = center + factor * (quantiles - center)
        state = list(rnn_state) + list(memory_state)
        if sequence_length is None:
            return point, quantiles, state
        point = ops.where(valid[:, :, None], point, ops.zeros_like(point))
        quantiles = ops.where(valid[:, :, None, None], quantiles, ops.zeros_like(quantiles))
        return point, quantiles, state

    def quantile_center(self, point: Any, quantiles: Any) -> Any:
        """``[B, T, H, 1]``: the median quantile, or the point forecast without one."""
        if 0.5 in self.quantiles:
            middle = self.quantiles.index(0.5)
            return quantiles[..., middle : middle + 1]
        return point[..., None]

    def _change_inputs(self, inputs: Any, value: Any, values: Any, flags: Any, steps: Any) -> Any:
        """Channel 0 (the level) replaced by ``x[t] - x[t-s]`` and ``observed[t-s]`` per lag."""
        start = self.memory.length
        channels = []
        for lag in self.change_lags:
            past = values[:, start - lag : start - lag + steps]
            seen = flags[:, start - lag : start - lag + steps]
            channels += [(value - past) * seen, seen]
        return ops.concatenate([ops.stack(channels, axis=-1), inputs[..., 1:]], axis=-1)

    def _seasonal_naive(self, value: Any, values: Any, flags: Any, steps: Any) -> Any:
        """``[B, T, H]``: for target step ``t + h`` the value ``k`` seasons before it (the
        latest one at or before ``t``), or the value at ``t`` where that one was not seen."""
        season = self.lags[0]
        back = [h - season * math.ceil(h / season) for h in range(1, self.horizon + 1)]
        position = (
            self.memory.length
            + tf.range(steps, dtype=tf.int32)[:, None]
            + tf.constant(back, tf.int32)[None, :]
        )
        past = tf.gather(values, position, axis=1)
        seen = tf.gather(flags, position, axis=1)
        return ops.where(seen > 0, past, ops.broadcast_to(value[..., None], ops.shape(past)))

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
            "inputs": self.inputs,
            "lags": list(self.lags),
            "interval_scale": None if self.interval_scale is None else list(self.interval_scale),
            "nonnegative": self.nonnegative,
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
