"""Multi-layer RNN with exact ``sequence_length`` semantics and explicit state.

:class:`MaskedStackedRNN` reproduces TF1 ``tf.nn.dynamic_rnn(cell, ..., sequence_length=...)``
over a ``MultiRNNCell`` of independent cells, built from real Keras 3 recurrent layers
(``SimpleRNN`` / ``LSTM`` / ``GRU``) so that the cuDNN kernels stay eligible on GPU:

* for ``t >= sequence_length[b]`` the output of row ``b`` is exactly ``0.0`` (in every layer);
* the state of row ``b`` is carried through unchanged past its length, so the final state is
  the state after step ``sequence_length[b] - 1``, or the incoming state when the length is 0;
* state is explicit: ``call`` takes and returns a flat list of per-layer state tensors, so a
  long sequence can be processed in chunks with the state carried between calls.

Keras 3 behaviours this module works around (see ``MaskedStackedRNN.call``):

* with a mask, Keras recurrent layers repeat the last valid output past the mask instead of
  emitting zeros, so outputs are zeroed here explicitly;
* the cuDNN path (TensorFlow, GPU) requires right-padded masks and rejects rows whose mask is
  entirely ``False``; rows with ``sequence_length == 0`` therefore run one (discarded) step and
  their incoming state is selected back afterwards.

Without a GPU, the layers' weights are run by this module's own time loop instead
(``time_loop = "hoisted"``, see :func:`default_time_loop`): every layer's input projection is
one ``[B*T, F] x [F, G*U]`` matmul for the whole chunk, ahead of the recurrence, so each step
only multiplies the state by the recurrent kernel and applies the cell's gate arithmetic (the
same formulas as Keras' ``SimpleRNNCell`` / ``LSTMCell`` / ``GRUCell(reset_after=True)``).
The variables are still those of the Keras layers, so checkpoints and exports do not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from rnncast.model.config import CELL_TYPES

__all__ = ["CELL_TYPES", "HOISTED_MAX_LANES", "TIME_LOOPS", "MaskedStackedRNN", "default_time_loop"]

# "keras": each level is its Keras layer's own call (cuDNN on GPU); "hoisted": this module's
# loop over the same variables, with the input projection hoisted out of the time loop. (The
# loop is a tf.while_loop: unrolled in the graph it was slower at B=32, T=64 on 2 CPU cores
# and took XLA 200-430 s to compile; BENCHMARKS.md.)
TIME_LOOPS = ("keras", "hoisted")


# The most lanes per batch at which the hoisted loop is the faster plain (not XLA) training
# step on CPU, per cell: measured against Keras' own loop in the same rounds (BENCHMARKS.md,
# "Choosing the time loop by lane count"; 3 layers of 100 units, T = 64, 2 cores). GRU: 1.20x
# at 32 lanes, 1.17x at 64, 0.95x at 128, 0.91x at 256; LSTM: 1.01x at 32, 0.79x at 64, 0.89x
# at 128, 0.82x at 256. The simple RNN (not measured) follows GRU. Larger batches make the
# per-step matmuls large enough that hoisting saves little and the hand-written backward
# loop's bookkeeping costs more.
HOISTED_MAX_LANES = {"rnn": 64, "gru": 64, "lstm": 32}


def default_time_loop(cell_type: str | None = None, lanes: int | None = None) -> str:
    """``"keras"`` when TensorFlow sees a GPU (the cuDNN kernels are faster than any loop);
    on CPU ``"hoisted"`` (fewer and larger matmuls than Keras' per-step cell), unless
    ``lanes``, the batch's lanes per device in a plain training step, is more than
    ``HOISTED_MAX_LANES[cell_type]``. ``lanes=None``: not known, or not a plain training
    step (inference, an XLA step: the hoisted loop was the faster one measured there)."""
    if tf.config.list_physical_devices("GPU"):
        return "keras"
    if lanes is not None and cell_type is not None and lanes > HOISTED_MAX_LANES[cell_type]:
        return "keras"
    return "hoisted"


def _cell_forward(cell_type: str, x: Any, carry: list[Any], recurrent_kernel: Any, bias: Any):
    """One step of Keras' cell formulas, the input projection (and input bias) already in
    ``x``. Returns ``(h, new_carry, saved)``: ``saved`` is what :func:`_cell_backward` needs."""
    if cell_type == "rnn":
        h = tf.tanh(x + tf.matmul(carry[0], recurrent_kernel))
        return h, [h], h
    if cell_type == "lstm":
        gates = x + tf.matmul(carry[0], recurrent_kernel)
        z_i, z_f, z_c, z_o = tf.split(gates, 4, axis=-1)
        i, f, g, o = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_c), tf.sigmoid(z_o)
        c = f * carry[1] + i * g
        h = o * tf.tanh(c)
        return h, [h, c], tf.concat([i, f, g, o, c], axis=-1)
    # GRU, reset_after=True: the reset gate scales the recurrent projection (with its bias).
    h_tm1 = carry[0]
    inner = tf.matmul(h_tm1, recurrent_kernel) + bias
    x_z, x_r, x_h = tf.split(x, 3, axis=-1)
    r_z, r_r, r_h = tf.split(inner, 3, axis=-1)
    z = tf.sigmoid(x_z + r_z)
    r = tf.sigmoid(x_r + r_r)
    hh = tf.tanh(x_h + r * r_h)
    h = z * h_tm1 + (1 - z) * hh
    return h, [h], tf.concat([z, r, hh, r_h], axis=-1)


def _cell_backward(cell_type: str, saved: Any, carry: list[Any], grads: list[Any]):
    """The step's gradients from the values :func:`_cell_forward` saved, the incoming
    ``carry`` and the gradients of the new carry. Returns ``(d_x, d_inner, d_carry_direct)``:
    ``d_x`` and ``d_inner`` are the gradients of the step's input projection and of its
    recurrent projection ``carry[0] @ recurrent_kernel (+ bias)``; ``d_carry_direct`` the
    gradients of the incoming carry other than through that projection."""
    if cell_type == "rnn":
        d_pre = grads[0] * (1 - saved * saved)
        return d_pre, d_pre, [tf.zeros_like(grads[0])]
    if cell_type == "lstm":
        i, f, g, o, c = tf.split(saved, 5, axis=-1)
        tanh_c = tf.tanh(c)
        d_c = grads[1] + grads[0] * o * (1 - tanh_c * tanh_c)
        d_gates = tf.concat(
            [
                d_c * g * i * (1 - i),
                d_c * carry[1] * f * (1 - f),
                d_c * i * (1 - g * g),
                grads[0] * tanh_c * o * (1 - o),
            ],
            axis=-1,
        )
        return d_gates, d_gates, [tf.zeros_like(grads[0]), d_c * f]
    z, r, hh, r_h = tf.split(saved, 4, axis=-1)
    d_h = grads[0]
    d_hh = d_h * (1 - z) * (1 - hh * hh)
    d_z = d_h * (carry[0] - hh) * z * (1 - z)
    d_r = d_hh * r_h * r * (1 - r)
    d_x = tf.concat([d_z, d_r, d_hh], axis=-1)
    d_inner = tf.concat([d_z, d_r, d_hh * r], axis=-1)
    return d_x, d_inner, [d_h * z]


def _recurrence(
    cell_type: str,
    projected: Any,
    state: list[Any],
    recurrent_kernel: Any,
    bias: Any,
    valid: Any | None,
) -> tuple[Any, list[Any]]:
    """The time loop over the hoisted input projection ``projected`` ``[T, B, G*U]``.

    Differentiated by hand (backpropagation through time): the backward loop only multiplies
    the gate gradients by the transposed recurrent kernel, and the recurrent kernel's (and
    bias') gradient is one ``[U, T*B] x [T*B, G*U]`` matmul after it, instead of one small
    matmul and accumulation per step. ``valid``: ``[T, B, 1]`` bool, or ``None`` (all valid).
    Both loops are ``tf.while_loop`` s. Returns ``(outputs [T, B, U], new_state)``.
    """
    steps = tf.shape(projected)[0]
    dtype = projected.dtype
    if bias is None:
        bias = tf.zeros((tf.shape(recurrent_kernel)[-1],), dtype)

    def forward(x, ok, carry, recurrent_kernel, bias):
        h, new, saved = _cell_forward(cell_type, x, carry, recurrent_kernel, bias)
        if ok is not None:
            # Past a row's length: output 0.0, state carried through unchanged.
            h = tf.where(ok, h, tf.zeros_like(h))
            new = [tf.where(ok, n, c) for n, c in zip(new, carry, strict=True)]
        return h, new, saved

    def backward(d_out, ok, saved, carry, d_carry, recurrent_kernel):
        d_new = [d_carry[0] + d_out, *d_carry[1:]]
        if ok is not None:
            passed = [tf.where(ok, tf.zeros_like(d), d) for d in d_carry]
            d_new = [tf.where(ok, d, tf.zeros_like(d)) for d in d_new]
        d_x, d_inner, d_direct = _cell_backward(cell_type, saved, carry, d_new)
        d_prev = [d_direct[0] + tf.matmul(d_inner, recurrent_kernel, transpose_b=True)]
        d_prev += d_direct[1:]
        if ok is not None:
            d_prev = [d + p for d, p in zip(d_prev, passed, strict=True)]
        return d_x, d_inner, d_prev

    def weight_gradients(h_prev, d_inner):
        # The hoisted weight gradients: one matmul over all T*B rows.
        d_inner = tf.reshape(d_inner, (-1, tf.shape(d_inner)[-1]))
        h_prev = tf.reshape(h_prev, (tf.shape(d_inner)[0], -1))
        return tf.matmul(h_prev, d_inner, transpose_a=True), tf.reduce_sum(d_inner, axis=0)

    @tf.custom_gradient
    def looped(projected, recurrent_kernel, bias, *state):
        # Read again by the backward loop: kept after reading (eager mode clears them).
        kept = {"size": steps, "clear_after_read": False}
        xs = tf.TensorArray(dtype, size=steps).unstack(projected)
        masks = None if valid is None else tf.TensorArray(tf.bool, **kept).unstack(valid)

        def body(t, outputs, saved, carries, *carry):
            carry = list(carry)
            ok = None if masks is None else masks.read(t)
            h, new, keep = forward(xs.read(t), ok, carry, recurrent_kernel, bias)
            carries = [a.write(t, c) for a, c in zip(carries, carry, strict=True)]
            return (t + 1, outputs.write(t, h), saved.write(t, keep), carries, *new)

        arrays = [tf.TensorArray(dtype, **kept) for _ in state]
        start = (tf.constant(0), tf.TensorArray(dtype, size=steps), tf.TensorArray(dtype, **kept))
        result = tf.while_loop(
            lambda t, *_: t < steps, body, (*start, arrays, *state), maximum_iterations=steps
        )
        outputs, saved, carries, final = result[1].stack(), result[2], result[3], result[4:]

        def grad(d_outputs, *d_final):
            d_outs = tf.TensorArray(dtype, size=steps).unstack(d_outputs)

            def body(t, d_xs, d_inners, *d_carry):
                t = t - 1
                ok = None if masks is None else masks.read(t)
                carry = [a.read(t) for a in carries]
                d_x, d_inner, d_prev = backward(
                    d_outs.read(t), ok, saved.read(t), carry, list(d_carry), recurrent_kernel
                )
                return (t, d_xs.write(t, d_x), d_inners.write(t, d_inner), *d_prev)

            d_carry = [tf.zeros_like(s) if d is None else d for s, d in zip(final, d_final)]
            start = (steps, tf.TensorArray(dtype, size=steps), tf.TensorArray(dtype, size=steps))
            result = tf.while_loop(
                lambda t, *_: t > 0, body, (*start, *d_carry), maximum_iterations=steps
            )
            d_kernel, d_bias = weight_gradients(carries[0].stack(), result[2].stack())
            return (result[1].stack(), d_kernel, d_bias, *result[3:])

        return (outputs, *final), grad

    result = looped(projected, recurrent_kernel, bias, *state)
    return result[0], list(result[1:])


def _hoisted_layer(
    cell_type: str,
    layer: keras.layers.Layer,
    inputs: Any,
    state: list[Any],
    valid: Any | None,
) -> tuple[Any, list[Any]]:
    """One level run over ``inputs`` ``[B, T, F]`` with ``layer``'s cell variables.

    ``valid`` is ``[B, T]`` bool or ``None`` (every step valid). Past a row's length its
    output is ``0.0`` and its state is carried unchanged, so a length-0 row returns ``state``.
    Returns ``(outputs [B, T, U], new_state)``.
    """
    cell = layer.cell
    # Values read once per call: the loop's gradient is taken with respect to these reads.
    kernel = tf.convert_to_tensor(cell.kernel)
    recurrent_kernel = tf.convert_to_tensor(cell.recurrent_kernel)
    bias = tf.convert_to_tensor(cell.bias)
    if cell_type == "gru":  # reset_after=True: [input bias; recurrent bias]
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias, recurrent_bias = bias, None
    shape = tf.shape(inputs)
    batch, steps = shape[0], shape[1]
    # The hoisted projection: one matmul for all B*T rows (time-major for the loop).
    time_major = tf.transpose(inputs, (1, 0, 2))
    projected = tf.matmul(tf.reshape(time_major, (batch * steps, -1)), kernel) + input_bias
    projected = tf.reshape(projected, (steps, batch, -1))
    valid_tm = None if valid is None else tf.expand_dims(tf.transpose(valid), -1)
    outputs, new_state = _recurrence(
        cell_type, projected, state, recurrent_kernel, recurrent_bias, valid_tm
    )
    outputs = tf.reshape(tf.transpose(outputs, (1, 0, 2)), (batch, steps, cell.units))
    return outputs, new_state


def _make_recurrent_layer(cell_type: str, units: int, name: str) -> keras.layers.Layer:
    """One Keras 3 recurrent layer with cuDNN-eligible settings and no internal dropout."""
    common: dict[str, Any] = {
        "units": units,
        "activation": "tanh",
        "use_bias": True,
        "dropout": 0.0,
        "recurrent_dropout": 0.0,
        "return_sequences": True,
        "return_state": True,
        "unroll": False,
        "name": name,
    }
    if cell_type == "rnn":
        return keras.layers.SimpleRNN(**common)
    if cell_type == "lstm":
        return keras.layers.LSTM(recurrent_activation="sigmoid", **common)
    if cell_type == "gru":
        return keras.layers.GRU(recurrent_activation="sigmoid", reset_after=True, **common)
    raise ValueError(f"cell_type must be one of {sorted(CELL_TYPES)}, got {cell_type!r}")


def _dropout(layer: keras.layers.Dropout, x: Any, training: Any, lanes) -> Any:
    """``layer`` applied to ``x``; with ``lanes = (first, total)`` the mask is rows ``first ..
    first + B - 1`` of the mask drawn for ``total`` rows with the layer's next seed, i.e. of
    what one device draws for the whole batch. (Keras draws ``stateless_dropout`` over the
    input's own shape: replicas holding half the lanes would each draw a different mask.)"""
    if lanes is None or not training:
        return layer(x, training=training)
    first, total = lanes
    shape = ops.shape(x)
    whole = ops.ones((total, shape[1], shape[2]), dtype=x.dtype)
    # ones * scale * keep: the same values stateless_dropout multiplies x by.
    scaled = keras.random.dropout(whole, layer.rate, seed=layer.seed_generator)
    return x * ops.slice(scaled, (first, 0, 0), shape)


@keras.saving.register_keras_serializable(package="rnncast")
class MaskedStackedRNN(keras.layers.Layer):
    """Stack of ``num_layers`` recurrent layers with TF1 ``dynamic_rnn`` length semantics.

    Args:
        cell_type: ``"rnn"`` (``SimpleRNN``), ``"lstm"`` or ``"gru"`` (``reset_after=True``).
        num_layers: Number of stacked layers; each has its own weights.
        units: Hidden size of every layer.
        dropout: Dropout rate applied (only when ``training=True``) to the input of every
            layer and to the output of the last layer. Never applied to the recurrent state.
        **kwargs: Standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``[B, T, F]`` float tensor (``T >= 1``).
        initial_state: Flat list of state tensors, ``[B, units]`` each, ordered per layer as
            given by :meth:`state_names` (``[h]`` for rnn/gru, ``[h, c]`` for lstm). ``None``
            means zeros.
        sequence_length: ``[B]`` integer tensor with values in ``[0, T]``. ``None`` means
            every row has length ``T``.
        training: Enables dropout.
        lanes: ``(first, total)`` when these ``B`` rows are rows ``first .. first + B - 1`` of
            a batch of ``total`` rows split across replicas: each dropout mask is then the
            matching rows of the mask a single device draws for the whole batch (same seed),
            so N replicas train exactly as one device. ``None``: the rows are the whole batch.

    Returns:
        ``(outputs, final_state)``: ``outputs`` is ``[B, T, units]`` (exactly zero for
        ``t >= sequence_length``) and ``final_state`` a list with the same structure as
        ``initial_state``.
    """

    def __init__(
        self,
        cell_type: str = "lstm",
        num_layers: int = 1,
        units: int = 32,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if cell_type not in CELL_TYPES:
            raise ValueError(f"cell_type must be one of {sorted(CELL_TYPES)}, got {cell_type!r}")
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if int(units) < 1:
            raise ValueError(f"units must be >= 1, got {units}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.cell_type = cell_type
        # How batches reach the kernels, not what is computed (not part of the config):
        # "branch": a graph branch sends batches without padding to the unmasked kernels
        # (cuDNN on GPU); "masked": every batch takes the masked path (same values); "full":
        # the unmasked kernels only, for a caller that knows the batch has no padding (its
        # padding would be computed on). XLA cannot compile the branch around Keras' loops,
        # but compiles either path alone, so an XLA step picks the path in Python per batch.
        self.padding_path = "branch"
        # Which loop runs the layers' weights (also not part of the config: same values up to
        # float rounding): "keras" or "hoisted", see TIME_LOOPS and default_time_loop().
        self.time_loop = default_time_loop()
        self.num_layers = int(num_layers)
        self.units = int(units)
        self.dropout = float(dropout)
        # One independent layer object per level: weights are never shared between levels.
        self.rnn_layers = [
            _make_recurrent_layer(cell_type, self.units, name=f"{cell_type}_{i}")
            for i in range(self.num_layers)
        ]
        if self.dropout > 0.0:
            self.input_dropouts = [
                keras.layers.Dropout(self.dropout, name=f"input_dropout_{i}")
                for i in range(self.num_layers)
            ]
            self.output_dropout = keras.layers.Dropout(self.dropout, name="output_dropout")
        else:
            self.input_dropouts = []
            self.output_dropout = None

    # ------------------------------------------------------------------ state helpers
    @property
    def states_per_layer(self) -> int:
        """Number of state tensors per layer (2 for LSTM, else 1)."""
        return len(CELL_TYPES[self.cell_type])

    @property
    def state_size(self) -> list[int]:
        """Size of every flat state tensor, in :meth:`state_names` order."""
        return [self.units] * (self.num_layers * self.states_per_layer)

    def state_names(self) -> list[str]:
        """Names of the flat state tensors, e.g. ``["layer0_h", "layer0_c", ...]``."""
        return [
            f"layer{i}_{part}"
            for i in range(self.num_layers)
            for part in CELL_TYPES[self.cell_type]
        ]

    def zero_state(self, batch_size: int | Any) -> list[Any]:
        """All-zero initial state with the structure expected by :meth:`call`."""
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in self.state_size]

    # ------------------------------------------------------------------ keras API
    def build(self, input_shape: Sequence[int | None]) -> None:
        """Builds every level of the stack from the ``[B, T, F]`` input shape."""
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"inputs must be [batch, time, features], got shape {input_shape}")
        level_shape = input_shape
        for layer in self.rnn_layers:
            if not layer.built:
                layer.build(level_shape)
            level_shape = (input_shape[0], input_shape[1], self.units)
        for dropout_layer in self.input_dropouts:
            dropout_layer.build(input_shape)
        if self.output_dropout is not None:
            self.output_dropout.build(level_shape)
        self.built = True

    def call(
        self,
        inputs: Any,
        initial_state: Sequence[Any] | None = None,
        sequence_length: Any | None = None,
        training: bool | None = None,
        lanes: tuple[Any, Any] | None = None,
    ) -> tuple[Any, list[Any]]:
        """Runs the stack; see the class docstring for argument semantics."""
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        batch_size = ops.shape(inputs)[0]
        time_steps = ops.shape(inputs)[1]
        if initial_state is None:
            initial_state = self.zero_state(batch_size)
        initial_state = [ops.convert_to_tensor(s, dtype=self.compute_dtype) for s in initial_state]
        if len(initial_state) != len(self.state_size):
            raise ValueError(
                f"initial_state must hold {len(self.state_size)} tensors "
                f"({self.state_names()}), got {len(initial_state)}"
            )

        steps = ops.expand_dims(ops.arange(time_steps, dtype="int32"), 0)  # [1, T]
        if sequence_length is None:
            sequence_length = ops.full((batch_size,), time_steps, dtype="int32")
        lengths = ops.expand_dims(ops.cast(ops.reshape(sequence_length, (-1,)), "int32"), 1)
        valid = ops.less(steps, lengths)  # [B, T], True on the valid (left) part of each row
        # Mask handed to the Keras layers: right padded and never all-False (cuDNN rejects
        # all-False rows), i.e. rows of length 0 run one step whose results are discarded.
        layer_mask = ops.less(steps, ops.maximum(lengths, 1))
        has_steps = ops.greater(lengths, 0)  # [B, 1]
        valid_3d = ops.expand_dims(valid, -1)
        all_full = ops.all(ops.greater_equal(lengths, time_steps))

        if self.time_loop not in TIME_LOOPS:
            raise ValueError(f"time_loop must be one of {TIME_LOOPS}, got {self.time_loop!r}")
        hoisted = self.time_loop == "hoisted"

        def run_stack(masked: bool) -> tuple[Any, list[Any]]:
            # Padding content is irrelevant; zero it so a length-0 row's discarded step (and
            # any NaN/inf garbage in the padding) cannot leak into anything.
            x = ops.where(valid_3d, inputs, ops.zeros_like(inputs)) if masked else inputs
            k = self.states_per_layer
            final_state: list[Any] = []
            for i, layer in enumerate(self.rnn_layers):
                if self.input_dropouts:
                    x = _dropout(self.input_dropouts[i], x, training, lanes)
                level_state = initial_state[i * k : (i + 1) * k]
                if hoisted:
                    # Zero outputs and carried state past each length inside the loop itself.
                    x, new_state = _hoisted_layer(
                        self.cell_type, layer, x, level_state, valid if masked else None
                    )
                    final_state.extend(new_state)
                    continue
                mask = layer_mask if masked else None
                result = layer(x, initial_state=level_state, mask=mask, training=training)
                x, new_state = result[0], list(result[1:])
                if masked:
                    # Keras repeats the last valid output past the mask (cuDNN emits zeros):
                    # zero it, as dynamic_rnn does, so the next level and the caller see zeros.
                    x = ops.where(valid_3d, x, ops.zeros_like(x))
                    # Keras masking carries state through masked steps; rows of length 0 had
                    # one forced step, so select their incoming state back.
                    new_state = [
                        ops.where(has_steps, new, old)
                        for new, old in zip(new_state, level_state, strict=True)
                    ]
                final_state.extend(new_state)
            if self.output_dropout is not None:
                x = _dropout(self.output_dropout, x, training, lanes)
                if masked:
                    x = ops.where(valid_3d, x, ops.zeros_like(x))
            return x, final_state

        if self.padding_path != "branch":
            return run_stack(self.padding_path == "masked")
        # Batches without padding (most of a stream) skip every mask and select: same values,
        # the plain (and on GPU, cuDNN) kernels.
        return ops.cond(all_full, lambda: run_stack(False), lambda: run_stack(True))

    def compute_output_shape(
        self,
        input_shape: Sequence[int | None],
    ) -> tuple[tuple[int | None, ...], list[tuple[int | None, ...]]]:
        """Output shapes: ``([B, T, units], [[B, units], ...])``."""
        batch, time_steps = input_shape[0], input_shape[1]
        return (batch, time_steps, self.units), [(batch, size) for size in self.state_size]

    def get_config(self) -> dict[str, Any]:
        """Serializable constructor arguments."""
        config = super().get_config()
        config.update(
            {
                "cell_type": self.cell_type,
                "num_layers": self.num_layers,
                "units": self.units,
                "dropout": self.dropout,
            }
        )
        return config
