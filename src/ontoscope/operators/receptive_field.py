"""Geometry of every site: cumulative stride, frame rate, receptive field, dims per second, compression.

Theory
------
Along a chain of layers, each of kernel ``k_l``, stride ``s_l`` and dilation
``d_l`` (along time), the receptive field ``r`` and the jump ``j`` (input
samples between neighbouring frames, the cumulative stride) follow the
recursion of Araujo, Norris & Sim (2019, "Computing receptive fields of
convolutional neural networks", Distill)::

    r_l = r_{l-1} + (k_l - 1) * d_l * j_{l-1},      j_l = j_{l-1} * s_l,      r_0 = j_0 = 1.

Pools are convolutions for this purpose; a transposed convolution of stride
``s`` reads at most ``ceil((d (k - 1) + 1) / s)`` input frames per output
frame, so ``r`` grows by ``(ceil(...) - 1) * j_{l-1}`` and ``j`` divides by
``s``. An STFT (or CQT, or any framing) front end is a convolution with
``r = n_fft`` (the longest kernel) and ``j = hop``. A residual unit adds the
receptive field of its branch (the skip path adds nothing). Recurrent and
attention layers give every frame the whole input (``global_context``); the
conv-only receptive field is still reported for them.

Where the layers come from
--------------------------
* :func:`module_ops` walks an ``nn.Module`` statically, in registration order
  (right for ``nn.Sequential`` chains and the model family).
* :func:`traced_ops` runs the model once on a short probe (batch 1) with
  forward pre-hooks on every submodule and records the layers in the order
  they are *called*, stage by stage. This reaches modules held inside
  closures (the ``transformers`` adapters) and front ends run in
  ``preprocess``. A convolution whose input batch is not the probe's batch of 1
  runs on frames folded into the batch (CREPE, PESTO): it acts *within* a
  frame (or along frequency), so it does not widen the receptive field in
  time; its own geometry is reported as ``inner_*``. CREPE's framing (an
  ``unfold`` in ``preprocess``, invisible to hooks) is read from the site
  notes ``frame`` and ``hop``.

Empirical check
---------------
:func:`empirical_receptive_field` backpropagates one output frame (a fixed
random projection of all its channels) to the input: the support of the
gradient is the empirical receptive field, and the squared-gradient profile
is the effective receptive field of Luo, Li, Urtasun & Zemel (2016,
"Understanding the effective receptive field in deep convolutional neural
networks"), summarised as the width of the central interval holding 95 % of
the squared-gradient mass. Normalisation over time (``GroupNorm`` in the
wav2vec 2.0 feature encoder) makes the support global while the conv
receptive field stays finite; such sites are flagged ``time_norm``, and the
per-site check (:func:`site_geometry`) holds those statistics fixed while it
backpropagates (:func:`fixed_norm_statistics`), so that it measures the conv
path.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ontoscope.models.layers import Blur1d, ResUnit1d
from ontoscope.models.protocol import AudioModel, Site, encode_sites, site_module

__all__ = [
    "FRONT_ENDS",
    "LayerOp",
    "TimeGeometry",
    "compose",
    "empirical_receptive_field",
    "empirical_stride",
    "front_end_geometry",
    "module_ops",
    "register_front_end",
    "site_geometry",
    "traced_ops",
]

_GLOBAL_NAME = re.compile(r"(Attention|Transformer(Encoder|Decoder)?Layer)", re.IGNORECASE)
_RECURRENT_NAME = re.compile(r"(LSTM|GRU|RNN)", re.IGNORECASE)


@dataclass(frozen=True)
class LayerOp:
    """One layer as far as geometry is concerned.

    Attributes
    ----------
    name : str
        Module path (or a label for front ends).
    kind : str
        ``conv``, ``pool``, ``transposed``, ``frontend``, ``frame``, ``blur`` (these
        move the receptive field), ``recurrent`` (an RNN, LSTM or GRU layer or cell: every
        frame sees the whole past), ``global`` (attention: every frame sees the whole input) or
        ``time_norm`` (statistics over time).
    kernel, stride, dilation : int
        Along time (the last axis), in the layer's input frames.
    axis : {"time", "inner"}
        ``inner``: the layer runs on frames folded into the batch (within a
        frame, or along frequency) and leaves the time geometry alone.
    freq_kernel, freq_stride, freq_dilation : int or None
        Along the frequency axis (second to last) of 2-D layers.
    """

    name: str
    kind: str
    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    axis: str = "time"
    freq_kernel: int | None = None
    freq_stride: int | None = None
    freq_dilation: int | None = None

    @property
    def moves(self) -> bool:
        """True when the layer changes the receptive field or the stride."""
        return self.kind in ("conv", "pool", "transposed", "frontend", "frame", "blur") and (
            self.kernel > 1 or self.stride > 1 or (self.freq_kernel or 1) > 1 or (self.freq_stride or 1) > 1)


@dataclass
class TimeGeometry:
    """Result of :func:`compose` on a list of :class:`LayerOp`.

    Attributes
    ----------
    stride : Fraction
        Input samples per frame (the jump ``j``).
    receptive_field : int
        Conv-only theoretical receptive field, input samples.
    inner_stride, inner_receptive_field : int
        The same recursion over the ``inner`` layers (positions within a frame
        for CREPE, frequency bins for PESTO), in units of their first input.
    freq_stride, freq_receptive_field : Fraction, int
        The recursion along the frequency axis of 2-D layers, in bins of the
        first 2-D layer's input.
    global_context : bool
        A recurrent or attention layer comes before the site.
    recurrent : bool
        A recurrent layer (or cell) comes before the site: its context is the whole past, and
        only the gradient tells how far back it reaches in practice.
    time_norm : bool
        A normalisation over time (GroupNorm / InstanceNorm) comes before the site.
    ops : list of LayerOp
        The layers that moved something.
    """

    stride: Fraction = Fraction(1)
    receptive_field: int = 1
    inner_stride: int = 1
    inner_receptive_field: int = 1
    freq_stride: Fraction = Fraction(1)
    freq_receptive_field: int = 1
    global_context: bool = False
    recurrent: bool = False
    time_norm: bool = False
    ops: list[LayerOp] = field(default_factory=list)


def _grow(r: int, j: Fraction, k: int, s: int, d: int, transposed: bool) -> tuple[int, Fraction]:
    if transposed:
        span = d * (k - 1) + 1
        r = r + int((math.ceil(span / s) - 1) * j)
        return r, j / s
    return r + int((k - 1) * d * j), j * s


def compose(ops: Iterable[LayerOp]) -> TimeGeometry:
    """Stride and receptive field after a chain of layers (the recursion of Araujo et al. 2019).

    Parameters
    ----------
    ops : iterable of LayerOp
        In forward order.

    Returns
    -------
    TimeGeometry
        ``stride`` in input samples per frame (a Fraction: decoders divide it),
        ``receptive_field`` in input samples, plus the inner and frequency geometry.
    """
    g = TimeGeometry()
    r, j = 1, Fraction(1)
    ri, ji = 1, Fraction(1)
    rf, jf = 1, Fraction(1)
    for op in ops:
        if op.kind in ("global", "recurrent"):
            g.global_context = True
            g.recurrent = g.recurrent or op.kind == "recurrent"
            g.ops.append(op)
            continue
        if op.kind == "time_norm":
            g.time_norm = True
            g.ops.append(op)
            continue
        if not op.moves:
            continue
        g.ops.append(op)
        tr = op.kind == "transposed"
        if op.axis == "inner":
            ri, ji = _grow(ri, ji, op.kernel, op.stride, op.dilation, tr)
            continue
        r, j = _grow(r, j, op.kernel, op.stride, op.dilation, tr)
        if op.freq_kernel is not None:
            rf, jf = _grow(rf, jf, op.freq_kernel, op.freq_stride or 1, op.freq_dilation or 1, tr)
    g.stride, g.receptive_field = j, r
    g.inner_stride, g.inner_receptive_field = int(ji), ri
    g.freq_stride, g.freq_receptive_field = jf, rf
    return g


# ----------------------------------------------------------------- front ends
#: Front ends that are not plain convolutions: class name -> function(module) -> (n_fft, hop) in samples.
#: ``Spectrogram`` (this package) and PESTO's CQT are recognised by their attributes; the two
#: ``transformers`` feature extractors below use the 10 ms hop (160 samples at 16 kHz) of Whisper and AST.
FRONT_ENDS: dict[str, Callable[[nn.Module], tuple[int, int]]] = {
    "LogMel": lambda m: (int(m.window.numel()), 160),
    "KaldiFbank": lambda m: (int(m.window.numel()), 160),
}


def register_front_end(class_name: str, geometry: Callable[[nn.Module], tuple[int, int]]) -> None:
    """Declare the (window, hop) in input samples of a front-end module class that is not a conv layer."""
    FRONT_ENDS[class_name] = geometry


def front_end_geometry(m: nn.Module) -> tuple[int, int] | None:
    """The (window, hop) in input samples of a framing front end (registered, or with ``hop`` and a
    ``lengths``, ``n_fft`` or ``width``), or None for any other module."""
    name = type(m).__name__
    if name in FRONT_ENDS:
        return FRONT_ENDS[name](m)
    hop = getattr(m, "hop", None)
    if isinstance(hop, int) and hop > 0:
        lengths = getattr(m, "lengths", None)
        if lengths is not None:  # CQT: the longest kernel's support
            return int(np.max(np.asarray(lengths))), hop
        n_fft = getattr(m, "n_fft", None)
        if isinstance(n_fft, int):
            return n_fft, hop
        width = getattr(m, "width", None)
        if isinstance(width, int):
            return width, hop
    return None


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) > 1 else (int(v[0]), int(v[0]))
    return int(v), int(v)


def _op_of(m: nn.Module, name: str, axis: str = "time") -> LayerOp | None:
    """The LayerOp of a recognised module, or None (pointwise in time, or a container)."""
    if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d)):
        kind = "transposed"
    elif isinstance(m, (nn.Conv1d, nn.Conv2d)):
        kind = "conv"
    elif isinstance(m, (nn.MaxPool1d, nn.AvgPool1d, nn.MaxPool2d, nn.AvgPool2d)):
        kind = "pool"
    elif isinstance(m, Blur1d):
        return LayerOp(name, "blur", int(m.kernel.shape[-1]), 1, 1, axis)
    elif isinstance(m, (nn.RNNBase, nn.RNNCellBase)) or _RECURRENT_NAME.search(type(m).__name__):
        return LayerOp(name, "recurrent", axis=axis)
    elif isinstance(m, (nn.MultiheadAttention, nn.TransformerEncoderLayer,
                        nn.TransformerDecoderLayer)) or _GLOBAL_NAME.search(type(m).__name__):
        return LayerOp(name, "global", axis=axis)
    elif isinstance(m, (nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d)):
        return LayerOp(name, "time_norm", axis=axis)
    else:
        fe = front_end_geometry(m)
        if fe is not None:
            return LayerOp(name, "frontend", fe[0], fe[1], 1, axis)
        return None
    two_d = isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d))
    fk, tk = _pair(m.kernel_size)
    fs, ts = _pair(m.stride if m.stride is not None else m.kernel_size)
    fd, td = _pair(getattr(m, "dilation", 1))
    if not two_d:
        return LayerOp(name, kind, tk, ts, td, axis)
    return LayerOp(name, kind, tk, ts, td, axis, fk, fs, fd)


def module_ops(module: nn.Module, prefix: str = "") -> list[LayerOp]:
    """Layers of ``module`` in registration order (a static walk; right for ``nn.Sequential`` chains).

    Recognised: ``Conv1d/2d``, ``ConvTranspose1d/2d``, max/avg pools, the family's ``Blur1d``
    (and ``Downsample1d``, ``Upsample1d``, ``SameConv1d`` through their convs), ``ResUnit1d``
    (its branch), STFT / CQT front ends, recurrent and attention layers, time normalisations.
    """
    op = _op_of(module, prefix or type(module).__name__)
    if op is not None:
        return [op]
    if isinstance(module, ResUnit1d):
        return module_ops(module.block, f"{prefix}.block" if prefix else "block")
    out: list[LayerOp] = []
    for name, child in module.named_children():
        out += module_ops(child, f"{prefix}.{name}" if prefix else name)
    return out


# ----------------------------------------------------------------- tracing
def probe_length(model: AudioModel, seconds: float = 0.5) -> int:
    """A probe length (samples) long enough for every site to have a few frames."""
    strides = [s.stride for s in model.sites() if s.stride]
    n = max(int(seconds * model.sample_rate), 4 * max(strides, default=1), int(getattr(model, "min_samples", 1)))
    big = max(strides, default=1)
    return int(math.ceil(n / big) * big)


def _framing_op(sites: Sequence[Site]) -> LayerOp | None:
    for s in sites:
        if "frame" in s.notes and "hop" in s.notes:
            return LayerOp("preprocess.framing", "frame", int(s.notes["frame"]), int(s.notes["hop"]))
    return None


_F_POOLS = {F.max_pool1d: "pool", F.avg_pool1d: "pool", F.max_pool2d: "pool", F.avg_pool2d: "pool",
            F.conv1d: "conv", F.conv2d: "conv", F.conv_transpose1d: "transposed", F.conv_transpose2d: "transposed"}


def _functional_op(func: Callable, args: tuple, kwargs: dict) -> LayerOp | None:
    """The LayerOp of a functional conv / pool call (``torch.nn.functional``), or None."""
    kind = _F_POOLS.get(func)
    if kind is None or not args or not isinstance(args[0], torch.Tensor):
        return None
    x = args[0]
    two_d = func in (F.max_pool2d, F.avg_pool2d, F.conv2d, F.conv_transpose2d)
    folded = x.ndim >= 3 and x.shape[0] != 1
    axis = "inner" if folded else "time"
    name = f"F.{getattr(func, '__name__', 'op')}"
    if kind == "pool":
        k = kwargs.get("kernel_size", args[1] if len(args) > 1 else None)
        st = kwargs.get("stride", args[2] if len(args) > 2 else None)
        d = kwargs.get("dilation", args[4] if len(args) > 4 and func in (F.max_pool1d, F.max_pool2d) else 1)
        st = k if st is None or (isinstance(st, (list, tuple)) and not st) else st
    else:
        w = kwargs.get("weight", args[1] if len(args) > 1 else None)
        if not isinstance(w, torch.Tensor):
            return None
        k = tuple(w.shape[2:])
        pos = 3 if kind == "conv" else 3
        st = kwargs.get("stride", args[pos] if len(args) > pos else 1)
        dpos = 5 if kind == "conv" else 6
        d = kwargs.get("dilation", args[dpos] if len(args) > dpos else 1)
    fk, tk = _pair(k)
    fs, ts = _pair(st)
    fd, td = _pair(d)
    if not two_d:
        return LayerOp(name, kind, tk, ts, td, axis)
    return LayerOp(name, kind, tk, ts, td, axis, fk, fs, fd)


class _FunctionalOps(TorchFunctionMode):
    """Report functional convs and pools (``F.conv1d``, ``F.max_pool1d``, ...) to a callback, in call order."""

    def __init__(self, report: Callable[[LayerOp], None]) -> None:
        super().__init__()
        self.report = report

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        op = _functional_op(func, args, kwargs)
        if op is not None:
            self.report(op)
        return func(*args, **kwargs)


def traced_ops(model: AudioModel, n_samples: int | None = None) -> dict[str, list[LayerOp]]:
    """Layers met on the way to each site, in call order, from one probe pass (batch 1).

    Parameters
    ----------
    model : AudioModel
        Any model; a chain of stages (:class:`~ontoscope.models.protocol.SiteChain`) is traced in one pass,
        others site by site.
    n_samples : int, optional
        Probe length; default :func:`probe_length`.

    Returns
    -------
    dict site name -> list of LayerOp (every layer before and in the site's stage).
    """
    sites = model.sites()
    n = probe_length(model) if n_samples is None else int(n_samples)
    if not isinstance(model, nn.Module):
        return {s.name: [] for s in sites}
    names = {id(m): name for name, m in model.named_modules()}
    records: list[tuple[int, LayerOp]] = []
    current = [-1]
    framing = _framing_op(sites)

    inside = [0]  # depth of recognised modules being run: functional calls inside them are theirs

    def hook(m: nn.Module, args: tuple) -> None:
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        folded = x is not None and x.ndim >= 3 and x.shape[0] != 1
        op = _op_of(m, names.get(id(m), type(m).__name__), "inner" if folded else "time")
        if op is not None:
            if inside[0] == 0:
                records.append((current[0], op))
            inside[0] += 1

    def leave(m: nn.Module, _a: tuple, _o: object) -> None:
        if _op_of(m, "") is not None:
            inside[0] -= 1

    def functional(op: LayerOp) -> None:
        if inside[0] == 0:
            records.append((current[0], op))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if m is not model]
    handles += [m.register_forward_hook(leave) for m in model.modules() if m is not model]
    stages = [site_module(model, s.name) for s in sites]
    staged = bool(stages) and all(st is not None for st in stages)
    if staged:
        for i, st in enumerate(stages):
            def enter(_m: nn.Module, _a: tuple, i: int = i) -> None:
                current[0] = i
            handles.append(st.register_forward_pre_hook(enter, prepend=True))  # before a stage's own op is read
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.randn(1, n, generator=torch.Generator().manual_seed(0), device=dev) * 0.1
    out: dict[str, list[LayerOp]] = {}
    try:
        with torch.no_grad(), _FunctionalOps(functional):
            if staged:
                model.encode(x, upto=sites[-1].name)
                for i, s in enumerate(sites):
                    out[s.name] = [op for stage, op in records if stage <= i]
            else:
                for s in sites:
                    records.clear()
                    model.encode(x, upto=s.name)
                    out[s.name] = [op for _, op in records]
    finally:
        for h in handles:
            h.remove()
    if framing is not None:
        out = {k: [framing, *v] for k, v in out.items()}
    return out


# ----------------------------------------------------------------- empirical
def _frames_of(acts: torch.Tensor) -> int:
    return int(acts.shape[-1])


def empirical_stride(encode: Callable[[torch.Tensor], torch.Tensor], n_samples: int, step: int) -> float:
    """Input samples per frame measured from frame counts: ``step / (T(n + step) - T(n))``.

    ``encode`` maps audio ``[1, N]`` to activations ``[1, C, (F,) T]``; ``step`` should be a
    multiple of the expected stride. NaN when the frame count does not grow (fixed-length models).
    """
    with torch.no_grad():
        t1 = _frames_of(encode(torch.zeros(1, n_samples)))
        t2 = _frames_of(encode(torch.zeros(1, n_samples + step)))
    return float(step / (t2 - t1)) if t2 > t1 else float("nan")


def empirical_receptive_field(
    encode: Callable[[torch.Tensor], torch.Tensor],
    n_samples: int,
    *,
    n_inputs: int = 2,
    frame: int | None = None,
    mass: float = 0.95,
    rel_tol: float = 1e-20,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> dict[str, float]:
    """Receptive field from the gradient of one output frame w.r.t. the input.

    Parameters
    ----------
    encode : callable
        Audio ``[B, N]`` -> activations ``[B, C, T]`` or ``[B, C, F, T]``; clips must not interact.
    n_samples : int
        Input length ``N``; choose it several times the expected receptive field.
    n_inputs : int
        Random inputs (white noise, RMS 0.1) averaged in the squared-gradient profile.
    frame : int, optional
        Output frame to backpropagate; default the middle one.
    mass : float
        Fraction of the squared-gradient mass the effective receptive field holds.
    rel_tol : float
        A sample is in the support when its mean squared gradient exceeds ``rel_tol`` times
        the largest and 100 times the far-field median (see :func:`_profile_stats`). Outside a conv
        path's support the gradient is exactly zero (no arithmetic reaches it), so the default only
        guards against denormals: the support is the mathematical one.

    Returns
    -------
    dict with ``empirical_rf`` (support width, samples), ``effective_rf`` (central interval holding
    ``mass`` of the squared gradient, samples), ``support_start``/``support_end`` (sample indices),
    ``centre`` (gradient centroid), ``truncated`` (1.0 when the support touches both ends of the input:
    the true receptive field is at least ``n_samples``), ``floor`` (far-field level / largest), ``frame``.
    """
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n_inputs, n_samples, generator=g, dtype=torch.float64) * 0.1).to(dtype)
    x.requires_grad_(True)
    acts = encode(x)
    t = acts.shape[-1]
    f = t // 2 if frame is None else int(frame)
    sel = acts[..., f]
    v = torch.randn(sel.shape[1:], generator=g, dtype=torch.float64).to(sel.dtype)
    (sel * v).sum().backward()
    prof = x.grad.detach().double().pow(2).mean(0).numpy()
    return {**_profile_stats(prof, mass, rel_tol), "frame": float(f)}


def _profile_stats(prof: np.ndarray, mass: float, rel_tol: float, floor_factor: float = 100.0,
                   expected: float | None = None) -> dict[str, float]:
    """Support width, central-mass width and centroid of a squared-gradient profile ``[N]``.

    A sample is in the support when its squared gradient exceeds both ``rel_tol`` times the largest
    and ``floor_factor`` times the far-field level: the median of the profile over the samples
    farther than ``expected`` (the theoretical receptive field, when known and when that leaves
    at least a tenth of the input) from the centroid, else over all samples. For a conv path the
    far field is exactly zero; a per-clip normalisation of the input (wav2vec 2.0 standardises
    every clip) leaves a small gradient everywhere, which the floor ignores. ``floor`` in the result
    is that far-field level relative to the largest value (0 for a conv path).
    """
    n = prof.shape[0]
    top = prof.max()
    if not np.isfinite(top) or top <= 0:
        nan = float("nan")
        return {"empirical_rf": nan, "effective_rf": nan, "support_start": nan, "support_end": nan,
                "centre": nan, "truncated": nan, "floor": nan}
    pos = np.arange(n)
    centre = float((prof * pos).sum() / prof.sum())
    far = np.ones(n, dtype=bool)
    if expected is not None and expected == expected:
        mask = np.abs(pos - centre) > expected
        if mask.sum() >= n // 10:
            far = mask
    floor = float(np.median(prof[far]))
    idx = np.flatnonzero(prof > max(rel_tol * top, floor_factor * floor))
    start, end = int(idx[0]), int(idx[-1])
    cdf = np.cumsum(prof) / prof.sum()
    lo = int(np.searchsorted(cdf, (1 - mass) / 2))
    hi = int(np.searchsorted(cdf, 1 - (1 - mass) / 2))
    return {"empirical_rf": float(end - start + 1), "effective_rf": float(hi - lo + 1),
            "support_start": float(start), "support_end": float(end), "centre": centre,
            "truncated": float(start == 0 and end == n - 1), "floor": floor / float(top)}


# ----------------------------------------------------------------- per-site table
def _as_number(x: Fraction) -> float:
    return float(x)


def site_geometry(
    model: AudioModel,
    *,
    model_name: str = "",
    empirical: bool = True,
    empirical_max_samples: int = 96000,
    empirical_global: bool = False,
    n_samples: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One row per site: geometry from the layers, the declared geometry, and the empirical check.

    Columns
    -------
    model, site, index, role, layout, channels, freq_bins,
    stride (input samples per frame), frame_rate_hz, receptive_field_samples (conv-only, theoretical),
    receptive_field_s, global_context, recurrent (a recurrent layer precedes the site), time_norm,
    inner_receptive_field, inner_stride,
    freq_receptive_field_bins, freq_stride_bins, declared_stride, declared_receptive_field,
    geometry_agrees (declared equals traced where declared), dims_per_frame (channels x freq bins),
    dims_per_second (dims_per_frame x frame rate), compression_ratio (input samples per second /
    dims per second), empirical_stride, empirical_rf_samples, effective_rf_samples (95 % of the
    squared-gradient mass, Luo et al. 2016), empirical_truncated, empirical_floor (far-field squared
    gradient over the largest: > 0 where the whole clip matters a little, e.g. through a per-clip
    normalisation), n_layers.

    ``empirical`` runs the gradient check (one backward pass per site, on at most
    ``empirical_max_samples`` samples); attention sites are skipped unless ``empirical_global``
    (their support is the whole input anyway). Recurrent sites are always checked, on at least
    4 s of input: their theoretical context is the whole past, so ``effective_rf_samples`` (the
    span holding 95 % of the squared gradient of the middle frame) is the only measure of how far
    back a trained recurrence actually reads, its *effective memory*; ``empirical_truncated`` says
    that the support reached the start of the clip. ``progress`` is called with each site's name as
    its check starts.
    """
    sites = model.sites()
    sr = int(model.sample_rate)
    ops = traced_ops(model, n_samples)
    rows = []
    for i, s in enumerate(sites):
        g = compose(ops.get(s.name, []))
        traced = bool(ops.get(s.name))
        stride = float(g.stride) if traced else (float(s.stride) if s.stride else float("nan"))
        rf = float(g.receptive_field) if traced else (float(s.receptive_field) if s.receptive_field else float("nan"))
        agrees = True
        if s.stride is not None and traced and abs(float(s.stride) - stride) > 1e-9:
            agrees = False
        if s.receptive_field is not None and traced and s.receptive_field != g.receptive_field:
            agrees = False
        if s.stride is None and s.global_context:
            stride = float("nan")  # token sites without a time axis (AST's patch sequence)
        glob = bool(s.global_context or g.global_context)
        fr = replace(s, stride=stride).frame_rate(sr)
        fr = float("nan") if fr is None else fr
        dims = s.channels * (s.freq_bins or 1)
        dps = dims * fr
        rows.append({
            "model": model_name, "site": s.name, "index": i, "role": s.role, "layout": s.layout,
            "channels": s.channels, "freq_bins": s.freq_bins if s.freq_bins is not None else 0,
            "stride": stride, "frame_rate_hz": fr, "receptive_field_samples": rf,
            "receptive_field_s": rf / sr, "global_context": glob, "recurrent": g.recurrent,
            "time_norm": g.time_norm,
            "inner_receptive_field": g.inner_receptive_field, "inner_stride": g.inner_stride,
            "freq_receptive_field_bins": g.freq_receptive_field, "freq_stride_bins": float(g.freq_stride),
            "declared_stride": float(s.stride) if s.stride is not None else float("nan"),
            "declared_receptive_field": float(s.receptive_field) if s.receptive_field is not None else float("nan"),
            "geometry_agrees": agrees, "dims_per_frame": dims, "dims_per_second": dps,
            "compression_ratio": sr / dps if dps == dps and dps > 0 else float("nan"),
            "n_layers": len(g.ops),
        })
    table = pd.DataFrame(rows)
    for c in ("empirical_stride", "empirical_rf_samples", "effective_rf_samples", "empirical_truncated",
              "empirical_floor"):
        table[c] = np.nan
    if empirical:
        _fill_empirical(model, table, empirical_max_samples, empirical_global, progress)
    return table


def _norm_output_fixed_stats(m: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor | None:
    """A GroupNorm / InstanceNorm output recomputed with its statistics detached from the graph."""
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if x is None or not isinstance(out, torch.Tensor) or x.ndim < 3:
        return None
    if isinstance(m, nn.GroupNorm):
        groups, eps, affine = m.num_groups, m.eps, m.affine
    elif isinstance(m, (nn.InstanceNorm1d, nn.InstanceNorm2d)):
        if m.track_running_stats and not m.training:
            return None  # running statistics: already local
        groups, eps, affine = x.shape[1], m.eps, m.affine
    else:
        return None
    b, c = x.shape[:2]
    g = x.reshape(b, groups, -1)
    mean = g.mean(-1, keepdim=True).detach()
    var = g.var(-1, unbiased=False, keepdim=True).detach()
    y = ((g - mean) / torch.sqrt(var + eps)).reshape(x.shape)
    if affine:
        shape = (1, c) + (1,) * (x.ndim - 2)
        y = y * m.weight.reshape(shape) + m.bias.reshape(shape)
    return y


@contextlib.contextmanager
def fixed_norm_statistics(model: object) -> Iterator[None]:
    """Inside the block, GroupNorm / InstanceNorm layers of ``model`` treat their statistics as constants.

    Their values are unchanged; only the gradient no longer flows through the mean and variance,
    which are taken over the whole clip. The gradient's support is then the conv path's receptive
    field, as for a network normalised with fixed statistics.
    """
    handles = []
    if isinstance(model, nn.Module):
        for m in model.modules():
            if isinstance(m, (nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d)):
                handles.append(m.register_forward_hook(_norm_output_fixed_stats))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _fill_empirical(model: AudioModel, table: pd.DataFrame, max_samples: int, include_global: bool,
                    progress: Callable[[str], None] | None = None) -> None:
    """Empirical stride and receptive field per site, from one forward pass and one backward pass per site."""
    todo = [r for _, r in table.iterrows() if include_global or r["recurrent"] or not r["global_context"]]
    if not todo:
        return
    unit = int(max(1, round(max((r["stride"] for r in todo if r["stride"] == r["stride"]), default=1.0))))
    rfs = [r["receptive_field_samples"] for r in todo]
    need = max((v for v in rfs if v == v), default=float(model.sample_rate))
    if any(r["recurrent"] for r in todo):  # a recurrence's memory is measured, not bounded: 2 s before the middle
        need = max(need, 2.0 * model.sample_rate)
    n = int(min(max(2 * need + 16 * unit, int(getattr(model, "min_samples", 1)), 2048), max_samples))
    n = int(math.ceil(n / unit) * unit)
    names = [r["site"] for r in todo]
    with torch.no_grad():
        t1 = {k: v.shape[-1] for k, v in encode_sites(model, torch.zeros(1, n), names).items()}
        t2 = {k: v.shape[-1] for k, v in encode_sites(model, torch.zeros(1, n + 8 * unit), names).items()}
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(1, n, generator=g) * 0.1).requires_grad_(True)
    with fixed_norm_statistics(model):
        acts = encode_sites(model, x, names)
    for k, name in enumerate(names):
        if progress is not None:
            progress(name)
        i = int(table.index[table["site"] == name][0])
        if t2[name] > t1[name]:
            table.loc[i, "empirical_stride"] = 8 * unit / (t2[name] - t1[name])
        a = acts[name]
        if not a.requires_grad:
            continue
        sel = a[..., a.shape[-1] // 2]
        v = torch.randn(sel.shape[1:], generator=g).to(sel.dtype)
        (grad,) = torch.autograd.grad((sel * v).sum(), x, retain_graph=k < len(names) - 1, allow_unused=True)
        if grad is None:
            continue
        expected = None if table.loc[i, "recurrent"] else float(table.loc[i, "receptive_field_samples"])
        res = _profile_stats(grad.detach().double().pow(2).mean(0).numpy(), 0.95, 1e-20, expected=expected)
        table.loc[i, "empirical_rf_samples"] = res["empirical_rf"]
        table.loc[i, "effective_rf_samples"] = res["effective_rf"]
        # a causal recurrence's support ends at its frame: it is truncated when it reaches the clip's start
        table.loc[i, "empirical_truncated"] = float(res["support_start"] == 0) if expected is None else res["truncated"]
        table.loc[i, "empirical_floor"] = res["floor"]
