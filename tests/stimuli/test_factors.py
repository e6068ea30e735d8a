import math

import numpy as np
import pytest

from ontoscope.errors import FactorError, SampleRateError
from ontoscope.stimuli.factors import CANON, FACTOR_NAMES, Factor, FactorSpace, clip_seeds, get_factor


def test_canon_names_kinds_and_rates():
    static = {"f0", "loudness", "brightness", "odd_even", "inharmonicity", "noise", "attack"}
    osc = {"vibrato_rate", "vibrato_depth", "tremolo_rate", "tremolo_depth", "beat_rate", "beat_depth"}
    assert set(FACTOR_NAMES) == static | osc
    assert all(CANON[n].kind == "static" for n in static)
    assert all(CANON[n].kind == "oscillatory" for n in osc)
    for mod in ("vibrato", "tremolo", "beat"):
        assert CANON[f"{mod}_depth"].rate == f"{mod}_rate"
        assert CANON[f"{mod}_rate"].depth == f"{mod}_depth"
        assert CANON[f"{mod}_depth"].default == 0
    assert CANON["f0"].scale == "log" and CANON["attack"].scale == "log"
    assert (CANON["beat_rate"].low, CANON["beat_rate"].high) == (15, 80)


@pytest.mark.parametrize("name", FACTOR_NAMES)
def test_normalize_roundtrip(name):
    f = CANON[name]
    u = np.linspace(0, 1, 11)
    np.testing.assert_allclose(f.normalize(f.denormalize(u)), u, atol=1e-12)
    assert f.denormalize(0.0) == pytest.approx(f.low) and f.denormalize(1.0) == pytest.approx(f.high)


def test_log_scale_is_uniform_in_log():
    space = FactorSpace.create(["f0"])
    t = space.sample(20000, seed=1)
    lg = np.log2(t["f0"].to_numpy())
    # 110 to 880 Hz is three octaves: each octave holds a third of the clips
    counts = np.histogram(lg, bins=[np.log2(110), np.log2(220), np.log2(440), np.log2(880)])[0]
    np.testing.assert_allclose(counts / 20000, 1 / 3, atol=0.02)


def test_sample_is_seeded_and_in_range():
    space = FactorSpace.create()
    a, b, c = space.sample(64, seed=3), space.sample(64, seed=3), space.sample(64, seed=4)
    assert a.equals(b) and not a.equals(c)
    for f in space.factors:
        v = a[f.name].dropna().to_numpy()
        assert v.min() >= f.low and v.max() <= f.high
    assert "inharmonicity" not in space.names and (a["inharmonicity"] == 0).all()
    assert list(a["clip"]) == list(range(64))


def test_clip_seeds_do_not_depend_on_chunking():
    np.testing.assert_array_equal(clip_seeds(7, 10)[5:], clip_seeds(7, 5, start=5))
    assert len(set(clip_seeds(7, 1000))) == 1000


def test_grid_and_lhs():
    space = FactorSpace.create(["f0", "loudness"])
    g = space.sample(25, method="grid")
    assert len(g) == 25 and g["f0"].nunique() == 5 and g["loudness"].nunique() == 5
    lhs = space.sample(50, seed=0, method="lhs")
    # a Latin hypercube puts exactly one sample in each of the n strata of every factor
    u = space["loudness"].normalize(lhs["loudness"].to_numpy())
    assert sorted(np.floor(u * 50).astype(int)) == list(range(50))


def test_rates_are_nan_where_depth_is_zero():
    space = FactorSpace.create(["f0", "vibrato_rate", "vibrato_depth"], ranges={"vibrato_depth": (0, 50)})
    t = space.sample(10, seed=0)
    t.loc[0, "vibrato_depth"] = 0.0
    from ontoscope.stimuli.factors import mark_rates

    t = mark_rates(t)
    assert math.isnan(t.loc[0, "vibrato_rate"]) and not t.loc[0, "rate_defined_vibrato_rate"]
    assert t.loc[1:, "rate_defined_vibrato_rate"].all()
    # tremolo is not varied: depth 0 everywhere, its rate is undefined everywhere
    assert t["tremolo_rate"].isna().all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(names=["pitch"]), "unknown factor 'pitch'"),
        (dict(names=["f0"], ranges={"f0": (500, 100)}), "out of order"),
        (dict(names=["f0"], ranges={"f0": (0, 100)}), "log-scale range must be positive"),
        (dict(names=["tremolo_depth"], ranges={"tremolo_depth": (0, 2)}), "physical"),
        (dict(names=["vibrato_rate"]), "vibrato_depth is fixed at 0"),
        (dict(names=["f0"], fixed={"f0": 100}), "both varied and fixed"),
        (dict(names=["f0"], ranges={"loudness": (-30, -10)}), "not varied"),
        (dict(names=[]), "at least one factor"),
    ],
)
def test_bad_spaces(kwargs, match):
    with pytest.raises(FactorError, match=match):
        FactorSpace.create(**kwargs)


def test_factor_validation_and_lookup():
    with pytest.raises(FactorError, match="unknown factor"):
        get_factor("nope")
    with pytest.raises(FactorError, match="out of order"):
        Factor("x", "Hz", 5, 5, "linear", "static", 0)


def test_sample_rate_and_duration_checks():
    space = FactorSpace.create(["f0"], ranges={"f0": (100, 5000)})
    with pytest.raises(SampleRateError, match="above Nyquist"):
        space.check_sample_rate(8000)
    space.check_sample_rate(16000)
    with pytest.raises(FactorError, match="too short"):
        FactorSpace.create(["attack"]).check_duration(0.2)
