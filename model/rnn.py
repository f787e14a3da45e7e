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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from rnncast.model.config import CELL_TYPES

__all__ = ["CELL_TYPES", "MaskedStackedRNN"]


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
