"""Operator spectra: the singular values of convolutional layers, strided and transposed ones included.

Method
------
A stride-1 convolution with ``c_in`` inputs and ``c_out`` outputs, on signals
of length ``n`` with circular boundary conditions, is a block-circulant
operator; the DFT diagonalises every block, so its singular values are the
union over the ``n`` frequencies of the singular values of the ``c_out x c_in``
matrices ``A(w) = sum_t W[:, :, t] e^{i w t}`` (Sedghi, Gupta & Long 2019,
"The singular values of convolutional layers", ICLR).

A stride-``s`` convolution reads the input through its ``s`` polyphase
components ``x_p[m] = x[s m + p]`` (Vaidyanathan 1993, *Multirate Systems and
Filter Banks*): a tap at offset ``d t = s q + p`` (dilation ``d``) reads
component ``p`` at frame offset ``q``. So the layer is a stride-1 convolution
from ``c_in * s`` channels on length ``M = n / s`` signals, and at each of the
``M`` frequencies the operator is a ``c_out x (c_in s)`` matrix. Since the
polyphase split is a permutation and the DFT is unitary, the singular values
of the layer are exactly the union of those of the ``M`` matrices. In 2-D
(``Conv2d``) the same holds per 2-D frequency, with ``c_in s_1 s_2`` columns.

A transposed convolution (``ConvTranspose1d/2d`` with weight ``[c_in, c_out/g, k]``)
is the adjoint of the convolution with the same weight and stride; the adjoint
has the same singular values. Grouped convolutions are expanded to their dense
(block-diagonal) weight.

:func:`conv_matrix` builds the explicit operator (for tests and benchmarks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ontoscope.errors import ConfigError

__all__ = [
    "conv_matrix",
    "conv_singular_values",
    "conv_transpose_matrix",
    "dense_weight",
    "layer_spectra",
    "polyphase_symbols",
]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)


def _tuple(v: int | Sequence[int], nd: int) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * nd
    v = tuple(int(x) for x in v)
    return v if len(v) == nd else (v[0],) * nd


def dense_weight(weight: torch.Tensor, groups: int = 1, transposed: bool = False) -> torch.Tensor:
    """The weight of the equivalent dense convolution, ``[c_out, c_in, *kernel]``.

    ``weight`` is a conv weight ``[c_out, c_in / groups, *k]``, or with ``transposed`` a
    transposed-conv weight ``[c_in_T, c_out_T / groups, *k]``; the latter is returned as the
    weight of the convolution whose adjoint it is, i.e. ``[c_in_T, c_out_T, *k]``.
    """
    w = weight.detach()
    rows, cols_g = w.shape[0], w.shape[1]  # the same layout for both: the adjoint's [out, in / groups, *k]
    if groups == 1:
        return w
    cols = cols_g * groups
    out = w.new_zeros(rows, cols, *w.shape[2:])
    rg = rows // groups
    for g in range(groups):
        out[g * rg:(g + 1) * rg, g * cols_g:(g + 1) * cols_g] = w[g * rg:(g + 1) * rg]
    return out


def polyphase_symbols(
    weight: torch.Tensor,
    n: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
) -> torch.Tensor:
    """Per-frequency matrices of a (strided) convolution with circular boundaries.

    Parameters
    ----------
    weight : Tensor ``[c_out, c_in, *k]``
        Dense conv weight (cross-correlation, as ``torch.nn.functional.conv*d``); 1-D or 2-D.
    n : int or tuple
        Signal length per spatial axis; must be a multiple of the stride.
    stride, dilation : int or tuple

    Returns
    -------
    Tensor ``[*M, c_out, c_in * prod(stride)]`` complex, ``M = n / stride`` per axis: the operator
    at frequency ``(m_1, ...)`` (``2 pi m / M`` radians per output frame).
    """
    nd = weight.ndim - 2
    if nd not in (1, 2):
        raise ConfigError(f"conv weights must be 3-D or 4-D, got shape {tuple(weight.shape)}")
    n_t, s_t, d_t = _tuple(n, nd), _tuple(stride, nd), _tuple(dilation, nd)
    for a in range(nd):
        if n_t[a] % s_t[a]:
            raise ConfigError(f"signal length {n_t[a]} is not a multiple of the stride {s_t[a]}")
    m_t = tuple(n_t[a] // s_t[a] for a in range(nd))
    c_out, c_in = weight.shape[:2]
    w = weight.detach().to(torch.float64)
    # W'[o, i, p_1, (p_2,), q_1 mod M_1, (q_2 mod M_2)]
    wp = w.new_zeros(c_out, c_in, *s_t, *m_t)
    k_t = w.shape[2:]
    if nd == 1:
        for t in range(k_t[0]):
            q, p = divmod(d_t[0] * t, s_t[0])
            wp[:, :, p, q % m_t[0]] += w[:, :, t]
    else:
        for t1 in range(k_t[0]):
            q1, p1 = divmod(d_t[0] * t1, s_t[0])
            for t2 in range(k_t[1]):
                q2, p2 = divmod(d_t[1] * t2, s_t[1])
                wp[:, :, p1, p2, q1 % m_t[0], q2 % m_t[1]] += w[:, :, t1, t2]
    # sum_q W'[q] e^{+i w q} = M * ifft (the sign only conjugates, singular values are unchanged)
    sym = torch.fft.fftn(wp, dim=tuple(range(2 + nd, 2 + 2 * nd)))
    sym = sym.reshape(c_out, c_in * int(np.prod(s_t)), *m_t)
    return sym.permute(*range(2, 2 + nd), 0, 1).contiguous()


def conv_singular_values(
    weight: torch.Tensor,
    n: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    transposed: bool = False,
) -> torch.Tensor:
    """Singular values of a conv layer's operator on circular signals of length ``n`` (per axis).

    Parameters
    ----------
    weight : Tensor
        ``[c_out, c_in / groups, *k]`` (conv) or ``[c_in, c_out / groups, *k]`` (``transposed``), 1-D or 2-D.
    n : int or tuple
        Input length per axis (for a transposed conv: its *output* length); a multiple of ``stride``.
    stride, dilation, groups : as in ``torch.nn.Conv*``.
    transposed : bool
        A transposed convolution: the adjoint of the convolution with the same weight, same spectrum.

    Returns
    -------
    Tensor ``[*M, r]`` float64, singular values in descending order at each frequency,
    ``r = min(c_out, c_in * prod(stride))`` (of the forward convolution); the operator's
    singular values are all of them, ``prod(M) * r`` in all.
    """
    w = dense_weight(weight, groups, transposed)
    sym = polyphase_symbols(w, n, stride, dilation)
    return torch.linalg.svdvals(sym)


def _circular_conv(x: torch.Tensor, w: torch.Tensor, stride: tuple[int, ...],
                   dilation: tuple[int, ...]) -> torch.Tensor:
    nd = w.ndim - 2
    pad: list[int] = []
    for a in reversed(range(nd)):
        pad += [0, dilation[a] * (w.shape[2 + a] - 1)]
    xp = F.pad(x, pad, mode="circular")
    conv = F.conv1d if nd == 1 else F.conv2d
    return conv(xp, w, stride=stride, dilation=dilation)


def conv_matrix(
    weight: torch.Tensor,
    n: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> torch.Tensor:
    """The explicit operator matrix ``[c_out * prod(n / s), c_in * prod(n)]`` of a circular strided conv.

    Built by applying ``torch.nn.functional.conv*d`` (circular padding) to every basis signal: an
    oracle for :func:`conv_singular_values`, affordable for small ``c * n`` only.
    """
    w = weight.detach().to(torch.float64)
    nd = w.ndim - 2
    n_t, s_t, d_t = _tuple(n, nd), _tuple(stride, nd), _tuple(dilation, nd)
    c_in = w.shape[1] * groups
    size = c_in * int(np.prod(n_t))
    basis = torch.eye(size, dtype=torch.float64).reshape(size, c_in, *n_t)
    wd = dense_weight(w, groups)
    y = _circular_conv(basis, wd, s_t, d_t)
    return y.reshape(size, -1).T.contiguous()


def conv_transpose_matrix(
    weight: torch.Tensor,
    n: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> torch.Tensor:
    """Explicit matrix of a circular transposed conv (``F.conv_transpose*d`` with the overhang wrapped).

    ``weight`` ``[c_in, c_out / groups, *k]``; input length ``n / stride``, output length ``n`` per axis.
    Returns ``[c_out * prod(n), c_in * prod(n / s)]``.
    """
    w = weight.detach().to(torch.float64)
    nd = w.ndim - 2
    n_t, s_t, d_t = _tuple(n, nd), _tuple(stride, nd), _tuple(dilation, nd)
    m_t = tuple(n_t[a] // s_t[a] for a in range(nd))
    c_in = w.shape[0]
    size = c_in * int(np.prod(m_t))
    basis = torch.eye(size, dtype=torch.float64).reshape(size, c_in, *m_t)
    tconv = F.conv_transpose1d if nd == 1 else F.conv_transpose2d
    y = tconv(basis, w, stride=s_t, dilation=d_t, groups=groups)
    out = y.new_zeros(size, y.shape[1], *n_t)
    if nd == 1:
        for t in range(y.shape[-1]):
            out[..., t % n_t[0]] += y[..., t]
    else:
        for t1 in range(y.shape[-2]):
            for t2 in range(y.shape[-1]):
                out[..., t1 % n_t[0], t2 % n_t[1]] += y[..., t1, t2]
    return out.reshape(size, -1).T.contiguous()


def _effective_rank(s: np.ndarray) -> float:
    """exp of the entropy of the normalised singular values (Roy & Vetterli 2007)."""
    p = s / s.sum() if s.sum() > 0 else s
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum())) if p.size else 0.0


def layer_spectra(
    module: nn.Module,
    n_freq: int = 32,
    n_freq_2d: int = 8,
    quantiles: int = 33,
    layers: Sequence[str] | None = None,
    model_name: str = "",
    layer_sites: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Singular-value spectra of every conv layer of ``module`` (circular boundaries).

    Parameters
    ----------
    module : nn.Module
    n_freq : int
        Frequencies per layer: 1-D layers are analysed on signals of ``n_freq * stride`` samples.
    n_freq_2d : int
        Frequencies per axis for 2-D layers (``n_freq_2d ** 2`` matrices).
    quantiles : int
        Points of the pooled, sorted spectrum kept per layer in the long table.
    layers : list of str, optional
        Module paths to analyse (default: every ``Conv1d/2d`` and ``ConvTranspose1d/2d``).
    layer_sites : dict, optional
        Module path -> site name, copied into a ``site`` column.

    Returns
    -------
    summary : DataFrame
        One row per layer: ``model, layer, site, kind, c_in, c_out, kernel, stride, dilation, groups, n,
        spectral_norm, sigma_min, condition_number, stable_rank, effective_rank, n_singular``.
    values : DataFrame
        ``model, layer, quantile, sigma``: the pooled singular values at evenly spaced ranks
        (quantile 0 = largest).
    """
    rows, vals = [], []
    for name, m in module.named_modules():
        if not isinstance(m, _CONVS) or (layers is not None and name not in layers):
            continue
        transposed = isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d))
        nd = 1 if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)) else 2
        stride, dil = _tuple(m.stride, nd), _tuple(m.dilation, nd)
        nf = n_freq if nd == 1 else n_freq_2d
        n = tuple(nf * s for s in stride)
        sv = conv_singular_values(m.weight, n, stride, dil, m.groups, transposed)
        flat = np.sort(sv.reshape(-1).numpy())[::-1]
        top = float(flat[0]) if flat.size else 0.0
        low = float(flat[-1]) if flat.size else 0.0
        rows.append({
            "model": model_name, "layer": name, "site": (layer_sites or {}).get(name, ""),
            "kind": "transposed" if transposed else "conv", "dims": nd,
            "c_in": int(m.in_channels), "c_out": int(m.out_channels),
            "kernel": "x".join(str(k) for k in _tuple(m.kernel_size, nd)),
            "stride": int(np.prod(stride)), "dilation": int(np.prod(dil)), "groups": int(m.groups),
            "n": int(np.prod(n)), "spectral_norm": top, "sigma_min": low,
            "condition_number": top / low if low > 0 else float("inf"),
            "stable_rank": float((flat ** 2).sum() / top ** 2) if top > 0 else 0.0,
            "effective_rank": _effective_rank(flat), "n_singular": int(flat.size),
        })
        idx = np.linspace(0, flat.size - 1, min(quantiles, flat.size)).round().astype(int)
        for q, i in zip(np.linspace(0, 1, idx.size), idx, strict=True):
            vals.append({"model": model_name, "layer": name, "quantile": float(q), "sigma": float(flat[i])})
    cols = ["model", "layer", "site", "kind", "dims", "c_in", "c_out", "kernel", "stride", "dilation", "groups",
            "n", "spectral_norm", "sigma_min", "condition_number", "stable_rank", "effective_rank", "n_singular"]
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(vals, columns=["model", "layer", "quantile", "sigma"])
