"""FCPE (torchfcpe's bundled fcpe_c_v001) behind the AudioModel protocol, checked against torchfcpe's own code."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from ontoscope.errors import AudioError, ConfigError
from ontoscope.models.protocol import AudioModel, encode_sites
from ontoscope.models.registry import load_model
from tests.package_files import load_file, stand_in_package

SR = 16000
HOP = 160


def harmonic(f0: float, seconds: float, partials: int = 6) -> torch.Tensor:
    """A harmonic tone (1/k amplitudes) ``[1, samples]`` at 0.25 peak."""
    t = np.arange(int(round(seconds * SR))) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t + 0.3 * k) / k for k in range(1, partials + 1) if f0 * k < SR / 2)
    return torch.tensor(0.25 * x / np.abs(x).max(), dtype=torch.float32)[None]


def sweep(f_start: float, f_end: float, seconds: float) -> torch.Tensor:
    """An exponential sine sweep with its second and third harmonics ``[1, samples]``."""
    t = np.arange(int(round(seconds * SR))) / SR
    rate = np.log(f_end / f_start) / seconds
    phase = 2 * np.pi * f_start * (np.exp(rate * t) - 1) / rate
    x = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    return torch.tensor(0.2 * x / np.abs(x).max(), dtype=torch.float32)[None]


def cents(f: torch.Tensor, ref: float | torch.Tensor) -> torch.Tensor:
    return 1200 * torch.log2(f / ref)


@pytest.fixture(scope="module")
def fcpe():
    return load_model("fcpe")


@pytest.fixture(scope="module")
def reference() -> Iterator[torch.nn.Module]:
    """torchfcpe's own InferCFNaiveMelPE (mel extractor, CFNaiveMelPE, decoder) from the installed files.

    The package's ``__init__`` and ``mel_extractor`` import torchaudio (only for resampling, unused at 16 kHz),
    which is stubbed while its modules load.
    """
    from ontoscope.models.adapters.fcpe import fcpe_checkpoint

    root = fcpe_checkpoint().parent.parent
    audio, transforms = types.ModuleType("torchaudio"), types.ModuleType("torchaudio.transforms")
    transforms.Resample = object
    audio.transforms = transforms
    with pytest.MonkeyPatch.context() as mp:
        for name, module in [("torchaudio", audio), ("torchaudio.transforms", transforms)]:
            mp.setitem(sys.modules, name, module)
        stand_in_package(mp, "torchfcpe", root)
        for name in ["mel_fn_librosa", "mel_extractor", "tools", "model_conformer_naive", "models",
                     "torch_interp", "models_infer"]:
            load_file(mp, f"torchfcpe.{name}", root / f"{name}.py")
        ref = sys.modules["torchfcpe.models_infer"].spawn_bundled_infer_model("cpu")
    yield ref.eval()


def _clips(seconds: float = 1.0) -> torch.Tensor:
    """A batch of four realistic clips: a 220 Hz tone, a 347 Hz tone in noise, white noise, a sweep with a tone."""
    g = torch.Generator().manual_seed(0)
    n = int(seconds * SR)
    return torch.cat([
        harmonic(220.0, seconds),
        harmonic(347.0, seconds) + 0.05 * torch.randn(1, n, generator=g),
        0.1 * torch.randn(1, n, generator=g),
        sweep(110.0, 880.0, seconds) + 0.5 * harmonic(523.25, seconds),
    ])


@pytest.mark.parametrize("n", [SR, 4321, 300])
def test_fcpe_matches_torchfcpe_inference(fcpe, reference, n):
    """Mel, 360-bin salience and f0 equal torchfcpe's own inference (``InferCFNaiveMelPE.infer``, local argmax
    decoder, threshold 0.006) on tones, tone in noise, noise and a sweep (batch 4), for a 1 s clip, an odd length
    and a clip short enough for torchfcpe's zero padding (300 samples).

    Largest differences measured on CPU (float32): 0 for the mel, 0 for the salience, 0 Hz for the f0 (the
    rebuild performs the same operations in the same order); the tolerances below leave room for other BLAS.
    """
    x = _clips()[:, :n]
    with torch.no_grad():
        mel_ref = reference.wav2mel(x.unsqueeze(-1), SR)  # [B, T, 128]
        sal_ref = reference.model(mel_ref)  # [B, T, 360]
        f0_ref = reference.infer(x.unsqueeze(-1), SR)[..., 0]  # [B, T], 0 where unvoiced
        mel = fcpe.encode(x, "encoder.mel")
        sal = fcpe.encode(x, "head")
        out = fcpe(x)
    assert out.shape == (4, 2, 1 + n // HOP)
    torch.testing.assert_close(mel.transpose(1, 2), mel_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sal.transpose(1, 2), sal_ref, atol=1e-5, rtol=1e-4)
    voiced = f0_ref > 0
    assert torch.equal(out[:, 1] > fcpe.site("head").notes["threshold"], voiced)
    assert voiced.any()
    assert cents(out[:, 0][voiced], f0_ref[voiced]).abs().max() < 0.1
    torch.testing.assert_close(out[:, 1], sal.amax(1), atol=0, rtol=0)


def test_fcpe_resume_from_every_site_equals_forward(fcpe):
    x = _clips(0.5)[:2]
    with torch.no_grad():
        full = fcpe(x)
        acts = encode_sites(fcpe, x, [s.name for s in fcpe.sites()])
        torch.testing.assert_close(acts["encoder.layer2"], fcpe.encode(x, "encoder.layer2"), atol=0, rtol=0)
        for name, act in acts.items():
            torch.testing.assert_close(fcpe.resume(act, name), full, atol=0, rtol=0)
        torch.testing.assert_close(fcpe.advance(fcpe.encode(x, "encoder.conv1"), "encoder.conv1", "encoder.layer3"),
                                   fcpe.encode(x, "encoder.layer3"), atol=0, rtol=0)


def test_fcpe_is_differentiable_in_forward_and_reverse_mode(fcpe):
    x = 0.5 * harmonic(300.0, 0.1).repeat(2, 1)
    x[1] += 0.01 * torch.randn(x.shape[1], generator=torch.Generator().manual_seed(1))
    tangent = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    out, jvp = torch.func.jvp(fcpe, (x,), (tangent,))
    assert jvp.shape == out.shape and torch.isfinite(jvp).all() and jvp.abs().sum() > 0
    xg = x.clone().requires_grad_(True)
    fcpe(xg)[:, 0].sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_fcpe_sites_strides_and_frame_rates(fcpe):
    """Shapes on two clip lengths give the declared stride (160 samples, 100 frames/s) at every site."""
    expect = {"encoder.mel": 128, "encoder.conv1": 512, "encoder.conv2": 512,
              **{f"encoder.layer{i}": 512 for i in range(1, 7)}, "head": 360}
    assert [s.name for s in fcpe.sites()] == list(expect)
    n1, n2 = 4000, 9600
    with torch.no_grad():
        a = encode_sites(fcpe, harmonic(200.0, n1 / SR), list(expect))
        b = encode_sites(fcpe, harmonic(200.0, n2 / SR), list(expect))
    for site in fcpe.sites():
        assert site.layout == "BCT" and site.channels == expect[site.name]
        assert a[site.name].shape == (1, site.channels, 1 + n1 // HOP)
        assert b[site.name].shape == (1, site.channels, 1 + n2 // HOP)
        measured = (n2 - n1) / (b[site.name].shape[-1] - a[site.name].shape[-1])
        assert measured == site.stride == HOP
        assert site.frame_rate(fcpe.sample_rate) == 100.0
    assert fcpe.site("encoder.mel").receptive_field == 1024 and fcpe.site("encoder.conv1").receptive_field == 1344
    for name in ["encoder.conv2", *[f"encoder.layer{i}" for i in range(1, 7)], "head"]:
        assert fcpe.site(name).receptive_field is None and fcpe.site(name).global_context
    assert fcpe.site("encoder.layer6").notes["conv_receptive_field"] == 1664 + 6 * 30 * HOP
    assert fcpe.site("head").role == "head" and fcpe.site("encoder.mel").role == "encoder"
    assert isinstance(fcpe, AudioModel) and fcpe.output == "pitch" and fcpe.sample_rate == SR
    assert fcpe.decode(torch.zeros(1, 360, 3), "head") is None


def test_fcpe_receptive_fields_measured_by_an_impulse(fcpe):
    """One changed sample moves exactly the frames whose declared window holds it at ``mel`` and ``conv1``
    (frame ``t`` centred on sample ``160 t + 80``); from ``conv2`` on, the group norm over all frames moves
    every frame (global context)."""
    x = harmonic(200.0, 1.0)
    p = 8037
    y = x.clone()
    y[0, p] += 0.5
    with torch.no_grad():
        for name in ["encoder.mel", "encoder.conv1", "encoder.conv2"]:
            changed = (fcpe.encode(x, name) != fcpe.encode(y, name)).any(1)[0]
            site = fcpe.site(name)
            centres = HOP * torch.arange(changed.shape[0]) + site.notes["hop"] // 2
            if site.receptive_field is None:
                assert changed.all()
            else:
                half = site.receptive_field // 2
                assert torch.equal(changed, (centres - half <= p) & (p < centres + half))


@pytest.mark.parametrize("f0", [110.0, 220.0, 440.0])
def test_fcpe_pitch_of_a_harmonic_tone(fcpe, f0):
    """Within 10 cents of the tone's f0 away from the clip's edges (measured: 4.7, 0.7 and 1.1 cents at 110, 220
    and 440 Hz), with a confidence above 0.5 (measured: at least 0.91)."""
    with torch.no_grad():
        out = fcpe(harmonic(f0, 0.5))
    inner = out[0, :, 5:-5]
    assert cents(inner[0], f0).abs().max() < 10.0
    assert inner[1].min() > 0.5


def test_fcpe_place_axis_shift_moves_pitch_by_its_step(fcpe):
    step = fcpe.site("head").notes["place"]["cents_per_step"]
    assert step == pytest.approx(1200 * np.log2(1975.5 / 32.70) / 359)
    with torch.no_grad():
        sal = fcpe.encode(harmonic(220.0, 0.3), "head")
        base = fcpe.resume(sal, "head")[0, 0, 5:-5]
        up = fcpe.resume(torch.roll(sal, 12, dims=1), "head")[0, 0, 5:-5]
    torch.testing.assert_close(cents(up, base), torch.full_like(base, 12 * step), atol=1e-2, rtol=0)


def test_fcpe_rejects_bad_audio_and_unsupported_checkpoints(fcpe):
    from ontoscope.models.adapters.fcpe import FcpeModel

    with pytest.raises(AudioError, match=r"\[batch, samples\]"):
        fcpe(torch.zeros(1, 1, 1600))
    with pytest.raises(AudioError, match="at least 160 samples"):
        fcpe(torch.zeros(1, 100))
    config = {"mel": {"sr": 16000, "num_mels": 128, "n_fft": 1024, "win_size": 1024, "hop_size": 160},
              "model": {"type": "CFNaiveMelPE", "conv_only": False, "out_dims": 360, "hidden_dims": 512,
                        "n_layers": 6, "f0_min": 32.7, "f0_max": 1975.5}}
    with pytest.raises(ConfigError, match="convolution-only"):
        FcpeModel(config)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fcpe_runs_on_cuda(fcpe):
    import copy

    x = _clips(0.5)
    with torch.no_grad():
        cpu = fcpe(x)
        gpu = copy.deepcopy(fcpe).to("cuda")(x.to("cuda")).cpu()
    torch.testing.assert_close(gpu[:, 1], cpu[:, 1], atol=1e-3, rtol=1e-3)
    assert cents(gpu[:, 0], cpu[:, 0]).abs().max() < 1.0
