"""Envelope descriptors: round trips on canon stimuli, essentia, absent modulations, bad input."""

import math

import numpy as np
import pytest
import torch

from ontoscope.descriptors.envelope import (
    ABOVE_CUTOFF,
    BELOW_CUTOFF,
    ENVELOPE_KEYS,
    NO_MODULATION,
    SILENT,
    amplitude_envelope,
    attack_time,
    beats,
    envelope_analysis,
    envelope_descriptors,
    loudness,
    lowest_f0,
    noise_ratio,
    tremolo,
)
from ontoscope.descriptors.estimate import Estimate
from ontoscope.errors import AudioError, ConfigError, SampleRateError
from ontoscope.stimuli.factors import FactorSpace
from ontoscope.stimuli.synth import render

SR = 16000


@pytest.fixture(scope="module")
def canon():
    """96 clips, every canon factor random over its range (HNR 0-40 dB, attack 5-200 ms log, ...)."""
    table = FactorSpace.create().sample(96, seed=5)
    audio = render(table, SR, 1.0)
    return table, audio, envelope_analysis(audio, SR)


def _col(table, name):
    return table[name].to_numpy(dtype=np.float64)


def test_loudness_round_trip(canon):
    table, audio, res = canon
    err = np.abs(res["loudness"].value.numpy() - _col(table, "loudness"))
    assert np.median(err) <= 0.5
    assert err.max() < 0.01  # the level is set exactly
    np.testing.assert_allclose(loudness(audio).value.numpy(), res["loudness"].value.numpy(), atol=1e-4)


def test_attack_round_trip(canon):
    table, _, res = canon
    truth = _col(table, "attack")
    rel = np.abs(res["attack"].value.numpy() - truth) / truth
    assert np.isfinite(rel).all()
    assert np.median(rel) <= 0.2
    assert np.median(rel) <= 0.05  # measured: about 1 %
    short = truth < 0.02
    assert short.sum() >= 15 and np.median(rel[short]) <= 0.2


def test_tremolo_round_trip(canon):
    table, _, res = canon
    deep = _col(table, "tremolo_depth") >= 0.2
    assert deep.sum() >= 60
    rate_err = np.abs(res["tremolo_rate"].value.numpy() - _col(table, "tremolo_rate"))[deep]
    depth_err = (np.abs(res["tremolo_depth"].value.numpy() - _col(table, "tremolo_depth"))
                 / _col(table, "tremolo_depth"))[deep]
    assert np.isfinite(rate_err).mean() >= 0.95
    assert np.nanmedian(rate_err) <= 0.3
    assert np.nanmedian(rate_err) <= 0.05  # measured: about 0.005 Hz
    assert np.nanmedian(depth_err) <= 0.05  # measured: about 0.3 %


def test_beat_round_trip(canon):
    table, _, res = canon
    deep = _col(table, "beat_depth") >= 0.3
    assert deep.sum() >= 50
    rate_err = np.abs(res["beat_rate"].value.numpy() - _col(table, "beat_rate"))[deep]
    depth_err = np.abs(res["beat_depth"].value.numpy() - _col(table, "beat_depth"))[deep]
    assert np.isfinite(rate_err).mean() >= 0.95
    assert np.nanmedian(rate_err) <= 2.0
    assert np.nanmedian(rate_err) <= 0.1  # measured: about 0.002 Hz
    assert np.nanmedian(depth_err) <= 0.05  # measured: about 0.01


def test_beat_depth_with_known_hnr_is_better(canon):
    table, audio, res = canon
    n = 48
    deep = _col(table, "beat_depth")[:n] >= 0.3
    known = envelope_analysis(audio[:n], SR, hnr=torch.tensor(_col(table, "noise")[:n]))
    err_known = np.abs(known["beat_depth"].value.numpy() - _col(table, "beat_depth")[:n])[deep]
    err_est = np.abs(res["beat_depth"].value.numpy()[:n] - _col(table, "beat_depth")[:n])[deep]
    assert np.nanmedian(err_known) <= np.nanmedian(err_est) + 1e-3
    assert np.nanmedian(err_known) <= 0.02


def test_noise_ratio_and_lowest_f0(canon):
    table, audio, res = canon
    hnr = -10 * np.log10(res["noise_ratio"].value.numpy())
    moderate = _col(table, "noise") <= 30
    assert np.median(np.abs(hnr - _col(table, "noise"))[moderate]) <= 3.0
    np.testing.assert_allclose(noise_ratio(audio[:4], SR).numpy(), res["noise_ratio"].value.numpy()[:4])
    low = lowest_f0(audio, SR).numpy()
    true_low = _col(table, "f0") * 2 ** (-_col(table, "vibrato_depth") / 1200)
    ratio = low / true_low
    # the cutoff (0.9 x this value at most) must stay below every harmonic cross term
    assert (ratio <= 1.05).all()
    assert np.mean((ratio > 0.8) & (ratio <= 1.05)) >= 0.9


def test_descriptor_dicts(canon):
    table, audio, res = canon
    d = envelope_descriptors(audio[:8], SR)
    assert set(d) == set(ENVELOPE_KEYS)
    units = {"loudness": "dBFS", "attack": "s", "tremolo_rate": "Hz", "tremolo_depth": "index", "beat_rate": "Hz",
             "beat_depth": "index"}
    for k in ENVELOPE_KEYS:
        assert isinstance(d[k], Estimate) and d[k].unit == units[k]
        assert d[k].value.shape == (8,) and d[k].value.dtype == torch.float32
        assert len(d[k].reason) == 8
        defined = torch.isfinite(d[k].value).numpy()
        assert all((r == "") == bool(ok) for r, ok in zip(d[k].reason, defined, strict=True))
    for k, e in res.items():  # the full analysis: every value has its unit and a reason where it is NaN
        assert e.value.dtype == torch.float64 and e.unit, k
        assert all((r == "") == (not np.isnan(v)) for r, v in zip(e.reason, e.value.tolist(), strict=True)), k
    np.testing.assert_allclose(d["attack"].value.numpy(), res["attack"].value.numpy()[:8], rtol=1e-5)
    # the separate entry points give the same numbers
    np.testing.assert_allclose(attack_time(audio[:8], SR).value.numpy(), d["attack"].value.numpy())
    tr = tremolo(audio[:8], SR)
    assert set(tr) == {"tremolo_rate", "tremolo_depth"}
    np.testing.assert_allclose(tr["tremolo_depth"].value.numpy(), d["tremolo_depth"].value.numpy())
    assert tr["tremolo_depth"].reason == d["tremolo_depth"].reason
    bt = beats(audio[:8], SR)
    assert set(bt) == {"beat_rate", "beat_depth"}
    np.testing.assert_allclose(bt["beat_rate"].value.numpy(), d["beat_rate"].value.numpy())
    assert bt["beat_rate"].reason == d["beat_rate"].reason
    # an f0 track for the cutoff gives the same answers, within a little
    low = _col(table, "f0")[:8] * 2 ** (-_col(table, "vibrato_depth")[:8] / 1200)
    track = np.repeat(low[:, None], 200, axis=1)
    with_f0 = envelope_descriptors(audio[:8], SR, f0_track=track)
    np.testing.assert_allclose(with_f0["tremolo_rate"].value.numpy(), d["tremolo_rate"].value.numpy(), atol=0.05)
    # an Estimate for the track (as f0_track returns) is the same as its value
    est = Estimate(torch.from_numpy(track), "Hz", ("",) * 8, times=torch.arange(200) * 0.005)
    by_estimate = envelope_descriptors(audio[:8], SR, f0_track=est)
    np.testing.assert_array_equal(by_estimate["attack"].value.numpy(), with_f0["attack"].value.numpy())


def test_no_modulation_gives_nan_rates():
    space = FactorSpace.create(["f0", "loudness", "brightness", "odd_even", "noise", "attack",
                                "vibrato_rate", "vibrato_depth"])
    table = space.sample(32, seed=9)
    res = envelope_descriptors(render(table, SR, 1.0), SR)
    for key in ("tremolo_rate", "beat_rate"):
        assert torch.isnan(res[key].value).all()
        assert set(res[key].reason) <= {NO_MODULATION, BELOW_CUTOFF}
    assert (res["tremolo_depth"].value.numpy() < 0.05).all()
    assert (res["beat_depth"].value.numpy() < 0.08).all()


def test_attack_agrees_with_essentia():
    """essentia's LogAttackTime on its Envelope ranks the attacks as we do (Spearman)."""
    es = pytest.importorskip("essentia.standard")
    from scipy.stats import spearmanr

    space = FactorSpace.create(["f0", "loudness", "brightness", "odd_even", "noise", "attack"],
                               ranges={"noise": (10.0, 40.0)})
    table = space.sample(40, seed=3)
    audio = render(table, SR, 1.0)
    ours = attack_time(audio, SR).value.numpy()
    env = es.Envelope(sampleRate=SR, attackTime=1.0, releaseTime=50.0)
    lat = es.LogAttackTime(sampleRate=SR, startAttackThreshold=0.1, stopAttackThreshold=0.9)
    theirs = np.array([10 ** lat(env(clip.astype(np.float32)))[0] for clip in audio.numpy()])
    assert spearmanr(theirs, ours).statistic > 0.9
    assert spearmanr(ours, table["attack"]).statistic > 0.98


def test_envelope_removes_cross_terms_and_keeps_tremolo():
    table = {"seed": np.array([1, 2]), "f0": np.array([150.0, 150.0]), "noise": np.array([60.0, 60.0]),
             "attack": np.array([0.01, 0.01]), "tremolo_depth": np.array([0.0, 0.5]),
             "tremolo_rate": np.array([np.nan, 6.0]), "loudness": np.array([-20.0, -20.0])}
    audio = render(table, SR, 1.0)
    env = amplitude_envelope(audio, SR)
    assert env.power.shape[0] == 2 and env.times.shape[0] == env.power.shape[1]
    assert (env.cutoff.numpy() < 150).all() and (env.stop.numpy() < 150).all()
    steady = (env.times > 0.05) & (env.times < 0.95)
    flat = env.power[0, steady]
    assert float(flat.std() / flat.mean()) < 0.01  # partials' cross terms gone
    # the whole-clip mean of the envelope is the mean square
    np.testing.assert_allclose(float(env.power[0].mean()), 10 ** (-20 / 10), rtol=0.02)
    trem = env.power[1, steady].numpy()
    assert trem.max() / trem.min() > 2.0  # (1.5 / 0.5)^2 = 9 before the noise floor
    rates = tremolo(audio, SR)["tremolo_rate"]
    assert rates.reason == (NO_MODULATION, "") and abs(float(rates.value[1]) - 6.0) < 0.05


def test_beat_above_cutoff():
    table = {"seed": np.array([3]), "f0": np.array([200.0]), "beat_depth": np.array([0.8]),
             "beat_rate": np.array([40.0])}
    audio = render(table, SR, 1.0)
    ok = beats(audio, SR)["beat_rate"]
    assert abs(float(ok.value[0]) - 40.0) < 0.5 and ok.reason == ("",)
    # an f0 of 15 Hz puts the envelope's cutoff below the beat range
    low = beats(audio, SR, f0=torch.tensor([15.0]))
    assert math.isnan(float(low["beat_rate"].value[0])) and low["beat_rate"].reason == (ABOVE_CUTOFF,)
    assert low["beat_depth"].reason == (ABOVE_CUTOFF,)


def test_silence_gives_nan_with_reasons():
    table = {"seed": np.array([4]), "f0": np.array([300.0]), "tremolo_depth": np.array([0.5]),
             "tremolo_rate": np.array([5.0])}
    tone = render(table, SR, 1.0)
    audio = torch.cat([torch.zeros(1, SR), tone])
    d = envelope_descriptors(audio, SR)
    for k in ENVELOPE_KEYS:
        assert math.isnan(float(d[k].value[0])) and d[k].reason[0] == SILENT
    assert abs(float(d["tremolo_rate"].value[1]) - 5.0) < 0.05
    silent = loudness(np.zeros(100))
    assert silent.reason == (SILENT,) and silent.unit == "dBFS"


@pytest.mark.parametrize("bad", [np.zeros((2, 3, 100)), np.zeros((0, 100)), np.zeros((2, 0)),
                                 np.array([0.1, np.nan, 0.2] * 100)])
def test_bad_audio(bad):
    with pytest.raises(AudioError):
        envelope_descriptors(bad, SR)
    with pytest.raises(AudioError):
        loudness(bad)


def test_bad_arguments():
    x = np.random.default_rng(0).normal(0, 0.1, (2, 4000))
    with pytest.raises(SampleRateError):
        envelope_descriptors(x, 0)
    with pytest.raises(SampleRateError):
        amplitude_envelope(x, 16000.5)
    with pytest.raises(ConfigError):
        tremolo(x, SR, rate_range=(10.0, 3.0))
    with pytest.raises(ConfigError):
        beats(x, SR, rate_range=(0.0, 30.0))
    with pytest.raises(ConfigError):
        envelope_descriptors(x, SR, hnr=np.array([10.0, 20.0, 30.0]))
    with pytest.raises(AudioError):
        envelope_descriptors(x, SR, f0_track=np.ones((3, 10)))
