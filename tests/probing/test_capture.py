"""Activation capture and its views: shapes, known signals, streaming, interruption and resume."""

import numpy as np
import pytest
import torch

from ontoscope.errors import ConfigError
from ontoscope.models.family import build
from ontoscope.models.protocol import SiteError, encode_sites
from ontoscope.models.spec import parse_spec
from ontoscope.probing import capture as capture_module
from ontoscope.probing.capture import Capture, CaptureError, capture
from ontoscope.probing.views import frame_view, modulation_bands, modulation_view, pooled_view
from ontoscope.stimuli import FactorSpace
from ontoscope.stimuli.dataset import StimulusSet

SR = 16000


def test_frame_and_pooled_views(rng):
    a = torch.as_tensor(rng.standard_normal((3, 4, 40)), dtype=torch.float32)
    x, g = frame_view(a, per_clip=5)
    assert x.shape == (15, 4) and g.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert torch.equal(x[5], a[1, :, 5])  # first frame kept: the middle three quarters start at 40 // 8
    p = pooled_view(a)
    np.testing.assert_allclose(p[:, :4], a.mean(-1), rtol=1e-6)
    np.testing.assert_allclose(p[:, 4:], a.numpy().std(-1), rtol=1e-5)
    four = torch.zeros(2, 3, 5, 10)
    assert pooled_view(four).shape == (2, 30) and frame_view(four, 4)[0].shape == (8, 15)


def test_modulation_view_finds_the_rate_of_a_trajectory():
    frame_rate, t = 50.0, 100  # 2 s at 50 frames per second
    time = np.arange(t) / frame_rate
    rates = [2.0, 5.0, 11.0]
    a = torch.as_tensor(np.stack([[np.sin(2 * np.pi * r * time)] for r in rates]), dtype=torch.float32)
    m = modulation_view(a, frame_rate, n_bands=8)
    edges = modulation_bands(frame_rate, t, 8)
    assert m.shape == (3, 8) and edges[-1] == 25.0 and edges[0] == 0.5
    for i, r in enumerate(rates):
        assert edges[int(np.argmax(m[i]))] <= r < edges[int(np.argmax(m[i])) + 1]
    # a constant trajectory has no modulation; a too-short or too-coarse one has no band
    assert float(modulation_view(torch.ones(1, 2, t), frame_rate).abs().max()) < 1e-6
    assert modulation_view(torch.ones(1, 2, 3), frame_rate).shape == (1, 0)
    assert modulation_bands(0.8, 100).size == 0


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    space = FactorSpace.create(["f0", "loudness", "tremolo_rate", "tremolo_depth"])
    return StimulusSet.synthesize(tmp_path_factory.mktemp("cap") / "set", space, 10, SR, 0.5, seed=1,
                                  progress=False)


@pytest.fixture(scope="module")
def model():
    return build(parse_spec(dict(family="conv_ae", strides=[2, 4], width=4, bottleneck=6)), seed=0).eval()


def test_capture_shapes_and_values(model, stimuli, tmp_path):
    cap = capture(model, stimuli, tmp_path / "c", sites=["bottleneck", "encoder.block0"], chunk=4, progress=False)
    assert cap.sites == ["bottleneck", "encoder.block0"] and cap.frame_rate("bottleneck") == SR / 8
    with torch.no_grad():
        acts = encode_sites(model, stimuli.audio(), ["bottleneck"])["bottleneck"]
    x, clips = cap.features("bottleneck", "pooled")
    assert x.shape == (10, 12) and clips.tolist() == list(range(10))
    np.testing.assert_allclose(x, pooled_view(acts).numpy(), rtol=1e-4, atol=1e-6)
    f, g = cap.features("bottleneck", "frames")
    assert f.shape == (80, 6) and np.array_equal(g, np.repeat(np.arange(10), 8))
    m, _ = cap.features("encoder.block0", "modulation")
    assert m.shape == (10, 8 * 8)  # 8 channels x 8 bands
    assert Capture(tmp_path / "c").manifest["sites"]["bottleneck"]["frames"] == acts.shape[-1]


def test_interrupted_capture_resumes_to_the_same_result(model, stimuli, tmp_path, monkeypatch):
    full = capture(model, stimuli, tmp_path / "full", sites=["bottleneck"], chunk=3, progress=False)
    calls = {"n": 0}
    real = capture_module.encode_sites

    def dies_on_the_third_chunk(*args, **kwargs):  # after one clip sizes the pass and two chunks finish
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(capture_module, "encode_sites", dies_on_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        capture(model, stimuli, tmp_path / "cut", sites=["bottleneck"], chunk=3, progress=False)
    assert not (tmp_path / "cut" / "manifest.json").exists()
    with pytest.raises(CaptureError, match="not a finished capture"):
        Capture(tmp_path / "cut")
    resumed_calls = []
    monkeypatch.setattr(capture_module, "encode_sites", lambda *a, **k: resumed_calls.append(1) or real(*a, **k))
    resumed = capture(model, stimuli, tmp_path / "cut", sites=["bottleneck"], chunk=3, progress=False)
    assert len(resumed_calls) == 2  # 10 clips in 4 chunks: only the two not on disk run again
    for view in ("frames", "pooled", "modulation"):
        np.testing.assert_array_equal(full.features("bottleneck", view)[0], resumed.features("bottleneck", view)[0])


def test_a_memory_bound_makes_smaller_passes_with_the_same_features(model, stimuli, tmp_path):
    """Sites wider than ``max_bytes`` per pass: one clip per pass and every view in slices of one clip, the same
    numbers as four clips per pass."""
    views = ("frames", "pooled", "modulation", "timing")
    wide = capture(model, stimuli, tmp_path / "w", sites=["bottleneck", "encoder.block0"], views=views, chunk=4,
                   progress=False)
    tight = capture(model, stimuli, tmp_path / "t", sites=["bottleneck", "encoder.block0"], views=views, chunk=4,
                    max_bytes=1, progress=False)
    assert wide.manifest["clips_per_chunk"] == 4 and tight.manifest["clips_per_chunk"] == 1
    assert tight.manifest["n_chunks"] == 10
    for site in ("bottleneck", "encoder.block0"):
        for view in views:
            a, ga = wide.features(site, view)
            b, gb = tight.features(site, view)
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
            assert np.array_equal(ga, gb)
    with pytest.raises(ConfigError, match="max_bytes must be a positive integer"):
        capture(model, stimuli, tmp_path / "z", max_bytes=0, progress=False)


def test_capture_bad_input(model, stimuli, tmp_path):
    with pytest.raises(SiteError, match="bottle"):
        capture(model, stimuli, tmp_path / "a", sites=["bottle"], progress=False)
    with pytest.raises(ConfigError, match="unknown view"):
        capture(model, stimuli, tmp_path / "a", views=("spectrum",), progress=False)
    capture(model, stimuli, tmp_path / "b", sites=["bottleneck"], views=("pooled",), progress=False)
    with pytest.raises(CaptureError, match="another capture"):
        capture(model, stimuli, tmp_path / "b", sites=["encoder.block0"], views=("pooled",), progress=False)
    cap = Capture(tmp_path / "b")
    with pytest.raises(CaptureError, match="was not captured"):
        cap.features("encoder.block1", "pooled")
    with pytest.raises(CaptureError, match="was not captured"):
        cap.features("bottleneck", "frames")


def test_site_metrics_score_the_widest_varying_channels(model, stimuli, tmp_path):
    from ontoscope.probing.decodability import factor_targets, site_metrics
    from ontoscope.stimuli.dataset import set_space

    cap = capture(model, stimuli, tmp_path / "c", sites=["bottleneck"], views=("pooled",), progress=False)
    targets = factor_targets(stimuli.factors, set_space(stimuli))[["f0", "loudness"]]
    full = site_metrics(cap, targets).iloc[0]
    capped = site_metrics(cap, targets, max_codes=3).iloc[0]
    assert (full["codes"], full["of"]) == (6, 6) and (capped["codes"], capped["of"]) == (3, 6)
    from ontoscope.probing.metrics import disentanglement

    x, _ = cap.features("bottleneck", "pooled")
    means = x[:, :6]
    top = np.sort(np.argsort(-means.var(0))[:3])
    direct = disentanglement(means[:, top], targets.to_numpy(), mode="fast")
    assert capped["mcc"] == pytest.approx(direct["mcc"]) and capped["mig"] == pytest.approx(direct["mig"])
    assert full["n"] == 10


def test_a_set_read_at_another_rate_is_the_resampled_clips_with_the_same_factors(stimuli):
    from ontoscope.models.resample import resample
    from ontoscope.probing.capture import at_rate

    assert at_rate(stimuli, stimuli.sr) is stimuli
    view = at_rate(stimuli, 22050)
    assert view.sr == 22050 and len(view) == len(stimuli) and view.factors.equals(stimuli.factors)
    expect = resample(stimuli.audio([0, 3]), stimuli.sr, 22050)
    torch.testing.assert_close(view.audio([0, 3]), expect, atol=0, rtol=0)
    assert view.n_samples == expect.shape[-1] == round(stimuli.n_samples * 22050 / stimuli.sr)
    (pos, chunk), *_ = view.chunks(4)
    torch.testing.assert_close(chunk, resample(stimuli.audio(pos), stimuli.sr, 22050), atol=0, rtol=0)
    # the spectral peak of a resampled clip stays at the same frequency (in Hz)
    spec = torch.fft.rfft(view.audio([0])[0]).abs()
    orig = torch.fft.rfft(stimuli.audio([0])[0]).abs()
    assert abs(int(spec.argmax()) / view.seconds - int(orig.argmax()) / stimuli.seconds) <= 1.0 / stimuli.seconds
