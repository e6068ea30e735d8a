import librosa
import numpy as np
import pytest
import torch

from ontoscope.descriptors.spectral import (
    rms,
    spectral_centroid,
    spectral_features,
    spectral_flatness,
    spectral_rolloff,
    spectral_spread,
    spectral_summary,
    stft_magnitude,
    stft_power,
)
from ontoscope.errors import AudioError, ConfigError
from ontoscope.stimuli.factors import FactorSpace
from ontoscope.stimuli.synth import render


def _librosa(y, sr, n_fft, hop):
    kw = {"n_fft": n_fft, "hop_length": hop}
    return {
        "centroid": librosa.feature.spectral_centroid(y=y, sr=sr, **kw)[:, 0],
        "spread": librosa.feature.spectral_bandwidth(y=y, sr=sr, **kw)[:, 0],
        "flatness": librosa.feature.spectral_flatness(y=y, **kw)[:, 0],
        "rolloff": librosa.feature.spectral_rolloff(y=y, sr=sr, **kw)[:, 0],
        "rms": librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop)[:, 0],
    }


@pytest.fixture(scope="module")
def clips():
    x = render(FactorSpace.create().sample(12, seed=3), 16000, 1.0)
    rng = np.random.default_rng(1)
    noise = torch.tensor(0.05 * rng.standard_normal((2, 16000)), dtype=torch.float32)
    gap = x[:1].clone()
    gap[:, 4000:9000] = 0.0  # silent frames inside a clip
    return torch.cat([x, noise, gap])


@pytest.mark.parametrize("sr,n_fft,hop", [(16000, 2048, 512), (16000, 1024, 256), (22050, 512, 128)])
def test_every_frame_matches_librosa(clips, sr, n_fft, hop):
    y = clips.numpy()
    ref = _librosa(y, sr, n_fft, hop)
    ours = spectral_features(clips, sr, n_fft, hop)
    for key, value in ref.items():
        got = ours[key].numpy()
        assert got.shape == value.shape, key
        np.testing.assert_allclose(got, value, rtol=1e-2, atol=1e-7, err_msg=key)
    # the single-feature functions give the same frames
    np.testing.assert_allclose(spectral_centroid(clips, sr, n_fft, hop).numpy(), ref["centroid"], rtol=1e-2)
    np.testing.assert_allclose(spectral_spread(clips, sr, n_fft, hop).numpy(), ref["spread"], rtol=1e-2)
    np.testing.assert_allclose(spectral_flatness(clips, sr, n_fft, hop).numpy(), ref["flatness"], rtol=1e-2)
    np.testing.assert_allclose(spectral_rolloff(clips, sr, n_fft, hop).numpy(), ref["rolloff"], rtol=1e-2)
    np.testing.assert_allclose(rms(clips, sr, n_fft, hop).numpy(), ref["rms"], rtol=1e-2, atol=1e-7)


def test_spectrogram_matches_librosa_stft(clips):
    y = clips[:3].numpy()
    ref = np.abs(librosa.stft(y, n_fft=1024, hop_length=256))
    mag = stft_magnitude(clips[:3], 1024, 256, sr=16000).numpy()
    assert mag.shape == ref.shape
    np.testing.assert_allclose(mag, ref, rtol=1e-3, atol=1e-4 * ref.max())
    np.testing.assert_allclose(stft_power(clips[:3], 1024, 256, sr=16000).numpy(), ref ** 2,
                               rtol=2e-3, atol=1e-4 * ref.max() ** 2)
    # a precomputed spectrogram gives the same centroid as audio
    s = torch.as_tensor(ref)
    np.testing.assert_allclose(spectral_centroid(None, 16000, 1024, 256, S=s).numpy(),
                               spectral_centroid(clips[:3], 16000, 1024, 256).numpy(), rtol=1e-3)


def test_sinusoid_has_known_values():
    sr, f = 16000, 1000.0
    t = np.arange(sr) / sr
    x = 0.5 * np.sin(2 * np.pi * f * t).astype(np.float32)
    frames = spectral_features(x, sr)
    inner = slice(4, -4)  # the edge frames see the clip's abrupt start and end
    assert np.abs(frames["centroid"][0, inner].numpy() - f).max() < 2.0
    assert np.abs(frames["rolloff"][0, inner].numpy() - f).max() <= sr / 2048 + 1e-6  # one bin
    assert frames["flatness"][0, inner].max() < 1e-3
    assert frames["spread"][0, inner].max() < 50.0
    assert abs(float(frames["rms"][0, 5]) - 0.5 / np.sqrt(2)) < 1e-3
    noise = np.random.default_rng(0).standard_normal(sr).astype(np.float32)
    assert float(spectral_summary(noise, sr)["flatness"].value[0]) > 0.5


def test_summary_is_the_frame_mean_and_skips_silence(clips):
    sr = 16000
    y = clips.numpy()
    ref = _librosa(y, sr, 2048, 512)
    summary = spectral_summary(clips, sr)
    mag = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    sounding = mag.sum(1) > 0
    assert not sounding[-1].all()  # the clip with a gap has silent frames
    for key in ("centroid", "spread", "flatness", "rolloff"):
        expect = np.array([ref[key][i][sounding[i]].mean() for i in range(len(y))])
        np.testing.assert_allclose(summary[key].value.numpy(), expect, rtol=1e-2, err_msg=key)
        assert summary[key].reason == ("",) * len(y)
    np.testing.assert_allclose(summary["rms"].value.numpy(), ref["rms"].mean(-1), rtol=1e-2)
    silent = spectral_summary(np.zeros((2, 8000), np.float32), sr)
    for key in ("centroid", "spread", "flatness", "rolloff"):
        assert torch.isnan(silent[key].value).all() and silent[key].reason == ("silent", "silent")
    assert (silent["rms"].value == 0).all() and silent["rms"].reason == ("", "")
    # librosa's conventions for a silent frame
    frame = spectral_features(np.zeros(4096, np.float32), sr)
    assert float(frame["centroid"][0, 0]) == 0 and float(frame["flatness"][0, 0]) == pytest.approx(1.0)


def test_shapes_and_input_types():
    x = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    s = spectral_summary(x, 16000)
    assert all(v.value.shape == (1,) and v.value.dtype == torch.float32 for v in s.values())
    assert {k: v.unit for k, v in s.items()} == {"centroid": "Hz", "spread": "Hz", "flatness": "ratio",
                                                "rolloff": "Hz", "rms": "FS"}
    f = spectral_features(torch.from_numpy(x).double(), 16000, 1024, 256)
    assert f["centroid"].shape == (1, 1 + 5000 // 256) and f["centroid"].dtype == torch.float32


@pytest.mark.parametrize("bad", [
    np.array([[0.0, np.nan, 0.1]], np.float32),
    np.zeros((0, 100), np.float32),
    np.zeros((2, 0), np.float32),
    np.zeros((2, 2, 100), np.float32),
    np.array(["a", "b"]),
])
def test_bad_audio_is_rejected(bad):
    with pytest.raises(AudioError):
        spectral_summary(bad, 16000)


def test_bad_parameters_are_rejected():
    x = np.zeros(1000, np.float32)
    with pytest.raises(ConfigError):
        spectral_summary(x, 16000, n_fft=0)
    with pytest.raises(ConfigError):
        spectral_rolloff(x, 16000, roll_percent=1.5)
    with pytest.raises(AudioError):
        spectral_centroid(None, 16000)
    with pytest.raises(AudioError):
        spectral_centroid(None, 16000, 1024, S=torch.zeros(1, 100, 3))
