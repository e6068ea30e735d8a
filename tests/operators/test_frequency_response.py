"""Frequency behaviour (sine sweeps, bandwidths, injectivity), modulation limits and capacity bounds."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ontoscope.models import wrap
from ontoscope.operators import (
    capacity_table,
    channel_bandwidths,
    coherence_bound,
    injectivity,
    levenshtein_bound,
    modulation_limits,
    modulation_status,
    oscillatory_ranges,
    sine_sweep,
    site_geometry,
    welch_bound,
)
from ontoscope.stimuli.factors import FactorSpace

SR = 16000


def _fixed(conv: nn.Conv1d) -> object:
    return wrap(nn.Sequential(conv), {"out": "0"}, sample_rate=SR, preprocess=lambda a: a.unsqueeze(1))


def _decimator(stride: int) -> object:
    conv = nn.Conv1d(1, 1, 1, stride=stride, bias=False)
    nn.init.ones_(conv.weight)
    return _fixed(conv)


def test_sweep_response_of_a_known_filter():
    conv = nn.Conv1d(1, 1, 2, bias=False)  # y = (x[n] + x[n + 1]) / 2: |H(f)| = |cos(pi f / sr)|
    nn.init.constant_(conv.weight, 0.5)
    freqs = np.array([100.0, 1000.0, 4000.0, 7000.0])
    res = sine_sweep(_fixed(conv), freqs=freqs, seconds=0.25, amplitude=0.1)
    want = 0.1 / math.sqrt(2) * np.abs(np.cos(np.pi * freqs / SR))
    np.testing.assert_allclose(res.channel_responses("out")[:, 0], want, rtol=2e-3)
    table = res.table("toy")
    assert set(table.columns) == {"model", "site", "channel", "freq_hz", "response"} and len(table) == 4


def test_bandwidth_of_planted_responses():
    freqs = np.geomspace(20, 7600, 400)
    r = np.zeros((400, 2))
    r[(freqs >= 500) & (freqs <= 1500), 0] = 1.0  # a 1 kHz-wide band
    r[:, 1] = np.where(freqs < 3000, 1.0, 0.1)  # passes everything below 3 kHz
    bw = channel_bandwidths(r, freqs, frame_rate=2000.0)
    assert bw.loc[0, "bandwidth_hz"] == pytest.approx(1000, rel=0.02)
    assert bw.loc[0, "bandwidth_rel_frame_rate"] == pytest.approx(0.5, rel=0.02)
    assert bw.loc[0, "above_frame_nyquist"] == pytest.approx(0.5, rel=0.03)  # 1000-1500 of 500-1500 Hz
    assert bw.loc[1, "bandwidth_hz"] == pytest.approx(3000 - 20, rel=0.02)
    assert 500 <= bw.loc[0, "peak_hz"] <= 1500


def test_injectivity_of_planted_features():
    freqs = np.geomspace(50, 7000, 64)
    rng = np.random.default_rng(0)
    distinct = rng.normal(size=(64, 16))
    assert injectivity(distinct, freqs)["collapse_fraction"] < 0.05
    # a feature that depends only on |f - 4000| (folding at 4 kHz), on a grid symmetric about 4 kHz
    lin = np.linspace(100, 7900, 40)
    fold = np.abs(lin - 4000.0)
    folded = np.stack([np.cos(fold / 300.0), np.sin(fold / 300.0), fold / 4000.0], axis=1)
    res = injectivity(folded, lin)
    mirrored = np.abs(lin - 4000) > 400
    assert res["collapsed"][mirrored].all() and res["collapse_fraction"] > 0.8
    j = res["nearest"][np.argmin(np.abs(lin - 3000))]
    assert lin[j] == pytest.approx(5000, abs=100)  # 3 kHz is confused with its mirror, 5 kHz
    assert not injectivity(np.stack([lin, lin**2 / 8000], 1), lin)["collapsed"].any()  # no folding


def test_injectivity_collapse_of_a_plain_decimator():
    # a 125 Hz grid symmetric about every multiple of 1 kHz: the aliases of stride 8 (2 kHz frames) are grid points
    freqs = np.arange(62.5, 7900, 125.0)
    res = {}
    for s in (1, 8):
        sw = sine_sweep(_decimator(s), freqs=freqs, seconds=0.25)
        res[s] = injectivity(sw.features["out"], freqs, min_separation_hz=8.0)["collapse_fraction"]
    # one channel, no filter: at stride 8 every frequency folds onto others; at stride 1 none does
    assert res[1] == 0.0 and res[8] > 0.95


def test_modulation_status_closed_form():
    # CREPE's output: 100 frames per second, a 64 ms receptive field
    st = modulation_status(5.0, 100.0, 0.064)
    assert st["trajectory"] and not st["per_frame"]
    assert st["per_frame_status"] == "rate-limited" and st["status"] == "affords"
    st = modulation_status(60.0, 100.0, 0.064)  # above 50 Hz, and 64 ms hold 3.8 periods
    assert not st["trajectory"] and st["per_frame"]
    st = modulation_status(8.0, 12.5, 0.064)  # neither: a 12.5 Hz latent with a short field
    assert st["status"] == "rate-limited"
    assert modulation_status(8.0, 12.5, 0.064, global_context=True)["status"] == "affords"
    assert modulation_status(8.0, 100.0, 0.25, periods=3.0)["per_frame"] is False


def test_modulation_limits_measures_of_the_range():
    geo = pd.DataFrame({"site": ["s"], "frame_rate_hz": [12.0], "receptive_field_s": [1 / 8.0],
                        "global_context": [False]})
    space = FactorSpace.create(["vibrato_rate", "vibrato_depth"])  # vibrato 3-9 Hz
    m = modulation_limits(geo, space).set_index("factor")
    # trajectory below 6 Hz: (6 - 3) / 6; per frame from 8 Hz: (9 - 8) / 6; neither on [6, 8)
    assert m.loc["vibrato_rate", "frac_trajectory"] == pytest.approx(0.5)
    assert m.loc["vibrato_rate", "frac_per_frame"] == pytest.approx(1 / 6)
    assert m.loc["vibrato_rate", "frac_either"] == pytest.approx(1 - 2 / 6)
    assert m.loc["vibrato_rate", "status"] == "rate-limited"
    assert m.loc["vibrato_depth", "rate_factor"] == "vibrato_rate"  # a depth is limited by its rate's range
    assert m.loc["vibrato_depth", "status"] == "rate-limited"
    loose = modulation_limits(geo, space, tolerance=0.5).set_index("factor")
    assert loose.loc["vibrato_rate", "status"] == "affords"


def test_a_recurrent_site_is_limited_by_its_measured_memory_not_by_its_unbounded_context():
    """At 4 Hz frames (Nyquist 2 Hz) a 3-9 Hz vibrato rate needs the per-frame route: a recurrence whose effective
    memory is 250 ms holds one period from 4 Hz on (5/6 of the range); one whose memory was not measured is global."""
    space = FactorSpace.create(["vibrato_rate", "vibrato_depth"])
    geo = pd.DataFrame({"site": ["lstm", "unmeasured", "attention"], "frame_rate_hz": [4.0] * 3, "stride": [4000] * 3,
                        "receptive_field_s": [0.25] * 3, "global_context": [True] * 3,
                        "recurrent": [True, True, False], "effective_rf_samples": [4000.0, np.nan, 4000.0]})
    m = modulation_limits(geo, space).query("factor == 'vibrato_rate'").set_index("site")
    assert m.loc["lstm", "frac_per_frame"] == pytest.approx(5 / 6) and m.loc["lstm", "status"] == "rate-limited"
    assert "effective memory" in m.loc["lstm", "reason"]
    assert m.loc["unmeasured", "status"] == "affords" and m.loc["attention", "status"] == "affords"


def test_fixed_rate_and_crepe_five_hz_vibrato():
    space = FactorSpace.create(["f0", "vibrato_depth"], fixed={"vibrato_rate": 5.0})
    assert oscillatory_ranges(space) == {"vibrato_depth": (5.0, 5.0, "vibrato_rate")}
    from ontoscope.models.registry import load_model

    geo = site_geometry(load_model("crepe:tiny"), model_name="crepe:tiny", empirical=False)
    m = modulation_limits(geo, space).set_index(["site", "factor"])
    row = m.loc[("head.classifier", "vibrato_depth")]
    assert row["receptive_field_s"] == pytest.approx(0.064) and row["frame_rate_hz"] == 100
    assert row["per_frame_status"] == "rate-limited"  # 64 ms hold a third of a 5 Hz period
    assert row["trajectory_status"] == "affords" and row["status"] == "affords"  # 5 Hz < 50 Hz frame Nyquist
    assert row["min_rate_per_frame_hz"] == pytest.approx(1 / 0.064)


def test_welch_and_levenshtein_bounds():
    assert welch_bound(3, 2) == pytest.approx(0.5)
    assert all(welch_bound(k, d) == 0.0 for d in (1, 4, 16) for k in range(1, d + 1))
    assert welch_bound(4, 3) == pytest.approx(1 / 3)  # the tetrahedron: |cos| = 1/3 is achieved
    assert math.isnan(levenshtein_bound(3, 2)) and math.isnan(levenshtein_bound(6, 3))  # only k > d (d + 1) / 2
    # 6 lines in 3-D: the icosahedron's diagonals reach Welch's 1/sqrt(5)
    phi = (1 + math.sqrt(5)) / 2
    ico = np.array([[0, 1, phi], [0, 1, -phi], [1, phi, 0], [1, -phi, 0], [phi, 0, 1], [-phi, 0, 1]])
    ico /= np.linalg.norm(ico, axis=1, keepdims=True)
    assert np.abs(ico @ ico.T - np.eye(6)).max() == pytest.approx(welch_bound(6, 3)) == pytest.approx(5 ** -0.5)
    assert levenshtein_bound(7, 3) == pytest.approx(math.sqrt(0.3)) and welch_bound(7, 3) < math.sqrt(0.3)
    assert coherence_bound(7, 3) == pytest.approx(math.sqrt(0.3))
    assert coherence_bound(100, 4) > welch_bound(100, 4)
    with pytest.raises(ValueError):
        welch_bound(0, 3)


def test_bounds_hold_for_random_and_optimal_frames():
    ang = 2 * np.pi * np.arange(3) / 3
    mercedes = np.stack([np.cos(ang), np.sin(ang)], 1)  # 3 unit vectors at 120 degrees: |cos| = 1/2
    g = np.abs(mercedes @ mercedes.T - np.eye(3))
    assert g.max() == pytest.approx(welch_bound(3, 2))
    rng = np.random.default_rng(0)
    for k, d in ((12, 8), (12, 4), (30, 5)):
        v = rng.normal(size=(k, d))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        assert np.abs(v @ v.T - np.eye(k)).max() >= coherence_bound(k, d) - 1e-12


def test_capacity_table():
    geo = pd.DataFrame({"site": ["a", "b"], "dims_per_frame": [2, 64], "model": ["m", "m"]})
    cap = capacity_table(geo, 3).set_index("site")
    assert cap.loc["a", "welch_bound"] == pytest.approx(0.5) and cap.loc["a", "over_capacity"]
    assert cap.loc["b", "coherence_bound"] == 0.0 and not cap.loc["b", "over_capacity"]
    assert cap.loc["a", "factors_per_dim"] == pytest.approx(1.5)


def test_sweep_batches_and_sites_agree():
    torch.manual_seed(0)
    conv = nn.Conv1d(1, 3, 9, stride=4)
    freqs = np.geomspace(50, 7000, 10)
    a = sine_sweep(_fixed(conv), freqs=freqs, chunk=3)
    b = sine_sweep(_fixed(conv), freqs=freqs, chunk=10)
    np.testing.assert_allclose(a.channel_responses("out"), b.channel_responses("out"), rtol=1e-5)
    np.testing.assert_allclose(a.features["out"], b.features["out"], rtol=1e-4, atol=1e-7)
