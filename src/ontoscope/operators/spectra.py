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

from collections.abc import Callable, Sequence

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


def _polyphase_taps(
    weight: torch.Tensor, s_t: tuple[int, ...], d_t: tuple[int, ...], m_t: tuple[int, ...],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The taps regrouped by polyphase component: ``[c_out, c_in, *s, *Q]`` float64, and per axis the
    frame offset (mod ``M``) of each of the ``Q`` tap positions."""
    nd = weight.ndim - 2
    w = weight.detach().to(torch.float64)
    k_t = w.shape[2:]
    q_t = [min(-(-(d_t[a] * (k_t[a] - 1) + 1) // s_t[a]), m_t[a]) for a in range(nd)]
    wp = w.new_zeros(*w.shape[:2], *s_t, *q_t)
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
    return wp, [torch.arange(q, dtype=torch.float64) for q in q_t]


def _check_lengths(weight: torch.Tensor, n: int | Sequence[int], stride: int | Sequence[int],
                   dilation: int | Sequence[int]) -> tuple[tuple[int, ...], ...]:
    nd = weight.ndim - 2
    if nd not in (1, 2):
        raise ConfigError(f"conv weights must be 3-D or 4-D, got shape {tuple(weight.shape)}")
    n_t, s_t, d_t = _tuple(n, nd), _tuple(stride, nd), _tuple(dilation, nd)
    for a in range(nd):
        if n_t[a] % s_t[a]:
            raise ConfigError(f"signal length {n_t[a]} is not a multiple of the stride {s_t[a]}")
    return n_t, s_t, d_t, tuple(n_t[a] // s_t[a] for a in range(nd))


def _symbols_at(wp: torch.Tensor, offsets: list[torch.Tensor], m_t: tuple[int, ...],
                freqs: torch.Tensor) -> torch.Tensor:
    """``[F, c_out, c_in * prod(s)]``: the polyphase symbol at the frequency indices ``freqs`` ``[F, nd]``.

    ``A(m) = sum_q W'[q] exp(-2 pi i <m, q / M>)``: a DFT over the few tap positions only, so a
    layer costs its taps times the frequencies asked for, not an FFT of a length-``M`` zero-padded array.
    """
    nd = len(m_t)
    phase = 0.0
    for a in range(nd):
        angle = -2 * np.pi * freqs[:, a, None].double() * offsets[a][None] / m_t[a]  # [F, Q_a]
        shape = [freqs.shape[0]] + [1] * nd
        shape[1 + a] = offsets[a].numel()
        phase = phase + angle.reshape(shape)
    phase = phase.reshape(freqs.shape[0], -1)  # [F, prod(Q)]
    c_out = wp.shape[0]
    taps = wp.reshape(-1, phase.shape[1])  # [c_out * c_in * prod(s), prod(Q)], real
    sym = torch.complex(taps @ phase.cos().T, taps @ phase.sin().T)  # [.., F]
    return sym.reshape(c_out, -1, freqs.shape[0]).permute(2, 0, 1).contiguous()


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
    at frequency ``(m_1, ...)`` (``2 pi m / M`` radians per output frame; the sign convention only
    conjugates the matrices, which leaves their singular values unchanged).
    """
    _, s_t, d_t, m_t = _check_lengths(weight, n, stride, dilation)
    wp, offsets = _polyphase_taps(weight, s_t, d_t, m_t)
    sym = _symbols_at(wp, offsets, m_t, _grid(m_t))
    return sym.reshape(*m_t, *sym.shape[1:])


def _grid(m_t: tuple[int, ...]) -> torch.Tensor:
    """Every frequency index of an ``M_1 (x M_2)`` grid, row-major: ``[prod(M), nd]``."""
    return torch.stack(torch.meshgrid(*[torch.arange(m) for m in m_t], indexing="ij"), -1).reshape(-1, len(m_t))


def _half_grid(m_t: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Frequency indices up to conjugation: a real filter's symbol at ``-m`` is the conjugate of its symbol
    at ``m``, with the same singular values. Returns the representatives ``[U, nd]`` and, for every index
    of the full grid (row-major), the position of its representative."""
    grid = _grid(m_t).numpy()
    idx = np.ravel_multi_index(tuple(grid.T), m_t)
    mirror = np.ravel_multi_index(tuple(((-grid) % np.array(m_t)).T), m_t)
    uniq, where = np.unique(np.minimum(idx, mirror), return_inverse=True)
    return torch.from_numpy(grid[uniq]), torch.from_numpy(where.reshape(-1))


def _singular_values(mats: torch.Tensor, method: str) -> torch.Tensor:
    """Singular values (descending) of a batch of complex matrices ``[F, m, n]``."""
    f, m, n = mats.shape
    if method == "svd":
        return torch.linalg.svdvals(mats)
    gram = mats @ mats.mH if m <= n else mats.mH @ mats
    ev = torch.linalg.eigvalsh(gram)  # ascending
    return ev.clamp_min(0.0).sqrt().flip(-1)


def conv_singular_values(
    weight: torch.Tensor,
    n: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    transposed: bool = False,
    *,
    method: str = "auto",
    max_bytes: int = 1 << 28,
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
    method : {"auto", "svd", "gram"}
        ``svd``: LAPACK's SVD of each frequency's matrix. ``gram``: the square roots of the eigenvalues
        of the smaller Gram matrix ``A A^H`` (or ``A^H A``), a matrix product and a Hermitian
        eigensolver, several times cheaper for wide layers; values below about ``1e-7`` times the
        largest are resolved only to that level (float64). ``auto``: ``gram`` when the smaller side of
        the matrices exceeds 64, else ``svd``.
    max_bytes : int
        Memory for the symbol matrices of one batch of frequencies.

    Only the frequencies up to conjugation are computed (a real filter's symbol at ``-w`` is the
    conjugate of its symbol at ``w``), and only one where every polyphase component has a single tap
    (a 1 x 1 conv, or a kernel no longer than its stride: the symbol does not depend on the
    frequency); the others are copies.

    Returns
    -------
    Tensor ``[*M, r]`` float64, singular values in descending order at each frequency,
    ``r = min(c_out, c_in * prod(stride))`` (of the forward convolution); the operator's
    singular values are all of them, ``prod(M) * r`` in all.
    """
    if method not in ("auto", "svd", "gram"):
        raise ConfigError(f"unknown method {method!r}; use auto, svd or gram")
    w = dense_weight(weight, groups, transposed)
    _, s_t, d_t, m_t = _check_lengths(w, n, stride, dilation)
    wp, offsets = _polyphase_taps(w, s_t, d_t, m_t)
    rows, cols = w.shape[0], w.shape[1] * int(np.prod(s_t))
    if method == "auto":
        method = "gram" if min(rows, cols) > 64 else "svd"
    if all(o.numel() == 1 for o in offsets):  # one tap per polyphase component: the same matrix at every frequency
        sv = _singular_values(_symbols_at(wp, offsets, m_t, torch.zeros(1, len(m_t), dtype=torch.long)), method)
        return sv.expand(int(np.prod(m_t)), -1).reshape(*m_t, min(rows, cols)).clone()
    reps, where = _half_grid(m_t)
    q = offsets[0].numel()
    if method == "gram" and len(m_t) == 1 and q * (q + 1) // 2 < 4 * reps.shape[0]:
        values = [_lag_gram_values(wp.reshape(rows, cols, q), reps[:, 0], m_t[0])]
    else:
        per = max(1, int(max_bytes // max(16 * rows * cols, 1)))
        values = [_singular_values(_symbols_at(wp, offsets, m_t, reps[i:i + per]), method)
                  for i in range(0, reps.shape[0], per)]
    return torch.cat(values)[where].reshape(*m_t, min(rows, cols))


def _lag_gram_values(taps: torch.Tensor, freqs: torch.Tensor, m: int) -> torch.Tensor:
    """Singular values at the frequency indices ``freqs`` of a 1-D symbol ``A(w) = sum_q P_q e^{-i w q}``.

    ``taps`` is ``[rows, cols, Q]`` (``P_q = taps[..., q]``). The smaller Gram matrix is a matrix
    trigonometric polynomial, ``G(w) = C_0 + sum_{d >= 1} (C_d z^d + C_d^T z^-d)`` with ``z = e^{-i w}``
    and ``C_d = sum_q P_{q+d} P_q^T`` (or ``sum_q P_q^T P_{q+d}`` for tall symbols): ``Q (Q + 1) / 2`` real
    products once, instead of one complex product per frequency.
    """
    rows, cols, q = taps.shape
    p = taps.permute(2, 0, 1)  # [Q, rows, cols]
    wide = rows <= cols
    lags = []
    for d in range(q):
        if wide:
            lags.append(sum((p[j + d] @ p[j].T for j in range(q - d)), torch.zeros(rows, rows, dtype=p.dtype)))
        else:
            lags.append(sum((p[j].T @ p[j + d] for j in range(q - d)), torch.zeros(cols, cols, dtype=p.dtype)))
    out = []
    for f in freqs.tolist():
        g = lags[0].to(torch.complex128)
        for d in range(1, q):
            z = complex(np.exp(-2j * np.pi * f * d / m))
            g = g + lags[d] * z + lags[d].T * z.conjugate()
        out.append(torch.linalg.eigvalsh(g).clamp_min(0.0).sqrt().flip(-1))
    return torch.stack(out)


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
    *,
    n_freq: int = 32,
    n_freq_2d: int = 8,
    quantiles: int = 33,
    layers: Sequence[str] | None = None,
    model_name: str = "",
    layer_sites: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
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
    progress : callable, optional
        Called with each layer's path once it is done.

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
        if progress is not None:
            progress(name)
    cols = ["model", "layer", "site", "kind", "dims", "c_in", "c_out", "kernel", "stride", "dilation", "groups",
            "n", "spectral_norm", "sigma_min", "condition_number", "stable_rank", "effective_rank", "n_singular"]
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(vals, columns=["model", "layer", "quantile", "sigma"])
