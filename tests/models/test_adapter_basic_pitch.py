"""Basic Pitch (Bittner et al. 2022) rebuilt in torch from its published ONNX graph, against the package's inference."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from ontoscope.errors import AudioError, ConfigError
from ontoscope.models.adapters._onnx import read_onnx
from ontoscope.models.adapters.basic_pitch import (
    AUDIO_N_SAMPLES,
    MIN_SAMPLES,
    basic_pitch_onnx,
    load_basic_pitch,
)
from ontoscope.models.protocol import AudioModel, encode_sites
from ontoscope.models.registry import load_model
from ontoscope.probing.interventions import PlaceShift, place_axis
from tests.package_files import load_file

SR = 22050
HOP = 256


def harmonic(f0: float, seconds: float, sr: int = SR, partials: int = 6) -> np.ndarray:
    """A harmonic tone (1/k amplitudes) ``[samples]``, 0.25 peak."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t + 0.3 * k) / k for k in range(1, partials + 1) if f0 * k < sr / 2)
    return 0.25 * x / np.abs(x).max()


def cents(f: np.ndarray | torch.Tensor, ref: float | np.ndarray) -> np.ndarray:
    return 1200 * np.log2(np.asarray(f) / ref)


@pytest.fixture(scope="module")
def model():
    return load_model("basic-pitch")


class _Stub(types.ModuleType):
    """A module whose every attribute is a placeholder class (for imports the inference code never calls)."""

    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


def _package_model(monkeypatch: pytest.MonkeyPatch):
    """basic_pitch.inference.Model on the ONNX graph, loaded from the package files without its __init__.

    The package __init__ probes tensorflow / coremltools / tflite; inference.py imports librosa, pretty_midi,
    resampy and mir_eval for file and MIDI handling, which ``Model.predict`` does not use: they are stubbed.
    """
    onnx_path = basic_pitch_onnx()
    root = onnx_path.parents[2]
    for name in ("librosa", "pretty_midi", "resampy", "mir_eval"):
        monkeypatch.setitem(sys.modules, name, _Stub(name))
    pkg = types.ModuleType("basic_pitch")
    pkg.__path__ = [str(root)]
    pkg.CT_PRESENT = pkg.TF_PRESENT = pkg.TFLITE_PRESENT = False
    pkg.ONNX_PRESENT = True
    pkg.ICASSP_2022_MODEL_PATH = onnx_path
    monkeypatch.setitem(sys.modules, "basic_pitch", pkg)

    def load(name: str, file: Path) -> types.ModuleType:
        return load_file(monkeypatch, name, file)

    for name in ("constants", "commandline_printing", "note_creation"):
        load(f"basic_pitch.{name}", root / f"{name}.py")
    inference = load("basic_pitch.inference", root / "inference.py")
    assert inference.AUDIO_N_SAMPLES == AUDIO_N_SAMPLES
    return inference.Model(onnx_path)


def _clips(n: int) -> np.ndarray:
    """Harmonic tone, white noise, a chord with noise, a log sweep 100 Hz - 2 kHz: ``[4, n]`` float32."""
    g = np.random.default_rng(0)
    t = np.arange(n)
    tone = harmonic(220.0, n / SR)
    noise = 0.1 * g.standard_normal(n)
    chord = 0.6 * harmonic(330.0, n / SR) + 0.4 * harmonic(523.25, n / SR) + 0.01 * g.standard_normal(n)
    sweep = 0.3 * np.sin(2 * np.pi * np.cumsum(np.geomspace(100.0, 2000.0, len(t))) / SR)
    return np.stack([tone, noise, chord, sweep]).astype(np.float32)


def test_matches_the_package_onnx_inference(model, monkeypatch):
    """The three posteriorgrams equal ``basic_pitch.inference.Model.predict`` (onnxruntime on nmp.onnx) on one
    window of the package (43 844 samples, 172 frames), batch of 4: largest differences measured 5.4e-7 (note),
    9.8e-7 (onset), 8.0e-7 (contour); checked at 1e-5."""
    ref = _package_model(monkeypatch)
    x = _clips(AUDIO_N_SAMPLES)
    expected = ref.predict(x[:, :, None])
    with torch.no_grad():
        got = model.posteriorgrams(torch.from_numpy(x))
        out = model(torch.from_numpy(x))
    assert got["note"].shape == (4, 88, 172) and got["onset"].shape == (4, 88, 172)
    assert got["contour"].shape == (4, 264, 172)
    for key in ("note", "onset", "contour"):
        assert expected[key].shape == tuple(got[key].transpose(1, 2).shape)
        np.testing.assert_allclose(got[key].transpose(1, 2).numpy(), expected[key], atol=1e-5, rtol=0)
    # the confidence is the package's contour peak, frame by frame
    np.testing.assert_allclose(out[:, 1].numpy(), expected["contour"].max(-1), atol=1e-5, rtol=0)


def test_a_short_clip_has_the_cqt_of_the_package_window_zero_filled(model):
    """A 1 s clip (below the CQT's minimum of 33 024 samples) gets the CQT the package computes for its last window,
    the clip zero-filled to 43 844 samples, cropped to the clip's 1 + N // 256 frames; the network then reads those
    frames only (its per-clip normalisation and the edge of its 2-D convolutions see the clip, not the silence)."""
    n = SR
    x = torch.from_numpy(_clips(n))
    window = torch.nn.functional.pad(x, (0, AUDIO_N_SAMPLES - n))
    with torch.no_grad():
        short, full = model.encode(x, "encoder.cqt"), model.encode(window, "encoder.cqt")
        out = model(x)
    t = 1 + n // HOP
    assert short.shape[-1] == t and full.shape[-1] == 1 + AUDIO_N_SAMPLES // HOP
    torch.testing.assert_close(short, full[..., :t], atol=0, rtol=0)
    assert out.shape == (4, 2, t) and torch.isfinite(out).all()


def test_protobuf_reader_reads_every_initialiser_as_onnx_does():
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    nodes, inits = read_onnx(basic_pitch_onnx())
    graph = onnx.load(str(basic_pitch_onnx())).graph
    assert [n["op"] for n in nodes] == [n.op_type for n in graph.node]
    assert len(inits) == len(graph.initializer)
    for t in graph.initializer:
        ref = numpy_helper.to_array(t)
        assert inits[t.name].dtype == ref.dtype and inits[t.name].shape == ref.shape
        np.testing.assert_array_equal(inits[t.name], ref)


def test_resume_from_every_site_equals_forward(model):
    x = torch.from_numpy(_clips(40000)[[0, 2]])  # not a multiple of the hop
    with torch.no_grad():
        ref = model(x)
        for site in model.sites():
            out = model.resume(model.encode(x, site.name), site.name)
            torch.testing.assert_close(out, ref, atol=0, rtol=0)
    assert ref.shape == (2, 2, 1 + 40000 // HOP)


def test_sites_shapes_strides_and_frame_rates(model):
    """Frame counts on two clip lengths give 256 samples per frame (86.13 frames/s) at every site."""
    expect = {"encoder.cqt": (1, 309), "encoder.harmonic_stack": (8, 264), "encoder.contour_conv": (16, 264),
              "encoder.contour": (9, 264), "encoder.note_conv": (59, 88), "encoder.note": (28, 88),
              "encoder.onset_conv": (36, 88), "head": (440, None)}
    names = [s.name for s in model.sites()]
    assert names == list(expect)
    n1, n2 = MIN_SAMPLES, MIN_SAMPLES + 43 * HOP
    with torch.no_grad():
        a1 = encode_sites(model, torch.from_numpy(_clips(n1)[:1]), names)
        a2 = encode_sites(model, torch.from_numpy(_clips(n2)[:1]), names)
    for site in model.sites():
        channels, freq = expect[site.name]
        t1, t2 = a1[site.name].shape[-1], a2[site.name].shape[-1]
        assert (t1, t2) == (1 + n1 // HOP, 1 + n2 // HOP)
        assert (n2 - n1) / (t2 - t1) == site.stride == HOP
        assert site.frame_rate(SR) == pytest.approx(86.1328125)
        assert site.channels == channels and site.freq_bins == freq
        shape = (1, channels, freq, t1) if freq else (1, channels, t1)
        assert tuple(a1[site.name].shape) == shape and site.layout == ("BCFT" if freq else "BCT")
        assert not site.global_context and site.role == ("head" if site.name == "head" else "encoder")
    rf = {s.name: s.receptive_field for s in model.sites()}
    assert rf["encoder.cqt"] == rf["encoder.harmonic_stack"] == 105986
    assert [rf[n] - rf["encoder.cqt"] for n in names[2:]] == [HOP * k for k in (2, 6, 12, 18, 18, 20)]
    octaves = model.site("encoder.cqt").notes["octaves"]
    assert [o["sample_rate"] for o in octaves] == [SR / 2 ** d for d in range(8, -1, -1)]
    assert [o["hop_at_rate"] * o["decimation_stride"] for o in octaves] == [HOP] * 9
    assert octaves[0]["bins"] == [0, 21] and octaves[-1]["bins"] == [273, 309]
    assert isinstance(model, AudioModel) and model.output == "pitch" and model.sample_rate == SR
    assert model.decode(a1["head"], "head") is None


def test_cqt_receptive_field_is_the_gradient_support(model):
    """Each CQT bin's support (the decimation chain and its kernel) is what ``lengths`` and the site declare."""
    n = 256 * 900
    x = (0.1 * torch.randn(1, n, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    c = model.encode(x, "encoder.cqt")
    mid = c.shape[-1] // 2
    for b in (0, 100, 308):
        (g,) = torch.autograd.grad(c[0, 0, b, mid], x, retain_graph=True)
        nz = torch.nonzero(g[0]).flatten()
        assert int(nz[-1] - nz[0]) + 1 == model.cqt.lengths[b]
    assert model.cqt.lengths.max() == model.site("encoder.cqt").receptive_field == 105986
    assert model.cqt.lengths[-1] == 109  # the top bin reads 109 samples at 22 050 Hz


@pytest.mark.parametrize("f0", [55.0, 110.0, 220.0, 261.63, 440.0, 1000.0])
def test_pitch_of_harmonic_tones(model, f0):
    """Within 10 cents (largest measured 7.8 cents, between bins, over 100 Hz - 1 kHz); the contour peaks one bin
    above the CQT bin of f0 (bin 3m + 1 is key m's centre) and the note posteriorgram at key 12 log2(f0 / 27.5)."""
    x = torch.tensor(harmonic(f0, 1.6), dtype=torch.float32)[None]
    with torch.no_grad():
        out = model.resume(model.encode(x, "encoder.contour"), "encoder.contour")[0, :, 10:-10]
        pg = model.posteriorgrams(x)
        cqt = model.encode(x, "encoder.cqt")[0, 0, :, 60]
    assert np.abs(cents(out[0], f0)).max() < 10.0
    assert out[1].min() > 0.5
    cqt_bin = round(36 * np.log2(f0 / 27.5))
    assert int(cqt.argmax()) == cqt_bin
    assert int(pg["contour"][0, :, 60].argmax()) == cqt_bin + 1
    assert int(pg["note"][0, :, 60].argmax()) == round(12 * np.log2(f0 / 27.5))


def test_tones_between_bins_and_onsets(model):
    fs = np.geomspace(100.0, 1000.0, 13)
    x = torch.tensor(np.stack([harmonic(f, 1.6) for f in fs]), dtype=torch.float32)
    with torch.no_grad():
        out = model(x)[:, :, 10:-10]
    assert np.abs(cents(out[:, 0], fs[:, None])).max() < 10.0
    # a 220 Hz tone after 1 s of silence: the onset of key 36 (A3) peaks at frame 86 (1 s), then the note holds
    x = torch.tensor(np.concatenate([np.zeros(SR), harmonic(220.0, 1.0)]), dtype=torch.float32)[None]
    with torch.no_grad():
        pg = model.posteriorgrams(x)
    onset, note = pg["onset"][0, 36], pg["note"][0, 36]
    assert abs(int(onset.argmax()) - 86) <= 1 and onset.max() > 0.8
    assert onset[120:160].max() < 0.2 and note[120:160].min() > 0.5 and note[:70].max() < 0.2


def test_place_shift_of_the_contour_moves_pitch_by_its_steps(model):
    axis = place_axis(model.site("encoder.contour"))
    assert (axis.dim, axis.start, axis.stop) == ("freq", 0, 264) and axis.cents_per_step == pytest.approx(100 / 3)
    x = torch.tensor(harmonic(220.0, 1.6), dtype=torch.float32)[None]
    with torch.no_grad():
        acts = model.encode(x, "encoder.contour")
        base = model.resume(acts, "encoder.contour")[0, 0, 10:-10]
        for steps in (3, -6):
            moved = model.resume(PlaceShift(steps, axis).forward(acts), "encoder.contour")[0, 0, 10:-10]
            assert np.median(cents(moved, base.numpy())) == pytest.approx(steps * 100 / 3, abs=0.5)


def test_forward_mode_derivative_agrees_with_backprop():
    """``torch.func.jvp`` through the whole model (float64) equals the reverse-mode product u . (J v)."""
    model = load_basic_pitch().double()
    g = torch.Generator().manual_seed(1)
    x = 0.1 * torch.randn(1, MIN_SAMPLES, generator=g, dtype=torch.float64)
    v = torch.randn(x.shape, generator=g, dtype=torch.float64)
    y, tangent = torch.func.jvp(model, (x,), (v,))
    u = torch.randn(y.shape, generator=g, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((model(xr) * u).sum(), xr)
    assert torch.isfinite(tangent).all()
    assert float((u * tangent).sum()) == pytest.approx(float((grad * v).sum()), rel=1e-9)


def test_silence_is_finite_and_differentiable(model):
    x = torch.zeros(1, MIN_SAMPLES, requires_grad=True)
    out = model(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


def test_every_constant_moves_with_the_model():
    """On the meta device (no data): every kernel, filter and scale is a buffer or parameter that ``.to`` moves."""
    model = load_basic_pitch().to("meta")
    out = model(torch.zeros(2, MIN_SAMPLES, device="meta"))
    assert out.device.type == "meta" and out.shape == (2, 2, 1 + MIN_SAMPLES // HOP)


def test_bad_audio_is_one_audio_error(model):
    with pytest.raises(AudioError, match="at least 1 sample ") as e:
        model(torch.zeros(1, 0))
    assert "\n" not in str(e.value)
    with pytest.raises(AudioError, match=r"\[batch, samples\]"):
        model.encode(torch.zeros(MIN_SAMPLES), "encoder.cqt")


def test_missing_weights_file_is_one_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no Basic Pitch ONNX graph"):
        load_basic_pitch(path=tmp_path / "nmp.onnx")
