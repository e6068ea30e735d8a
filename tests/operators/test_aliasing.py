"""Aliasing of decimating layers: closed forms, planted filters, BlurPool-style anti-aliasing, composition."""

import numpy as np
import pytest
import torch
from torch import nn

from ontoscope.models.family import build
from ontoscope.models.layers import Blur1d, Downsample1d, SameConv1d, lowpass_kernel
from ontoscope.models.protocol import Site, StagedModel
from ontoscope.models.spec import parse_spec
from ontoscope.operators import alias_fraction, alias_fraction_exact, composed_alias, layer_aliasing
from ontoscope.operators.aliasing import composed_response, front_end_windows


def _halfband(taps: int = 401) -> np.ndarray:
    """A long Kaiser-windowed sinc with cutoff 1/4 cycle per sample: close to the ideal half-band filter."""
    t = np.arange(taps) - taps // 2
    return np.sinc(t / 2) / 2 * np.kaiser(taps, 10.0)


@pytest.mark.parametrize("stride, dilation", [(2, 1), (3, 1), (4, 1), (2, 2)])
def test_alias_fraction_matches_closed_form(stride, dilation):
    g = torch.Generator().manual_seed(stride + 10 * dilation)
    w = torch.randn(5, 3, 7, generator=g, dtype=torch.float64)
    ours = alias_fraction(w, stride, dilation)
    for o in range(5):
        num = den = 0.0
        for i in range(3):
            taps = np.zeros(dilation * 6 + 1)
            taps[::dilation] = w[o, i].numpy()
            e = taps @ taps
            num, den = num + alias_fraction_exact(taps, stride) * e, den + e
        assert ours[o] == pytest.approx(num / den, abs=1e-6)


def test_planted_half_band_filters():
    lp = _halfband()
    assert alias_fraction(torch.tensor(lp)[None, None], 2)[0] < 2e-3  # ideal half-band: ~0
    hp = lp * (-1.0) ** np.arange(lp.size)  # the mirror filter: all its energy above 1/4
    assert alias_fraction(torch.tensor(hp)[None, None], 2)[0] > 0.998
    assert alias_fraction_exact(lp, 2) == pytest.approx(alias_fraction(torch.tensor(lp)[None, None], 2)[0], abs=1e-5)
    # an impulse (white) keeps 1/s of its energy in band; an average pool of s taps keeps more
    assert alias_fraction(torch.tensor([[[1.0]]]), 4)[0] == pytest.approx(0.75, abs=1e-9)
    box = layer_aliasing(nn.Sequential(nn.AvgPool1d(4, 4)))["alias_fraction"].iloc[0]
    assert 0.0 < box < 0.75


def test_long_front_end_kernels_are_exact_and_cheap():
    """A 106 000-tap kernel (Basic Pitch's lowest CQT bin reads that many samples) costs one FFT, not a 106 000^2
    matrix: a windowed-sinc low-pass cut at the band edge of stride 8 has no energy outside that band and half of it
    outside the band of stride 16; on a 3 000-tap filter the autocorrelation route equals the quadratic form."""
    rng = np.random.default_rng(0)
    taps = rng.standard_normal(3000)
    assert alias_fraction(torch.tensor(taps)[None, None], 7)[0] == pytest.approx(alias_fraction_exact(taps, 7),
                                                                                 abs=1e-12)
    n = 106_001
    t = np.arange(n) - n // 2
    lowpass = np.sinc(t / 8) * np.hanning(n)  # cutoff 1/16 cycle per sample: the band of stride 8
    frac = alias_fraction(torch.tensor(lowpass)[None, None], 8)[0]
    assert frac == pytest.approx(0.0, abs=1e-3)
    assert alias_fraction(torch.tensor(lowpass)[None, None], 16)[0] == pytest.approx(0.5, abs=1e-3)


def test_random_filters_alias_about_one_minus_one_over_stride():
    w = torch.randn(400, 1, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for s in (2, 4, 8):
        assert alias_fraction(w, s).mean() == pytest.approx(1 - 1 / s, abs=0.02)


def test_blur_pool_cuts_aliasing():
    torch.manual_seed(0)
    w = nn.Conv1d(8, 8, 8, stride=4).weight
    plain = alias_fraction(w, 4)
    blurred = alias_fraction(w, 4, pre_filter=lowpass_kernel(4))
    assert plain.mean() > 0.6 and blurred.mean() < 0.1 and (blurred < plain).all()


@pytest.mark.parametrize("antialias", ["none", "blur"])
def test_conv_ae_layers_found_with_their_blur(antialias):
    spec = parse_spec(dict(family="conv_ae", strides=[2, 4], width=4, bottleneck=4, antialias=antialias))
    al = layer_aliasing(build(spec, 0))
    per = al.groupby("depth").agg(stride=("stride", "first"), blur=("blur", "first"), a=("alias_fraction", "mean"))
    assert list(per["stride"]) == [2, 4] and per["blur"].eq(antialias == "blur").all()
    if antialias == "blur":
        assert (per["a"] < 0.15).all()
    else:
        assert (per["a"] > 0.3).all()


class _Linear(StagedModel):
    """A chain of the family's linear layers (no nonlinearity): its composed response is exact."""

    output = "embedding"
    sample_rate = 16000

    def __init__(self, blur: bool) -> None:
        torch.manual_seed(0)
        s1 = nn.Sequential(SameConv1d(1, 3, 5), *( [Blur1d(3, 2)] if blur else []), Downsample1d(3, 2, 4, 2))
        s2 = nn.Sequential(Downsample1d(2, 2, 6, 3))
        super().__init__([(Site("a", "BCT", 2, stride=2), s1), (Site("b", "BCT", 2, stride=6), s2)])


@pytest.mark.parametrize("blur", [False, True])
def test_composed_response_equals_the_equivalent_filter(blur):
    model = _Linear(blur).eval()
    n_grid = 4096
    resp = composed_response(model, n_grid)
    h, stride = resp["b"]
    assert stride == 6
    x = torch.zeros(1, 600, requires_grad=True)
    y = model.encode(x, "b")  # y[c, m] = sum_n g_c[n] x[6 m + n]: g_c is the gradient of one frame
    for c in range(2):
        (g,) = torch.autograd.grad(y[0, c, 50], x, retain_graph=True)
        mag = np.abs(np.fft.rfft(g[0].double().numpy(), n_grid))
        np.testing.assert_allclose(np.abs(h[c].numpy()), mag, rtol=1e-5, atol=1e-6 * mag.max())
    frac = composed_alias(model, n_grid).groupby("site")["alias_fraction"].mean()
    assert 0 < frac["a"] <= frac["b"] < 1


def test_composed_alias_of_conv_ae_grows_with_stride_unless_blurred():
    fracs = {}
    for aa in ("none", "blur"):
        for strides in ([2], [2, 4], [2, 4, 4]):
            spec = parse_spec(dict(family="conv_ae", strides=strides, width=2, bottleneck=4, antialias=aa))
            ca = composed_alias(build(spec, 0).eval(), 4096)
            fracs[aa, len(strides)] = ca[ca["site"] == "bottleneck"]["alias_fraction"].mean()
    plain = [fracs["none", n] for n in (1, 2, 3)]
    assert plain == sorted(plain) and plain[-1] > 0.9
    assert all(fracs["blur", n] < 0.3 for n in (1, 2, 3))
    assert all(fracs["blur", n] < fracs["none", n] for n in (1, 2, 3))


def test_front_end_window_alias_grows_with_the_hop():
    from ontoscope.models.frontend import Spectrogram

    fr = {}
    for hop in (64, 128, 256, 512):
        m = Spectrogram(16000, 512, hop)
        h, wins = front_end_windows(m)
        assert h == hop and len(wins) == 1 and wins[0].size == 512
        fr[hop] = layer_aliasing(nn.ModuleDict({"fe": m}))["alias_fraction"].iloc[0]
        assert fr[hop] == pytest.approx(alias_fraction_exact(wins[0], hop), abs=1e-4)
    assert fr[64] < fr[128] < fr[256] < fr[512] and fr[128] < 1e-2 and fr[512] > 0.1


def test_2d_alias_fraction_is_the_exact_band_integral():
    # a delta filter keeps (1/s1)(1/s2) of a white input's energy in band; a random one against a fine DFT grid
    delta = nn.Conv2d(1, 1, 1, stride=(2, 4), bias=False)
    with torch.no_grad():
        delta.weight.fill_(1.0)
    frac = layer_aliasing(nn.Sequential(delta))["alias_fraction"].iloc[0]
    assert frac == pytest.approx(1 - 1 / 8, abs=1e-12)
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, (5, 3), stride=(2, 3), dilation=(2, 1), bias=False)
    got = layer_aliasing(nn.Sequential(conv))["alias_fraction"].to_numpy()
    n = 2048
    taps = torch.zeros(3, 2, n, n, dtype=torch.float64)
    taps[..., :9:2, :3] = conv.weight.detach().double()
    p = (torch.fft.fft2(taps).abs() ** 2).sum(1).numpy()
    f1, f2 = np.abs(np.fft.fftfreq(n))[:, None], np.abs(np.fft.fftfreq(n))[None, :]
    inside = (f1 < 0.25) & (f2 < 0.5 / 3)
    ref = p[:, ~inside].sum(-1) / p.sum((1, 2))
    np.testing.assert_allclose(got, ref, atol=2e-3)
