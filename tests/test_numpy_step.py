"""The numpy step (the stream's small calls) computes what the TensorFlow step computes, for
every model option, at the lengths that matter: 0 (state carried, outputs zero), 1, T - 1, T,
from a carried state."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncast.model import inference
from rnncast.model.forecaster import RNNForecaster
from rnncast.model.numpy_step import NumpyStep, sigmoid, softplus

FEATURES = 3  # value + 2 more raw features; the model adds the observed flag

CONFIGS = {
    "gru, defaults": dict(cell_type="gru"),
    "lstm, last anchor": dict(cell_type="lstm", anchor="last"),
    "rnn, one layer": dict(cell_type="rnn", num_layers=1),
    "gru, change inputs, seasonal anchor, calibrated, nonnegative": dict(
        cell_type="gru",
        inputs="change",
        lags=(4, 3),
        anchor="seasonal",
        interval_scale=(0.8, 1.3, 1.1, 0.9, 1.5),
        nonnegative=True,
    ),
    "lstm, change inputs, lag memory over several slots": dict(
        cell_type="lstm", inputs="change", lags=(11,)
    ),
    "gru, no median, calibrated": dict(
        cell_type="gru", quantiles=(0.1, 0.9), interval_scale=(1.2,) * 5
    ),
    "gru, one quantile": dict(cell_type="gru", quantiles=(0.5,)),
    "gru, point only": dict(cell_type="gru", quantiles=()),
}


def _model(settings: dict, seed: int) -> RNNForecaster:
    settings = {"num_layers": 2, "units": 6, "horizon": 5, **settings}
    model = RNNForecaster(**settings)
    model.build((1, 4, FEATURES + 1))
    rng = np.random.default_rng(seed)
    for variable in model.variables:  # weights far from their initial values, biases too
        variable.assign(rng.normal(scale=0.6, size=variable.shape).astype("float32"))
    return model


def _arguments(model: RNNForecaster, lengths, width: int, seed: int):
    rng = np.random.default_rng(seed)
    lanes = len(lengths)
    return (
        rng.normal(size=(lanes, width, FEATURES)).astype(np.float32) * 3 + 10,
        (rng.random((lanes, width)) > 0.25).astype(np.float32),
        np.asarray(lengths, np.int32),
        rng.normal(size=lanes).astype(np.float32) + 10,
        (0.5 + rng.random(lanes)).astype(np.float32) * 3,
        rng.normal(size=(len(model.state_size), lanes, model.units)).astype(np.float32),
    )


def _assert_close(got: dict, want: dict, context: str) -> None:
    for name in ("point", "quantiles", "state"):
        assert got[name].shape == want[name].shape, (context, name)
        assert got[name].dtype == np.float32, (context, name)
        np.testing.assert_allclose(
            got[name], want[name], rtol=2e-5, atol=2e-5, err_msg=f"{context}: {name}"
        )


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_numpy_step_equals_the_tensorflow_step(name):
    model = _model(CONFIGS[name], seed=len(name))
    tf_step = inference.step_function(model)
    numpy_step = NumpyStep.from_model(model)
    width = 7
    for lengths in ([width, 0, 1, width - 1, width, 3], [1, 1, 1], [width] * 4):
        steps = max(lengths) if len(set(lengths)) == 1 else width
        args = _arguments(model, lengths, steps, seed=sum(lengths))
        want = {key: value.numpy() for key, value in tf_step(*args).items()}
        got = numpy_step(*args)
        _assert_close(got, want, f"{name}, lengths {lengths}")
        empty = np.asarray(lengths) == 0
        # A row of length 0: the incoming RNN state exactly (the lag memory keeps its values
        # and flags, and zeroes its padding, as LagMemory does), no output.
        rnn = len(model.rnn.state_size)
        np.testing.assert_array_equal(got["state"][:rnn, empty], args[5][:rnn, empty])
        assert not got["point"][empty].any() and not got["quantiles"][empty].any()
    # Carried: two calls from the returned state equal one call over both (the stream's case).
    args = _arguments(model, [width] * 3, width, seed=5)
    whole = numpy_step(*args)
    first = numpy_step(args[0][:, :4], args[1][:, :4], np.full(3, 4, np.int32), *args[3:])
    rest = numpy_step(
        args[0][:, 4:], args[1][:, 4:], np.full(3, width - 4, np.int32), *args[3:5],
        first["state"],
    )  # fmt: skip
    np.testing.assert_allclose(rest["state"], whole["state"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rest["point"], whole["point"][:, 4:], rtol=1e-5, atol=1e-5)


def test_quantiles_stay_ordered_and_the_helpers_do_not_overflow():
    model = _model(CONFIGS["gru, defaults"], seed=1)
    args = _arguments(model, [5] * 4, 5, seed=2)
    quantiles = NumpyStep.from_model(model)(*args)["quantiles"]
    assert (np.diff(quantiles, axis=-1) >= 0).all()
    extreme = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_allclose(sigmoid(extreme), [0, 0, 0.5, 1, 1], atol=1e-7)
        np.testing.assert_allclose(
            softplus(extreme), [0, 0, np.log(2), 100, 1e4], rtol=1e-6, atol=1e-30
        )


@settings(max_examples=25)
@given(
    cell=st.sampled_from(["rnn", "gru", "lstm"]),
    layers=st.integers(1, 3),
    units=st.integers(1, 9),
    lags=st.lists(st.integers(1, 12), max_size=3, unique=True),
    change=st.booleans(),
    anchor=st.sampled_from(["none", "last", "seasonal"]),
    lengths=st.lists(st.integers(0, 6), min_size=1, max_size=5),
    width=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_the_numpy_step_equals_the_tensorflow_step_on_random_models_and_shapes(
    cell, layers, units, lags, change, anchor, lengths, width, seed
):
    """Any cell, depth, width, lag set and anchor; any lanes and lengths (0 .. width)."""
    if anchor == "seasonal" and not lags:
        lags = [3]
    settings_ = dict(cell_type=cell, num_layers=layers, units=units, lags=tuple(lags))
    settings_.update(inputs="change" if change else "level", anchor=anchor)
    model = _model(settings_, seed)
    lengths = [min(n, width) for n in lengths]
    args = _arguments(model, lengths, width, seed)
    want = {key: value.numpy() for key, value in inference.step_function(model)(*args).items()}
    _assert_close(NumpyStep.from_model(model)(*args), want, f"{settings_}, lengths {lengths}")
