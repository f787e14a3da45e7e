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


def _sigmoid_in_place(x: np.ndarray) -> np.ndarray:
    """:func:`sigmoid` of a fresh array, computed in it: the same operations in the same
    order, so the same bits, without allocating four temporaries (a stream's call is a few
    dozen such small operations, each paying for its allocation)."""
    x *= FLOAT(0.5)
    np.tanh(x, out=x)
    x *= FLOAT(0.5)
    x += FLOAT(0.5)
    return x


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
        inner += projected
        h = np.tanh(inner, out=inner)
        return h, [h]
    # (Sums and products on fresh arrays in place: IEEE addition and multiplication commute,
    # so ``a + b`` computed as ``b += a`` gives the same bits with one allocation fewer.)
    if cell_type == "lstm":
        gates = inner
        gates += projected
        # Keras' gate order: input, forget, cell, output. (Slices, not np.split: a small
        # call's cost is its number of numpy calls.)
        _sigmoid_in_place(gates[:, : 2 * units])  # the input and forget gates together
        output = _sigmoid_in_place(gates[:, 3 * units :])
        i, f = gates[:, :units], gates[:, units : 2 * units]
        c = f * carry[1]
        i *= np.tanh(gates[:, 2 * units : 3 * units])
        c += i
        h = np.tanh(c)
        h *= output
        return h, [h, c]
    inner += weights.recurrent_bias
    # Update and reset gates together: one sigmoid over both.
    zr = _sigmoid_in_place(projected[:, : 2 * units] + inner[:, : 2 * units])
    hh = zr[:, units:] * inner[:, 2 * units :]
    hh += projected[:, 2 * units :]
    np.tanh(hh, out=hh)
    h = carry[0] - hh
    h *= zr[:, :units]
    h += hh
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
    projected = inputs.reshape(batch * steps, -1) @ weights.kernel
    projected += weights.input_bias
    projected = projected.reshape(batch, steps, -1)
    carry = list(state)
    if valid is None and steps == 1:  # a stream's call: one step, nothing to mask
        h, carry = cell_step(cell_type, projected[:, 0], carry, weights)
        return h[:, None], carry
    outputs = np.zeros((batch, steps, units), FLOAT)
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
    interval_scale: np.ndarray | None  # [1, 1, 1, H], the calibrated factors per step
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
            else np.asarray(model.interval_scale, FLOAT).reshape(1, 1, 1, -1),
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
        rnn_count = len(state) - self.memory_slots
        new_state = np.empty_like(state)
        if self.memory_length:
            # RNNForecaster.call: padding is never remembered (LagMemory).
            value = level if all_valid else np.where(valid, level, FLOAT(0.0))
            seen_now = observed if all_valid else np.where(valid, observed, FLOAT(0.0))
            values, flags, new_state[rnn_count:] = self._memory(
                value, seen_now, state[rnn_count:], lengths, all_valid
            )
        if self.memory_length and self.change_lags:
            network = self._change_inputs(inputs, observed, value, values, flags, steps)
        else:
            network = np.concatenate([level[..., None], inputs[..., 1:], observed[..., None]], -1)
        # MaskedStackedRNN: padding zeroed before the first layer, outputs and state masked.
        mask = None if all_valid else valid
        hidden = network if all_valid else np.where(valid[..., None], network, FLOAT(0.0))
        k = self.states_per_layer
        for i, weights in enumerate(self.layers):
            hidden, new_state[i * k : (i + 1) * k] = run_layer(
                self.cell_type, weights, hidden, list(state[i * k : (i + 1) * k]), mask
            )
        # Every output from here on is a row of one [B, T, 1 + Q, H] array (the head's layout:
        # point, then each quantile level), each step below one operation on all of them: the
        # same arithmetic per element as on separate point and quantile arrays.
        horizon, count = self.horizon, len(self.quantiles)
        out = self._head(hidden).reshape(batch, steps, 1 + count, horizon)
        point, levels = out[:, :, 0], out[:, :, 1:]  # views
        if self.anchor == "last":
            out += level[..., None, None]
        elif self.anchor == "seasonal":
            out += self._seasonal_naive(value, values, flags, steps)[:, :, None]
        if self.interval_scale is not None and count:
            if 0.5 in self.quantiles:
                middle = self.quantiles.index(0.5)
                center = levels[:, :, middle : middle + 1].copy()
            else:
                center = point[:, :, None]
            # center + scale * (quantile - center), per horizon step
            levels -= center
            levels *= self.interval_scale
            levels += center
        # inference.step_function: back to original units, clipped, zero past each length.
        out *= scale[..., None, None]
        out += loc[..., None, None]
        if self.nonnegative:
            np.maximum(out, FLOAT(0.0), out=out)
        if not all_valid:
            out = np.where(valid[..., None, None], out, FLOAT(0.0))
        return {
            "point": out[:, :, 0],
            "quantiles": out[:, :, 1:].transpose(0, 1, 3, 2),
            "state": new_state,
        }

    def _head(self, hidden: np.ndarray) -> np.ndarray:
        """QuantileHead, as ``[B*T, (1 + Q) * H]``: the point, then the non-crossing quantile
        levels (the lowest, then each next one the previous plus a softplus increment), each
        ``H`` columns."""
        batch, steps = hidden.shape[:2]
        horizon = self.horizon
        out = hidden.reshape(batch * steps, -1) @ self.head_kernel
        out += self.head_bias
        count = len(self.quantiles)
        if count > 1:
            # Each level the previous plus its increment: a running sum over the levels
            # (accumulated in order, as the Keras head adds them).
            levels = out.reshape(batch * steps, 1 + count, horizon)[:, 1:]  # a view
            levels[:, 1:] = softplus(levels[:, 1:])
            np.add.accumulate(levels, axis=1, out=levels)
        return out

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

    def _change_inputs(self, inputs, observed, value, values, flags, steps):
        """The network's input with the scaled value replaced by ``x[t] - x[t-s]`` and
        ``observed[t-s]`` per change lag (then the other features and the observed flag):
        every lag gathered at once."""
        count = 2 * len(self.change_lags)
        features = inputs.shape[-1] - 1
        out = np.empty((*inputs.shape[:2], count + features + 1), FLOAT)
        index = self.memory_length - np.asarray(self.change_lags)[:, None] + np.arange(steps)
        seen = flags[:, index]  # [B, lags, T]
        past = value[:, None] - values[:, index]
        past *= seen
        out[..., :count:2] = past.transpose(0, 2, 1)
        out[..., 1:count:2] = seen.transpose(0, 2, 1)
        out[..., count:-1] = inputs[..., 1:]
        out[..., -1] = observed
        return out

    def _seasonal_naive(self, value, values, flags, steps):
        """``[B, T, H]``: the value ``k`` seasons before each target (the latest one at or
        before ``t``), or the value at ``t`` where that one was not observed."""
        season = self.lags[0]
        back = [h - season * math.ceil(h / season) for h in range(1, self.horizon + 1)]
        position = self.memory_length + np.arange(steps)[:, None] + np.asarray(back)[None, :]
        past, seen = values[:, position], flags[:, position]
        return np.where(seen > 0, past, value[..., None])
