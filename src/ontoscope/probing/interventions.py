"""One intervention layer: every edit of a site's activations is one object with one ``forward``.

An :class:`Intervention` takes a site's activations ``base`` (``[B, C, T]`` or
``[B, C, F, T]``; for interchange also the ``source``'s, same shape) and returns
the edited activations, same shape. :func:`run_interventions` runs encode → edit
→ resume for any list of them, every edit of a site batched into as few
``resume`` calls as memory allows. Steering, interchange, DAS and the control
checks are thin uses of it. The families:

=================  =============================================================================
``additive``       ``a + m · v``: a vector added to every frame (``v`` a pattern or mean-difference
                   direction scaled to the site's per-frame norm).
``gain``           ``μ + s (a − μ)``: the site (or a subspace of it) scaled about each clip's
                   per-channel time mean ``μ``; ``s = ratio(m)``. Loudness lives here at sites
                   that run at the waveform rate.
``time_warp``      the site's trajectory resampled in time by ``ratio(m)`` (band-limited:
                   Lanczos-windowed sinc, reflected at the ends, centred on the clip's middle):
                   pitch at sites where it is carried in timing; every rate scales with it.
``place_shift``    the site rolled by ``m`` steps along an ordered axis it declares
                   (``Site.notes["place"]``: salience bins, CQT / mel bins), vacated bins filled
                   with the slice's minimum: pitch as a place code.
``modulation``     one of the above made to vary sinusoidally at ``rate_hz`` across frames
                   (``additive``: ``m sin(ωt) v``; ``gain``: ``s(t) = ratio(m)^{sin ωt}``;
                   ``time_warp``: instantaneous ratio ``ratio(m)^{sin ωt}``), to impose vibrato,
                   tremolo or beating.
``interchange``    ``a_b + Q Qᵀ (a_s − a_b)`` over an orthonormal basis ``Q`` ``[C·F, r]``: the
                   base's component in a subspace replaced by the source's (DAS fits ``Q``).
=================  =============================================================================

``ratio(m) = 1 + m`` for ``m ≥ 0`` and ``1 / (1 − m)`` for ``m < 0``, so that a
signed dose gives a log-symmetric scale (``ratio(−m) = 1 / ratio(m)``).

pyvene (Wu et al. 2024) makes every intervention one module whose ``forward``
takes base and source representations; the objects here do the same on a
site's activations, so that one runner serves every family.

References
----------
Wu, Z., Geiger, A., Arora, A., Huang, J., Wang, Z., Goodman, N. D., Manning, C. D.,
& Potts, C. (2024). pyvene: A library for understanding and improving PyTorch models
via interventions. NAACL (demo).
Haufe, S., et al. (2014). On the interpretation of weight vectors of linear models in
multivariate neuroimaging. NeuroImage 87, 96-110 (pattern directions).
Smith, J. O., & Gossett, P. (1984). A flexible sampling-rate conversion method. ICASSP, 112-115
(band-limited interpolation with a windowed sinc).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ontoscope.errors import ConfigError
from ontoscope.models.protocol import AudioModel, Site

__all__ = ["FAMILIES", "Additive", "Gain", "Interchange", "Intervention", "Modulation", "PlaceAxis", "PlaceShift",
           "TimeWarp", "place_axis", "ratio", "run_interventions"]

#: Frames each side of the windowed sinc that resamples a trajectory (time-warp).
RESAMPLE_HALF_WIDTH = 16

#: Every intervention family, in the order the tables list them.
FAMILIES = ("additive", "gain", "time_warp", "place_shift", "modulation", "interchange", "das")


def ratio(m: float) -> float:
    """The log-symmetric scale of a signed dose: ``1 + m`` for ``m ≥ 0``, ``1 / (1 − m)`` below."""
    return 1.0 + m if m >= 0 else 1.0 / (1.0 - m)


def _flat(a: torch.Tensor) -> torch.Tensor:
    """``[B, C, T]`` as is, ``[B, C, F, T]`` as ``[B, C·F, T]`` (channel-major, the views' order)."""
    if a.ndim not in (3, 4):
        raise ConfigError(f"site activations must be [B, C, T] or [B, C, F, T], got shape {tuple(a.shape)}")
    return a.reshape(a.shape[0], -1, a.shape[-1])


def _vector(v: np.ndarray | torch.Tensor, like: torch.Tensor, what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(v, dtype=np.float32) if not isinstance(v, torch.Tensor) else v)
    t = t.to(device=like.device, dtype=like.dtype)
    if t.shape[0] != like.shape[1]:
        raise ConfigError(f"the {what} has {t.shape[0]} entries but the site has {like.shape[1]} channels "
                          "(C·F for a [B, C, F, T] site)")
    return t


def _sinusoid(n_frames: int, rate_hz: float, frame_rate: float, phase: float, like: torch.Tensor) -> torch.Tensor:
    if not 0 < rate_hz < frame_rate / 2:
        raise ConfigError(f"a {rate_hz:g} Hz modulation needs a frame rate above {2 * rate_hz:g} Hz; the site runs "
                          f"at {frame_rate:g} frames per second (Nyquist {frame_rate / 2:g} Hz)")
    t = torch.arange(n_frames, device=like.device, dtype=torch.float64) / frame_rate
    return torch.sin(2 * math.pi * rate_hz * t + phase).to(like.dtype)


class Intervention:
    """An edit of a site's activations. Subclasses set ``family`` and implement :meth:`forward`."""

    family: ClassVar[str] = ""

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """The edited activations, the shape of ``base`` (``source``: the source's, for interchange)."""
        raise NotImplementedError

    def __call__(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward(base, source)


@dataclass
class Additive(Intervention):
    """``a + magnitude · vector`` on every frame; ``vector`` ``[C·F]`` in the site's units."""

    vector: np.ndarray | torch.Tensor
    magnitude: float = 1.0
    family: ClassVar[str] = "additive"

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        a = _flat(base)
        v = _vector(self.vector, a, "direction")
        return (a + float(self.magnitude) * v[None, :, None]).reshape(base.shape)


def _project(dev: torch.Tensor, basis: np.ndarray | torch.Tensor | None) -> torch.Tensor:
    """``dev`` ``[B, D, T]`` restricted to the span of ``basis`` ``[D, r]`` (all of it without one)."""
    if basis is None:
        return dev
    q = _vector(basis, dev, "basis")
    return torch.einsum("dr,er,bet->bdt", q, q, dev)


@dataclass
class Gain(Intervention):
    """``μ + ratio(magnitude) (a − μ)`` with ``μ`` each clip's per-channel time mean; only the span of
    ``basis`` ``[C·F, r]`` (orthonormal) is scaled when one is given."""

    magnitude: float
    basis: np.ndarray | torch.Tensor | None = None
    family: ClassVar[str] = "gain"

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        a = _flat(base)
        dev = _project(a - a.mean(-1, keepdim=True), self.basis)
        return (a + (ratio(self.magnitude) - 1.0) * dev).reshape(base.shape)


def _reflect(idx: torch.Tensor, t: int) -> torch.Tensor:
    """Frame indices folded into ``[0, t)`` by reflection about the end frames (``-1 → 1``, ``t → t - 2``);
    ``t >= 2``."""
    period = 2 * (t - 1)
    m = torch.remainder(idx, period)
    return torch.where(m > t - 1, period - m, m)


def _resample(a: torch.Tensor, positions: torch.Tensor, *, half_width: int = RESAMPLE_HALF_WIDTH) -> torch.Tensor:
    """``a`` ``[B, D, T]`` read at fractional frame ``positions`` ``[T']``: band-limited interpolation with a
    Lanczos-windowed sinc of ``half_width`` frames each side (Smith & Gossett 1984), weights normalised to sum
    to one, the trajectory reflected at its ends. Integer positions read the frames exactly, and the passband
    stays flat to near the site's Nyquist (a cubic kernel read half a frame off keeps 0.52 of a component at
    0.4 of the frame rate). The frames are laid out as rows, so each tap is one contiguous gather."""
    t = a.shape[-1]
    if t < 2:
        return a.clone()
    pos = positions.to(device=a.device, dtype=torch.float64)
    base = torch.floor(pos)
    taps = range(-half_width + 1, half_width + 1)
    x = (pos - base)[None] - torch.arange(taps.start, taps.stop, device=a.device, dtype=torch.float64)[:, None]
    w = torch.sinc(x) * torch.sinc(x / half_width)                     # [2h, T'] the weight of each tap
    w = (w / w.sum(0, keepdim=True)).to(a.dtype)
    frames = a.reshape(-1, t).T.contiguous()                            # [T, B·D]: one frame per row
    out = frames.new_zeros(pos.shape[0], frames.shape[1])
    first = base.long()
    for j, k in enumerate(taps):
        out.addcmul_(frames.index_select(0, _reflect(first + k, t)), w[j][:, None])
    return out.T.reshape(*a.shape[:-1], pos.shape[0])


def _warp_positions(speed: torch.Tensor) -> torch.Tensor:
    """Frame positions ``[T]`` read by a warp whose instantaneous speed is ``speed`` ``[T]``, centred so that
    the clip's middle (frame ``(T - 1) / 2``, between two frames when ``T`` is even) stays in place: a speed
    of 1 reads every frame where it is."""
    t = speed.shape[0]
    u = torch.cumsum(speed.double(), 0) - speed[0].double()
    if t < 2:
        return u
    c = (t - 1) / 2
    lo = int(math.floor(c))
    u_c = u[lo] + (c - lo) * (u[min(lo + 1, t - 1)] - u[lo])  # u read at the middle, between frames if need be
    return u - u_c + c


@dataclass
class TimeWarp(Intervention):
    """The trajectory resampled in time by ``ratio(magnitude)`` (> 1: faster, every rate and pitch up)."""

    magnitude: float
    family: ClassVar[str] = "time_warp"

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        a = _flat(base)
        speed = torch.full((a.shape[-1],), ratio(self.magnitude), dtype=torch.float64, device=a.device)
        return _resample(a, _warp_positions(speed)).reshape(base.shape)


@dataclass(frozen=True)
class PlaceAxis:
    """An ordered axis of a site: ``dim`` (``channels`` or ``freq``), the slice ``[start, stop)`` that is
    ordered, and what one step along it means (``cents_per_step`` for a pitch axis)."""

    dim: str
    start: int
    stop: int
    cents_per_step: float | None = None


def place_axis(site: Site) -> PlaceAxis | None:
    """The ordered axis a site declares in ``notes["place"]`` (None when it declares none)."""
    p = site.notes.get("place") if site.notes else None
    if not p:
        return None
    return PlaceAxis(str(p.get("dim", "channels")), int(p.get("start", 0)),
                     int(p.get("stop", site.channels if p.get("dim", "channels") == "channels" else site.freq_bins)),
                     p.get("cents_per_step"))


@dataclass
class PlaceShift(Intervention):
    """The site rolled by ``steps`` along ``axis`` (up the axis for ``steps > 0``)."""

    steps: int
    axis: PlaceAxis
    family: ClassVar[str] = "place_shift"

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        k = int(self.steps)
        dim = 1 if self.axis.dim == "channels" else 2
        if self.axis.dim == "freq" and base.ndim != 4:
            raise ConfigError("a place shift along freq needs a [B, C, F, T] site")
        out = base.clone()
        part = base.narrow(dim, self.axis.start, self.axis.stop - self.axis.start)
        n = part.shape[dim]
        if k == 0 or n < 2:
            return out
        fill = part.amin(dim, keepdim=True)
        rolled = torch.roll(part, k, dim)
        idx = torch.arange(n, device=base.device)
        vacated = (idx < k) if k > 0 else (idx >= n + k)
        shape = [1] * base.ndim
        shape[dim] = n
        rolled = torch.where(vacated.reshape(shape), fill.expand_as(rolled), rolled)
        out.narrow(dim, self.axis.start, n).copy_(rolled)
        return out


@dataclass
class Modulation(Intervention):
    """An ``inner`` family (``additive``, ``gain`` or ``time_warp``) varied as ``sin(2π rate_hz t + phase)``
    across frames at a site of ``frame_rate`` frames per second."""

    inner: str
    magnitude: float
    rate_hz: float
    frame_rate: float
    vector: np.ndarray | torch.Tensor | None = None
    phase: float = 0.0
    family: ClassVar[str] = "modulation"

    def __post_init__(self) -> None:
        if self.inner not in ("additive", "gain", "time_warp"):
            raise ConfigError(f"unknown modulation {self.inner!r}; modulate additive, gain or time_warp")
        if self.inner == "additive" and self.vector is None:
            raise ConfigError("an additive modulation needs a vector")

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        a = _flat(base)
        s = _sinusoid(a.shape[-1], self.rate_hz, self.frame_rate, self.phase, a)
        m = float(self.magnitude)
        if self.inner == "additive":
            v = _vector(self.vector, a, "direction")
            out = a + m * v[None, :, None] * s
        elif self.inner == "gain":
            mu = a.mean(-1, keepdim=True)
            out = mu + (a - mu) * torch.pow(torch.tensor(ratio(m), dtype=a.dtype, device=a.device), s)
        else:
            speed = torch.pow(torch.tensor(ratio(m), dtype=torch.float64, device=a.device), s.double())
            out = _resample(a, _warp_positions(speed))
        return out.reshape(base.shape)


@dataclass
class Interchange(Intervention):
    """``a_base + Q Qᵀ (a_source − a_base)`` frame by frame, ``Q`` ``[C·F, r]`` orthonormal."""

    basis: np.ndarray | torch.Tensor
    family: ClassVar[str] = "interchange"

    def forward(self, base: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        if source is None or source.shape != base.shape:
            raise ConfigError("an interchange needs source activations of the base's shape")
        a, s = _flat(base), _flat(source)
        q = _vector(self.basis, a, "basis")
        if q.ndim != 2:
            raise ConfigError(f"the basis must be [channels, r], got shape {tuple(q.shape)}")
        return (a + q @ (q.T @ (s - a))).reshape(base.shape)


def run_interventions(
    model: AudioModel,
    acts: torch.Tensor,
    site: str,
    interventions: Sequence[Intervention],
    *,
    source: torch.Tensor | None = None,
    max_rows: int = 64,
    consume: Callable[[torch.Tensor], object] | None = None,
) -> list[object] | torch.Tensor:
    """The model's outputs ``[K, B, ...]`` resumed from ``site`` after each of ``K`` interventions on ``acts``.

    Parameters
    ----------
    model : AudioModel
    acts : Tensor ``[B, ...]``
        The base's activations at ``site`` (``model.encode(audio, site)``), computed once.
    site : str
    interventions : sequence of Intervention
        Applied to the same ``acts`` (and ``source``); their edited activations are stacked along the
        batch and resumed ``max_rows`` rows at a time, so that every magnitude and direction of a site
        costs as few ``resume`` calls as memory allows.
    source : Tensor, optional
        The source's activations, for interchange.
    consume : callable, optional
        Called on each resumed block ``[rows, ...]`` instead of keeping it (e.g. a readout that measures
        it); the return values are collected, in order, and returned as a list.
    """
    if not interventions:
        raise ConfigError("no interventions to run")
    b = acts.shape[0]
    per = max(1, max_rows // max(1, b))  # interventions per resume call
    outs: list = []
    with torch.no_grad():
        for i in range(0, len(interventions), per):
            block = interventions[i:i + per]
            edited = torch.cat([iv(acts, source) for iv in block])
            y = model.resume(edited, site)
            outs.append(consume(y) if consume is not None else y)
    if consume is not None:
        return outs
    y = torch.cat(outs)
    return y.reshape(len(interventions), b, *y.shape[1:])
