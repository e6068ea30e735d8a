"""The Resemblyzer speaker encoder rebuilt natively, against the resemblyzer package's own VoiceEncoder."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from ontoscope.errors import AudioError, ConfigError
from ontoscope.models.protocol import AudioModel
from ontoscope.models.registry import load_model
from tests.package_files import load_file, stand_in_package

SR = 16000
HOP = 160


def harmonic(f0: float, seconds: float, amp: float = 0.25, partials: int = 6) -> np.ndarray:
    """A harmonic tone (1/k amplitudes), ``amp`` peak."""
    t = np.arange(int(round(seconds * SR))) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t + 0.3 * k) / k for k in range(1, partials + 1) if f0 * k < SR / 2)
    return (amp * x / np.abs(x).max()).astype(np.float32)


def sweep_mix(seconds: float, seed: int = 0) -> np.ndarray:
    """A 100 -> 1000 Hz exponential sweep with a 330 Hz tone and a little noise."""
    t = np.arange(int(round(seconds * SR))) / SR
    phase = 2 * np.pi * 100 * seconds / np.log(10) * (10 ** (t / seconds) - 1)
    x = 0.15 * np.sin(phase) + harmonic(330.0, seconds, amp=0.1)
    return (x + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def noise(seconds: float, seed: int = 1, amp: float = 0.05) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(round(seconds * SR)))).astype(np.float32)


VOWELS = {"a": (730, 1090, 2440), "i": (270, 2290, 3010), "u": (300, 870, 2240), "e": (530, 1840, 2480)}


def voice(f0: float, formant_scale: float, vowels: str, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A voice-like source: a harmonic glottal source (1/k^1.5, 5 Hz vibrato of 3 %) through three formant
    resonators per vowel, the vowels in turn; ``formant_scale`` shifts the formants (vocal-tract length)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f = f0 * (1 + 0.03 * np.sin(2 * np.pi * (5 + rng.uniform(-0.5, 0.5)) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f) / SR
    src = sum(np.sin(k * phase) / k ** 1.5 for k in range(1, int(SR / 2 / (f0 * 1.1))))
    src = src + 0.01 * rng.standard_normal(n)
    seg = n // len(vowels)
    out = np.zeros(n)
    for j, v in enumerate(vowels):
        y = src[j * seg:(j + 1) * seg] if j < len(vowels) - 1 else src[j * seg:]
        for fr, bw in zip(np.array(VOWELS[v]) * formant_scale, (80, 100, 120), strict=True):
            r, th = np.exp(-np.pi * bw / SR), 2 * np.pi * fr / SR
            y = lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], y)
        out[j * seg:j * seg + len(y)] = y
    out *= np.minimum(1, np.minimum(t, seconds - t) / 0.05)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return load_model("resemblyzer")


@pytest.fixture
def package(monkeypatch):
    """The package's own ``audio`` module and ``VoiceEncoder`` (cpu), loaded from its files with a stub
    ``webrtcvad`` (only its silence trimming needs it) and without running ``resemblyzer/__init__``."""
    from ontoscope.models.adapters.resemblyzer import resemblyzer_weights

    root = resemblyzer_weights().parent
    monkeypatch.setitem(sys.modules, "webrtcvad", types.ModuleType("webrtcvad"))
    pkg = stand_in_package(monkeypatch, "resemblyzer", root)

    def load(name: str) -> types.ModuleType:
        module = load_file(monkeypatch, f"resemblyzer.{name}", root / f"{name}.py")
        setattr(pkg, name, module)
        return module

    load("hparams")
    audio = load("audio")
    encoder = load("voice_encoder").VoiceEncoder(device="cpu", verbose=False).eval()
    return audio, encoder


@pytest.mark.slow
def test_matches_the_package_voice_encoder(model, package):
    """Mel spectrogram, forward embedding and ``embed_utterance`` against the package on a 220 Hz harmonic
    tone, noise, a sweep mixed with a tone, a quiet tone (boosted by the -30 dBFS volume normalisation),
    a batch of 4, a 0.5 s clip (one zero-padded partial) and a 3.3 s clip (three partials).

    Largest differences measured: mel power 9.5e-7 absolute, 1.8e-7 of the clip's peak (1.2e-6 on the quiet
    clip, whose gain the package computes in float64); forward embedding 2.8e-7; embed_utterance 1.3e-7
    (partial embeddings 2.2e-7). Tolerances: mel 1e-5 of the peak, embeddings 1e-5.
    """
    audio, ref = package
    clips = [harmonic(220.0, 2.0), noise(2.0), sweep_mix(2.0), harmonic(150.0, 2.0, amp=0.0025)]
    batch = torch.from_numpy(np.stack(clips))
    prepared = [audio.normalize_volume(c, -30, increase_only=True).astype(np.float32) for c in clips]
    ref_mels = np.stack([audio.wav_to_mel_spectrogram(w) for w in prepared])  # [B, T, 40]
    with torch.no_grad():
        mels = model.encode(batch, "encoder.mel").transpose(1, 2).numpy()
        got = model(batch)
        want = ref(torch.from_numpy(ref_mels))
    assert mels.shape == ref_mels.shape == (4, 1 + 32000 // HOP, 40)
    for m, r in zip(mels, ref_mels, strict=True):
        assert np.abs(m - r).max() <= 1e-5 * r.max()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)

    for clip in [*clips, harmonic(300.0, 0.5), sweep_mix(3.3, seed=2)]:
        want_embed, want_partials, slices = ref.embed_utterance(
            audio.normalize_volume(clip, -30, increase_only=True).astype(np.float32), return_partials=True)
        with torch.no_grad():
            embed, partials = model.embed_utterance(torch.from_numpy(clip)[None], return_partials=True)
        assert partials.shape == (1, len(slices), 256)
        np.testing.assert_allclose(partials[0].numpy(), want_partials, atol=1e-5, rtol=0)
        np.testing.assert_allclose(embed[0].numpy(), want_embed, atol=1e-5, rtol=0)
    assert len(slices) == 3  # the 3.3 s clip: partials every 12 frames would be 1.3 per second


def test_partial_starts_are_the_package_slices(model, package):
    _, ref = package
    for n in (100, 8000, 21759, 21760, 25440, 52800, 160000):
        for rate, cover in ((1.3, 0.75), (2.0, 0.5), (0.625, 1.0)):
            _, mel_slices = ref.compute_partial_slices(n, rate, cover)
            assert model.partial_starts(n, rate=rate, min_coverage=cover) == [s.start for s in mel_slices]
    with pytest.raises(ConfigError, match="rate"):
        model.partial_starts(16000, rate=0.5)


def test_resume_from_every_site_equals_forward(model):
    x = torch.from_numpy(np.stack([voice(120.0, 1.0, "ai", 1.2), sweep_mix(1.2)]))
    with torch.no_grad():
        out = model(x)
        for site in model.sites():
            torch.testing.assert_close(model.resume(model.encode(x, site.name), site.name), out, atol=0, rtol=0)
    assert out.shape == (2, 256)


def test_sites_shapes_strides_and_frame_rates(model):
    """Shapes on two clip lengths give the declared stride (160 samples, 100 frames/s) at ``mel`` and every
    LSTM; the embedding has one frame whatever the length."""
    assert isinstance(model, AudioModel) and model.output == "embedding" and model.sample_rate == SR
    assert [s.name for s in model.sites()] == ["encoder.mel", "encoder.lstm1", "encoder.lstm2", "encoder.lstm3",
                                               "head.embedding"]
    lengths = (8000, 12800)
    acts = {}
    with torch.no_grad():
        for n in lengths:
            x = torch.from_numpy(np.stack([harmonic(200.0, n / SR), noise(n / SR)]))
            acts[n] = {s.name: model.encode(x, s.name) for s in model.sites()}
    for site in model.sites():
        a, b = (acts[n][site.name] for n in lengths)
        assert site.layout == "BCT" and a.shape[:2] == b.shape[:2] == (2, site.channels)
        if site.name == "head.embedding":
            assert a.shape[-1] == b.shape[-1] == 1 and site.stride is None and site.role == "head"
            assert site.global_context and site.receptive_field is None
            continue
        assert a.shape[-1] == 1 + lengths[0] // HOP and b.shape[-1] == 1 + lengths[1] // HOP
        measured = (lengths[1] - lengths[0]) / (b.shape[-1] - a.shape[-1])
        assert measured == site.stride == HOP and site.frame_rate(SR) == 100.0 and site.role == "encoder"
    assert model.site("encoder.mel").receptive_field == 400 and not model.site("encoder.mel").global_context
    for name in ("encoder.lstm1", "encoder.lstm2", "encoder.lstm3"):
        assert model.site(name).receptive_field is None and model.site(name).global_context
    assert len(model.site("encoder.mel").notes["mel_hz"]) == 40


def test_mel_frames_are_local_and_lstm_frames_see_the_whole_past():
    """A mel frame's gradient covers at most 400 samples centred on ``160 t``; an LSTM frame's reaches back
    to the clip's start and stops at the end of its mel frame (causal)."""
    model = load_model("resemblyzer", normalize=False)  # the per-clip gain would touch every sample a little
    x = torch.from_numpy(harmonic(180.0, 0.5))[None].requires_grad_(True)
    t = 25
    (g_mel,) = torch.autograd.grad(model.encode(x, "encoder.mel")[0, :, t].sum(), x)
    (g_rnn,) = torch.autograd.grad(model.encode(x, "encoder.lstm3")[0, :, t].pow(2).sum(), x)
    support = torch.nonzero(g_mel[0]).flatten()
    assert support.min() >= HOP * t - 200 and support.max() < HOP * t + 200
    support = torch.nonzero(g_rnn[0]).flatten()
    assert support.min() < 10 and support.max() < HOP * t + 200


@pytest.mark.slow
def test_embedding_is_unit_norm_and_groups_voices(model):
    """Two clips of one synthetic voice (f0 about 110 Hz, adult-male formants; different vowel orders and
    vibrato) are closer in cosine than either is to a second voice (f0 about 230 Hz, formants 1.2 times
    higher), and vice versa. Measured: within voices 0.81 / 0.82 (forward) and 0.90 / 0.86
    (embed_utterance), across 0.55 to 0.58 and 0.64 to 0.70."""
    a1, a2 = voice(110.0, 1.0, "aiue", seed=1), voice(112.0, 1.0, "euia", seed=2)
    b1, b2 = voice(230.0, 1.2, "aiue", seed=3), voice(225.0, 1.2, "uaei", seed=4)
    x = torch.from_numpy(np.stack([a1, a2, b1, b2]))
    with torch.no_grad():
        for embed in (model(x), model.embed_utterance(x)):
            torch.testing.assert_close(embed.norm(dim=1), torch.ones(4))
            assert embed.min() >= 0
            sim = embed @ embed.T
            across = sim[:2, 2:].max()
            assert sim[0, 1] > across + 0.1 and sim[2, 3] > across + 0.1


def test_embed_utterance_of_one_partial_is_forward_on_the_padded_clip(model):
    clip = torch.from_numpy(voice(140.0, 1.1, "ea", 1.0))[None]
    with torch.no_grad():
        one = model.embed_utterance(clip)
        whole = model(torch.nn.functional.pad(clip, (0, 160 * HOP - HOP - clip.shape[1])))
    torch.testing.assert_close(one, whole, atol=1e-6, rtol=0)


def test_volume_normalisation_only_raises_quiet_clips(model):
    loud = torch.from_numpy(harmonic(200.0, 0.5))[None]
    quiet = loud * 0.01
    with torch.no_grad():
        assert torch.equal(model.normalize_volume(loud), loud)
        rms = model.normalize_volume(quiet).pow(2).mean().sqrt()
        torch.testing.assert_close(20 * torch.log10(rms), torch.tensor(-30.0))
        torch.testing.assert_close(model(quiet), model(quiet * 3))
    raw = load_model("resemblyzer", normalize=False)
    with torch.no_grad():
        assert (raw(quiet) - raw(quiet * 3)).abs().max() > 1e-3


def test_bad_audio_is_one_clear_error(model):
    with pytest.raises(AudioError, match=r"\[batch, samples\]"):
        model(torch.zeros(16000))
    with pytest.raises(AudioError, match="at least 400 samples"):
        model(torch.zeros(1, 300))


def test_gradients_reach_the_audio_and_jvp_is_supported_or_refused(model):
    x = torch.from_numpy(sweep_mix(0.5))[None].requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[0, :8].sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    tangent = torch.randn_like(x)
    _, dmel = torch.func.jvp(lambda a: model.encode(a, "encoder.mel"), (x.detach(),), (tangent,))
    assert dmel.shape == (1, 40, 1 + x.shape[1] // HOP)
    try:
        torch.func.jvp(model, (x.detach(),), (tangent,))
    except NotImplementedError:
        pass  # forward-mode AD through nn.LSTM on CPU; the analysis falls back to finite differences


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(model):
    x = torch.from_numpy(np.stack([harmonic(220.0, 1.0), noise(1.0)]))
    gpu = load_model("resemblyzer").to("cuda")
    with torch.no_grad():
        torch.testing.assert_close(gpu(x.cuda()).cpu(), model(x), atol=1e-4, rtol=0)
        torch.testing.assert_close(gpu.embed_utterance(x.cuda()).cpu(), model.embed_utterance(x), atol=1e-4, rtol=0)
