"""Dose–response scoring on effects built by hand, so that every measure's value is known."""

import numpy as np
import pytest

from ontoscope.errors import ConfigError
from ontoscope.probing.response import check_doses, dose_response

NAMES = ["f0", "loudness", "vibrato_rate"]
DOSES = np.array([-1.0, -0.3, -0.1, 0.0, 0.1, 0.3, 1.0])


def _values(effect, clips=8, seed=0, noise=0.0):
    """``[M, B, J]``: a per-clip offset plus ``effect(dose) -> [J]`` plus noise."""
    rng = np.random.default_rng(seed)
    base = rng.random((1, clips, len(NAMES)))
    eff = np.stack([effect(d) for d in DOSES])[:, None, :]
    return base + eff + noise * rng.standard_normal((len(DOSES), clips, len(NAMES)))


def test_a_clean_linear_control_is_efficacious_specific_and_consistent():
    v = _values(lambda d: np.array([0.2 * d, 0.0, 0.0]))
    r = dose_response(v, DOSES, NAMES, "f0", 0.1)
    assert r.specificity == pytest.approx(1.0) and r.consistency == 1.0
    assert r.dose == 1.0 and r.efficacy == pytest.approx(2.0) and r.reach == pytest.approx(2.0)
    assert r.slope0 == pytest.approx(2.0) and r.odd == pytest.approx(2.0) and r.even == pytest.approx(0.0)
    c = r.curve.set_index(["dose", "measured"])
    assert c.loc[(0.3, "f0"), "plus"] == pytest.approx(0.06) and c.loc[(0.3, "f0"), "minus"] == pytest.approx(-0.06)


def test_leakage_lowers_specificity_unless_it_is_the_expected_side_effect():
    v = _values(lambda d: np.array([0.2 * d, 0.0, 0.3 * d]))
    r = dose_response(v, DOSES, NAMES, "f0", 0.1)
    assert r.specificity == pytest.approx(0.4)
    expected = np.zeros_like(v)
    expected[..., 2] = 0.3 * DOSES[:, None]
    assert dose_response(v, DOSES, NAMES, "f0", 0.1, expected=expected).specificity == pytest.approx(1.0)


def test_the_expected_side_effect_is_averaged_over_the_clips_where_the_change_is_measured():
    # a rate that scales with the dose, clip by clip, and is undefined on the clip it moves most at the top dose
    # (warped past its estimator's range): its expected change must leave that clip out too
    scale = np.linspace(0.1, 0.8, 8)
    v = _values(lambda d: np.array([0.2 * d, 0.0, 0.0]))
    v[..., 2] += scale[None, :] * DOSES[:, None]
    expected = np.zeros_like(v)
    expected[..., 2] = scale[None, :] * DOSES[:, None]
    v[DOSES == 1.0, -1, 2] = np.nan
    v[DOSES == -1.0, -1, 2] = np.nan
    r = dose_response(v, DOSES, NAMES, "f0", 0.1, expected=expected)
    assert r.dose == 1.0 and r.specificity == pytest.approx(1.0)


def test_an_even_effect_has_no_odd_part_and_is_not_a_control():
    v = _values(lambda d: np.array([0.2 * abs(d), 0.0, 0.0]))
    r = dose_response(v, DOSES, NAMES, "f0", 0.1)
    assert r.efficacy == pytest.approx(0.0) and r.reach == pytest.approx(0.0) and r.odd == pytest.approx(0.0)
    c = r.curve.set_index(["dose", "measured"])
    assert c.loc[(1.0, "f0"), "even"] == pytest.approx(0.2) and c.loc[(1.0, "f0"), "odd"] == pytest.approx(0.0)


def test_a_one_sign_family_uses_the_mean_change():
    doses = np.array([0.0, 0.1, 0.3, 1.0])
    rng = np.random.default_rng(1)
    v = rng.random((1, 6, 3)) + np.stack([[0.1 * d, 0, 0] for d in doses])[:, None, :]
    r = dose_response(v, doses, NAMES, "f0", 0.05)
    assert r.efficacy == pytest.approx(2.0) and np.isnan(r.odd) and r.consistency == 1.0


def test_an_effect_of_random_sign_is_not_consistent():
    rng = np.random.default_rng(2)
    jumps = rng.choice([-1.0, 1.0], size=(len(DOSES), 64)) * 0.3
    jumps[DOSES == 0] = 0
    v = rng.random((1, 64, 3)) + np.zeros((len(DOSES), 64, 3))
    v[..., 0] += jumps
    r = dose_response(v, DOSES, NAMES, "f0", 0.1)
    assert r.consistency < 0.7


def test_bad_input():
    with pytest.raises(ConfigError, match="empty"):
        check_doses([])
    with pytest.raises(ConfigError, match="finite"):
        check_doses([0.1, np.inf])
    with pytest.raises(ConfigError, match="positive"):
        check_doses([0.1, -0.2])
    with pytest.raises(ConfigError, match="whole steps"):
        check_doses([1.5], integer=True)
    v = _values(lambda d: np.zeros(3))
    with pytest.raises(ConfigError, match="0 exactly once"):
        dose_response(v, DOSES + 0.01, NAMES, "f0", 0.1)
    with pytest.raises(ConfigError, match="not among"):
        dose_response(v, DOSES, NAMES, "brightness", 0.1)
