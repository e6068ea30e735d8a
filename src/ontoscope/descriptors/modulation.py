"""Sinusoidal modulation fits: the rate, depth and phase of a periodic modulation.

The workhorse is :func:`fit_sinusoid`, a batched least-squares fit of

    y(t) = c + s (t - t_mid) + a sin(2 pi f t) + b cos(2 pi f t)

to a track ``y`` sampled at times ``t``. For a given rate ``f`` the model is
linear in ``(c, s, a, b)``, so the fit is the classic *variable projection*
approach (Golub & Pereyra 1973): the residual sum of squares after the linear
fit is scanned over a fine grid of rates, and the best rate is then refined by
parabolic interpolation and golden-section search. The least-squares sinusoid
(the frequency that maximises the *weighted* Lomb-Scargle periodogram, Lomb
1976, Scargle 1982, generalised with an offset and a drift by Zechmeister &
Kürster 2009) needs no whole number of periods in the clip, no windowing, and
ignores missing frames (weight 0) exactly.

:func:`vibrato` applies it to an f0 track in cents and returns a dict of
:class:`~ontoscope.descriptors.estimate.Estimate` (rate, depth, centre, R²).
:func:`best_rate` and :func:`fit_at`, the scan and the fit at given rates, are
shared with the envelope fits of :mod:`ontoscope.descriptors.envelope`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from ontoscope.descriptors.estimate import Estimate, reasons_where_undefined, values_of
from ontoscope.errors import AudioError, ConfigError

#: Reason given where a modulation is absent or too weak to have a rate.
NO_MODULATION = "no modulation"
#: Reason given where a track has too few usable frames to fit anything.
TOO_FEW_FRAMES = "too few voiced frames"

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


class SinusoidFit(NamedTuple):
    """Result of :func:`fit_sinusoid`; every field is a Tensor ``[B]`` (float64).

    Attributes
    ----------
    rate : Tensor
        Best-fitting rate ``f`` in Hz.
    amplitude : Tensor
        Peak amplitude ``sqrt(a² + b²)`` of the sinusoid, in the track's unit.
    phase : Tensor
        Phase ``φ`` in radians of ``amplitude · sin(2π f t + φ)``, with ``t`` the
        absolute times given (``t = 0`` at the first sample if a frame rate was given).
    offset : Tensor
        Level ``c`` of the fit at the middle of the valid frames (track unit).
    slope : Tensor
        Linear drift ``s`` in track units per second (0 where ``drift=False``).
    r2 : Tensor
        Fraction of the variance left by offset and drift that the sinusoid explains
        (partial R², in [0, 1]).
    """

    rate: torch.Tensor
    amplitude: torch.Tensor
    phase: torch.Tensor
    offset: torch.Tensor
    slope: torch.Tensor
    r2: torch.Tensor


# ---------------------------------------------------------------------------------------------
# batched weighted least squares with sinusoids at given rates


def _as_track(track: torch.Tensor | np.ndarray, name: str = "track") -> torch.Tensor:
    if not isinstance(track, torch.Tensor):
        arr = np.asarray(track)
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise AudioError(f"{name} must be real numbers, got dtype {arr.dtype}")
        track = torch.from_numpy(np.ascontiguousarray(arr))
    if track.is_complex():
        raise AudioError(f"{name} must be real numbers, got dtype {track.dtype}")
    if track.ndim == 1:
        track = track.unsqueeze(0)
    if track.ndim != 2:
        raise AudioError(f"{name} must have shape [frames] or [batch, frames], got {tuple(track.shape)}")
    if track.shape[0] == 0 or track.shape[1] == 0:
        raise AudioError(f"{name} is empty (shape {tuple(track.shape)})")
    if torch.isinf(track).any():
        raise AudioError(f"{name} has infinite values; use NaN to mark missing frames")
    return track.to(torch.float64)


def _as_times(times: torch.Tensor | np.ndarray | float, n: int, device: torch.device) -> torch.Tensor:
    if isinstance(times, (int, float, np.integer, np.floating)) and not isinstance(times, bool):
        rate = float(times)
        if not (math.isfinite(rate) and rate > 0):
            raise ConfigError(f"frame rate must be a positive number of Hz, got {times}")
        return torch.arange(n, dtype=torch.float64, device=device) / rate
    t = torch.as_tensor(np.asarray(times) if not isinstance(times, torch.Tensor) else times)
    t = t.to(device=device, dtype=torch.float64).reshape(-1)
    if t.shape[0] != n:
        raise AudioError(f"times has {t.shape[0]} entries but the track has {n} frames")
    if not torch.isfinite(t).all():
        raise AudioError("times must be finite")
    if n > 1 and not bool((torch.diff(t) > 0).all()):
        raise AudioError("times must be strictly increasing")
    return t


def _design(t: torch.Tensor, freqs: torch.Tensor, harmonics: Sequence[int], tn: torch.Tensor | None
            ) -> torch.Tensor:
    """Basis ``[..., K, T]``: [1, (tn), sin/cos of each harmonic of each freq]; freqs ``[...]``."""
    ph = 2 * math.pi * freqs[..., None] * t  # [..., T]
    rows = [torch.ones_like(ph)]
    if tn is not None:
        rows.append(tn.expand_as(ph))
    for h in harmonics:
        rows += [torch.sin(h * ph), torch.cos(h * ph)]
    return torch.stack(rows, dim=-2)


def _solve(gram: torch.Tensor, rhs: torch.Tensor, ridge: float = 1e-9) -> torch.Tensor:
    k = gram.shape[-1]
    scale = torch.diagonal(gram, dim1=-2, dim2=-1).mean(-1, keepdim=True).clamp_min(1e-300)
    reg = gram + (ridge * scale)[..., None] * torch.eye(k, dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(reg, rhs.unsqueeze(-1)).squeeze(-1)


def _scan(y: torch.Tensor, w: torch.Tensor, t: torch.Tensor, freqs: torch.Tensor,
          harmonics: Sequence[int], tn: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """RSS ``[B, G]`` and coefficients ``[B, G, K]`` on a grid of rates shared by the batch.

    Every Gram entry is a weighted sum over frames of a product of two basis rows,
    i.e. one matrix product ``w @ (φ_k φ_l)ᵀ`` over the whole grid.
    """
    phi = _design(t, freqs, harmonics, tn)  # [G, K, T]
    g, k, n = phi.shape
    prod = (phi[:, :, None, :] * phi[:, None, :, :]).reshape(g * k * k, n)
    gram = (w @ prod.T).reshape(-1, g, k, k)
    rhs = ((w * y) @ phi.reshape(g * k, n).T).reshape(-1, g, k)
    coef = _solve(gram, rhs)
    yy = (w * y * y).sum(-1, keepdim=True)
    rss = yy - (coef * rhs).sum(-1)
    return rss, coef


def fit_at(y: torch.Tensor, w: torch.Tensor, t: torch.Tensor, freq: torch.Tensor,
           harmonics: Sequence[int], tn: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted least squares of tracks on sinusoids at one rate per clip.

    Parameters
    ----------
    y, w : Tensor ``[B, T]``
        Tracks and their non-negative frame weights (0: frame ignored).
    t : Tensor ``[T]``
        Frame times, s.
    freq : Tensor ``[B]``
        Rate of each clip, Hz.
    harmonics : sequence of int
        Harmonics of the rate in the basis (``(1,)``: one sinusoid).
    tn : Tensor ``[T]`` or None
        A drift term (time normalised to [-1, 1]), or None for none.

    Returns
    -------
    rss : Tensor ``[B]``
        Weighted residual sum of squares.
    coef : Tensor ``[B, K]``
        Coefficients on ``[1, (tn), sin h·, cos h· for each harmonic]``.
    """
    phi = _design(t, freq, harmonics, tn)  # [B, K, T]
    wphi = phi * w[:, None, :]
    gram = wphi @ phi.transpose(1, 2)
    rhs = (wphi * y[:, None, :]).sum(-1)
    coef = _solve(gram, rhs)
    rss = (w * y * y).sum(-1) - (coef * rhs).sum(-1)
    return rss, coef


def _grid(lo: float, hi: float, duration: float, oversample: float) -> torch.Tensor:
    step = 1.0 / (oversample * max(duration, 1e-6))
    n = max(int(math.ceil((hi - lo) / step)) + 1, 3)
    return torch.linspace(lo, hi, n, dtype=torch.float64)


def best_rate(y: torch.Tensor, w: torch.Tensor, t: torch.Tensor, *, lo: torch.Tensor, hi: torch.Tensor,
              harmonics: Sequence[int], tn: torch.Tensor | None, oversample: float, iters: int,
              grid: torch.Tensor | None = None) -> torch.Tensor:
    """Rate in ``[lo, hi]`` (per clip, ``[B]``, Hz) minimising the weighted RSS of :func:`fit_at`.

    A grid scan, then parabolic interpolation and ``iters`` golden-section steps. The grid
    spans ``[min lo, max hi]`` with a step of ``1 / (oversample · duration)``; rates outside a
    clip's own range are excluded for that clip. ``y``, ``w``, ``t``, ``harmonics`` and ``tn``
    as for :func:`fit_at`. Returns a Tensor ``[B]``, Hz.
    """
    dev = y.device
    duration = float(t[-1] - t[0]) if t.numel() > 1 else 1.0
    if grid is None:
        grid = _grid(float(lo.min()), float(hi.max()), duration, oversample).to(dev)
    rss, _ = _scan(y, w, t, grid, harmonics, tn)
    allowed = (grid[None] >= lo[:, None] - 1e-12) & (grid[None] <= hi[:, None] + 1e-12)
    rss = torch.where(allowed, rss, torch.full_like(rss, math.inf))
    j = rss.argmin(-1)
    step = float(grid[1] - grid[0])
    # parabolic interpolation on the three grid points around the minimum
    jm = (j - 1).clamp(0, grid.numel() - 1)
    jp = (j + 1).clamp(0, grid.numel() - 1)
    r0, rm, rp = (rss.gather(1, i[:, None])[:, 0] for i in (j, jm, jp))
    denom = rm - 2 * r0 + rp
    ok = torch.isfinite(denom) & (denom > 0) & (jm != j) & (jp != j)
    shift = torch.where(ok, 0.5 * (rm - rp) / torch.where(ok, denom, torch.ones_like(denom)),
                        torch.zeros_like(denom)).clamp(-1, 1)
    f_best = grid[j] + shift * step
    if iters <= 0:
        return f_best.clamp(lo, hi)
    # golden-section search in [f - step, f + step] around it
    a = torch.maximum(grid[j] - step, lo)
    b = torch.minimum(grid[j] + step, hi)
    c = b - _GOLDEN * (b - a)
    d = a + _GOLDEN * (b - a)
    fc, _ = fit_at(y, w, t, c, harmonics, tn)
    fd, _ = fit_at(y, w, t, d, harmonics, tn)
    for _ in range(iters):
        left = fc < fd
        b = torch.where(left, d, b)
        a = torch.where(left, a, c)
        new_c = b - _GOLDEN * (b - a)
        new_d = a + _GOLDEN * (b - a)
        c_next = torch.where(left, new_c, d)
        d_next = torch.where(left, c, new_d)
        f_new, _ = fit_at(y, w, t, torch.where(left, new_c, new_d), harmonics, tn)
        fc, fd = torch.where(left, f_new, fd), torch.where(left, fc, f_new)
        c, d = c_next, d_next
    f_gold = 0.5 * (a + b)
    r_gold, _ = fit_at(y, w, t, f_gold, harmonics, tn)
    r_par, _ = fit_at(y, w, t, f_best.clamp(lo, hi), harmonics, tn)
    return torch.where(r_gold <= r_par, f_gold, f_best.clamp(lo, hi))


def _weights(track: torch.Tensor, weights: torch.Tensor | np.ndarray | None) -> torch.Tensor:
    valid = torch.isfinite(track)
    if weights is None:
        w = valid.to(track.dtype)
    else:
        w = torch.as_tensor(weights, device=track.device).to(track.dtype)
        if w.ndim == 1:
            w = w.expand_as(track)
        if w.shape != track.shape:
            raise AudioError(f"weights have shape {tuple(w.shape)}; the track is {tuple(track.shape)}")
        if not torch.isfinite(w).all() or bool((w < 0).any()):
            raise AudioError("weights must be finite and non-negative")
        w = torch.where(valid, w, torch.zeros_like(w))
    return w


def fit_sinusoid(
    track: torch.Tensor | np.ndarray,
    times: torch.Tensor | np.ndarray | float,
    *,
    rate_range: tuple[float, float] = (2.0, 12.0),
    weights: torch.Tensor | np.ndarray | None = None,
    drift: bool = True,
    oversample: float = 8.0,
    refine_iters: int = 20,
) -> SinusoidFit:
    """Least-squares fit of one sinusoid (plus offset and drift) to each track of a batch.

    Fits ``y(t) = c + s (t - t_mid) + A sin(2π f t + φ)`` by variable projection: the
    model is linear in ``c, s, A cos φ, A sin φ`` for a given rate ``f``, so the
    residual sum of squares is computed on a grid of rates (step ``1 / (oversample ·
    duration)``, i.e. ``oversample`` points per Fourier bin) and minimised, then
    refined by parabolic interpolation and golden-section search to a small fraction of
    a bin. This is the generalised Lomb-Scargle periodogram (Zechmeister & Kürster
    2009, A&A 496, 577) with a linear trend. No whole number of periods is needed;
    frames that are NaN (or have weight 0) are ignored exactly.

    Parameters
    ----------
    track : Tensor or array ``[B, T]`` (or ``[T]``)
        The modulated quantity (e.g. f0 in cents, a power envelope); NaN marks missing frames.
    times : Tensor or array ``[T]``, or float
        Frame times in seconds (strictly increasing), or a frame rate in Hz
        (times ``arange(T) / rate``).
    rate_range : (float, float)
        Lowest and highest rate searched, in Hz; ``0 < lo < hi``.
    weights : Tensor or array ``[B, T]`` or ``[T]``, optional
        Non-negative frame weights (e.g. a voicing probability); NaN frames get 0.
    drift : bool
        Include the linear drift term ``s (t - t_mid)``.
    oversample : float
        Grid points per Fourier bin ``1 / duration``.
    refine_iters : int
        Golden-section iterations after the grid search.

    Returns
    -------
    SinusoidFit
        ``rate`` (Hz), ``amplitude`` (track unit, peak), ``phase`` (rad), ``offset``,
        ``slope`` (per second) and ``r2``, each a float64 Tensor ``[B]``. Clips with fewer
        than 5 valid frames (or fewer than 3 per period at the top rate) get NaN everywhere.

    Raises
    ------
    AudioError
        Wrong shape, empty, infinite values, times that do not match the track.
    ConfigError
        A rate range that is not ``0 < lo < hi``.
    """
    y = _as_track(track)
    b, n = y.shape
    t = _as_times(times, n, y.device)
    lo, hi = (float(v) for v in rate_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ConfigError(f"rate_range must satisfy 0 < lo < hi, got {rate_range}")
    w = _weights(y, weights)
    yz = torch.nan_to_num(y, nan=0.0)
    nvalid = (w > 0).sum(-1)
    usable = nvalid >= 5
    # centre each clip at its weighted mean level for conditioning
    wsum = w.sum(-1).clamp_min(1e-300)
    mean = (w * yz).sum(-1) / wsum
    yc = (yz - mean[:, None]) * (w > 0)
    t_mid = 0.5 * (t[0] + t[-1])
    half = 0.5 * float(t[-1] - t[0]) if n > 1 else 1.0
    tn = (t - t_mid) / max(half, 1e-9) if drift else None
    lo_t = torch.full((b,), lo, dtype=torch.float64, device=y.device)
    hi_t = torch.full((b,), hi, dtype=torch.float64, device=y.device)
    harmonics = (1,)
    rate = best_rate(yc, w, t, lo=lo_t, hi=hi_t, harmonics=harmonics, tn=tn, oversample=oversample,
                     iters=refine_iters)
    rss, coef = fit_at(yc, w, t, rate, harmonics, tn)
    k0 = 2 if drift else 1
    a, bb = coef[:, k0], coef[:, k0 + 1]
    amp = torch.hypot(a, bb)
    phase = torch.atan2(bb, a)
    offset = coef[:, 0] + mean
    slope = coef[:, 1] / max(half, 1e-9) if drift else torch.zeros_like(offset)
    # RSS with offset and drift only, for the partial R²
    base = _design(t, torch.zeros(1, dtype=torch.float64, device=y.device), (), tn)[0]  # [K0, T]
    wb = base[None] * w[:, None, :]
    g0 = wb @ base.T
    r0 = (wb * yc[:, None, :]).sum(-1)
    c0 = _solve(g0, r0)
    rss0 = (w * yc * yc).sum(-1) - (c0 * r0).sum(-1)
    r2 = (1 - rss / rss0.clamp_min(1e-300)).clamp(0, 1)
    bad = ~usable
    nan = torch.full_like(rate, math.nan)
    out = [torch.where(bad, nan, v) for v in (rate, amp, phase, offset, slope, r2)]
    return SinusoidFit(*out)


def vibrato(
    f0_track: Estimate | torch.Tensor | np.ndarray,
    times: torch.Tensor | np.ndarray | float | None = None,
    *,
    rate_range: tuple[float, float] = (2.0, 12.0),
    weights: torch.Tensor | np.ndarray | None = None,
    min_depth: float = 3.0,
    min_r2: float = 0.3,
    min_frames: int = 20,
) -> dict[str, Estimate]:
    """Vibrato rate, depth and centre frequency from f0 tracks.

    The track is converted to cents, ``c(t) = 1200 log2(f0(t) / f_ref)`` (``f_ref``
    the clip's median f0), and :func:`fit_sinusoid` fits
    ``c(t) = c0 + s (t - t_mid) + D sin(2π r t + φ)``. In the synthesizer's signal
    model (``docs/synthesis.md``) the pitch is ``f0 · 2^(D_v / 1200 · sin(2π r_v t + φ_v))``,
    so the cents track is exactly that sinusoid: ``r`` is the vibrato rate, ``D`` the
    depth (peak deviation, cents) and ``f_ref 2^(c0/1200)`` the centre f0. The drift
    term absorbs slow glides.

    Octave errors of the tracker are removed before the fit (frames more than 600
    cents from the median), then frames whose residual exceeds 5 robust standard
    deviations (1.4826 · MAD) are dropped and the fit is repeated.

    **No vibrato**: the rate is NaN with reason ``"no modulation"`` where the fitted
    depth is below ``min_depth`` cents or the sinusoid explains less than ``min_r2`` of
    the variance left by offset and drift (a jittery or flat track). A clip with fewer
    than ``min_frames`` voiced frames (or less than 1.5 periods of the slowest rate
    between its first and last voiced frame) gets NaN rate and depth with reason
    ``"too few voiced frames"``.

    Parameters
    ----------
    f0_track : Estimate, or Tensor or array ``[B, T]`` (or ``[T]``)
        Fundamental frequency in Hz, NaN (or ≤ 0) where unvoiced: the Estimate of
        :func:`ontoscope.descriptors.pitch.f0_track` (whose ``times`` are used when
        ``times`` is not given), or a track.
    times : Tensor or array ``[T]``, or float
        Frame times in seconds, or the frame rate in Hz; needed unless ``f0_track`` is an
        Estimate with ``times``.
    rate_range : (float, float)
        Vibrato rates searched, Hz.
    weights : Tensor or array, optional
        Frame weights (e.g. periodicity); unvoiced frames get 0 anyway.
    min_depth : float
        Depth (cents, peak) below which there is no vibrato.
    min_r2 : float
        Partial R² below which there is no vibrato.
    min_frames : int
        Fewest voiced frames to attempt a fit.

    Returns
    -------
    dict of str to Estimate
        Each ``[B]`` float64: ``vibrato_rate`` (``"Hz"``; NaN with reason ``"no modulation"``
        or ``"too few voiced frames"``), ``vibrato_depth`` (``"cents"``, peak deviation; NaN
        only with ``"too few voiced frames"``: where there is no vibrato it is the small
        fitted value), ``vibrato_centre`` (``"Hz"``: ``f_ref 2^(c0 / 1200)``, the geometric
        centre of the vibrato) and ``vibrato_r2`` (``"ratio"``: the partial R² of the
        sinusoid in the vibrato band).
    """
    if times is None:
        if not isinstance(f0_track, Estimate) or f0_track.times is None:
            raise ConfigError("vibrato needs the frame times of the f0 track (or an Estimate that has them)")
        times = f0_track.times
    f0 = _as_track(values_of(f0_track), "f0_track")
    b, n = f0.shape
    t = _as_times(times, n, f0.device)
    f0 = torch.where(f0 > 0, f0, torch.full_like(f0, math.nan))
    ref = torch.nanmedian(f0, dim=-1).values
    cents = 1200 * torch.log2(f0 / ref[:, None])
    cents = torch.where(cents.abs() <= 600, cents, torch.full_like(cents, math.nan))
    w = _weights(cents, weights)
    fit = fit_sinusoid(cents, t, rate_range=rate_range, weights=w)
    # one pass of outlier rejection on the residuals
    resid = cents - _model(fit, t)
    dev = torch.where(w > 0, resid.abs(), torch.full_like(resid, math.nan))
    mad = torch.nanmedian(dev, dim=-1).values
    keep = (dev <= 5 * 1.4826 * mad[:, None].clamp_min(0.5)) & (w > 0)
    w2 = torch.where(keep, w, torch.zeros_like(w))
    fit = fit_sinusoid(torch.where(keep, cents, torch.full_like(cents, math.nan)), t, rate_range=rate_range, weights=w2)

    r2_band = _band_r2(cents, fit, t, w2, 1.5 * float(rate_range[1]))
    voiced = w2 > 0
    nvoiced = voiced.sum(-1)
    idx = torch.arange(n, device=f0.device)
    first = torch.where(voiced, idx, torch.full_like(idx, n)).min(-1).values.clamp(max=n - 1)
    last = torch.where(voiced, idx, torch.full_like(idx, -1)).max(-1).values.clamp(min=0)
    span = t[last] - t[first]
    enough = (nvoiced >= min_frames) & (span * rate_range[0] >= 1.5) & torch.isfinite(fit.rate)
    present = enough & (fit.amplitude >= min_depth) & (r2_band >= min_r2)
    nan = torch.full_like(fit.rate, math.nan)
    rate = torch.where(present, fit.rate, nan)
    depth = torch.where(enough, fit.amplitude, nan)
    centre = ref * torch.exp2(fit.offset / 1200)
    r2 = torch.where(enough, r2_band, nan)
    too_few = [TOO_FEW_FRAMES] * b
    rate_reason = ["" if p else (NO_MODULATION if e else TOO_FEW_FRAMES)
                   for e, p in zip(enough.tolist(), present.tolist(), strict=True)]
    return {
        "vibrato_rate": Estimate(rate, "Hz", rate_reason),
        "vibrato_depth": Estimate(depth, "cents", reasons_where_undefined(depth, too_few)),
        "vibrato_centre": Estimate(centre, "Hz", reasons_where_undefined(centre, too_few)),
        "vibrato_r2": Estimate(r2, "ratio", reasons_where_undefined(r2, too_few)),
    }


def _fill_gaps(y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``y [B, T]`` over frames with ``w == 0`` (nearest value at the ends)."""
    out = torch.zeros_like(y)
    n = y.shape[1]
    grid = np.arange(n, dtype=np.float64)
    yv, wv = y.detach().cpu().numpy(), w.detach().cpu().numpy()
    res = np.zeros_like(yv)
    for i in range(y.shape[0]):
        ok = wv[i] > 0
        if ok.sum() >= 2:
            res[i] = np.interp(grid, grid[ok], yv[i, ok])
    out = torch.from_numpy(res).to(device=y.device, dtype=y.dtype)
    return out


def _band_r2(track: torch.Tensor, fit: SinusoidFit, t: torch.Tensor, w: torch.Tensor, band: float
             ) -> torch.Tensor:
    """Partial R² of the fitted sinusoid in the band below ``band`` Hz.

    The track minus offset and drift, and the residual of the full fit, are gap-filled
    (linear interpolation), low-passed below ``band`` (FFT brick-wall; the frames must be
    evenly spaced, else no low-pass) and compared on the valid frames: components faster
    than any vibrato (frame jitter, the frequency wobble of beating partials) do not count
    against the fit.
    """
    t_mid = 0.5 * (t[0] + t[-1])
    trend = fit.offset[:, None] + fit.slope[:, None] * (t - t_mid)
    y0 = torch.nan_to_num(track - trend, nan=0.0)
    res = torch.nan_to_num(track - _model(fit, t), nan=0.0)
    n = t.shape[0]
    dt = torch.diff(t)
    if n > 2 and bool((dt - dt.mean()).abs().max() < 1e-3 * dt.mean()):
        rate = 1.0 / float(dt.mean())
        y0, res = _fill_gaps(y0, w), _fill_gaps(res, w)
        keep = (torch.fft.rfftfreq(2 * n, 1.0 / rate, dtype=y0.dtype).to(y0.device) <= band)
        y0 = torch.fft.irfft(torch.fft.rfft(y0, 2 * n) * keep, 2 * n)[:, :n]
        res = torch.fft.irfft(torch.fft.rfft(res, 2 * n) * keep, 2 * n)[:, :n]
    ss0 = (w * y0 * y0).sum(-1)
    ss = (w * res * res).sum(-1)
    return (1 - ss / ss0.clamp_min(1e-300)).clamp(0, 1)


def _model(fit: SinusoidFit, t: torch.Tensor) -> torch.Tensor:
    """Evaluate a :class:`SinusoidFit` at times ``t`` → ``[B, T]``."""
    t_mid = 0.5 * (t[0] + t[-1])
    return (fit.offset[:, None] + fit.slope[:, None] * (t - t_mid)
            + fit.amplitude[:, None] * torch.sin(2 * math.pi * fit.rate[:, None] * t + fit.phase[:, None]))


def vibrato_descriptors(
    f0_track: Estimate | torch.Tensor | np.ndarray,
    times: torch.Tensor | np.ndarray | float | None = None,
    **kwargs: object,
) -> dict[str, Estimate]:
    """Vibrato descriptors of a batch of f0 tracks, keyed by factor name.

    Parameters
    ----------
    f0_track, times
        As for :func:`vibrato`.
    **kwargs
        Passed to :func:`vibrato`.

    Returns
    -------
    dict of str to Estimate
        ``vibrato_rate`` (Hz) and ``vibrato_depth`` (cents), ``[B]`` float32, as
        :func:`vibrato` gives them. Where there is no vibrato the rate is NaN and the
        depth is the small fitted value (defined).
    """
    v = vibrato(f0_track, times, **kwargs)  # type: ignore[arg-type]
    return {k: v[k].to(torch.float32) for k in ("vibrato_rate", "vibrato_depth")}
