"""Site geometry: the receptive-field recursion, published geometries, the empirical (gradient) check."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ontoscope.models import wrap
from ontoscope.models.family import build
from ontoscope.models.protocol import Site, StagedModel
from ontoscope.models.spec import parse_spec
from ontoscope.operators import LayerOp, compose, empirical_receptive_field, site_geometry, traced_ops


def conv_ae_rf(spec) -> dict[str, int]:
    """Receptive field of every encoder site of a conv_ae spec, by hand from the layers the family builds."""
    r, j, out = 7, 1, {}  # input conv, kernel 7
    for i, s in enumerate(spec.strides):
        for d in [3**u for u in range(spec.depth)]:
            r += 2 * d * j  # residual unit: dilated kernel-3 conv (the 1x1 adds nothing)
        if spec.antialias == "blur" and s > 1:
            r += 4 * s * j  # windowed sinc of 4 s + 1 taps
        r += (spec.kernel_for(s) - 1) * j
        j *= s
        out[f"encoder.block{i}"] = r
    out["bottleneck"] = r + 2 * j  # kernel-3 conv
    return out


def test_recursion_by_hand():
    ops = [LayerOp("a", "conv", 3, 2), LayerOp("b", "conv", 3, 2), LayerOp("c", "conv", 2, 1, dilation=4)]
    g = compose(ops)
    # r = 1 + 2*1 + 2*2 + 1*4*4 = 23, j = 4
    assert g.receptive_field == 23 and g.stride == 4
    g = compose([LayerOp("stft", "frontend", 512, 128), LayerOp("pool", "pool", 2, 2)])
    assert g.receptive_field == 512 + 128 and g.stride == 256
    # a transposed conv of stride 2, kernel 4 reads ceil(4 / 2) = 2 input frames: r grows by 1 frame
    g = compose([LayerOp("down", "conv", 4, 2), LayerOp("up", "transposed", 4, 2)])
    assert g.receptive_field == 4 + 2 and g.stride == 1
    assert compose([LayerOp("rnn", "global"), LayerOp("c", "conv", 5, 1)]).global_context


@pytest.mark.parametrize("d", [
    dict(family="conv_ae", strides=[2, 4], width=4, bottleneck=8),
    dict(family="conv_ae", strides=[4, 2, 2], width=4, depth=2, bottleneck=8, antialias="blur"),
])
def test_conv_ae_geometry_matches_hand_count_and_gradient(d):
    spec = parse_spec(d)
    geo = site_geometry(build(spec, 0).eval()).set_index("site")
    for site, rf in conv_ae_rf(spec).items():
        assert geo.loc[site, "receptive_field_samples"] == rf, site
        if spec.antialias == "none":
            assert geo.loc[site, "empirical_rf_samples"] == rf, site  # the gradient's support, same number
        else:  # the windowed sinc's end taps are zeros of the sinc: the support is a little narrower
            assert 0.8 * rf <= geo.loc[site, "empirical_rf_samples"] < rf, site
        assert 0 < geo.loc[site, "effective_rf_samples"] <= rf
        assert geo.loc[site, "empirical_stride"] == geo.loc[site, "stride"]
    assert geo.loc["bottleneck", "stride"] == spec.total_stride
    assert geo.loc["bottleneck", "frame_rate_hz"] == pytest.approx(16000 / spec.total_stride)
    assert geo.loc["bottleneck", "dims_per_second"] == pytest.approx(8 * 16000 / spec.total_stride)
    assert geo.loc["bottleneck", "compression_ratio"] == pytest.approx(spec.total_stride / 8)
    assert geo["geometry_agrees"].all()


def test_spec_cnn_stft_front_end_geometry():
    spec = parse_spec(dict(family="spec_cnn", frontend="stft", n_fft=256, hop=64, width=4, bottleneck=4,
                           pool=[(2, 2), (2, 4)]))
    geo = site_geometry(build(spec, 0).eval(), empirical=False).set_index("site")
    # STFT r = n_fft, j = hop; each block: 3x3 conv (+2 j) then a time pool p (+(p - 1) j, j *= p)
    r, j = 256, 64
    for i, p in enumerate([2, 4]):
        r += 2 * j
        r += (p - 1) * j
        j *= p
        assert geo.loc[f"encoder.block{i}", "receptive_field_samples"] == r
        assert geo.loc[f"encoder.block{i}", "stride"] == j
    assert geo.loc["bottleneck", "dims_per_frame"] == 4 * geo.loc["bottleneck", "freq_bins"]


@pytest.fixture(scope="module")
def wav2vec2():
    from ontoscope.models.registry import load_model

    return load_model("hf:wav2vec2-base")


@pytest.mark.slow
def test_wav2vec2_feature_encoder_published_geometry(wav2vec2):
    geo = site_geometry(wav2vec2, model_name="hf:wav2vec2-base").set_index("site")
    kernels, strides = [10, 3, 3, 3, 3, 2, 2], [5, 2, 2, 2, 2, 2, 2]
    r, j = 1, 1
    for i, (k, s) in enumerate(zip(kernels, strides, strict=True)):
        r, j = r + (k - 1) * j, j * s
        assert geo.loc[f"encoder.conv{i}", "receptive_field_samples"] == r
        assert geo.loc[f"encoder.conv{i}", "stride"] == j
        assert geo.loc[f"encoder.conv{i}", "empirical_rf_samples"] == r  # GroupNorm / clip standardisation left out
        assert geo.loc[f"encoder.conv{i}", "empirical_stride"] == j
    assert (r, j) == (400, 320)
    assert geo.loc["encoder.conv6", "frame_rate_hz"] == 50.0
    assert geo.loc["encoder.conv6", "time_norm"] and not geo.loc["encoder.conv6", "global_context"]
    assert geo.loc["encoder.conv6", "empirical_floor"] > 0  # the clip's statistics do reach every frame, a little
    for i in range(12):
        assert geo.loc[f"encoder.layer{i}", "global_context"]
        # the conv-only receptive field is still reported: the positional conv (kernel 128) widens it
        assert geo.loc[f"encoder.layer{i}", "receptive_field_samples"] == 400 + 127 * 320


def test_crepe_receptive_field_and_inner_geometry():
    from ontoscope.models.registry import load_model

    model = load_model("crepe:tiny")
    geo = site_geometry(model, model_name="crepe:tiny").set_index("site")
    out = geo.loc["head.classifier"]
    assert out["receptive_field_samples"] == 1024 and out["receptive_field_s"] == pytest.approx(0.064)
    assert out["stride"] == 160 and out["frame_rate_hz"] == 100
    assert out["empirical_rf_samples"] == 1024 and out["empirical_stride"] == 160
    for s in model.sites()[:-1]:
        # within a frame: conv, then the functional max-pool (F.max_pool1d) the blocks call
        assert geo.loc[s.name, "inner_stride"] == s.notes["within_frame_stride"]
        assert min(geo.loc[s.name, "inner_receptive_field"], 1024) == s.notes["within_frame_rf"]


class _Net(nn.Module):
    def __init__(self, norm: bool, rnn: bool) -> None:
        super().__init__()
        self.a = nn.Conv1d(1, 4, 5, stride=2)
        self.norm = nn.GroupNorm(4, 4) if norm else nn.Identity()
        self.b = nn.Conv1d(4, 4, 3, stride=1)
        self.rnn = nn.GRU(4, 4, batch_first=True) if rnn else None

    def forward(self, x):
        y = self.b(F.avg_pool1d(torch.relu(self.norm(self.a(x))), 3, 3))  # a functional pool
        if self.rnn is not None:
            y = self.rnn(y.transpose(1, 2))[0].transpose(1, 2)
        return y


def _wrapped(norm: bool, rnn: bool):
    torch.manual_seed(0)
    net = _Net(norm, rnn)
    sites = {"b": "b", **({"rnn": "rnn"} if rnn else {})}
    return wrap(net, sites, sample_rate=16000, preprocess=lambda a: a.unsqueeze(1))


def test_wrapped_model_functional_pool_time_norm_and_recurrence():
    r = 5 + 2 * 2 + 1 * 6 * 2  # conv k5 s2, avg_pool k3 s3 (functional), conv k3
    geo = site_geometry(_wrapped(norm=True, rnn=False)).set_index("site")
    assert geo.loc["b", "receptive_field_samples"] == r and geo.loc["b", "stride"] == 6
    assert geo.loc["b", "time_norm"]
    assert geo.loc["b", "empirical_rf_samples"] == r  # GroupNorm statistics held fixed for the check
    geo = site_geometry(_wrapped(norm=False, rnn=True)).set_index("site")
    assert geo.loc["rnn", "global_context"] and not geo.loc["b", "global_context"]
    assert geo.loc["rnn", "recurrent"] and not geo.loc["b", "recurrent"]
    assert geo.loc["rnn", "receptive_field_samples"] == r  # conv-only field still reported
    assert not geo.loc["b", "time_norm"]


class _LinearRNN(nn.Module):
    """h_t = tanh(W x_t + d h_{t-1}) over frames, in its linear range: its memory decays as d^k."""

    def __init__(self, decay: float) -> None:
        super().__init__()
        self.rnn = nn.RNN(4, 4, batch_first=True, bias=False)
        with torch.no_grad():
            self.rnn.weight_hh_l0.copy_(torch.eye(4) * decay)
            self.rnn.weight_ih_l0.copy_(torch.eye(4) * 1e-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x.transpose(1, 2))[0].transpose(1, 2)


class _Recurrent(StagedModel):
    sample_rate = 16000
    output = "embedding"

    def __init__(self, decay: float) -> None:
        super().__init__([(Site("frames", "BCT", 4, stride=160, receptive_field=160),
                           nn.Conv1d(1, 4, 160, stride=160, bias=False)),
                          (Site("rnn", "BCT", 4, stride=160, global_context=True), _LinearRNN(decay))])


@pytest.mark.parametrize("decay", [0.8, 0.95])
def test_recurrent_site_effective_memory_follows_the_decay(decay):
    """The squared gradient of frame T on frame T - k falls as d^(2k), so the oldest 2.5 % of the mass lies beyond
    k + 1 = ln(0.025) / (2 ln d) frames: the effective memory is that many 160-sample frames (within one)."""
    torch.manual_seed(0)
    model = _Recurrent(decay)
    table = site_geometry(model).set_index("site")
    frames = table.loc["frames"]  # a stage that is itself a layer is counted in its own site
    assert frames["stride"] == 160 and frames["receptive_field_samples"] == 160 and not frames["recurrent"]
    geo = table.loc["rnn"]
    assert geo["recurrent"] and geo["global_context"] and geo["stride"] == 160
    frames = math.log(0.025) / (2 * math.log(decay))
    assert abs(geo["effective_rf_samples"] / 160 - frames) < 1.0, geo["effective_rf_samples"]
    assert geo["empirical_rf_samples"] > 4 * geo["effective_rf_samples"]  # the support is the whole past
    # the support reaches the clip's start (about 200 frames before the middle) unless d^(2k) falls below 1e-20 first
    assert geo["empirical_truncated"] == float(decay ** (2 * 200) > 1e-20)


def test_traced_ops_sees_closures_and_stages():
    spec = parse_spec(dict(family="conv_ae", strides=[2, 2], width=2, bottleneck=2))
    ops = traced_ops(build(spec, 0))
    kinds = [o.kind for o in ops["encoder.block1"]]
    assert kinds.count("conv") >= 4 and len(ops["bottleneck"]) > len(ops["encoder.block1"])


def test_effective_receptive_field_is_narrower_than_support_and_gaussian_like():
    # Luo et al. 2016: stacked uniform convs give a bell-shaped ERF much narrower than the support
    net = nn.Sequential(*[nn.Conv1d(1, 1, 9, bias=False) for _ in range(8)])
    for c in net:
        nn.init.constant_(c.weight, 1 / 9)
    res = empirical_receptive_field(lambda x: net(x.unsqueeze(1)), 400, n_inputs=1)
    assert res["empirical_rf"] == 1 + 8 * 8
    # the profile is a convolution power of a box: its 95 % width is ~ 2 x 1.96 sigma, sigma^2 = 8 (81 - 1) / 12
    sigma = math.sqrt(8 * 80 / 12)
    assert res["effective_rf"] == pytest.approx(2 * 1.96 * sigma / math.sqrt(2), rel=0.2)
