"""Feature Jacobians: forward mode through the synthesizer and the model, against finite differences."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.func import jvp

from ontoscope.models.family import build
from ontoscope.models.spec import parse_spec
from ontoscope.operators import audio_tangents, feature_jacobians, jacobian_stats, principal_angles, stimulus_batch
from ontoscope.operators.jacobians import _bases

SMALL = dict(family="conv_ae", strides=[2, 4], width=4, bottleneck=8)


@pytest.fixture(scope="module")
def batch():
    return stimulus_batch(None, 2, sample_rate=16000, seconds=0.2, seed=0, max_partials=16)


@pytest.fixture(scope="module")
def model():
    return build(parse_spec(SMALL), 0).eval()


def _rel(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    a, b = a.double().flatten(1), b.double().flatten(1)
    return ((a - b).norm(dim=1) / b.norm(dim=1)).numpy()


def test_batched_synth_tangents_equal_one_jvp_per_factor(batch):
    audio, tan = audio_tangents(batch)
    audio2, tan2 = audio_tangents(batch, factor_chunk=5)
    for i in (0, 4, 11):
        t = torch.zeros_like(batch.values)
        t[i] = batch.du[i]
        a, ref = jvp(batch.render, (batch.values,), (t,))
        torch.testing.assert_close(tan[i], ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))
        torch.testing.assert_close(tan2[i], ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))
        torch.testing.assert_close(audio, a)
    assert tan.shape == (len(batch.names), 2, 3200)


def test_synth_tangents_match_finite_differences(batch):
    """Every factor's audio tangent against central differences at the best of three steps (float32 audio)."""
    _, tan = audio_tangents(batch)
    for i, name in enumerate(batch.names):
        t = torch.zeros_like(batch.values)
        t[i] = batch.du[i]
        errs = []
        for h in (1e-3, 1e-4, 1e-5):
            fd = (batch.render(batch.values + h * t) - batch.render(batch.values - h * t)) / (2 * h)
            errs.append(float((fd - tan[i]).norm() / tan[i].norm()))
        assert min(errs) < 5e-3, (name, errs)


def test_model_part_matches_finite_differences_in_float64(batch):
    m64 = build(parse_spec(SMALL), 0).eval().double()
    jac, acts, used = feature_jacobians(m64, batch, ["encoder.block1", "bottleneck"])
    assert used == "jvp+vmap"
    audio, tan = audio_tangents(batch)
    audio, tan = audio.double(), tan.double()
    with torch.no_grad():
        for i in range(len(batch.names)):
            h = 1e-6 / float(tan[i].abs().max())
            plus = m64.encode(audio + h * tan[i], "bottleneck")
            minus = m64.encode(audio - h * tan[i], "bottleneck")
            fd = (plus - minus) / (2 * h)
            assert _rel(jac["bottleneck"][i][None], fd[None])[0] < 1e-6
    torch.testing.assert_close(acts["bottleneck"], m64.encode(audio, "bottleneck"))


def test_whole_chain_against_finite_differences_and_loop(model, batch):
    j_v, _, used_v = feature_jacobians(model, batch, ["bottleneck"], use_vmap=True)
    j_l, _, used_l = feature_jacobians(model, batch, ["bottleneck"], use_vmap=False)
    assert (used_v, used_l) == ("jvp+vmap", "jvp")
    torch.testing.assert_close(j_v["bottleneck"], j_l["bottleneck"], rtol=1e-4, atol=1e-6)
    # finite differences of synthesizer + model (the model in float64: float32 activations would drown
    # the differences), at the best of three steps per factor (the synthesizer renders float32)
    m64 = build(parse_spec(SMALL), 0).eval().double()
    j64, _, _ = feature_jacobians(m64, batch, ["bottleneck"])
    torch.testing.assert_close(j64["bottleneck"].float(), j_v["bottleneck"], rtol=1e-3, atol=1e-4)
    best = np.full(len(batch.names), np.inf)
    for h in (1e-3, 1e-4, 1e-5):
        j_fd, _, used = feature_jacobians(m64, batch, ["bottleneck"], method="fd", fd_step=h)
        assert used == "fd"
        best = np.minimum(best, _rel(j_fd["bottleneck"], j64["bottleneck"]))
    assert best.max() < 1e-2, dict(zip(batch.names, best.round(4), strict=True))
    assert np.median(best) < 1e-3


def test_quantized_site_gets_the_straight_through_jacobian(batch):
    spec = parse_spec({**SMALL, "quantizer": {"codebooks": 2, "size": 16}})
    m = build(spec, 0).eval()
    jac, _, used = feature_jacobians(m, batch, ["bottleneck", "quantizer"])
    assert used == "jvp+vmap"  # torch.cdist has no forward mode: replaced inside the pass
    torch.testing.assert_close(jac["quantizer"], jac["bottleneck"])


def test_stats_on_planted_jacobians():
    g = torch.Generator().manual_seed(0)
    b, c, t = 3, 6, 5
    e = torch.eye(c)
    cols = torch.zeros(3, b, c, t, dtype=torch.float64)
    cols[0] = e[0][None, :, None] * torch.randn(b, 1, t, generator=g, dtype=torch.float64)
    cols[1] = e[1][None, :, None] * torch.randn(b, 1, t, generator=g, dtype=torch.float64)
    cols[2] = 2.0 * cols[0]  # parallel to factor 0
    acts = {"s": torch.ones(b, c, t, dtype=torch.float64)}
    res = jacobian_stats({"s": cols}, acts, names=["a", "b", "c"])
    pairs = res.pairs.set_index(["factor_a", "factor_b"])
    assert pairs.loc[("a", "b"), "cos_gram"] == pytest.approx(0.0, abs=1e-12)
    assert pairs.loc[("a", "c"), "cos_gram"] == pytest.approx(1.0)
    assert pairs.loc[("a", "c"), "abs_cos_mean"] == pytest.approx(1.0)
    assert pairs.loc[("a", "b"), "angle_min_deg"] == pytest.approx(90.0)
    assert pairs.loc[("a", "c"), "angle_min_deg"] == pytest.approx(0.0, abs=1e-5)
    fac = res.factors.set_index("factor")
    ratio = fac.loc["c", "sensitivity"] / fac.loc["a", "sensitivity"]
    assert ratio == pytest.approx(2.0)
    assert fac.loc["a", "max_abs_cos"] == pytest.approx(1.0) and fac.loc["b", "max_abs_cos"] == pytest.approx(0.0)
    assert res.sites["gram_condition"].iloc[0] > 1e12  # a and c are the same direction
    res2 = jacobian_stats({"s": cols[:2]}, acts, names=["a", "b"])
    assert res2.sites["gram_condition"].iloc[0] == pytest.approx(1.0)


def test_principal_angles_and_basis_against_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    np.testing.assert_allclose(principal_angles(a, b), np.sort(scipy.linalg.subspace_angles(a, b)), atol=1e-10)
    for shape in ((10, 200), (200, 10)):
        ms = np.stack([rng.normal(size=shape) * np.linspace(3, 0.1, shape[1])[None] for _ in range(3)])
        ms[1] = 0.0  # a zero column has no subspace
        qs = _bases(torch.from_numpy(ms), np.array([True, True, False]), 0.9, 4)
        assert qs[1] is None and qs[2] is None  # zero, and not alive
        q = qs[0]
        u = np.linalg.svd(ms[0], full_matrices=False)[0][:, : q.shape[1]]
        assert np.degrees(principal_angles(q, u)).max() < 1e-5
        np.testing.assert_allclose(q.T @ q, np.eye(q.shape[1]), atol=1e-10)


def test_recurrent_model_runs_in_forward_mode_and_restores_onednn(batch):
    from ontoscope.models import wrap

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.conv, self.lstm = torch.nn.Conv1d(1, 4, 8, stride=4), torch.nn.LSTM(4, 4, batch_first=True)

        def forward(self, x):
            return self.lstm(self.conv(x).transpose(1, 2))[0].transpose(1, 2)

    model = wrap(Net(), {"conv": "conv", "lstm": "lstm"}, sample_rate=16000, preprocess=lambda a: a.unsqueeze(1))
    before = torch.backends.mkldnn.enabled
    jac, _, used = feature_jacobians(model, batch, ["conv", "lstm"])
    assert used in ("jvp+vmap", "jvp") and torch.backends.mkldnn.enabled == before
    h = 1e-3
    t = torch.zeros_like(batch.values)
    t[1] = batch.du[1]  # loudness: smooth, so float32 differences are good to ~1e-3
    with torch.no_grad():
        fd = (model.encode(batch.render(batch.values + h * t), "lstm")
              - model.encode(batch.render(batch.values - h * t), "lstm")) / (2 * h)
    assert _rel(jac["lstm"][1][None], fd[None])[0] < 1e-2


class _NoForwardMode(torch.autograd.Function):
    """tanh with a backward but no forward-mode rule: forward mode through it raises."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class _Head(torch.nn.Module):
    """One head of self-attention over frames, torch's tanh, or a tanh without forward mode."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, h):
        if self.kind == "opaque":
            return _NoForwardMode.apply(h)
        if self.kind == "tanh":
            return torch.tanh(h)
        t = h.transpose(1, 2)[:, None]  # [B, 1 head, T, C]
        return torch.nn.functional.scaled_dot_product_attention(t, t, t)[:, 0].transpose(1, 2)


def _two_stage(kind: str):
    from ontoscope.models import wrap

    torch.manual_seed(0)
    net = torch.nn.Sequential()
    net.add_module("conv", torch.nn.Conv1d(1, 8, 16, stride=8))
    net.add_module("head", _Head(kind))
    return wrap(net, {"conv": "conv", "head": "head"}, sample_rate=16000, preprocess=lambda a: a.unsqueeze(1))


def test_attention_runs_in_forward_mode_when_short_and_by_differences_when_long(batch, monkeypatch):
    from ontoscope.operators import _common

    model = _two_stage("attention")
    monkeypatch.setattr(_common, "MAX_WRITTEN_ATTENTION", 400 * 400)
    jac, _, used = feature_jacobians(model, batch, ["conv", "head"])
    assert used == "jvp+vmap"  # 399 frames: the attention is written out
    monkeypatch.setattr(_common, "MAX_WRITTEN_ATTENTION", 398 * 398)
    jfd, _, used_fd = feature_jacobians(model, batch, ["conv", "head"])
    assert used_fd == "jvp+fd"  # too long to write out: forward differences of the model
    err = _rel(jfd["head"][[1, 2]].flatten(0, 1), jac["head"][[1, 2]].flatten(0, 1))  # loudness, brightness
    assert err.max() < 3e-2, err


def test_an_op_without_forward_mode_falls_back_to_forward_differences(batch):
    opaque, plain = _two_stage("opaque"), _two_stage("tanh")
    jac, acts, used = feature_jacobians(opaque, batch, ["conv", "head"], fd_batch=5)
    assert used == "jvp+fd" and jac["head"].shape == (len(batch.names), *acts["head"].shape)
    ref, ref_acts, ref_used = feature_jacobians(plain, batch, ["conv", "head"])
    assert ref_used == "jvp+vmap"
    torch.testing.assert_close(acts["head"], ref_acts["head"])
    err = _rel(jac["head"][[0, 1, 2]].flatten(0, 1), ref["head"][[0, 1, 2]].flatten(0, 1))  # f0, loudness, brightness
    assert err.max() < 3e-2, err
