import math

import librosa
import numpy as np
import pytest
import torch

from ontoscope.models.frontend import Spectrogram, mel_filterbank
from ontoscope.models.losses import multi_resolution_stft_loss, multi_scale_mel_loss


@pytest.mark.parametrize("sr, n_fft, n_mels", [(16000, 512, 64), (22050, 1024, 80), (8000, 256, 40)])
def test_mel_filterbank_equals_librosa(sr, n_fft, n_mels):
    ours = mel_filterbank(sr, n_fft, n_mels)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-7)


def test_logmel_equals_librosa_melspectrogram():
    x = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    ours = Spectrogram(16000, 512, 128, "logmel", 64)(torch.from_numpy(x)[None])[0, 0].numpy()
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=512, hop_length=128, n_mels=64, pad_mode="constant")
    np.testing.assert_allclose(ours, np.log(ref + 1e-5), atol=1e-3)


def test_griffin_lim_recovers_a_tone():
    sr = 16000
    t = torch.arange(sr) / sr
    x = 0.5 * torch.sin(2 * torch.pi * 440 * t)
    front = Spectrogram(sr, 512, 128, "stft")
    y = front.griffin_lim(front.magnitude(x[None]), n_iter=32, length=sr)[0]
    spec = np.abs(np.fft.rfft(y.numpy()))
    assert np.argmax(spec) == pytest.approx(440, abs=1)
    # the magnitude is matched closely (phase is free)
    rebuilt = front.magnitude(y[None])
    target = front.magnitude(x[None])
    assert (rebuilt - target).norm() / target.norm() < 0.1


def test_mrstft_loss_is_zero_on_identity_and_grows_with_error():
    x = torch.randn(2, 4000)
    assert multi_resolution_stft_loss(x, x) < 1e-5
    small = multi_resolution_stft_loss(x + 0.01 * torch.randn_like(x), x)
    large = multi_resolution_stft_loss(x + 0.5 * torch.randn_like(x), x)
    assert 0 < small < large


def test_mel_loss_is_zero_on_identity_and_grows_with_a_pitch_shift():
    sr = 16000
    t = torch.arange(sr // 2) / sr

    def tone(f0: float) -> torch.Tensor:  # seven harmonics at 1/k
        return 0.3 * sum(torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 8))[None]

    x = tone(110.0)
    assert multi_scale_mel_loss(x, x, sr) == 0
    # measured: 0.09, 0.14, 0.17, 0.18, 0.23 at 5, 10, 25, 50, 100 cents
    losses = [float(multi_scale_mel_loss(tone(110.0 * 2 ** (c / 1200)), x, sr)) for c in (5, 10, 25, 50, 100)]
    assert all(b > a for a, b in zip(losses, losses[1:], strict=False)) and losses[0] > 0.01
