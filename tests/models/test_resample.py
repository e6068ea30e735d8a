"""Resampling model input: against the analytic signal, scipy and librosa."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ontoscope.errors import AudioError, SampleRateError
from ontoscope.models.resample import as_batch, prepare, resample


def sine(f: float, sr: int, seconds: float = 1.0, phase: float = 0.3) -> np.ndarray:
    return np.sin(2 * np.pi * f * np.arange(int(round(seconds * sr))) / sr + phase)


@pytest.mark.parametrize(("sr", "target", "f"), [(44100, 16000, 1000.0), (16000, 24000, 3000.0),
                                                  (48000, 44100, 5000.0), (22050, 16000, 6000.0)])
def test_resampled_sine_is_the_sine_at_the_new_rate(sr, target, f):
    x = torch.tensor(sine(f, sr), dtype=torch.float32)[None]
    y = resample(x, sr, target)[0].numpy()
    truth = sine(f, target)
    assert y.shape == truth.shape
    inner = slice(200, -200)  # away from the edges, where the filter sees padding
    assert np.abs(y - truth)[inner].max() < 2e-3


def test_agrees_with_scipy_and_librosa():
    import librosa
    from scipy.signal import resample_poly

    sr, target = 44100, 16000
    rng = np.random.default_rng(0)
    x = sine(440.0, sr) + 0.5 * sine(2500.0, sr) + 0.01 * rng.standard_normal(sr)
    ours = resample(torch.tensor(x, dtype=torch.float32)[None], sr, target)[0].numpy()
    poly = resample_poly(x, 160, 441)
    soxr = librosa.resample(x, orig_sr=sr, target_sr=target, res_type="soxr_hq")
    inner = slice(300, -300)
    # all three keep the tones and drop what is above 8 kHz; they differ only in their filters' details
    assert np.abs(ours - poly)[inner].max() < 1e-2
    assert np.abs(ours - soxr[: len(ours)])[inner].max() < 1e-2


def test_band_limit_removes_content_above_the_new_nyquist():
    sr, target = 48000, 16000
    x = torch.tensor(sine(12000.0, sr), dtype=torch.float32)[None]  # would alias to 4 kHz
    y = resample(x, sr, target)
    assert y[0, 300:-300].abs().max() < 1e-2


def test_batch_equal_rates_and_gradients():
    x = torch.randn(3, 4410, generator=torch.Generator().manual_seed(0), requires_grad=True)
    y = resample(x, 44100, 16000)
    assert y.shape == (3, 1600)
    for i in range(3):  # batched = one at a time
        torch.testing.assert_close(y[i], resample(x[i:i + 1], 44100, 16000)[0])
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    same = torch.randn(2, 100)
    assert resample(same, 16000, 16000) is same


def test_prepare_and_validation():
    class M:
        sample_rate = 16000

    a = prepare(sine(440.0, 8000, 0.5).astype(np.float64), 8000, M())
    assert a.dtype == torch.float32 and a.shape == (1, 8000)
    with pytest.raises(AudioError, match="NaN"):
        as_batch(np.array([0.0, np.nan]))
    with pytest.raises(AudioError, match="shape"):
        as_batch(np.zeros((2, 2, 10)))
    with pytest.raises(AudioError, match="empty"):
        as_batch(np.zeros((1, 0)))
    with pytest.raises(SampleRateError):
        prepare(np.zeros(10), 0, M())
