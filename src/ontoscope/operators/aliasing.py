"""Aliasing of decimating layers: how much of each filter's energy folds back after the stride.

Decimation by ``s`` keeps one sample in ``s``; by the decimation identity
(Vaidyanathan 1993, *Multirate Systems and Filter Banks*, eq. 4.1.7) the
spectrum of the output is the average of ``s`` copies of the input spectrum
shifted by ``k / s`` cycles per sample, so every component above ``1 / (2 s)``
cycles per sample lands on top of a component below it. For a strided
convolution the filter runs first, so the fraction of the filter's energy
outside the band ``|f| < 1 / (2 s)`` is the fraction of a white input's power
that comes out aliased. For a layer with ``c_in`` inputs it is computed per
output channel, summing the energy over the inputs::

    alias[o] = sum_i int_{|f| >= 1/2s} |H_oi(f) B_i(f)|^2 df  /  sum_i int |H_oi(f) B_i(f)|^2 df

with ``H_oi`` the DFT of the filter from input ``i`` to output ``o`` (taps
``dilation`` apart) on a fine grid, and ``B_i`` a low-pass applied just before
(the family's ``Blur1d``, BlurPool-style, Zhang 2019), or 1. An average pool is
the box filter; a max pool is not linear and gets NaN. A framing front end
(STFT, mel, CQT) decimates by its hop what its analysis window passes
(:func:`front_end_windows`). An ideal half-band
filter gives 0 at stride 2; a white random filter about ``1 - 1/s``.

The cumulative picture at a site is given two ways:

* ``composed``: the linear path from the input to every channel of the site
  with each nonlinearity replaced by the identity (a residual unit becomes
  ``I + branch``), composed by the noble identities: a filter ``W`` running on
  frames ``J`` input samples apart responds as ``W(f J)`` at input frequency
  ``f``. Its energy outside ``|f| < 1 / (2 S)`` (``S`` the site's total stride)
  is the fraction of a white input that the site can only hold aliased.
  Available for chains of the model family's layers and plain convolutions.
* ``independent``: ``1 - prod_l (1 - a_l)`` over the decimating layers before
  the site, ``a_l`` the channel-mean fraction of layer ``l`` (each layer
  aliasing an independent share of what the previous ones left), used where
  the path cannot be composed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ontoscope.models.layers import Blur1d, Downsample1d, ResUnit1d, SameConv1d, Snake1d, Upsample1d
from ontoscope.models.protocol import AudioModel, site_module, takes_audio
from ontoscope.operators.receptive_field import front_end_geometry
from ontoscope.operators.spectra import dense_weight

__all__ = [
    "alias_fraction",
    "alias_fraction_exact",
    "band_energy_fraction",
    "composed_alias",
    "composed_response",
    "decimating_layers",
    "front_end_windows",
    "layer_aliasing",
    "site_alias_summary",
]

_POINTWISE = (nn.ELU, nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.Identity, nn.Dropout,
              nn.PReLU, nn.Softplus, Snake1d)


def _freqs(n_grid: int) -> np.ndarray:
    """|f| in cycles per sample on an ``n_grid``-point DFT grid."""
    f = np.fft.fftfreq(n_grid)
    return np.abs(f)


def _outside(f: np.ndarray, stride: int) -> np.ndarray:
    """Weight of each grid frequency ``|f|`` outside the band ``|f| < 1 / (2 stride)``: 1 above the edge,
    1/2 on it (the trapezoid rule across the band edge), 0 below."""
    edge = 0.5 / stride
    on = np.isclose(f, edge, rtol=0, atol=1e-12)
    return np.where(on, 0.5, (f > edge).astype(np.float64))


def band_energy_fraction(response: np.ndarray | torch.Tensor, stride: int, axis: int = -1) -> np.ndarray:
    """Fraction of ``|response|^2`` (sampled on a full DFT grid along ``axis``) outside ``|f| < 1/(2 stride)``."""
    r = np.asarray(response.detach().cpu().numpy() if isinstance(response, torch.Tensor) else response)
    p = np.abs(r) ** 2
    p = np.moveaxis(p, axis, -1)
    out = _outside(_freqs(p.shape[-1]), stride)
    total = p.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (p * out).sum(-1) / total, np.nan)


def _band_lags(length: int, stride: int) -> torch.Tensor:
    """``q[d] = 2 f_c sinc(2 f_c d)`` for lags ``d = 0 .. length - 1``, ``f_c = 1 / (2 stride)``: the band's
    kernel, ``e^T Q e = sum_d r[d] q[|d|]`` for a filter ``e`` with autocorrelation ``r``."""
    fc = 0.5 / stride
    return 2 * fc * torch.sinc(2 * fc * torch.arange(length, dtype=torch.float64))


def _band_matrix(length: int, stride: int) -> torch.Tensor:
    """``Q[t, t'] = 2 f_c sinc(2 f_c (t - t'))``, ``f_c = 1 / (2 stride)``: ``e^T Q e`` is the energy of the
    ``length``-tap filter ``e`` inside ``|f| < f_c`` cycles per sample."""
    t = torch.arange(length)
    return _band_lags(length, stride)[(t[:, None] - t[None, :]).abs()]


def alias_fraction(
    weight: torch.Tensor,
    stride: int,
    dilation: int = 1,
    groups: int = 1,
    pre_filter: torch.Tensor | None = None,
) -> np.ndarray:
    """Per output channel, the fraction of the filter's energy outside the post-decimation band.

    The energy of a real FIR filter ``e`` inside ``|f| < f_c = 1 / (2 s)`` is the quadratic form
    ``e^T Q e`` with ``Q[t, t'] = 2 f_c sinc(2 f_c (t - t'))``, and its total energy is ``e^T e``
    (Parseval). Since ``Q`` depends on ``t - t'`` only, the form is ``sum_d r[d] q[|d|]`` over the
    filter's autocorrelation ``r`` (computed by FFT): exact integrals at ``O(L log L)`` per filter
    ``L`` taps long, so a front end's 100 000-sample CQT kernels cost no more than a conv's taps.
    ``e`` is each input's filter with its taps ``dilation`` apart, after the ``pre_filter`` (a linear
    convolution).

    Parameters
    ----------
    weight : Tensor ``[c_out, c_in / groups, k]``
        Conv1d weight.
    stride : int
        Decimation factor ``s``; the band kept is ``|f| < 1 / (2 s)`` cycles per input sample.
    dilation, groups : int
    pre_filter : Tensor, optional
        A low-pass before the conv: ``[k_b]`` (same for every input) or ``[c_in, k_b]`` (depthwise).

    Returns
    -------
    ndarray ``[c_out]`` in [0, 1] (NaN for an all-zero filter).
    """
    w = weight.detach().to(torch.float64).cpu()
    c_out, cpg, k = w.shape
    c_in = cpg * groups
    span = dilation * (k - 1) + 1
    b = None
    if pre_filter is not None:
        b = pre_filter.detach().to(torch.float64).cpu()
        b = b.expand(c_in, -1) if b.ndim == 1 else b
    length = span + (b.shape[-1] - 1 if b is not None else 0)
    q = _band_lags(length, stride)
    q = torch.cat([q[:1], 2 * q[1:]])  # the lags +-d together
    n_fft = 1 << (2 * length - 1).bit_length()
    per_out = max(c_out // groups, 1)
    chunk = max(1, int(4_000_000 // max(cpg * n_fft, 1)))
    out = np.empty(c_out)
    for start in range(0, c_out, chunk):
        stop = min(start + chunk, c_out)
        taps = w.new_zeros(stop - start, cpg, span)
        taps[..., ::dilation] = w[start:stop]
        if b is not None:
            grp = torch.arange(start, stop) // per_out
            idx = grp[:, None] * cpg + torch.arange(cpg)[None]  # the input channel of each (o, j)
            taps = torch.fft.irfft(torch.fft.rfft(taps, n=length) * torch.fft.rfft(b[idx], n=length), n=length)
        spec = torch.fft.rfft(taps, n=n_fft)
        r = torch.fft.irfft((spec.real ** 2 + spec.imag ** 2).sum(1), n=n_fft)[:, :length]  # summed over inputs
        total = r[:, 0]
        inband = r @ q
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:stop] = np.where(total > 0, (1 - inband / total.clamp_min(1e-300)).clamp(0, 1).numpy(),
                                       np.nan)
    return out


def alias_fraction_exact(taps: np.ndarray, stride: int) -> float:
    """Closed form of the out-of-band energy fraction of one real FIR filter ``taps`` (unit spacing).

    In-band energy is the quadratic form ``w^T Q w`` with ``Q[t, t'] = 2 f_c sinc(2 f_c (t - t'))``,
    ``f_c = 1 / (2 stride)``; the total is ``w^T w`` (Parseval). An oracle for :func:`alias_fraction`.
    """
    w = np.asarray(taps, dtype=np.float64)
    fc = 0.5 / stride
    t = np.arange(w.size)
    q = 2 * fc * np.sinc(2 * fc * (t[:, None] - t[None, :]))
    return float(1 - w @ q @ w / (w @ w))


def _box(k: int) -> torch.Tensor:
    return torch.full((k,), 1.0 / k, dtype=torch.float64)


def front_end_windows(m: nn.Module) -> tuple[int, list[np.ndarray]] | None:
    """The hop and analysis window(s) of a framing front end (STFT, mel, CQT), or None.

    Each channel of such a front end is its window modulated to the channel's centre frequency, and
    taking the magnitude demodulates it back: what the hop decimates is the window's low-pass
    spectrum, so the window's energy outside ``|f| < 1 / (2 hop)`` is the channel's alias fraction.
    STFT / mel front ends (a ``window`` buffer) have one window; a CQT (``lengths``) one Hann window
    per bin, of that bin's length.
    """
    fe = front_end_geometry(m)
    if fe is None:
        return None
    hop = int(fe[1])
    lengths = getattr(m, "lengths", None)
    if lengths is not None:
        wins = [np.hanning(int(n) + 1)[:-1] if int(n) > 1 else np.ones(1) for n in np.asarray(lengths).ravel()]
        return hop, wins
    window = getattr(m, "window", None)
    if isinstance(window, torch.Tensor) and window.numel() > 0:
        return hop, [window.detach().double().cpu().numpy()]
    return None


def decimating_layers(module: nn.Module) -> list[tuple[str, nn.Module, Blur1d | None]]:
    """Strided conv / pool layers (time stride > 1) and framing front ends in registration order, each
    with the ``Blur1d`` that immediately precedes it (same parent, no layer between them), if any."""
    out: list[tuple[str, nn.Module, Blur1d | None]] = []
    pending: list[Blur1d | None] = [None]

    def visit(m: nn.Module, prefix: str) -> None:
        for name, child in m.named_children():
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(child, Blur1d):
                pending[0] = child
                continue
            if front_end_windows(child) is not None:
                out.append((path, child, None))
                pending[0] = None
                continue
            if isinstance(child, (nn.Conv1d, nn.Conv2d, nn.AvgPool1d, nn.MaxPool1d, nn.AvgPool2d, nn.MaxPool2d)) \
                    and not isinstance(child, (nn.ConvTranspose1d, nn.ConvTranspose2d)):
                st = child.stride if child.stride is not None else child.kernel_size
                s = st if isinstance(st, int) else int(np.prod(st))
                if s > 1:
                    out.append((path, child, pending[0]))
                pending[0] = None
                continue
            if isinstance(child, _POINTWISE):
                continue
            if isinstance(child, Downsample1d):
                visit(child, path)
                continue
            if any(True for _ in child.children()):
                visit(child, path)
            else:
                pending[0] = None

    visit(module, "")
    return out


def layer_aliasing(
    module: nn.Module,
    n_grid: int = 256,
    model_name: str = "",
    layer_sites: dict[str, str] | None = None,
    layer_axes: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Alias fraction of every output channel of every decimating layer, listed by depth.

    Returns
    -------
    DataFrame with one row per (layer, channel): ``model, layer, site, depth`` (order among the
    decimating layers), ``kind`` (conv, avgpool, maxpool, frontend: see :func:`front_end_windows`),
    ``axis`` (time / inner, from ``layer_axes``), ``stride``, ``kernel``, ``blur`` (a ``Blur1d``
    precedes it), ``channel``, ``alias_fraction``. 2-D layers: the band is ``|f_1| < 1/(2 s_1)``
    and ``|f_2| < 1/(2 s_2)`` (a 2-D average pool's box integrated on an ``n_grid`` x ``n_grid`` DFT grid).
    """
    rows = []
    for depth, (name, m, blur) in enumerate(decimating_layers(module)):
        site = (layer_sites or {}).get(name, "")
        axis = (layer_axes or {}).get(name, "time")
        fe = front_end_windows(m)
        if fe is not None:
            s, wins = fe
            k = max(w.size for w in wins)
            frac = np.array([alias_fraction(torch.from_numpy(w)[None, None], s)[0] for w in wins])
            kind = "frontend"
        elif isinstance(m, nn.Conv1d):
            s, k = int(m.stride[0]), int(m.kernel_size[0])
            frac = alias_fraction(m.weight, s, int(m.dilation[0]), int(m.groups),
                                  blur.kernel[0, 0] if blur is not None else None)
            kind = "conv"
        elif isinstance(m, nn.Conv2d):
            s = int(np.prod(m.stride))
            k = int(np.prod(m.kernel_size))
            frac = _alias_2d(m)
            kind = "conv"
        else:
            ks = m.kernel_size if isinstance(m.kernel_size, int) else int(np.prod(m.kernel_size))
            st = m.stride if m.stride is not None else m.kernel_size
            s = st if isinstance(st, int) else int(np.prod(st))
            k = ks
            if isinstance(m, nn.AvgPool1d):
                frac = alias_fraction(_box(k)[None, None], s)
                kind = "avgpool"
            elif isinstance(m, nn.AvgPool2d):
                kind = "avgpool"
                frac = np.array([_alias_box_2d(m, n_grid=n_grid)])
            else:
                kind = "maxpool"
                frac = np.array([np.nan])
        for c, a in enumerate(np.atleast_1d(frac)):
            rows.append({"model": model_name, "layer": name, "site": site, "depth": depth, "kind": kind,
                         "axis": axis, "stride": s, "kernel": k, "blur": blur is not None, "channel": c,
                         "alias_fraction": float(a)})
    cols = ["model", "layer", "site", "depth", "kind", "axis", "stride", "kernel", "blur", "channel",
            "alias_fraction"]
    return pd.DataFrame(rows, columns=cols)


def _alias_2d(m: nn.Conv2d) -> np.ndarray:
    """Per output channel, the energy of a 2-D conv's filters outside ``|f_1| < 1/(2 s_1), |f_2| < 1/(2 s_2)``:
    the separable quadratic form ``sum_i tr(Q_1 E_i Q_2 E_i^T)`` over inputs (exact, as :func:`alias_fraction`)."""
    w = dense_weight(m.weight.detach().to(torch.float64).cpu(), m.groups)
    (k1, k2), (d1, d2), (s1, s2) = m.kernel_size, m.dilation, m.stride
    span1, span2 = d1 * (k1 - 1) + 1, d2 * (k2 - 1) + 1
    taps = w.new_zeros(*w.shape[:2], span1, span2)
    taps[..., ::d1, ::d2] = w
    q1, q2 = _band_matrix(span1, s1), _band_matrix(span2, s2)
    total = taps.pow(2).sum((1, 2, 3))
    inband = ((q1 @ taps @ q2) * taps).sum((1, 2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (1 - inband / total.clamp_min(1e-300)).clamp(0, 1).numpy(), np.nan)


def _alias_box_2d(m: nn.AvgPool2d, n_grid: int = 256) -> float:
    k1, k2 = (m.kernel_size, m.kernel_size) if isinstance(m.kernel_size, int) else m.kernel_size
    st = m.stride if m.stride is not None else m.kernel_size
    s1, s2 = (st, st) if isinstance(st, int) else st
    h1 = np.abs(np.fft.fft(np.full(k1, 1 / k1), n_grid)) ** 2
    h2 = np.abs(np.fft.fft(np.full(k2, 1 / k2), n_grid)) ** 2
    p = h1[:, None] * h2[None, :]
    inside = (_freqs(n_grid)[:, None] < 0.5 / s1) & (_freqs(n_grid)[None, :] < 0.5 / s2)
    return float(p[~inside].sum() / p.sum())


# ------------------------------------------------------------------ composed linear path
class _NotComposable(Exception):
    pass


def _apply_conv(h: torch.Tensor, j: int, w: torch.Tensor, dilation: int, groups: int, left: int = 0) -> torch.Tensor:
    """Response after a conv running on frames ``j`` input samples apart: ``H'[o] = sum_i W_oi(f j) H[i]``.

    ``h`` ``[c_in, F]`` is sampled at ``f = 0 ... 1/2`` (``F`` points, a real filter's half grid);
    ``left`` is the left padding in frames: output frame ``t`` reads frames ``t - left + dilation * tau``.
    """
    n_half = h.shape[-1]
    w = w.detach().to(torch.float64).cpu()
    if groups > 1:
        w = dense_weight(w, groups)
    f = torch.linspace(0.0, 0.5, n_half, dtype=torch.float64)
    hr = torch.cat([h.real, h.imag], dim=-1)  # real matmuls on [re | im]
    out = h.new_zeros(w.shape[0], n_half)
    for tau in range(w.shape[-1]):
        shift = (tau * dilation - left) * j  # tap position in input samples
        y = w[:, :, tau] @ hr
        out += torch.complex(y[:, :n_half], y[:, n_half:]) * torch.polar(torch.ones_like(f), -2 * np.pi * f * shift)
    return out


def _apply_depthwise(h: torch.Tensor, j: int, taps: torch.Tensor, left: int) -> torch.Tensor:
    """Response after the same filter ``taps`` applied to every channel (a depthwise low-pass)."""
    f = torch.linspace(0.0, 0.5, h.shape[-1], dtype=torch.float64)
    pos = (torch.arange(taps.numel(), dtype=torch.float64) - left) * j
    resp = (taps.detach().to(torch.float64)[:, None] * torch.polar(torch.ones(1, dtype=torch.float64),
                                                                    -2 * np.pi * pos[:, None] * f[None])).sum(0)
    return h * resp


def _half_fraction(h: torch.Tensor, stride: int) -> np.ndarray:
    """Energy fraction of ``|h|^2`` ``[C, F]`` (half grid ``f = 0 ... 1/2``) outside ``|f| < 1/(2 stride)``."""
    p = (h.abs() ** 2).numpy()
    n_half = p.shape[-1]
    f = np.linspace(0.0, 0.5, n_half)
    wgt = np.full(n_half, 2.0)
    wgt[0] = wgt[-1] = 1.0  # trapezoid on the circle: the ends appear once
    pw = p * wgt
    total = pw.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (pw * _outside(f, stride)).sum(-1) / total, np.nan)


def _compose(m: nn.Module, h: torch.Tensor, j: int) -> tuple[torch.Tensor, int]:
    if isinstance(m, _POINTWISE) or isinstance(m, (nn.BatchNorm1d,)):
        if isinstance(m, nn.BatchNorm1d):
            scale = (m.weight if m.affine else torch.ones_like(m.running_var)) / torch.sqrt(m.running_var + m.eps)
            return h * scale.detach().to(torch.float64)[:, None], j
        return h, j
    if isinstance(m, nn.Sequential):
        for c in m:
            h, j = _compose(c, h, j)
        return h, j
    if isinstance(m, ResUnit1d):
        b, jb = _compose(m.block, h, j)
        return h + b, jb
    if isinstance(m, Blur1d):
        return _apply_depthwise(h, j, m.kernel[0, 0], m.pad[0]), j
    if isinstance(m, Downsample1d):
        c = m.conv
        return _apply_conv(h, j, c.weight, int(c.dilation[0]), int(c.groups), m.pad[0]), j * int(c.stride[0])
    if isinstance(m, SameConv1d):
        return _apply_conv(h, j, m.weight, int(m.dilation[0]), int(m.groups), m._pad[0]), j * int(m.stride[0])
    if isinstance(m, nn.Conv1d) and not isinstance(m, nn.ConvTranspose1d):
        pad = m.padding
        d, k = int(m.dilation[0]), int(m.kernel_size[0])
        left = (d * (k - 1)) // 2 if pad == "same" else (0 if pad == "valid" else int(pad[0]))
        return _apply_conv(h, j, m.weight, d, int(m.groups), left), j * int(m.stride[0])
    raise _NotComposable(type(m).__name__)


def composed_response(model: AudioModel, n_grid: int = 8192) -> dict[str, tuple[torch.Tensor, int]]:
    """The linear path from the input to each site (nonlinearities as identity), per site.

    Returns ``{site: (H [channels, n_grid // 2 + 1] complex on f = 0 ... 1/2, total stride)}`` for the sites of a
    chain of stages (:class:`~ontoscope.models.protocol.SiteChain`) that reads the audio itself
    (:func:`~ontoscope.models.protocol.takes_audio`) and whose stages are chains of the family's layers, plain
    ``Conv1d`` and pointwise modules; composition stops at the first stage that is not (decoders, front ends,
    attention, ...). Empty for any other model.
    """
    if not takes_audio(model):
        return {}
    h = torch.ones(1, n_grid // 2 + 1, dtype=torch.complex128)
    j = 1
    out: dict[str, tuple[torch.Tensor, int]] = {}
    for site in model.sites():
        stage = site_module(model, site.name)
        if stage is None or any(isinstance(m, (Upsample1d, nn.ConvTranspose1d)) for m in stage.modules()):
            break
        try:
            h, j = _compose(stage, h, j)
        except _NotComposable:
            break
        out[site.name] = (h, j)
    return out


def composed_alias(model: AudioModel, n_grid: int = 8192) -> pd.DataFrame:
    """Per site and channel, the alias fraction of the composed linear path (see the module docstring).

    Returns a DataFrame ``site, stride, channel, alias_fraction`` (empty where nothing composes).
    """
    rows = []
    for site, (h, j) in composed_response(model, n_grid).items():
        frac = _half_fraction(h, j) if j > 1 else np.zeros(h.shape[0])
        for c, a in enumerate(frac):
            rows.append({"site": site, "stride": j, "channel": c, "alias_fraction": float(a)})
    return pd.DataFrame(rows, columns=["site", "stride", "channel", "alias_fraction"])


def site_alias_summary(
    sites: list[str],
    layers: pd.DataFrame,
    composed: pd.DataFrame,
    site_order: dict[str, int],
) -> pd.DataFrame:
    """Cumulative alias fraction per site, walking the sites in forward order.

    At a site whose linear path composes, the composed fraction; elsewhere the running value
    is carried on through the decimating layers met since the previous site,
    ``1 - (1 - previous) * prod_l (1 - a_l)`` (the independent rule), so aliasing that happened
    upstream is never undone downstream.

    Returns ``site, alias_layers`` (time-axis decimating layers up to the site), ``alias_last``
    (channel-mean fraction of the last one), ``alias_cumulative``, ``alias_method``
    (``composed``, ``independent`` or ``none``).
    """
    per_layer = pd.DataFrame(columns=["depth", "order", "alias"])
    if len(layers):
        lt = layers[layers["axis"] == "time"]
        per_layer = (lt.assign(order=lt["site"].map(lambda x: site_order.get(x, 10**9)))
                     .groupby("depth").agg(order=("order", "first"), alias=("alias_fraction", "mean"))
                     .dropna().reset_index().sort_values("depth"))
    comp = composed.groupby("site")["alias_fraction"].mean() if len(composed) else pd.Series(dtype=float)
    rows = []
    running, method, prev = 0.0, "none", -1
    for s in sorted(sites, key=lambda x: site_order[x]):
        here = site_order[s]
        new = per_layer[(per_layer["order"] > prev) & (per_layer["order"] <= here)]
        upto = per_layer[per_layer["order"] <= here]
        if s in comp.index:
            running, method = float(comp[s]), "composed"
        elif len(new):
            running = float(1 - (1 - running) * np.prod(1 - new["alias"].to_numpy(dtype=float)))
            method = "independent" if method == "none" else method + "+independent" * (method == "composed")
        rows.append({"site": s, "alias_layers": int(len(upto)),
                     "alias_last": float(upto["alias"].iloc[-1]) if len(upto) else 0.0,
                     "alias_cumulative": running, "alias_method": method})
        prev = here
    return pd.DataFrame(rows, columns=["site", "alias_layers", "alias_last", "alias_cumulative", "alias_method"])
