"""The inference ``step`` in numpy, for the small calls of a stream.

A TensorFlow call costs about 0.7 ms whatever its size (a graph of a few hundred ops, each
dispatched by the runtime), which is nearly all of a small call's cost: a stream firing
advances a few series by one point each, and with 16 shards of about 12 series the model
call alone was ~70 us per point (issue 16). The same math in numpy, on the same weights, is
a few dozen array operations, about 20 times cheaper at that size.

:class:`NumpyStep` computes exactly what :func:`rnncast.model.inference.step_function` computes
(same formulas, float32 throughout): scale the value column, the lag memory and its change
inputs, the recurrent stack (Keras' ``SimpleRNNCell`` / ``LSTMCell`` / ``GRUCell`` with
``reset_after=True``; past a row's length its output is 0 and its state carried unchanged),
the quantile head, the anchor, the calibrated interval scale, unscaling, the non-negative
clip, and zeros past each row's length. The values agree with the TensorFlow step to float32
round-off (``tests/test_numpy_step.py`` checks every model option), not bit for bit.

The weights are data: :meth:`NumpyStep.from_model` copies them out of a built
:class:`~rnncast.model.forecaster.RNNForecaster` (whose weights ``load_model`` checked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FLOAT = np.float32


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow for large ``|x|`` (unlike ``1 / (1 + e^-x)``)."""
    return np.tanh(x * FLOAT(0.5)) * FLOAT(0.5) + FLOAT(0.5)


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + e^x)``, stable for large ``|x|`` (``np.logaddexp`` is 5x slower on float32)."""
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, FLOAT(0.0))


@dataclass(frozen=True)
class LayerWeights:
    """One recurrent layer: ``kernel [F, G*U]``, ``recurrent_kernel [U, G*U]``, and the bias
    split as the hoisted TF loop splits it: the input bias (added to the input projection)
    and, for the GRU only, the recurrent bias (added inside the reset gate's product)."""

    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    input_bias: np.ndarray
    recurrent_bias: np.ndarray | None


def cell_step(
    cell_type: str, projected: np.ndarray, carry: list[np.ndarray], weights: LayerWeights
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One step of the cell, the input projection (with its bias) in ``projected``
    ``[B, G*U]``: the formulas of ``rnncast.model.rnn._cell_forward``. Returns ``(h, carry)``."""
    units = len(weights.recurrent_kernel)
    inner = carry[0] @ weights.recurrent_kernel
    if cell_type == "rnn":
        h = np.tanh(projected + inner)
        return h, [h]
    if cell_type == "lstm":
        gates = projected + inner
        # Keras' gate order: input, forget, cell, output. (Slices, not np.split: a small
        # call's cost is its number of numpy calls.)
        i, f = sigmoid(gates[:, :units]), sigmoid(gates[:, units : 2 * units])
        c = f * carry[1] + i * np.tanh(gates[:, 2 * units : 3 * units])
        h = sigmoid(gates[:, 3 * units :]) * np.tanh(c)
        return h, [h, c]
    inner += weights.recurrent_bias
    # Update and reset gates together: one sigmoid over both.
    zr = sigmoid(projected[:, : 2 * units] + inner[:, : 2 * units])
    z = zr[:, :units]
    hh = np.tanh(projected[:, 2 * units :] + zr[:, units:] * inner[:, 2 * units :])
    h = hh + z * (carry[0] - hh)
    return h, [h]


def run_layer(
    cell_type: str,
    weights: LayerWeights,
    inputs: np.ndarray,
    state: list[np.ndarray],
    valid: np.ndarray | None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One layer over ``inputs [B, T, F]`` from ``state``: outputs ``[B, T, U]`` (0 past a
    row's length) and the state after each row's last valid step (``valid [B, T]``, or None:
    every step valid)."""
    batch, steps = inputs.shape[:2]
    units = weights.recurrent_kernel.shape[0]
    # The input projection of every step at once, as the hoisted TF loop does.
    projected = inputs.reshape(batch * steps, -1) @ weights.kernel + weights.input_bias
    projected = projected.reshape(batch, steps, -1)
    outputs = np.zeros((batch, steps, units), FLOAT)
    carry = list(state)
    for t in range(steps):
        h, new = cell_step(cell_type, projected[:, t], carry, weights)
        if valid is None:
            outputs[:, t] = h
            carry = new
        else:
            ok = valid[:, t, None]
            outputs[:, t] = np.where(ok, h, FLOAT(0.0))
            carry = [np.where(ok, n, c) for n, c in zip(new, carry, strict=True)]
    return outputs, carry


@dataclass(frozen=True)
class NumpyStep:
    """``step(inputs [B,T,F], observed [B,T], sequence_length [B], loc [B], scale [B],
    state [S,B,U]) -> {point [B,T,H], quantiles [B,T,H,Q], state [S,B,U]}`` in original units,
    as :func:`rnncast.model.inference.step_function` (see the module docstring)."""

    cell_type: str
    layers: tuple[LayerWeights, ...]
    # The head's dense layer with its columns regrouped by output (point, lowest quantile,
    # then each increment), horizon steps within each: [U, (1 + Q) * H]. (Keras' layout,
    # horizon-major, would make every output a strided slice, several times slower.)
    head_kernel: np.ndarray
    head_bias: np.ndarray
    horizon: int
    quantiles: tuple[float, ...]
    anchor: str
    change_lags: tuple[int, ...]
    lags: tuple[int, ...]
    memory_length: int  # 0: no lag memory in the state
    memory_slots: int  # state tensors the memory takes (the last ones)
    interval_scale: np.ndarray | None  # [1, 1, H, 1], the calibrated factors per step
    nonnegative: bool

    @classmethod
    def from_model(cls, model: Any) -> NumpyStep:
        """The step of a built ``RNNForecaster``, its weights copied out as float32 arrays."""
        rnn = model.rnn
        layers = []
        for layer in rnn.rnn_layers:
            cell = layer.cell
            bias = np.asarray(cell.bias.numpy(), FLOAT)
            input_bias, recurrent_bias = (
                (bias[0], bias[1]) if rnn.cell_type == "gru" else (bias, None)
            )
            layers.append(
                LayerWeights(
                    np.asarray(cell.kernel.numpy(), FLOAT),
                    np.asarray(cell.recurrent_kernel.numpy(), FLOAT),
                    input_bias,
                    recurrent_bias,
                )
            )
        dense = model.head.dense
        memory = model.memory
        outputs = 1 + len(model.quantiles)
        # Keras' column h * (1 + Q) + j goes to j * H + h.
        order = np.arange(model.horizon * outputs).reshape(model.horizon, outputs).T.ravel()
        return cls(
            cell_type=rnn.cell_type,
            layers=tuple(layers),
            head_kernel=np.ascontiguousarray(np.asarray(dense.kernel.numpy(), FLOAT)[:, order]),
            head_bias=np.asarray(dense.bias.numpy(), FLOAT)[order],
            horizon=model.horizon,
            quantiles=tuple(model.quantiles),
            anchor=model.anchor,
            change_lags=tuple(model.change_lags),
            lags=tuple(model.lags),
            memory_length=0 if memory is None else memory.length,
            memory_slots=0 if memory is None else len(memory.state_size),
            interval_scale=None
            if model.interval_scale is None
            else np.asarray(model.interval_scale, FLOAT).reshape(1, 1, -1, 1),
            nonnegative=model.nonnegative,
        )

    @property
    def states_per_layer(self) -> int:
        return 2 if self.cell_type == "lstm" else 1

    def __call__(
        self,
        inputs: np.ndarray,
        observed: np.ndarray,
        sequence_length: np.ndarray,
        loc: np.ndarray,
        scale: np.ndarray,
        state: np.ndarray,
    ) -> dict[str, np.ndarray]:
        inputs = np.asarray(inputs, FLOAT)
        observed = np.asarray(observed, FLOAT)
        lengths = np.asarray(sequence_length, np.int64)
        loc = np.asarray(loc, FLOAT)[:, None]
        scale = np.asarray(scale, FLOAT)[:, None]
        state = np.asarray(state, FLOAT)
        batch, steps = inputs.shape[:2]
        all_valid = bool((lengths >= steps).all())  # a stream's calls: no padding to mask
        valid = None if all_valid else np.arange(steps)[None, :] < lengths[:, None]  # [B, T]
        # The network's input (inference.model_inputs): scaled value, features, observed.
        level = (inputs[..., 0] - loc) / scale
        network = np.concatenate([level[..., None], inputs[..., 1:], observed[..., None]], -1)
        rnn_count = len(state) - self.memory_slots
        new_state = np.empty_like(state)
        if self.memory_length:
            # RNNForecaster.call: padding is never remembered (LagMemory).
            value = level if all_valid else np.where(valid, level, FLOAT(0.0))
            seen_now = observed if all_valid else np.where(valid, observed, FLOAT(0.0))
            values, flags, new_state[rnn_count:] = self._memory(
                value, seen_now, state[rnn_count:], lengths, all_valid
            )
            if self.change_lags:
                network = self._change_inputs(network, value, values, flags, steps)
        # MaskedStackedRNN: padding zeroed before the first layer, outputs and state masked.
        mask = None if all_valid else valid
        hidden = network if all_valid else np.where(valid[..., None], network, FLOAT(0.0))
        k = self.states_per_layer
        for i, weights in enumerate(self.layers):
            hidden, new_state[i * k : (i + 1) * k] = run_layer(
                self.cell_type, weights, hidden, list(state[i * k : (i + 1) * k]), mask
            )
        point, quantiles = self._head(hidden)
        if self.anchor == "last":
            baseline = level[..., None]
        elif self.anchor == "seasonal":
            baseline = self._seasonal_naive(value, values, flags, steps)
        if self.anchor != "none":
            point = point + baseline
            quantiles = quantiles + baseline[..., None]
        if self.interval_scale is not None and self.quantiles:
            if 0.5 in self.quantiles:
                middle = self.quantiles.index(0.5)
                center = quantiles[..., middle : middle + 1]
            else:
                center = point[..., None]
            quantiles = center + self.interval_scale * (quantiles - center)
        # inference.step_function: back to original units, clipped, zero past each length.
        point = point * scale[..., None] + loc[..., None]
        quantiles = quantiles * scale[..., None, None] + loc[..., None, None]
        if self.nonnegative:
            point, quantiles = np.maximum(point, FLOAT(0.0)), np.maximum(quantiles, FLOAT(0.0))
        if not all_valid:
            point = np.where(valid[..., None], point, FLOAT(0.0))
            quantiles = np.where(valid[..., None, None], quantiles, FLOAT(0.0))
        return {
            "point": point.astype(FLOAT, copy=False),
            "quantiles": quantiles.astype(FLOAT, copy=False),
            "state": new_state,
        }

    def _head(self, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """QuantileHead: point ``[B,T,H]`` and non-crossing quantiles ``[B,T,H,Q]`` (the
        lowest quantile, then each next one the previous plus a softplus increment)."""
        batch, steps = hidden.shape[:2]
        horizon = self.horizon
        raw = hidden.reshape(batch * steps, -1) @ self.head_kernel + self.head_bias
        point = raw[:, :horizon].reshape(batch, steps, horizon)
        count = len(self.quantiles)
        levels = raw[:, horizon:].reshape(batch * steps, count, horizon)
        if count > 1:
            # Each level the previous plus its increment: a running sum over the levels
            # (accumulated in order, as the Keras head adds them).
            levels = np.concatenate([levels[:, :1], softplus(levels[:, 1:])], axis=1)
            np.add.accumulate(levels, axis=1, out=levels)
        quantiles = levels.transpose(0, 2, 1).reshape(batch, steps, horizon, count)
        return point, quantiles

    def _memory(self, value, observed, slots, lengths, all_valid):
        """LagMemory: the remembered past followed by this call's values and flags
        (``[B, length + T]``), and the memory after each row's last valid step as
        ``[slots, B, U]``."""
        length = self.memory_length
        count, batch, units = slots.shape
        packed = slots.transpose(1, 0, 2).reshape(batch, count * units)
        values = np.concatenate([packed[:, :length], value], axis=1)
        flags = np.concatenate([packed[:, length : 2 * length], observed], axis=1)
        kept = np.zeros((batch, count * units), FLOAT)
        if all_valid:  # every row as long: the last `length` positions
            steps = value.shape[1]
            kept[:, :length] = values[:, steps:]
            kept[:, length : 2 * length] = flags[:, steps:]
        else:
            index = lengths[:, None] + np.arange(length)[None, :]
            rows = np.arange(batch)[:, None]
            kept[:, :length] = values[rows, index]
            kept[:, length : 2 * length] = flags[rows, index]
        return values, flags, kept.reshape(batch, count, units).transpose(1, 0, 2)

    def _change_inputs(self, network, value, values, flags, steps):
        """Channel 0 replaced by ``x[t] - x[t-s]`` and ``observed[t-s]`` per change lag."""
        start = self.memory_length
        count = 2 * len(self.change_lags)
        out = np.empty((*network.shape[:2], count + network.shape[-1] - 1), FLOAT)
        for k, lag in enumerate(self.change_lags):
            past = values[:, start - lag : start - lag + steps]
            seen = flags[:, start - lag : start - lag + steps]
            out[..., 2 * k] = (value - past) * seen
            out[..., 2 * k + 1] = seen
        out[..., count:] = network[..., 1:]
        return out

    def _seasonal_naive(self, value, values, flags, steps):
        """``[B, T, H]``: the value ``k`` seasons before each target (the latest one at or
        before ``t``), or the value at ``t`` where that one was not observed."""
        season = self.lags[0]
        back = [h - season * math.ceil(h / season) for h in range(1, self.horizon + 1)]
        position = self.memory_length + np.arange(steps)[:, None] + np.asarray(back)[None, :]
        past, seen = values[:, position], flags[:, position]
        return np.where(seen > 0, past, value[..., None])
