"""Split-conformal interval scaling (model.calibration): pure numpy, no TensorFlow."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncast.model import calibration


def test_scores_measure_the_distance_in_half_widths_on_the_targets_side():
    center, lower, upper = np.array([10.0, 10.0, 10.0]), np.array([8.0] * 3), np.array([14.0] * 3)
    target = np.array([6.0, 12.0, 10.0])
    np.testing.assert_allclose(
        calibration.conformity_scores(center, lower, upper, target), [2.0, 0.5, 0.0]
    )


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(20, 400),
    width=st.floats(0.05, 20.0),
    coverage=st.sampled_from([0.5, 0.8, 0.9]),
    seed=st.integers(0, 2**16),
)
def test_scaled_interval_covers_at_least_the_nominal_share(n, width, coverage, seed):
    """Whatever the model's spread, the interval scaled by the factor covers the nominal
    share of the calibration targets (and not much more: at most one target above the
    conformal rank), per horizon step."""
    rng = np.random.default_rng(seed)
    target = rng.standard_t(3, size=(n, 2)) * np.array([1.0, 3.0])
    center = np.zeros_like(target)
    scores = calibration.conformity_scores(center, center - width, center + width, target)
    factors = calibration.interval_scale(scores, np.ones_like(target, bool), coverage)
    for step, factor in enumerate(factors):
        covered = np.abs(target[:, step]) <= factor * width + 1e-9
        assert covered.mean() >= coverage
        assert covered.sum() <= np.ceil((n + 1) * coverage) + np.sum(
            np.isclose(np.abs(target[:, step]), factor * width)
        )


def test_masked_targets_do_not_count_and_a_step_without_targets_keeps_its_spread():
    scores = np.array([[0.5, 9.0], [100.0, 9.0], [0.5, 9.0]])
    mask = np.array([[True, False], [False, False], [True, False]])
    assert calibration.interval_scale(scores, mask, 0.5) == [0.5, 1.0]
    with pytest.raises(ValueError, match="coverage must be in"):
        calibration.interval_scale(scores, mask, 1.0)
