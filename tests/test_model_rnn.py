"""Tests for rnncast.model.rnn.MaskedStackedRNN against textbook NumPy RNN/LSTM/GRU references."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnncast.model.rnn import MaskedStackedRNN

CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
ATOL = 1e-5
HYPO = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------- NumPy reference
# Written from the textbook equations. Keras weight layout (keras/src/layers/rnn/*.py and the
# Keras docs): kernel [F, G*U], recurrent_kernel [U, G*U], gates concatenated along the last
# axis in the order LSTM (i, f, c, o) and GRU (z, r, h); GRU(reset_after=True) bias is
# [2, 3U] = [input bias; recurrent bias].


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def np_rnn_step(x, state, w):
    (h,) = state
    h_new = np.tanh(x @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"])
    return h_new, [h_new]


def np_lstm_step(x, state, w):
    h, c = state
    w_i, w_f, w_c, w_o = np.split(w["kernel"], 4, axis=-1)
    u_i, u_f, u_c, u_o = np.split(w["recurrent_kernel"], 4, axis=-1)
    b_i, b_f, b_c, b_o = np.split(w["bias"], 4, axis=-1)
    i = _sigmoid(x @ w_i + h @ u_i + b_i)
    f = _sigmoid(x @ w_f + h @ u_f + b_f)
    c_tilde = np.tanh(x @ w_c + h @ u_c + b_c)
    o = _sigmoid(x @ w_o + h @ u_o + b_o)
    c_new = f * c + i * c_tilde
    h_new = o * np.tanh(c_new)
    return h_new, [h_new, c_new]


def np_gru_step(x, state, w):
    (h,) = state
    w_z, w_r, w_h = np.split(w["kernel"], 3, axis=-1)
    u_z, u_r, u_h = np.split(w["recurrent_kernel"], 3, axis=-1)
    bx_z, bx_r, bx_h = np.split(w["bias"][0], 3, axis=-1)
    bh_z, bh_r, bh_h = np.split(w["bias"][1], 3, axis=-1)
    z = _sigmoid(x @ w_z + bx_z + h @ u_z + bh_z)
    r = _sigmoid(x @ w_r + bx_r + h @ u_r + bh_r)
    h_tilde = np.tanh(x @ w_h + bx_h + r * (h @ u_h + bh_h))
    h_new = z * h + (1.0 - z) * h_tilde
    return h_new, [h_new]


NP_STEPS = {"rnn": np_rnn_step, "lstm": np_lstm_step, "gru": np_gru_step}
N_STATES = {"rnn": 1, "lstm": 2, "gru": 1}


def np_layer(cell_type, w, x, state, lengths):
    """One layer, TF1 dynamic_rnn semantics: zero output and frozen state past the length."""
    step = NP_STEPS[cell_type]
    batch, time_steps, _ = x.shape
    units = w["recurrent_kernel"].shape[0]
    outputs = np.zeros((batch, time_steps, units))
    final = [np.array(s, dtype=np.float64) for s in state]
    for b in range(batch):
        s = [part[b] for part in final]
        for t in range(lengths[b]):
            outputs[b, t], s = step(x[b, t].astype(np.float64), s, w)
        for part, value in zip(final, s, strict=False):
            part[b] = value
    return outputs, final


def np_stacked(cell_type, weights, x, state, lengths, layer_inputs=None):
    """Stacked reference; ``layer_inputs[i]`` overrides the input of level i (dropout tests)."""
    k = N_STATES[cell_type]
    out = np.asarray(x, dtype=np.float64)
    final = []
    for i, w in enumerate(weights):
        inp = out if layer_inputs is None else np.asarray(layer_inputs[i], dtype=np.float64)
        out, fin = np_layer(cell_type, w, inp, state[i * k : (i + 1) * k], lengths)
        final.extend(fin)
    return out, final


# --------------------------------------------------------------------------- helpers


def layer_weights(layer: MaskedStackedRNN) -> list[dict[str, np.ndarray]]:
    """Per level {kernel, recurrent_kernel, bias}, looked up by variable name."""
    result = []
    for sub in layer.rnn_layers:
        named = {v.name: np.asarray(v.numpy(), dtype=np.float64) for v in sub.weights}
        assert set(named) == {"kernel", "recurrent_kernel", "bias"}
        result.append(named)
    return result


def make_layer(cell_type, num_layers, units, features, seed, dropout=0.0, scale=0.6):
    layer = MaskedStackedRNN(cell_type, num_layers=num_layers, units=units, dropout=dropout)
    layer.build((None, None, features))
    rng = np.random.default_rng(seed)
    for sub in layer.rnn_layers:
        sub.set_weights([rng.normal(scale=scale, size=w.shape) for w in sub.get_weights()])
    return layer


def copy_rnn_weights(src: MaskedStackedRNN, dst: MaskedStackedRNN) -> None:
    for a, b in zip(src.rnn_layers, dst.rnn_layers, strict=False):
        b.set_weights(a.get_weights())


def random_state(layer, batch, rng, scale=0.8):
    return [rng.normal(scale=scale, size=(batch, n)).astype(np.float32) for n in layer.state_size]


def run(layer, x, state, lengths, training=False):
    out, fin = layer(
        tf.constant(x, tf.float32),
        [tf.constant(s) for s in state],
        tf.constant(lengths, tf.int32),
        training=training,
    )
    return out.numpy(), [s.numpy() for s in fin]


def assert_zero_past_length(outputs, lengths):
    for b, n in enumerate(lengths):
        tail = outputs[b, n:]
        assert np.all(tail == 0.0), f"row {b}: non-zero output past length {n}: {tail}"


def assert_states_close(actual, expected, atol=ATOL):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=False):
        np.testing.assert_allclose(a, e, rtol=0, atol=atol)


@dataclass
class Case:
    cell_type: str
    num_layers: int
    batch: int
    time_steps: int
    features: int
    units: int
    lengths: list[int]
    seed: int


@st.composite
def cases(draw, cells=CELLS, max_layers=3, max_time=5, time_steps=None):
    t = time_steps if time_steps is not None else draw(st.integers(1, max_time))
    batch = draw(st.integers(1, 3))
    return Case(
        cell_type=draw(st.sampled_from(cells)),
        num_layers=draw(st.integers(1, max_layers)),
        batch=batch,
        time_steps=t,
        features=draw(st.integers(1, 3)),
        units=draw(st.integers(1, 4)),
        lengths=draw(st.lists(st.integers(0, t), min_size=batch, max_size=batch)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


# --------------------------------------------------------------------------- numerics


@HYPO
@given(case=cases(max_layers=1, time_steps=1))
def test_one_step_matches_numpy_reference(case: Case) -> None:
    rng = np.random.default_rng(case.seed)
    layer = make_layer(case.cell_type, 1, case.units, case.features, case.seed)
    x = rng.normal(size=(case.batch, 1, case.features)).astype(np.float32)
    state = random_state(layer, case.batch, rng)
    lengths = [1] * case.batch
    out, fin = run(layer, x, state, lengths)
    ref_out, ref_fin = np_stacked(case.cell_type, layer_weights(layer), x, state, lengths)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=ATOL)
    assert_states_close(fin, ref_fin)
    # The step did something: the new state is not the incoming state.
    assert not np.allclose(fin[0], state[0], atol=1e-3)


@HYPO
@given(case=cases())
def test_sequence_with_lengths_matches_numpy_reference(case: Case) -> None:
    rng = np.random.default_rng(case.seed)
    layer = make_layer(case.cell_type, case.num_layers, case.units, case.features, case.seed)
    x = rng.normal(size=(case.batch, case.time_steps, case.features)).astype(np.float32)
    for b, n in enumerate(case.lengths):  # padding content must be irrelevant
        x[b, n:] = rng.normal(scale=1e4, size=x[b, n:].shape)
    state = random_state(layer, case.batch, rng)
    out, fin = run(layer, x, state, case.lengths)
    ref_out, ref_fin = np_stacked(case.cell_type, layer_weights(layer), x, state, case.lengths)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=ATOL)
    assert_states_close(fin, ref_fin)
    assert_zero_past_length(out, case.lengths)
    for b, n in enumerate(case.lengths):
        if n == 0:
            for s_out, s_in in zip(fin, state, strict=False):
                np.testing.assert_array_equal(s_out[b], s_in[b])


@pytest.mark.parametrize("cell_type", CELLS)
def test_reference_weight_layout_is_not_symmetric(cell_type: str) -> None:
    """Guards the reference itself: a gate-order mix-up in the slicing must be detectable."""
    rng = np.random.default_rng(0)
    layer = make_layer(cell_type, 1, 3, 2, seed=1)
    x = rng.normal(size=(2, 3, 2)).astype(np.float32)
    state = random_state(layer, 2, rng)
    weights = layer_weights(layer)
    swapped = [dict(w) for w in weights]
    g = GATES[cell_type]
    if g > 1:  # swap the first two gates of the kernel; the reference result must change
        k = swapped[0]["kernel"]
        u = k.shape[1] // g
        swapped[0]["kernel"] = np.concatenate([k[:, u : 2 * u], k[:, :u], k[:, 2 * u :]], 1)
    else:
        swapped[0]["kernel"] = swapped[0]["kernel"] * 0.5
    out, _ = run(layer, x, state, [3, 3])
    good, _ = np_stacked(cell_type, weights, x, state, [3, 3])
    bad, _ = np_stacked(cell_type, swapped, x, state, [3, 3])
    np.testing.assert_allclose(out, good, rtol=0, atol=ATOL)
    assert np.max(np.abs(out - bad)) > 1e-3


# --------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("cell_type", CELLS)
def test_chunked_equals_unchunked(cell_type: str, num_layers: int) -> None:
    rng = np.random.default_rng(7 + num_layers)
    chunk, n_chunks, batch, features, units = 3, 3, 4, 2, 3
    total = chunk * n_chunks
    layer = make_layer(cell_type, num_layers, units, features, seed=num_layers)
    x = rng.normal(size=(batch, total, features)).astype(np.float32)
    state = random_state(layer, batch, rng)
    lengths = np.array([total, total, 5, 0])  # full, full, ends inside chunk 2, empty

    full_out, full_state = run(layer, x, state, lengths)

    carried = state
    pieces = []
    for k in range(n_chunks):
        chunk_len = np.clip(lengths - k * chunk, 0, chunk)
        out, carried = run(layer, x[:, k * chunk : (k + 1) * chunk], carried, chunk_len)
        pieces.append(out)
    chunked_out = np.concatenate(pieces, axis=1)

    np.testing.assert_allclose(chunked_out, full_out, rtol=0, atol=ATOL)
    assert_states_close(carried, full_state)
    assert_zero_past_length(full_out, lengths)
    # Full-length rows really evolved; the empty row kept its incoming state bit for bit.
    assert not np.allclose(full_state[0][:2], state[0][:2], atol=1e-3)
    for s_out, s_in in zip(full_state, state, strict=False):
        np.testing.assert_array_equal(s_out[3], s_in[3])
    ref_out, ref_state = np_stacked(cell_type, layer_weights(layer), x, state, lengths)
    np.testing.assert_allclose(full_out, ref_out, rtol=0, atol=ATOL)
    assert_states_close(full_state, ref_state)


# --------------------------------------------------------------------------- padding / lanes


@pytest.mark.parametrize("cell_type", CELLS)
def test_padded_equals_unpadded(cell_type: str) -> None:
    rng = np.random.default_rng(3)
    time_steps, features, units = 5, 2, 3
    lengths = [5, 3, 1, 0]
    layer = make_layer(cell_type, 2, units, features, seed=11)
    x = rng.normal(size=(len(lengths), time_steps, features)).astype(np.float32)
    for b, n in enumerate(lengths):
        x[b, n:] = np.nan  # padding is never read
    state = random_state(layer, len(lengths), rng)

    out, fin = run(layer, x, state, lengths)
    assert np.all(np.isfinite(out)) and all(np.all(np.isfinite(s)) for s in fin)
    assert_zero_past_length(out, lengths)

    for b, n in enumerate(lengths):
        row_state = [s[b : b + 1] for s in state]
        if n == 0:
            np.testing.assert_array_equal(out[b], 0.0)
            for s_out, s_in in zip(fin, row_state, strict=False):
                np.testing.assert_array_equal(s_out[b], s_in[0])
            continue
        alone_out, alone_state = run(layer, x[b : b + 1, :n], row_state, [n])
        np.testing.assert_allclose(out[b, :n], alone_out[0], rtol=0, atol=ATOL)
        assert_states_close([s[b : b + 1] for s in fin], alone_state)
        # The length-n state differs from the state one step later (padding really frozen it).
        if n < time_steps:
            longer = x[b : b + 1, : n + 1].copy()
            longer[0, n] = 1.0
            _, later_state = run(layer, longer, row_state, [n + 1])
            assert not np.allclose(later_state[0], alone_state[0], atol=1e-4)


@pytest.mark.parametrize("cell_type", CELLS)
def test_sequence_length_none_means_full_length(cell_type: str) -> None:
    rng = np.random.default_rng(5)
    layer = make_layer(cell_type, 2, 3, 2, seed=5)
    x = rng.normal(size=(2, 4, 2)).astype(np.float32)
    state = random_state(layer, 2, rng)
    out_full, fin_full = run(layer, x, state, [4, 4])
    out_none, fin_none = layer(tf.constant(x), [tf.constant(s) for s in state], None)
    np.testing.assert_allclose(out_none.numpy(), out_full, rtol=0, atol=1e-6)
    assert_states_close([s.numpy() for s in fin_none], fin_full, atol=1e-6)
    out_zero, _ = layer(tf.constant(x), None, tf.constant([4, 4]))
    assert not np.allclose(out_zero.numpy(), out_full, atol=1e-4)  # None state == zeros


@pytest.mark.parametrize("cell_type", CELLS)
def test_per_lane_reset_changes_only_that_lane(cell_type: str) -> None:
    rng = np.random.default_rng(9)
    batch, time_steps = 3, 4
    layer = make_layer(cell_type, 2, 3, 2, seed=9)
    x = rng.normal(size=(batch, time_steps, 2)).astype(np.float32)
    state = random_state(layer, batch, rng, scale=1.5)
    lengths = [4, 4, 2]
    reset = tf.constant([False, True, False])
    reset_state = [
        tf.where(reset[:, None], tf.zeros_like(s), s).numpy() for s in map(tf.constant, state)
    ]

    out, fin = run(layer, x, state, lengths)
    out_r, fin_r = run(layer, x, reset_state, lengths)

    keep = [0, 2]
    np.testing.assert_allclose(out_r[keep], out[keep], rtol=0, atol=1e-6)
    assert_states_close([s[keep] for s in fin_r], [s[keep] for s in fin], atol=1e-6)
    assert np.max(np.abs(out_r[1] - out[1])) > 1e-3
    # The reset lane now behaves exactly like a fresh sequence from the zero state.
    fresh_out, fresh_state = run(layer, x[1:2], layer.zero_state(1), [4])
    np.testing.assert_allclose(out_r[1:2], fresh_out, rtol=0, atol=ATOL)
    assert_states_close([s[1:2] for s in fin_r], fresh_state)


# --------------------------------------------------------------------------- internals


def _record_sublayer_calls(layer: MaskedStackedRNN) -> list[dict]:
    """Wraps each level's ``call`` (and each Dropout's) to record what it receives."""
    records: list[dict] = []
    for level, sub in enumerate(layer.rnn_layers):

        def rnn_call(
            sequences, initial_state=None, mask=None, training=False, *, _o=sub.call, _level=level
        ):
            record = {"kind": "rnn", "level": _level, "inputs": sequences.numpy()}
            records.append(record | {"mask": mask.numpy(), "training": training})
            return _o(sequences, initial_state=initial_state, mask=mask, training=training)

        sub.call = rnn_call
    drops = [(f"in{i}", d) for i, d in enumerate(layer.input_dropouts)]
    if layer.output_dropout is not None:
        drops.append(("out", layer.output_dropout))
    for tag, drop in drops:

        def drop_call(inputs, training=False, *, _o=drop.call, _tag=tag):
            result = _o(inputs, training=training)
            record = {"kind": "dropout", "tag": _tag, "inputs": inputs.numpy()}
            records.append(record | {"outputs": result.numpy()})
            return result

        drop.call = drop_call
    return records


@pytest.mark.parametrize("cell_type", CELLS)
def test_every_level_sees_zeros_past_length_and_a_cudnn_friendly_mask(cell_type: str) -> None:
    rng = np.random.default_rng(12)
    lengths = [4, 2, 0]
    layer = make_layer(cell_type, 3, 3, 2, seed=12)
    x = rng.normal(size=(3, 4, 2)).astype(np.float32)
    state = random_state(layer, 3, rng)
    layer.time_loop = "keras"  # the Keras layers' own calls (the GPU/cuDNN path) are checked
    records = _record_sublayer_calls(layer)
    run(layer, x, state, lengths)
    rnn_records = [r for r in records if r["kind"] == "rnn"]
    assert [r["level"] for r in rnn_records] == [0, 1, 2]
    for r in rnn_records:
        # Level inputs (= previous level outputs for level > 0) are exactly zero past length.
        assert_zero_past_length(r["inputs"], lengths)
        mask = r["mask"]
        # Right padded and never all-False: eligible for the cuDNN kernel on GPU.
        counts = mask.sum(axis=1)
        assert np.all(counts >= 1)
        np.testing.assert_array_equal(mask, np.arange(4)[None, :] < counts[:, None])
        np.testing.assert_array_equal(counts, np.maximum(lengths, 1))
    assert np.any(rnn_records[1]["inputs"][0] != 0.0)


@pytest.mark.parametrize("cell_type", CELLS)
def test_dropout_off_at_inference(cell_type: str) -> None:
    rng = np.random.default_rng(21)
    lengths = [4, 3]
    layer = make_layer(cell_type, 2, 4, 3, seed=21, dropout=0.5)
    plain = make_layer(cell_type, 2, 4, 3, seed=99, dropout=0.0)
    copy_rnn_weights(layer, plain)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    state = random_state(layer, 2, rng)

    out_a, fin_a = run(layer, x, state, lengths, training=False)
    out_b, _ = run(layer, x, state, lengths, training=False)
    out_p, fin_p = run(plain, x, state, lengths)
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_allclose(out_a, out_p, rtol=0, atol=1e-6)
    assert_states_close(fin_a, fin_p, atol=1e-6)

    keras.utils.set_random_seed(1234)
    out_t, fin_t = run(layer, x, state, lengths, training=True)
    assert np.max(np.abs(out_t - out_a)) > 1e-3
    assert not np.allclose(fin_t[0], fin_a[0], atol=1e-4)
    assert_zero_past_length(out_t, lengths)
    for sub in layer.rnn_layers:  # dropout is ours, outside the recurrence
        assert sub.dropout == 0.0 and sub.recurrent_dropout == 0.0
        assert sub.cell.dropout == 0.0 and sub.cell.recurrent_dropout == 0.0
        assert sub.get_config()["recurrent_dropout"] == 0.0


@pytest.mark.parametrize("cell_type", CELLS)
def test_training_dropout_masks_only_layer_inputs_and_output(cell_type: str) -> None:
    rng = np.random.default_rng(31)
    lengths = [5, 3, 0]
    state_layers = 2
    layer = make_layer(cell_type, state_layers, 4, 3, seed=31, dropout=0.4)
    x = rng.normal(size=(3, 5, 3)).astype(np.float32)
    state = random_state(layer, 3, rng)
    layer.time_loop = "keras"  # the Keras layers' own calls (the GPU/cuDNN path) are checked
    records = _record_sublayer_calls(layer)
    keras.utils.set_random_seed(4321)
    out, fin = run(layer, x, state, lengths, training=True)

    drops = {r["tag"]: r for r in records if r["kind"] == "dropout"}
    assert set(drops) == {"in0", "in1", "out"}
    for tag in ("in0", "in1", "out"):  # dropout really was applied, to layer inputs/outputs
        dropped = drops[tag]["outputs"] == 0.0
        assert np.any(dropped & (drops[tag]["inputs"] != 0.0))
    level_inputs = [r["inputs"] for r in records if r["kind"] == "rnn"]
    np.testing.assert_array_equal(level_inputs[0], drops["in0"]["outputs"])
    np.testing.assert_array_equal(level_inputs[1], drops["in1"]["outputs"])

    # Recompute with the recorded (dropped) level inputs and no dropout anywhere else: the
    # recurrence itself must be untouched by dropout.
    ref_out, ref_fin = np_stacked(
        cell_type, layer_weights(layer), x, state, lengths, layer_inputs=level_inputs
    )
    assert_states_close(fin, ref_fin)
    np.testing.assert_allclose(drops["out"]["inputs"], ref_out, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(out, drops["out"]["outputs"])
    assert_zero_past_length(out, lengths)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("cell_type", CELLS)
def test_levels_do_not_share_weights(cell_type: str, num_layers: int) -> None:
    units = features = 3
    layer = MaskedStackedRNN(cell_type, num_layers=num_layers, units=units)
    layer.build((None, None, features))
    weights = layer.trainable_weights
    assert len(weights) == num_layers * 3  # kernel, recurrent_kernel, bias per level
    assert len({id(v) for v in weights}) == len(weights)
    assert len({v.path for v in weights}) == len(weights)
    assert len({id(sub) for sub in layer.rnn_layers}) == num_layers
    g = GATES[cell_type]
    for sub in layer.rnn_layers:
        named = {v.name: v for v in sub.weights}
        assert tuple(named["kernel"].shape) == (features, g * units)
        assert tuple(named["recurrent_kernel"].shape) == (units, g * units)
    if num_layers > 1:
        kernels = [np.array(sub.weights[0].numpy()) for sub in layer.rnn_layers]
        before = [k.copy() for k in kernels]
        assert not np.allclose(kernels[0], kernels[1])
        layer.rnn_layers[0].weights[0].assign(np.zeros_like(kernels[0]))
        for sub, old in zip(layer.rnn_layers[1:], before[1:], strict=False):
            np.testing.assert_array_equal(sub.weights[0].numpy(), old)


def test_deeper_levels_take_units_sized_inputs() -> None:
    layer = MaskedStackedRNN("lstm", num_layers=3, units=5)
    out, fin = layer(np.zeros((2, 3, 7), np.float32), layer.zero_state(2), np.array([3, 1]))
    assert tuple(out.shape) == (2, 3, 5)
    assert [tuple(s.shape) for s in fin] == [(2, 5)] * 6
    shapes = [tuple(sub.weights[0].shape) for sub in layer.rnn_layers]
    assert shapes == [(7, 20), (5, 20), (5, 20)]


# --------------------------------------------------------------------------- state API


@pytest.mark.parametrize(
    ("cell_type", "names"),
    [
        ("rnn", ["layer0_h", "layer1_h"]),
        ("gru", ["layer0_h", "layer1_h"]),
        ("lstm", ["layer0_h", "layer0_c", "layer1_h", "layer1_c"]),
    ],
)
def test_state_structure(cell_type: str, names: list[str]) -> None:
    layer = MaskedStackedRNN(cell_type, num_layers=2, units=3)
    assert layer.state_names() == names
    assert layer.state_size == [3] * len(names)
    zeros = layer.zero_state(4)
    assert len(zeros) == len(names)
    for z in zeros:
        assert tuple(z.shape) == (4, 3)
        assert np.all(np.asarray(z) == 0.0)
    with pytest.raises(ValueError, match="initial_state"):
        layer(np.zeros((4, 2, 1), np.float32), zeros[:-1], np.array([2, 2, 2, 2]))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cell_type": "lstmx"},
        {"cell_type": "gru", "num_layers": 0},
        {"cell_type": "rnn", "units": 0},
        {"cell_type": "rnn", "dropout": 1.0},
        {"cell_type": "rnn", "dropout": -0.1},
    ],
)
def test_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        MaskedStackedRNN(**kwargs)


# --------------------------------------------------------------------------- serialization


@pytest.mark.parametrize("cell_type", CELLS)
def test_get_config_round_trip(cell_type: str) -> None:
    layer = make_layer(cell_type, 2, 3, 2, seed=41, dropout=0.25)
    config = layer.get_config()
    assert {k: config[k] for k in ("cell_type", "num_layers", "units", "dropout")} == {
        "cell_type": cell_type,
        "num_layers": 2,
        "units": 3,
        "dropout": 0.25,
    }
    clone = MaskedStackedRNN.from_config(config)
    assert clone.get_config() == config
    clone.build((None, None, 2))
    copy_rnn_weights(layer, clone)
    rng = np.random.default_rng(41)
    x = rng.normal(size=(2, 3, 2)).astype(np.float32)
    state = random_state(layer, 2, rng)
    out, fin = run(layer, x, state, [3, 1])
    out_c, fin_c = run(clone, x, state, [3, 1])
    np.testing.assert_array_equal(out, out_c)
    assert_states_close(fin, fin_c, atol=0)

    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == "rnncast>MaskedStackedRNN"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, MaskedStackedRNN)
    assert restored.get_config() == config


@pytest.mark.parametrize("cell_type", CELLS)
def test_save_and_load_keras_file(cell_type: str, tmp_path: Path) -> None:
    time_steps, features, units = 4, 2, 3
    layer = make_layer(cell_type, 2, units, features, seed=51, dropout=0.1)
    x_in = keras.Input(shape=(time_steps, features), name="x")
    s_in = [
        keras.Input(shape=(n,), name=name)
        for n, name in zip(layer.state_size, layer.state_names(), strict=False)
    ]
    len_in = keras.Input(shape=(), dtype="int32", name="sequence_length")
    out, fin = layer(x_in, s_in, len_in)
    model = keras.Model([x_in, *s_in, len_in], [out, *fin])

    rng = np.random.default_rng(51)
    x = rng.normal(size=(3, time_steps, features)).astype(np.float32)
    state = random_state(layer, 3, rng)
    lengths = np.array([4, 2, 0], np.int32)
    expected = [t.numpy() for t in model([x, *state, lengths])]

    path = tmp_path / "masked_stacked_rnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    got = [t.numpy() for t in loaded([x, *state, lengths])]
    assert len(got) == 1 + len(layer.state_size)
    for g, e in zip(got, expected, strict=False):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-6)
    assert_zero_past_length(got[0], lengths)
    inner = [lyr for lyr in loaded.layers if isinstance(lyr, MaskedStackedRNN)]
    assert len(inner) == 1 and inner[0].get_config()["cell_type"] == cell_type


def test_anchor_last_starts_at_the_naive_forecast_and_round_trips_its_config():
    """With the head's weights at zero, an anchored forecaster forecasts the value at each
    step (naive) for every horizon; padded steps stay exactly zero."""
    from rnncast.model.forecaster import RNNForecaster

    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(3, 7, 4)).astype("float32")
    lengths = np.array([7, 4, 0], dtype="int32")
    model = RNNForecaster("gru", 1, 5, horizon=3, quantiles=(0.1, 0.9), anchor="last")
    model.build((3, 7, 4))
    for weight in model.head.weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    point, quantiles, _ = model(inputs, model.zero_state(3), lengths)
    valid = np.arange(7)[None, :] < lengths[:, None]
    expected = np.where(valid[..., None], np.repeat(inputs[..., :1], 3, axis=-1), 0.0)
    np.testing.assert_allclose(point.numpy(), expected, atol=1e-6)
    assert np.all(np.diff(quantiles.numpy(), axis=-1)[valid] > 0)  # still ordered
    rebuilt = RNNForecaster.from_config(model.get_config())
    assert rebuilt.anchor == "last"
    assert RNNForecaster.from_config({**model.get_config(), "anchor": "none"}).anchor == "none"
    with pytest.raises(ValueError, match="anchor must be one of"):
        RNNForecaster(anchor="mean")


def _level_free_forecaster(**overrides):
    from rnncast.model.forecaster import RNNForecaster

    settings = dict(horizon=5, quantiles=(0.1, 0.5, 0.9), anchor="seasonal", inputs="change")
    model = RNNForecaster("gru", 2, 6, lags=(3, 7), **{**settings, **overrides})
    model.build((3, 12, 4))
    return model


@pytest.mark.parametrize("anchor", ["seasonal", "last", "none"])
def test_level_free_inputs_chunked_equal_unchunked_with_ragged_lengths(anchor):
    """The lag memory is state: feeding a series in chunks of any size (rows ending early,
    rows of length 0) gives the outputs and final state of one unchunked pass."""
    rng = np.random.default_rng(3)
    model = _level_free_forecaster(anchor=anchor)
    inputs = rng.normal(size=(3, 12, 4)).astype("float32")
    inputs[..., -1] = rng.random((3, 12)) > 0.2  # the observed flag, some values filled
    lengths = np.array([12, 9, 5], dtype="int32")
    point, quantiles, final = model(inputs, None, lengths)
    state, points, cuts = None, [], [(0, 1), (1, 6), (6, 12)]
    for start, stop in cuts:
        chunk_lengths = np.clip(lengths - start, 0, stop - start).astype("int32")
        out, _, state = model(inputs[:, start:stop], state, chunk_lengths)
        points.append(np.asarray(out))
    np.testing.assert_allclose(np.concatenate(points, axis=1), point, atol=1e-5)
    for whole, chunked in zip(final, state, strict=True):
        np.testing.assert_allclose(np.asarray(chunked), np.asarray(whole), atol=1e-5)
    valid = np.arange(12)[None, :] < lengths[:, None]
    assert np.all(np.asarray(point)[~valid] == 0) and np.all(np.asarray(quantiles)[~valid] == 0)
    # The state is one [S, B, units] stack: the memory's slots have the RNN state's width.
    assert set(model.state_size) == {6} and len(model.state_size) == 2 + math.ceil(14 / 6)


def test_seasonal_anchor_starts_at_seasonal_naive_and_level_free_inputs_ignore_the_level():
    """With the head at zero the forecast for t + h is the value one season before it (the
    value at t while that one is unseen); shifting every value by a constant shifts the
    forecasts by it exactly (the network sees only changes)."""
    model = _level_free_forecaster()
    for weight in model.head.weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    series = np.arange(12, dtype="float32") ** 2
    inputs = np.zeros((1, 12, 4), "float32")
    inputs[0, :, 0], inputs[0, :, -1] = series, 1.0
    point, _, _ = model(inputs, None, np.array([12], "int32"))
    for t in range(12):
        for h in range(1, 6):
            back = t + h - 3 * math.ceil(h / 3)
            expected = series[back] if back >= 0 else series[t]
            assert float(point[0, t, h - 1]) == pytest.approx(expected)
    trained = _level_free_forecaster()  # random head: the network's own output matters
    shifted = inputs.copy()
    shifted[..., 0] += 1000.0
    base, base_q, _ = trained(inputs, None, np.array([12], "int32"))
    moved, moved_q, _ = trained(shifted, None, np.array([12], "int32"))
    np.testing.assert_allclose(np.asarray(moved) - 1000.0, base, atol=1e-3)
    np.testing.assert_allclose(np.asarray(moved_q) - 1000.0, base_q, atol=1e-3)


def test_level_free_config_round_trips_and_bad_settings_are_refused():
    from rnncast.model.forecaster import RNNForecaster

    model = _level_free_forecaster(interval_scale=[1.0, 1.5, 2.0, 2.5, 3.0])
    rebuilt = RNNForecaster.from_config(model.get_config())
    assert (rebuilt.inputs, rebuilt.lags, rebuilt.anchor) == ("change", (3, 7), "seasonal")
    assert rebuilt.interval_scale == (1.0, 1.5, 2.0, 2.5, 3.0)
    with pytest.raises(ValueError, match="needs a season"):
        RNNForecaster(anchor="seasonal")
    with pytest.raises(ValueError, match="lags must be distinct positive"):
        RNNForecaster(lags=(0, 3))
    with pytest.raises(ValueError, match="inputs must be one of"):
        RNNForecaster(inputs="levels")
    with pytest.raises(ValueError, match="interval_scale must hold 5 positive"):
        _level_free_forecaster(interval_scale=[1.0])


def test_interval_scale_widens_quantiles_around_the_median_only():
    """Calibration multiplies each horizon step's distance from the median quantile."""
    plain = _level_free_forecaster()
    factors = [0.5, 1.0, 2.0, 3.0, 4.0]
    scaled = _level_free_forecaster(interval_scale=factors)
    scaled.set_weights(plain.get_weights())
    inputs = np.random.default_rng(0).normal(size=(3, 12, 4)).astype("float32")
    point, quantiles, _ = plain(inputs)
    point2, quantiles2, _ = scaled(inputs)
    np.testing.assert_allclose(point2, point)
    median = np.asarray(quantiles)[..., 1:2]
    expected = median + np.asarray(factors)[None, None, :, None] * (np.asarray(quantiles) - median)
    np.testing.assert_allclose(quantiles2, expected, atol=1e-5)


def test_nonnegative_model_clips_forecasts_in_original_units():
    """The clip applies after unscaling (in the series' units), to point and quantiles."""
    from rnncast.model.inference import step_function

    clipped = _level_free_forecaster(nonnegative=True)
    plain = _level_free_forecaster()
    plain.set_weights(clipped.get_weights())
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(3, 12, 3)).astype("float32")
    args = (
        inputs,
        np.ones((3, 12), "float32"),
        np.array([12, 7, 0], "int32"),
        np.array([-1.0, 0.0, 2.0], "float32"),  # loc: many forecasts below zero
        np.array([3.0, 1.0, 1.0], "float32"),
        np.zeros((len(plain.state_size), 3, 6), "float32"),
    )
    low, high = step_function(plain)(*args), step_function(clipped)(*args)
    assert np.any(low["point"].numpy() < 0) and np.any(low["quantiles"].numpy() < 0)
    for key in ("point", "quantiles"):
        np.testing.assert_allclose(high[key], np.maximum(low[key], 0.0))
    np.testing.assert_allclose(high["state"], low["state"])
    assert type(clipped).from_config(clipped.get_config()).nonnegative


@pytest.mark.parametrize("cell_type", CELLS)
@pytest.mark.parametrize(
    ("lengths", "path"), [([5, 5, 5], "masked"), ([5, 3, 0], "masked"), ([5, 5, 5], "full")]
)
def test_each_path_alone_gives_the_branchs_values(
    cell_type: str, lengths: list[int], path: str
) -> None:
    # padding_path "masked" (any batch) or "full" (batches without padding) is what an XLA
    # step compiles, without the branch; it must give the branch's values, in eager mode
    # exactly and under XLA up to float rounding.
    rng = np.random.default_rng(5)
    layer = make_layer(cell_type, 2, 3, 2, seed=13)
    x = rng.normal(size=(len(lengths), 5, 2)).astype(np.float32)
    state = random_state(layer, len(lengths), rng)
    out, fin = run(layer, x, state, lengths)
    layer.padding_path = path
    try:
        single_out, single_fin = run(layer, x, state, lengths)
        xla = tf.function(lambda x, s, n: layer(x, s, n), jit_compile=True)
        xla_out, xla_fin = xla(x, state, np.asarray(lengths, np.int32))
    finally:
        layer.padding_path = "branch"
    np.testing.assert_array_equal(single_out, out)
    for a, b in zip(single_fin, fin, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.asarray(xla_out), out, rtol=0, atol=ATOL)
    assert_zero_past_length(np.asarray(xla_out), lengths)
    assert_states_close([np.asarray(s) for s in xla_fin], fin)


@pytest.mark.parametrize("cell_type", CELLS)
@pytest.mark.parametrize("jit", [False, True])
def test_hoisted_loop_equals_the_keras_layers(cell_type: str, jit: bool) -> None:
    # The CPU default (input projection hoisted out of the time loop, hand-written BPTT) must
    # give the Keras layers' outputs, final states and gradients (weights, inputs, state).
    rng = np.random.default_rng(31)
    steps = 6
    lengths = np.asarray([0, 1, steps - 1, steps], np.int32)
    layer = make_layer(cell_type, 3, 4, 3, seed=31)
    x = tf.constant(rng.normal(size=(4, steps, 3)).astype(np.float32))
    state = [tf.constant(s) for s in random_state(layer, 4, rng)]

    def forward_and_gradients(x, state, lengths):
        with tf.GradientTape() as tape:
            tape.watch([x, *state])
            out, fin = layer(x, state, lengths)
            loss = tf.reduce_sum(out * out) + sum(tf.reduce_sum(s * s) for s in fin)
        grads = tape.gradient(loss, [*layer.trainable_variables, x, *state])
        return out, fin, grads

    results = {}
    # XLA cannot compile the branch around Keras' loops: the masked path alone, as the XLA
    # train step compiles it.
    layer.padding_path = "masked" if jit else "branch"
    for loop in ("keras", "hoisted"):
        layer.time_loop = loop
        fn = tf.function(forward_and_gradients, jit_compile=True) if jit else forward_and_gradients
        results[loop] = fn(x, state, tf.constant(lengths))
    layer.time_loop, layer.padding_path = "hoisted", "branch"
    (k_out, k_fin, k_grads), (h_out, h_fin, h_grads) = results["keras"], results["hoisted"]
    np.testing.assert_allclose(np.asarray(h_out), np.asarray(k_out), rtol=0, atol=ATOL)
    assert_zero_past_length(np.asarray(h_out), lengths)
    assert_states_close([np.asarray(s) for s in h_fin], [np.asarray(s) for s in k_fin])
    # Length 0: the incoming state comes back exactly.
    for fin, initial in zip(h_fin, state, strict=True):
        np.testing.assert_array_equal(np.asarray(fin)[0], np.asarray(initial)[0])
    for a, b in zip(h_grads, k_grads, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=ATOL)
