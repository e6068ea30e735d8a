import essentia
import essentia.standard as es
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from ontoscope.descriptors.estimate import Estimate
from ontoscope.descriptors.harmonic import (
    brightness,
    harmonic_summary,
    hnr,
    inharmonicity,
    odd_even,
)
from ontoscope.descriptors.pitch import f0_track
from ontoscope.errors import AudioError, SampleRateError
from ontoscope.stimuli.factors import FactorSpace
from ontoscope.stimuli.synth import render

SR = 16000
essentia.log.infoActive = False
essentia.log.warningActive = False


@pytest.fixture(scope="module")
def random_set():
    """Every factor of the canon varied over its default range (vibrato, beats, noise, ...)."""
    table = FactorSpace.create().sample(96, seed=21)
    x = render(table, SR, 1.0)
    return table, x, harmonic_summary(x, SR)


def test_tilt_and_odd_even_on_random_stimuli(random_set):
    """The brief's targets: median absolute error <= 1 dB/oct and <= 1 dB."""
    table, _, out = random_set
    for key in ("brightness", "odd_even"):
        value = out[key].value.numpy()
        err = np.abs(value - table[key].to_numpy())
        assert np.isnan(value).mean() <= 0.05, key
        assert np.nanmedian(err) < 0.25, key
        assert np.nanpercentile(err, 75) < 0.5, key
        assert all(r == "" for r, v in zip(out[key].reason, value, strict=True) if np.isfinite(v))
        assert all(r for r, v in zip(out[key].reason, value, strict=True) if np.isnan(v))


def test_exact_on_clean_tones():
    table = FactorSpace.create(["f0", "brightness", "odd_even", "attack"]).sample(16, seed=5)
    out = harmonic_summary(render(table, SR, 1.0), SR)
    np.testing.assert_allclose(out["brightness"].value.numpy(), table["brightness"], atol=0.05)
    np.testing.assert_allclose(out["odd_even"].value.numpy(), table["odd_even"], atol=0.05)
    assert np.abs(out["inharmonicity"].value.numpy()).max() < 1e-6
    assert (out["hnr"].value.numpy() > 50).all()  # no noise was added (60 dB by default)


def test_hnr_follows_the_noise_level(random_set):
    table = FactorSpace.create(["f0", "noise", "brightness"], ranges={"noise": (0, 50)}).sample(48, seed=2)
    est = hnr(render(table, SR, 1.0), SR).value.numpy()
    assert np.median(np.abs(est - table["noise"])) < 0.5
    assert spearmanr(est, table["noise"])[0] > 0.99
    # with every factor varied it stays monotone, if less exact
    table, _, out = random_set
    value = out["hnr"].value.numpy()
    assert spearmanr(value, table["noise"], nan_policy="omit")[0] > 0.95
    assert np.nanmedian(np.abs(value - table["noise"])) < 1.5


def test_inharmonicity_is_the_stiff_string_coefficient():
    table = FactorSpace.create(["f0", "inharmonicity", "brightness"]).sample(24, seed=4)
    est = inharmonicity(render(table, SR, 1.0), SR).value.numpy()
    np.testing.assert_allclose(est, table["inharmonicity"], rtol=0.02)
    # monotone with the truth when everything else varies too
    names = ["f0", "inharmonicity", "noise", "brightness", "odd_even", "vibrato_depth", "vibrato_rate",
             "beat_depth", "beat_rate", "tremolo_depth", "tremolo_rate", "attack", "loudness"]
    table = FactorSpace.create(names).sample(48, seed=4)
    out = inharmonicity(render(table, SR, 1.0), SR)
    value = out.value.numpy()
    assert np.isnan(value).mean() < 0.25
    assert spearmanr(value, table["inharmonicity"], nan_policy="omit")[0] > 0.6
    assert all(r.startswith("too few partials") for r, v in zip(out.reason, value, strict=True)
               if np.isnan(v))


def _essentia_peaks(x, f0, size=4096):
    window = es.Windowing(type="blackmanharris92", size=size)
    spectrum = es.Spectrum(size=size)
    peaks = es.SpectralPeaks(sampleRate=SR, maxPeaks=200, minFrequency=20, maxFrequency=SR / 2 - 1,
                             magnitudeThreshold=0, orderBy="frequency")
    harmonic = es.HarmonicPeaks(maxHarmonics=64, tolerance=0.2)
    for start in range(2048, len(x) - size, 2048):
        freqs, mags = peaks(spectrum(window(x[start: start + size].astype(np.float32))))
        keep = freqs > 0
        yield harmonic(freqs[keep], mags[keep], float(f0))


def test_inharmonicity_trend_matches_essentia():
    table = FactorSpace.create(["inharmonicity"], fixed={"f0": 220.0}).sample(16, seed=3)
    x = render(table, SR, 1.0).numpy()
    inh = es.Inharmonicity()
    ref = [np.median([inh(f, m) for f, m in _essentia_peaks(x[i], 220.0)]) for i in range(len(x))]
    ours = inharmonicity(x, SR).value.numpy()
    assert spearmanr(ours, ref)[0] > 0.8
    assert spearmanr(ours, table["inharmonicity"])[0] > 0.99


def test_odd_even_trend_matches_essentia():
    """Essentia counts harmonics from 0: its OddToEven ratio is our even/odd, so the sign flips."""
    table = FactorSpace.create(["f0", "odd_even"]).sample(16, seed=3)
    x = render(table, SR, 1.0).numpy()
    ratio = es.OddToEvenHarmonicEnergyRatio()
    ref = [np.median([ratio(f, m) for f, m in _essentia_peaks(x[i], table["f0"][i])])
           for i in range(len(x))]
    ours = odd_even(x, SR).value.numpy()
    assert spearmanr(ours, ref)[0] < -0.9
    assert spearmanr(ours, table["odd_even"])[0] > 0.99


def test_given_track_and_single_functions_agree(random_set):
    table, x, out = random_set
    x = x[:8]
    track = f0_track(x, SR)
    given = harmonic_summary(x, SR, track)
    for key in ("brightness", "odd_even", "hnr"):
        np.testing.assert_allclose(given[key].value.numpy(), out[key].value[:8].numpy(), atol=0.3,
                                   err_msg=key)
    # the track's Estimate or its value: the same
    np.testing.assert_array_equal(harmonic_summary(x, SR, track.value)["hnr"].value.numpy(),
                                  given["hnr"].value.numpy())
    single = brightness(x, SR)
    assert isinstance(single, Estimate) and single.value.shape == (8,) and len(single.reason) == 8
    assert single.unit == "dB/octave"
    assert {k: e.unit for k, e in out.items()} == {"brightness": "dB/octave", "odd_even": "dB",
                                                  "inharmonicity": "ratio", "hnr": "dB", "n_partials": "count"}
    # the same analysis; FFT lengths (and so rounding) follow the batch
    np.testing.assert_allclose(single.value.numpy(), out["brightness"].value[:8].numpy(), atol=0.1)


def test_reasons_for_missing_values():
    t = np.arange(SR) / SR
    audio = np.stack([
        np.zeros(SR),                                   # silence
        0.1 * np.random.default_rng(0).standard_normal(SR),  # noise
        0.5 * np.sin(2 * np.pi * 700 * t),              # one partial only
    ]).astype(np.float32)
    out = harmonic_summary(audio, SR)
    for key in ("brightness", "odd_even", "inharmonicity", "hnr"):
        assert torch.isnan(out[key].value[:2]).all()
        assert out[key].reason[:2] == ("unvoiced", "unvoiced")
    assert torch.isnan(out["brightness"].value[2]) and "too few partials" in out["brightness"].reason[2]
    assert torch.isnan(out["inharmonicity"].value[2]) and "too few" in out["inharmonicity"].reason[2]
    assert out["hnr"].value[2] > 60 and out["hnr"].reason[2] == ""


def test_bad_input_is_rejected():
    x = np.zeros(SR, np.float32)
    with pytest.raises(AudioError):
        harmonic_summary(np.full(SR, np.nan, np.float32), SR)
    with pytest.raises(AudioError):
        brightness(np.zeros((1, 0), np.float32), SR)
    with pytest.raises(AudioError):
        odd_even(np.zeros((1, 2, SR), np.float32), SR)
    with pytest.raises(SampleRateError):
        hnr(x, SR, fmax=9000.0)
    with pytest.raises(AudioError):
        harmonic_summary(np.zeros((2, SR), np.float32), SR, f0_track=torch.zeros(3, 200))
