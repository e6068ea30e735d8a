import numpy as np
import pytest
import scipy.signal
import torch
from torch.func import jvp

from ontoscope.errors import FactorError, SampleRateError
from ontoscope.stimuli.factors import FACTOR_NAMES, FactorSpace
from ontoscope.stimuli.reference import synthesize_reference
from ontoscope.stimuli.synth import Nuisance, render, synthesize


def _reference(table, sr, seconds):
    n = int(round(seconds * sr))
    nui = Nuisance.from_seeds(table["seed"].to_numpy(), n)
    return synthesize_reference(
        {c: table[c].to_numpy() for c in table.columns}, nui.partial_phase.double().numpy(),
        nui.vibrato_phase.numpy(), nui.tremolo_phase.numpy(), nui.noise.double().numpy(), sr)


@pytest.mark.parametrize("sr", [8000, 16000, 48000])
def test_matches_one_sine_per_partial_reference(sr):
    names = None if sr > 8000 else ["f0", "loudness", "brightness", "odd_even", "vibrato_depth", "vibrato_rate",
                                    "beat_depth", "beat_rate", "tremolo_depth", "tremolo_rate", "noise"]
    space = FactorSpace.create(names, ranges={"f0": (110, 1500)} if sr > 8000 else {"f0": (110, 600)})
    table = space.sample(6, seed=sr)
    x = render(table, sr, 0.5).numpy()
    ref = _reference(table, sr, 0.5)
    assert np.abs(x - ref).max() < 1e-4


def test_inharmonic_path_matches_reference():
    table = FactorSpace.create(["f0", "inharmonicity", "beat_depth", "beat_rate"]).sample(4, seed=1)
    assert (table["inharmonicity"] > 0).all()
    assert np.abs(render(table, 16000, 0.5).numpy() - _reference(table, 16000, 0.5)).max() < 1e-4


def test_loudness_is_exact_rms_level():
    table = FactorSpace.create().sample(32, seed=2)
    x = render(table, 16000, 1.0).double()
    level = 20 * torch.log10(x.pow(2).mean(1).sqrt()).numpy()
    np.testing.assert_allclose(level, table["loudness"], atol=1e-4)


def test_seeded_and_chunk_independent():
    table = FactorSpace.create(names=["f0", "inharmonicity", "vibrato_depth", "vibrato_rate"]).sample(10, seed=5)
    table.loc[[1, 4], "inharmonicity"] = 0.0  # mixed paths in one batch
    table.loc[[2, 4], "vibrato_depth"] = 0.0
    a = render(table, 16000, 0.25, chunk=3)
    b = render(table, 16000, 0.25, chunk=64)
    assert a.dtype == torch.float32 and a.shape == (10, 4000)
    assert torch.equal(a, b)
    other = table.assign(seed=table["seed"] + 1)
    assert not torch.allclose(render(other, 16000, 0.25), a)


def _steady(**values):
    table = {name: np.atleast_1d(np.asarray(v, dtype=np.float64)) for name, v in values.items()}
    table.setdefault("seed", np.array([0]))
    return table


def _peak_levels(x, sr, f0, count, stretch=lambda k: k):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    out = []
    for k in range(1, count + 1):
        band = np.abs(freqs - stretch(k) * f0) < f0 / 4
        out.append(20 * np.log10(spec[band].max()))
    return np.array(out)


def test_tilt_and_odd_even_are_exact_partial_levels():
    sr, f0 = 16000, 200.0
    x = render(_steady(f0=[f0], brightness=[-7.0], odd_even=[6.0], noise=[200.0], attack=[0.001]),
               sr, 2.0)[0].numpy()
    levels = _peak_levels(x[4000:-400], sr, f0, 20)
    k = np.arange(1, 21)
    design = np.stack([np.log2(k), np.where(k % 2, 1.0, -1.0), np.ones(20)], 1)
    coef = np.linalg.lstsq(design, levels, rcond=None)[0]
    assert coef[0] == pytest.approx(-7.0, abs=0.05)
    assert 2 * coef[1] == pytest.approx(6.0, abs=0.05)


def test_band_limited_no_aliasing():
    sr, f0 = 8000, 1100.0  # partials 1-3 fit below 4 kHz; a 4th at 4400 Hz would alias to 3600 Hz
    x = render(_steady(f0=[f0], brightness=[0.0], noise=[200.0]), sr, 1.0)[0].numpy()
    spec = np.abs(np.fft.rfft(x[1000:-200] * np.hanning(len(x) - 1200)))
    freqs = np.fft.rfftfreq(len(x) - 1200, 1 / sr)
    ref = spec[np.abs(freqs - f0) < 20].max()
    assert spec[np.abs(freqs - 3600) < 30].max() < ref * 1e-4
    assert spec[np.abs(freqs - 3300) < 20].max() > ref * 0.1


def test_inharmonic_partials_are_stretched():
    sr, f0, b = 16000, 150.0, 5e-4
    x = render(_steady(f0=[f0], inharmonicity=[b], brightness=[-3.0], noise=[200.0]), sr, 2.0)[0].numpy()
    x = x[2000:-400]
    n = 1 << 20
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    k = np.arange(1, 25)
    peaks = []
    for kk in k:
        centre = kk * f0 * np.sqrt(1 + b * kk * kk)
        band = np.abs(freqs - centre) < f0 / 4
        peaks.append(freqs[band][np.argmax(spec[band])])
    peaks = np.array(peaks)
    np.testing.assert_allclose(peaks, k * f0 * np.sqrt(1 + b * k * k), atol=0.1)
    # a harmonic model would be off by many Hz at k = 24
    assert abs(peaks[-1] - 24 * f0) > 20


def _envelope(x):
    return np.abs(scipy.signal.hilbert(x))


def test_attack_is_the_10_90_rise_time():
    sr = 16000
    for attack in (0.005, 0.05, 0.2):
        x = render(_steady(f0=[500.0], attack=[attack], noise=[200.0]), sr, 1.0, max_partials=1)[0].numpy()
        env = _envelope(x)
        top = np.median(env[int(0.5 * sr):int(0.8 * sr)])
        t10 = np.argmax(env > 0.1 * top) / sr
        t90 = np.argmax(env > 0.9 * top) / sr
        assert (t90 - t10) == pytest.approx(attack, rel=0.05, abs=3e-4)


@pytest.mark.parametrize("factor", ["tremolo", "beat"])
def test_modulation_index_of_the_envelope(factor):
    sr = 16000
    for depth in (0.2, 0.6):
        vals = {f"{factor}_depth": [depth], f"{factor}_rate": [7.0 if factor == "tremolo" else 30.0]}
        x = render(_steady(f0=[400.0], noise=[200.0], **vals), sr, 1.0, max_partials=1)[0].numpy()
        env = _envelope(x)[int(0.1 * sr):int(0.95 * sr)]
        index = (env.max() - env.min()) / (env.max() + env.min())
        assert index == pytest.approx(depth, abs=0.01)


def test_noise_is_at_the_asked_hnr():
    base = FactorSpace.create(["f0", "brightness", "tremolo_depth", "tremolo_rate"]).sample(8, seed=3)
    clean = render(base.assign(noise=300.0), 16000, 1.0).double()
    for hnr in (0.0, 10.0, 30.0):
        x = render(base.assign(noise=hnr), 16000, 1.0).double()
        alpha = (x * clean).sum(1) / (clean * clean).sum(1)
        harm = alpha[:, None] * clean
        measured = 10 * torch.log10(harm.pow(2).sum(1) / (x - harm).pow(2).sum(1))
        np.testing.assert_allclose(measured.numpy(), hnr, atol=0.3)


def test_fundamental_above_nyquist_is_an_error():
    with pytest.raises(SampleRateError, match="Nyquist"):
        render(_steady(f0=[5000.0]), 8000, 0.1)
    with pytest.raises(FactorError, match="seed"):
        render({"f0": np.array([100.0])}, 8000, 0.1)
    with pytest.raises(FactorError, match="outside its limits"):
        render(_steady(tremolo_depth=[1.5]), 8000, 0.1)
    with pytest.raises(FactorError, match="NaN"):
        render(_steady(f0=[np.nan]), 8000, 0.1)


def test_gradients_match_finite_differences():
    table = FactorSpace.create().sample(3, seed=4)
    nui = Nuisance.from_seeds(table["seed"].to_numpy(), 4000)
    base = {c: torch.tensor(table[c].to_numpy(), dtype=torch.float64) for c in FACTOR_NAMES}
    for name, rel_step in [("f0", 1e-6), ("brightness", 1e-4), ("vibrato_depth", 1e-4), ("attack", 1e-4),
                           ("tremolo_depth", 1e-4), ("beat_rate", 1e-4), ("noise", 1e-4)]:
        def f(v, name=name):
            return synthesize({**base, name: v}, nui, 16000).double()

        v0 = base[name]
        _, tangent = jvp(f, (v0,), (torch.ones_like(v0),))
        eps = rel_step * (v0.abs() + 1e-2)
        fd = (f(v0 + eps) - f(v0 - eps)) / (2 * eps[:, None])
        assert ((tangent - fd).norm() / fd.norm()) < 1e-2, name
    # reverse mode agrees with forward mode
    v = base["odd_even"].clone().requires_grad_(True)
    y = synthesize({**base, "odd_even": v}, nui, 16000)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    _, tangent = jvp(lambda u: synthesize({**base, "odd_even": u}, nui, 16000), (base["odd_even"],),
                     (torch.ones(3, dtype=torch.float64),))
    assert v.grad.sum().item() == pytest.approx((tangent * w).sum().item(), rel=1e-3)
