"""Silero VAD adapter: the rebuilt network against the silero-vad package's own streaming inference."""

from __future__ import annotations

import importlib.util
import types

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from ontoscope.errors import AudioError, ConfigError
from ontoscope.models.protocol import AudioModel, SiteError
from ontoscope.models.registry import load_model

SR = 16000
CHUNK = 512

pytest.importorskip("safetensors")
if importlib.util.find_spec("silero_vad") is None:
    pytest.skip("silero-vad is not installed (`pip install --no-deps silero-vad==6.2.3`)", allow_module_level=True)


def harmonic(f0: float, seconds: float, partials: int = 6) -> torch.Tensor:
    """A harmonic tone (1/k amplitudes) ``[1, samples]``, peak 0.25."""
    t = np.arange(int(round(seconds * SR))) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t + 0.3 * k) / k for k in range(1, partials + 1) if f0 * k < SR / 2)
    return torch.tensor(0.25 * x / np.abs(x).max(), dtype=torch.float32)[None]


def sweep_and_noise(seconds: float, seed: int = 0) -> torch.Tensor:
    """A logarithmic sine sweep from 100 Hz to 4 kHz plus white noise, ``[1, samples]``."""
    t = np.arange(int(round(seconds * SR))) / SR
    k = np.log(4000 / 100) / seconds
    x = 0.2 * np.sin(2 * np.pi * 100 * (np.exp(k * t) - 1) / k)
    x = x + 0.03 * np.random.default_rng(seed).standard_normal(t.size)
    return torch.tensor(x, dtype=torch.float32)[None]


def noise(seconds: float, level: float = 0.1, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.tensor(level * rng.standard_normal(int(round(seconds * SR))), dtype=torch.float32)[None]


_VOWELS = (((730, 90), (1090, 110), (2440, 160)), ((270, 60), (2290, 100), (3010, 150)),
           ((300, 60), (870, 90), (2240, 150)), ((530, 80), (1840, 100), (2480, 150)),
           ((570, 80), (840, 90), (2410, 150)))


def _formants(x: np.ndarray, formants: tuple) -> np.ndarray:
    for fc, bw in formants:
        r = np.exp(-np.pi * bw / SR)
        x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / SR), r * r], x)
    return x


def vowel(seconds: float, f0: float = 130.0) -> torch.Tensor:
    """One steady /a/-like vowel: a harmonic source with slow vibrato through three formant resonators, with a
    4 Hz syllabic amplitude envelope, ``[1, samples]``, peak 0.3."""
    t = np.arange(int(round(seconds * SR))) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t))) / SR
    x = _formants(sum(np.sin(k * phase) / k for k in range(1, int(SR / 2 / (f0 * 1.1)))), _VOWELS[0])
    x = x * np.clip(np.sin(np.pi * 4.0 * t), 0, None) ** 0.5
    return torch.tensor(0.3 * x / np.abs(x).max(), dtype=torch.float32)[None]


def syllables(seconds: float, f0: float = 140.0, rate: float = 4.0, seed: int = 0) -> torch.Tensor:
    """Speech-like babble ``[1, samples]``: a harmonic source with a falling f0 contour, a different vowel's
    formants per syllable (``rate`` per second), a syllabic amplitude envelope, and pre-emphasised noise bursts
    (fricative-like) in the gaps between syllables."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    f = f0 * (1.15 - 0.3 * t / seconds) * (1 + 0.04 * np.sin(2 * np.pi * rate * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    source = sum(np.sin(k * phase) / k for k in range(1, 40))
    index = (t * rate).astype(int)
    x = np.zeros_like(t)
    for s in np.unique(index):
        x[index == s] = _formants(source, _VOWELS[rng.integers(len(_VOWELS))])[index == s]
    x = x / np.abs(x).max() * np.clip(np.sin(np.pi * rate * t), 0, None) ** 0.7
    gaps = (np.sin(np.pi * rate * t) ** 2 < 0.1).astype(float)
    x = x + lfilter([1, -0.95], [1], 0.05 * rng.standard_normal(t.size)) * gaps
    return torch.tensor(0.3 * x / np.abs(x).max(), dtype=torch.float32)[None]


@pytest.fixture(scope="module")
def vad():
    return load_model("silero-vad")


@pytest.fixture(scope="module")
def package():
    """The package's ``utils_vad`` module and its TorchScript model, loaded from the installed files without the
    package ``__init__`` (whose ``model`` module sets torch's global thread count on import)."""
    from ontoscope.models.adapters.silero_vad import silero_vad_data

    data = silero_vad_data("silero_vad.jit").parent
    spec = importlib.util.spec_from_file_location("silero_vad_utils_reference", data.parent / "utils_vad.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    return types.SimpleNamespace(utils=utils, jit=utils.init_jit_model(str(data / "silero_vad.jit")))


class _Recorder:
    """Wraps the TorchScript model and records every probability ``get_speech_timestamps`` asks it for."""

    def __init__(self, jit: torch.jit.ScriptModule) -> None:
        self.jit, self.probs = jit, []

    def reset_states(self) -> None:
        self.jit.reset_states()
        self.probs = []

    def __call__(self, chunk: torch.Tensor, sr: int) -> torch.Tensor:
        out = self.jit(chunk, sr)
        self.probs.append(float(out))
        return out


def _signals() -> dict[str, torch.Tensor]:
    return {"harmonic_220": harmonic(220.0, 1.3), "noise": noise(1.1), "sweep_noise": sweep_and_noise(1.5),
            "syllables": syllables(2.0), "vowel": vowel(1.2), "silence": torch.zeros(1, 3000)}


def test_matches_the_packages_own_streaming_inference(vad, package):
    """Probabilities equal those silero's ``get_speech_timestamps`` computes (the TorchScript model called on
    each zero-padded 512-sample chunk after ``reset_states``), and so do the speech segments it derives from them.
    Clip lengths are not multiples of 512. Largest difference measured: 3.8e-6 on the steady vowel, at most 1.4e-6
    on the others (float32 rounding of the convolutions, which run on all chunks at once here, carried on by the
    LSTM); on another machine of the same kind, 1.1e-5 on the syllables and 8.6e-6 on the vowel (the CPU's float32
    kernels round differently); tolerance 3e-5."""
    recorder = _Recorder(package.jit)
    for name, x in _signals().items():
        ref_segments = package.utils.get_speech_timestamps(x[0], recorder, sampling_rate=SR)
        expected = torch.tensor(recorder.probs)
        with torch.no_grad():
            got = vad(x)
        assert got.shape == (1, 1, -(-x.shape[1] // CHUNK)), name
        torch.testing.assert_close(got[0, 0], expected, atol=3e-5, rtol=0, msg=name)
        segments = package.utils.get_speech_timestamps_from_probs(got[0, 0].tolist(), sampling_rate=SR,
                                                                   audio_length_samples=x.shape[1])
        assert segments == ref_segments, name


def test_batched_clips_match_the_packages_audio_forward(vad, package):
    """A batch of three different clips against the TorchScript model's own batched ``audio_forward`` (the
    state of each clip in the batch carried chunk to chunk). Largest difference measured: 3.3e-7 (tolerance 1e-5)."""
    n = 17000
    x = torch.cat([harmonic(220.0, n / SR), syllables(n / SR, seed=1), sweep_and_noise(n / SR)])
    expected = package.jit.audio_forward(x, SR)
    with torch.no_grad():
        got = vad(x)
    assert got.shape == (3, 1, 34) and expected.shape == (3, 34)
    torch.testing.assert_close(got[:, 0], expected, atol=1e-5, rtol=0)


def test_resume_from_every_site_equals_forward(vad):
    x = torch.cat([syllables(0.7), noise(0.7, seed=3)])
    with torch.no_grad():
        full = vad(x)
        for site in vad.sites():
            out = vad.resume(vad.encode(x, site.name), site.name)
            torch.testing.assert_close(out, full, atol=0, rtol=0, msg=site.name)
    assert full.shape == (2, 1, 22)


def test_sites_shapes_strides_and_receptive_fields(vad):
    expect = {"encoder.stft": (129, 4), "encoder.conv1": (128, 4), "encoder.conv2": (64, 2), "encoder.conv3": (64, 1),
              "encoder.conv4": (128, 1), "encoder.lstm": (128, None), "head": (1, None)}
    assert [s.name for s in vad.sites()] == list(expect)
    frames = {}
    with torch.no_grad():
        for n in (5000, 8192):  # 10 and 16 chunks (5000 is zero-padded to 5120)
            x = noise(n / SR, seed=n)
            for site in vad.sites():
                acts = vad.encode(x, site.name)
                channels, sub = expect[site.name]
                shape = (1, channels, sub, -(-n // CHUNK)) if sub else (1, channels, -(-n // CHUNK))
                assert acts.shape == shape and site.channels == channels, site.name
                assert site.layout == ("BCFT" if sub else "BCT") and site.freq_bins == sub, site.name
                frames.setdefault(site.name, []).append(acts.shape[-1])
    for site in vad.sites():
        measured = (8192 - 5120) / (frames[site.name][1] - frames[site.name][0])
        assert site.stride == measured == CHUNK and site.frame_rate(SR) == 31.25, site.name
    conv_fields = {"encoder.stft": (128, 256), "encoder.conv1": (128, 512), "encoder.conv2": (256, 576),
                   "encoder.conv3": (512, 576), "encoder.conv4": (512, 576)}
    for name, (stride, rf) in conv_fields.items():
        site = vad.site(name)
        assert (site.notes["within_chunk_stride"], site.notes["within_chunk_rf"]) == (stride, rf), name
        assert site.receptive_field == 576 and not site.global_context, name
    for name in ("encoder.lstm", "head"):
        assert vad.site(name).receptive_field is None and vad.site(name).global_context
    assert vad.site("encoder.stft").notes["bin_hz"] == 62.5


def test_receptive_fields_measured_by_gradients(vad):
    """Chunk 3 of the convolutional sites reads samples [3 * 512 - 64, 4 * 512): its chunk and the 64 samples
    before it, the declared 576, less the window's first sample, which the periodic Hann window weights by zero;
    the LSTM's chunk 3 reads the whole past and nothing after its chunk."""
    x = noise(4096 / SR, seed=7).requires_grad_(True)
    start = 3 * CHUNK - 64 + 1
    for name, first in (("encoder.stft", start), ("encoder.conv2", start), ("encoder.conv4", start),
                        ("encoder.lstm", 0), ("head", 0)):
        (grad,) = torch.autograd.grad(vad.encode(x, name)[..., 3].sum(), x)
        support = grad[0].nonzero().flatten()
        assert (int(support.min()), int(support.max())) == (first, 4 * CHUNK - 1), name
        if name in ("encoder.stft", "encoder.conv4"):
            assert support.numel() == vad.site(name).receptive_field - 1


def test_the_operator_analysis_traces_the_chunks_and_the_recurrence(vad):
    """The traced geometry equals the declared one (512-sample chunks read through 576-sample windows), the LSTM
    sites are recurrent, and their effective memory is longer than a chunk's window."""
    from ontoscope.operators.receptive_field import site_geometry

    geo = site_geometry(vad).set_index("site")
    assert (geo["stride"] == 512).all() and (geo["empirical_stride"] == 512).all() and geo["geometry_agrees"].all()
    convs = ["encoder.stft", "encoder.conv1", "encoder.conv2", "encoder.conv3", "encoder.conv4"]
    assert (geo.loc[convs, "receptive_field_samples"] == 576).all()
    assert geo.loc["encoder.lstm", "recurrent"] and geo.loc["head", "recurrent"]
    assert not geo.loc["encoder.conv4", "recurrent"]
    assert geo.loc["encoder.lstm", "effective_rf_samples"] > 4 * 576


def test_speech_like_babble_is_detected_and_silence_and_steady_sounds_are_not(vad):
    """Synthetic babble (changing vowel formants, falling f0, syllabic envelope, noise bursts between syllables)
    is speech for the trained model: mean probability 0.42 and 27 of 63 chunks above 0.5 (measured); silence stays
    at 0.009, steady white noise at most 0.032 and a steady harmonic tone at most 0.20. A single steady vowel, even
    with a syllabic envelope, is detected only at its onset (0.70 within the first 128 ms) and stays below 0.09
    after 1 s: the model responds to spectral change, not to a steady voiced formant spectrum."""
    with torch.no_grad():
        babble = vad(syllables(2.0))[0, 0]
        steady_vowel = vad(vowel(2.0))[0, 0]
        others = {"silence": vad(torch.zeros(1, 32000)), "noise": vad(noise(2.0, seed=1)),
                  "tone": vad(harmonic(220.0, 2.0))}
    assert babble.mean() > 0.3 and int((babble > 0.5).sum()) >= 20
    assert others["silence"].max() < 0.01 and others["noise"].max() < 0.05
    assert others["tone"].max() < 0.3
    assert steady_vowel[:4].max() > 0.5 and steady_vowel[32:].max() < 0.15


def test_forward_mode_derivatives_and_gradients(vad):
    """``torch.func.jvp`` runs (the LSTM cell is written out, not ``nn.LSTM``) and equals the Jacobian times the
    tangent; digital silence has a finite gradient (the magnitude's floor)."""
    x = noise(1500 / SR, seed=2)
    v = noise(1500 / SR, level=1.0, seed=3)
    out, tangent = torch.func.jvp(vad, (x,), (v,))
    jac = torch.autograd.functional.jacobian(vad, x).reshape(-1, x.shape[1])
    torch.testing.assert_close(tangent.flatten(), jac @ v[0], atol=1e-6, rtol=1e-4)
    silent = torch.zeros(1, 1024, requires_grad=True)
    vad(silent).sum().backward()
    assert torch.isfinite(silent.grad).all()


def test_weights_are_the_packaged_models(vad, package):
    """The adapter's weights (read from the ONNX file's initialisers) are the TorchScript model's, bit for bit;
    the packaged safetensors file holds different weights that do not reproduce the package's inference."""
    from ontoscope.models.adapters.silero_vad import _ONNX_NAMES, load_silero_vad

    jit_state = package.jit._model.state_dict()
    mine = vad.state_dict()
    assert set(mine) == set(_ONNX_NAMES)
    for key, onnx_key in _ONNX_NAMES.items():
        assert torch.equal(mine[key], jit_state[onnx_key.removeprefix("model.")]), key
    other = load_silero_vad(weights="safetensors")
    assert {k: v.shape for k, v in other.state_dict().items()} == {k: v.shape for k, v in mine.items()}
    assert torch.equal(other.stft_conv.weight, vad.stft_conv.weight)
    assert not torch.equal(other.conv1.weight, vad.conv1.weight)
    with torch.no_grad():
        x = syllables(1.0)
        assert (other(x) - vad(x)).abs().max() > 0.05


def test_onnx_reader_agrees_with_the_onnx_package():
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from ontoscope.models.adapters._onnx import read_onnx
    from ontoscope.models.adapters.silero_vad import silero_vad_data

    path = silero_vad_data("silero_vad_16k_op15.onnx")
    ref = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    mine = read_onnx(path)[1]
    assert set(mine) == set(ref)
    for name, array in ref.items():
        np.testing.assert_array_equal(mine[name], array, err_msg=name)


def test_protocol_and_bad_audio(vad):
    assert isinstance(vad, AudioModel) and vad.output == "probability" and vad.sample_rate == SR
    assert vad.decode(torch.zeros(1, 1, 3), "head") is None
    assert not any(p.requires_grad for p in vad.parameters()) and not vad.training
    assert vad(torch.zeros(2, 1)).shape == (2, 1, 1)
    with pytest.raises(AudioError, match=r"\[batch, samples\]"):
        vad(torch.zeros(512))
    with pytest.raises(AudioError, match="at least 1 sample "):
        vad(torch.zeros(1, 0))
    with pytest.raises(SiteError):
        vad.encode(torch.zeros(1, 512), "encoder.conv5")
    with pytest.raises(ConfigError, match="'onnx' or 'safetensors'"):
        load_model("silero-vad", weights="jit")
