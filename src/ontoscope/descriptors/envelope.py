"""Level and envelope descriptors: loudness, attack time, tremolo and beating.

Everything here is measured from the **power envelope** of a clip, the squared
signal low-passed below the clip's lowest fundamental (:func:`amplitude_envelope`).
For a harmonic tone the squared signal holds, besides its slow envelope, the
cross terms of neighbouring partials at ``f0`` and its multiples; a low-pass
below ``f0`` removes them and keeps every modulation slower than that (tremolo,
beating, the attack ramp). In the signal model of ``docs/synthesis.md`` the
power envelope of a clip is, exactly up to those cross terms and the noise's
own fluctuations,

    P(t) = c · ramp(t)² · (1 + m sin(2π r_t t + φ_t))² · (1 + ρ cos(2π Δ t + φ_b)) · fade(t)²

with ``ρ = 2 d / (1 + d²) / (1 + η)``: the beating copy at relative amplitude
``d`` modulates the harmonic power as ``|1 + d e^{i2πΔt}|² = 1 + d² + 2 d cos 2πΔt``,
while the white noise (noise-to-harmonic power ratio ``η = 10^(-HNR/10)``)
shares the envelope ``e`` but not the beating.

:func:`envelope_analysis` fits that model in three steps:

1. **Modulations** on the steady part (after the attack, before the last 30 ms):
   the tremolo factor (lines at ``r_t`` and ``2 r_t``, a level and a drift) and the
   beating factor (a line at ``Δ``) are fitted by alternating weighted least
   squares, each a variable-projection scan over its rate range
   (:func:`ontoscope.descriptors.modulation.fit_sinusoid`'s machinery): the
   tremolo on ``P / beat(t)``, the beating on ``P / tremolo(t)``, with weights
   that make each ratio fit equivalent to a fit of ``P`` itself.
2. **Attack**: with the modulations extrapolated back to the onset, the
   linear-ramp model ``ramp_T(t)² · M(t)``, low-passed by the same filter as the
   data, is fitted for the ramp length by a log-grid scan and golden-section
   refinement. Fitting through the filter recovers attacks much shorter than the
   filter's own resolution (the time it takes a 100 Hz low-pass to rise).
3. Step 1 again on the steady part after the fitted attack.

The depths follow from the fitted line amplitudes: tremolo
``A₁ / A₀ = 2 m / (1 + m² / 2)`` (first harmonic over the mean of ``(1 + m sin)²``),
beating ``ρ`` as above, with ``η`` estimated from the noise floor of the spectrum
(:func:`noise_ratio`) or given.

The descriptors return :class:`~ontoscope.descriptors.estimate.Estimate` values
(:func:`loudness`, :func:`attack_time`) or dicts of them keyed by factor name
(:func:`tremolo`, :func:`beats`, :func:`envelope_descriptors`,
:func:`envelope_analysis`).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import torch

from ontoscope.descriptors.estimate import Estimate, reasons_where_undefined, values_of
from ontoscope.descriptors.modulation import NO_MODULATION, best_rate, fit_at
from ontoscope.descriptors.validate import as_audio_batch
from ontoscope.errors import AudioError, ConfigError

#: Reason for clips that are digitally silent (all samples 0).
SILENT = "silent"
#: Reason for a beat rate that cannot be measured: the envelope's cutoff (below the
#: clip's lowest f0) is below the beat range searched.
ABOVE_CUTOFF = "beat range above envelope cutoff"
#: Reason for no beating found where the envelope's cutoff truncated the beat range.
BELOW_CUTOFF = "no modulation below envelope cutoff"
#: Reason for an attack that does not finish before the end of the clip.
NO_STEADY_PART = "no steady part after the attack"

#: Seconds excluded at the end of a clip (the synthesizer's 10 ms fade-out plus filter edge).
TAIL_SECONDS = 0.03
#: Rate (Hz) of the envelope used for the modulation fits.
MOD_RATE = 250.0
#: Pass-band edge (Hz) of the envelope used for the modulation fits.
MOD_CUTOFF = 110.0

class Envelope(NamedTuple):
    """A power envelope (see :func:`amplitude_envelope`).

    Attributes
    ----------
    power : Tensor ``[B, M]``
        Low-passed squared signal (mean square, full scale² units).
    times : Tensor ``[M]``
        Time of each envelope sample in seconds (``m · hop / sr``).
    rate : float
        Envelope sample rate in Hz (``sr / hop``).
    cutoff : Tensor ``[B]``
        Pass-band edge per clip, Hz (gain 1 below).
    stop : Tensor ``[B]``
        Stop-band edge per clip, Hz (gain 0 above; raised-cosine taper in between).
    """

    power: torch.Tensor
    times: torch.Tensor
    rate: float
    cutoff: torch.Tensor
    stop: torch.Tensor


# ---------------------------------------------------------------------------------------------
# loudness


def loudness(audio: np.ndarray | torch.Tensor) -> Estimate:
    """RMS level of each whole clip in dBFS.

    ``20 log10(sqrt(mean(x²)))``, with full scale = 1: the synthesizer's ``loudness``
    factor exactly (a full-scale sine reads −3.01 dBFS).

    Parameters
    ----------
    audio : array or tensor ``[N]`` or ``[B, N]``
        Mono audio in [-1, 1] full scale.

    Returns
    -------
    Estimate
        ``value`` Tensor ``[B]`` float32 in dBFS (``unit`` ``"dBFS"``), NaN with reason
        ``"silent"`` for all-zero clips.
    """
    x = as_audio_batch(audio, 1)
    ms = (x.double() ** 2).mean(-1)
    silent = ms <= 0
    db = 10 * torch.log10(torch.where(silent, torch.ones_like(ms), ms))
    db = torch.where(silent, torch.full_like(db, math.nan), db)
    return Estimate(db.float(), "dBFS", tuple(SILENT if s else "" for s in silent.tolist()))


# ---------------------------------------------------------------------------------------------
# f0 floor and the power envelope


def lowest_f0(audio: np.ndarray | torch.Tensor, sr: int, fmin: float = 50.0, fmax: float = 2000.0
              ) -> torch.Tensor:
    """A robust estimate of the lowest fundamental frequency of each clip, for the envelope cutoff.

    1. Frames of 64 ms every 48 ms are analysed with the biased autocorrelation,
       whose ``1 - τ/L`` taper favours the true period over its multiples: the period
       is its maximum over lags ``sr / fmax .. sr / fmin`` after the first zero
       crossing, refined by parabolic interpolation. Frames whose normalised peak is
       below 0.2, or whose energy is below 1e-3 of the clip's loudest frame, are
       skipped. The clip's candidate ``f_c`` is the median frame f0, ``f_min`` the
       lowest frame f0 within [0.7, 1.5] ``f_c``.
    2. The autocorrelation finds the period of the whole waveform, which is a
       multiple of the harmonic spacing when a second partial series sits between
       the harmonics (the synthesizer's beating copy at ``Δ ≈ f0 / 2``, say), or half
       of it when the odd partials are very weak. So the lowest partial is located
       in the clip's Hann-windowed power spectrum: among ``q · f_c`` for
       ``q = 1/3, 1/2, 1, 2, 3, 4`` the lowest whose ±10 % band peaks within 18 dB of
       the strongest such band (and, for ``q < 1``, 10 dB above the spectrum's median,
       the noise floor) is the fundamental. The result is the lower of
       ``q · f_min`` and the lowest frequency in ``[0.8, 1.1] q f_c`` where the
       (5-bin smoothed) spectrum is within 20 dB of its peak there: the lower edge of
       the fundamental's band, which includes the trough of any vibrato.

    Each frame averages the f0 over 64 ms, so the trough of a fast vibrato reads a
    little high: :func:`amplitude_envelope` keeps a margin (pass band to 0.8 ×, stop
    band from 0.9 × this value).

    Parameters
    ----------
    audio : array or tensor ``[N]`` or ``[B, N]``
    sr : int
        Sample rate, Hz.
    fmin, fmax : float
        Range searched, Hz.

    Returns
    -------
    Tensor ``[B]`` float64
        Hz; NaN where no frame is periodic (noise, silence).
    """
    x = as_audio_batch(audio, sr)
    b, n = x.shape
    length = min(n, int(round(0.064 * sr)))
    hop = max(1, int(round(0.048 * sr)))
    lag_lo = max(2, int(math.floor(sr / fmax)))
    lag_hi = min(int(math.ceil(sr / fmin)), length // 2)
    nan = torch.full((b,), math.nan, dtype=torch.float64, device=x.device)
    if lag_hi <= lag_lo + 1:
        return nan
    frames = x[:, None, :length] if n < length + hop else x.unfold(1, length, hop)
    frames = (frames - frames.mean(-1, keepdim=True)).contiguous()
    spec = torch.fft.rfft(frames, 2 * length)
    acf = torch.fft.irfft(spec.real ** 2 + spec.imag ** 2, 2 * length)[..., : lag_hi + 2]
    r0 = acf[..., 0]
    lags = torch.arange(acf.shape[-1], device=x.device)
    first_neg = torch.where(acf < 0, lags, torch.full_like(lags, lag_hi)).min(-1).values
    start = first_neg.clamp(min=lag_lo)
    allowed = (lags >= start[..., None]) & (lags <= lag_hi)
    peak, lag = torch.where(allowed, acf, torch.full_like(acf, -math.inf)).max(-1)
    lag = lag.clamp(1, acf.shape[-1] - 2)
    ym = acf.gather(-1, (lag - 1)[..., None])[..., 0]
    yp = acf.gather(-1, (lag + 1)[..., None])[..., 0]
    den = ym - 2 * peak + yp
    shift = torch.where(den < 0, 0.5 * (ym - yp) / torch.where(den < 0, den, -torch.ones_like(den)),
                        torch.zeros_like(den)).clamp(-0.5, 0.5)
    f = (sr / (lag + shift)).double()
    loud = r0 >= 1e-3 * r0.max(-1, keepdim=True).values.clamp_min(1e-30)
    voiced = loud & (peak >= 0.2 * r0) & (r0 > 0)
    fv = torch.where(voiced, f, torch.full_like(f, math.nan))
    f_c = torch.nanmedian(fv, dim=-1).values
    near = voiced & (f >= 0.7 * f_c[:, None]) & (f <= 1.5 * f_c[:, None])
    f_min = torch.where(near, f, torch.full_like(f, math.inf)).min(-1).values
    # the lowest partial: which multiple of f_c carries the fundamental
    win = torch.hann_window(n, periodic=False, dtype=torch.float32, device=x.device)
    xs = torch.fft.rfft(x * win)
    ps = (xs.real ** 2 + xs.imag ** 2).double()
    ps = torch.nn.functional.avg_pool1d(ps[:, None], 5, 1, 2, count_include_pad=False)[:, 0]
    q = torch.tensor([1 / 3, 1 / 2, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64, device=x.device)
    bins = torch.arange(ps.shape[-1], dtype=torch.float64, device=x.device) * (sr / n)
    centre = q[None, :] * torch.nan_to_num(f_c, nan=1.0)[:, None]  # [B, Q]
    inband = (bins[None, None] >= 0.9 * centre[..., None]) & (bins[None, None] <= 1.1 * centre[..., None])
    band = torch.where(inband, ps[:, None, :], torch.zeros_like(ps[:, None, :])).amax(-1)  # [B, Q]
    strong = band >= 10 ** -1.8 * band.amax(-1, keepdim=True)
    # a subharmonic of f_c must also stand 10 dB above the spectrum's median (the noise floor)
    audible = (bins >= fmin) & (bins <= 0.45 * sr)
    floor = torch.nanmedian(torch.where(audible[None], ps, torch.full_like(ps, math.nan)), -1).values
    strong = strong & ((q[None] >= 1) | (band >= 10 * floor[:, None]))
    first = torch.where(strong, torch.arange(q.numel(), device=x.device), q.numel()).min(-1).values
    mult = q[first.clamp(max=q.numel() - 1)]
    # the lower edge of that partial's band (vibrato trough, and below any copy a few Hz up)
    fund = mult * torch.nan_to_num(f_c, nan=1.0)
    near_fund = (bins[None] >= 0.8 * fund[:, None]) & (bins[None] <= 1.1 * fund[:, None])
    top = torch.where(near_fund, ps, torch.zeros_like(ps)).amax(-1, keepdim=True)
    above = near_fund & (ps >= 0.01 * top)
    edge = torch.where(above, bins[None], torch.full_like(ps, math.inf)).min(-1).values
    low = torch.minimum(mult * f_min, edge)
    ok = torch.isfinite(low) & torch.isfinite(f_c)
    return torch.where(ok, low, nan)


def envelope_gain(freq: torch.Tensor | float, cutoff: torch.Tensor, stop: torch.Tensor) -> torch.Tensor:
    """Gain of the envelope filter: 1 up to ``cutoff``, raised-cosine taper to 0 at ``stop``.

    ``freq`` broadcasts against ``cutoff`` and ``stop`` (Hz).
    """
    freq = torch.as_tensor(freq, dtype=torch.float64, device=cutoff.device)
    u = ((freq - cutoff) / (stop - cutoff).clamp_min(1e-9)).clamp(0, 1)
    return 0.5 * (1 + torch.cos(math.pi * u))


def _fast_len(n: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= n and whose quotient is 2^a 3^b 5^c."""
    q = -(-n // multiple)
    while True:
        m = q
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return q * multiple
        q += 1


def _cutoffs(f_low: torch.Tensor, env_rate: float, ratio: float, stop_ratio: float,
             max_cutoff: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    top_stop = 0.45 * env_rate
    if max_cutoff is not None:
        top_stop = min(top_stop, max_cutoff * stop_ratio / ratio)
    stop = torch.where(torch.isfinite(f_low), stop_ratio * f_low, torch.full_like(f_low, top_stop))
    stop = stop.clamp(max=top_stop)
    cutoff = stop * (ratio / stop_ratio)
    return cutoff, stop


class _Squared(NamedTuple):
    spec: torch.Tensor  # rfft of x² zero-padded to n_fft
    n_fft: int
    n: int
    sr: int


def _square_spectrum(x: torch.Tensor, sr: int, multiple: int) -> _Squared:
    n = x.shape[1]
    n_fft = _fast_len(n + max(n // 8, multiple), multiple)
    return _Squared(torch.fft.rfft(x.double() ** 2, n_fft), n_fft, n, sr)


def _band_limit(sq: _Squared, hop: int, cutoff: torch.Tensor, stop: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-pass the squared signal (gain :func:`envelope_gain`) and keep every ``hop``-th sample."""
    m_fft = sq.n_fft // hop
    nb = m_fft // 2 + 1
    freqs = torch.arange(nb, dtype=torch.float64, device=sq.spec.device) * (sq.sr / sq.n_fft)
    gain = envelope_gain(freqs[None], cutoff[:, None], stop[:, None])
    y = torch.fft.irfft(sq.spec[:, :nb] * gain, m_fft) * (m_fft / sq.n_fft)
    m = (sq.n - 1) // hop + 1
    times = torch.arange(m, dtype=torch.float64, device=sq.spec.device) * (hop / sq.sr)
    return y[:, :m], times


def _f0_floor(x: torch.Tensor, sr: int, f0: Estimate | torch.Tensor | np.ndarray | None) -> torch.Tensor:
    """Lowest f0 per clip ``[B]`` from an f0 track ``[B, T]``, per-clip values ``[B]`` (either may be an
    :class:`~ontoscope.descriptors.estimate.Estimate`), or the audio."""
    b = x.shape[0]
    if f0 is None:
        return lowest_f0(x, sr)
    f0 = values_of(f0)
    f = torch.as_tensor(np.asarray(f0) if not isinstance(f0, torch.Tensor) else f0)
    f = f.to(device=x.device, dtype=torch.float64)
    if f.ndim == 0:
        f = f.expand(b)
    if f.ndim == 1 and f.shape[0] == b:
        low = f
    elif f.ndim == 2 and f.shape[0] == b:
        f = torch.where(f > 0, f, torch.full_like(f, math.nan))
        med = torch.nanmedian(f, dim=-1).values
        near = (f >= 0.7 * med[:, None]) & (f <= 1.5 * med[:, None])
        f = torch.where(near, f, torch.full_like(f, math.nan))
        low = torch.nanquantile(f, 0.02, dim=-1)
    else:
        raise AudioError(f"f0 must be [B] values or a [B, T] track for {b} clips, got {tuple(f.shape)}")
    return torch.where(low > 0, low, torch.full_like(low, math.nan))


def amplitude_envelope(
    audio: np.ndarray | torch.Tensor,
    sr: int,
    f0: Estimate | torch.Tensor | np.ndarray | None = None,
    *,
    env_rate: float = 2000.0,
    ratio: float = 0.8,
    stop_ratio: float = 0.9,
    max_cutoff: float | None = None,
) -> Envelope:
    """Power envelope: the squared signal low-passed below the lowest f0 and decimated.

    ``x²`` is transformed over the whole clip (zero-padded by an eighth), multiplied by
    a gain that is 1 up to ``cutoff = ratio · f_low``, falls as a raised cosine to 0 at
    ``stop = stop_ratio · f_low`` (:func:`envelope_gain`), and transformed back on a grid
    of ``hop = round(sr / env_rate)`` samples. ``f_low`` is the clip's lowest f0 (from
    ``f0``, or :func:`lowest_f0`): below it the harmonic cross terms of ``x²`` (at f0
    and its multiples) are removed while tremolo, beating and the attack are kept.
    The stop edge is at most ``0.45 · env_rate`` (and ``max_cutoff · stop_ratio / ratio``).
    Clips without a measurable f0 (noise) get that top cutoff.

    Parameters
    ----------
    audio : array or tensor ``[N]`` or ``[B, N]``
    sr : int
        Sample rate, Hz.
    f0 : Tensor or array, optional
        ``[B, T]`` f0 track in Hz (NaN unvoiced; its 2nd percentile, ignoring octave
        errors, is used) or ``[B]`` lowest f0 per clip.
    env_rate : float
        Envelope sample rate, Hz (rounded so that ``sr / env_rate`` is an integer).
    ratio, stop_ratio : float
        Pass-band and stop-band edges as fractions of ``f_low``.
    max_cutoff : float, optional
        Upper limit of the pass-band edge, Hz.

    Returns
    -------
    Envelope
        ``power [B, M]`` (mean square, a clip of RMS level ``L`` dBFS averages
        ``10^(L/10)``), ``times [M]`` s, ``rate`` Hz, ``cutoff [B]`` and ``stop [B]`` Hz.
    """
    x = as_audio_batch(audio, sr)
    if not (0 < ratio < stop_ratio):
        raise ConfigError(f"need 0 < ratio < stop_ratio, got {ratio}, {stop_ratio}")
    hop = max(1, int(round(sr / float(env_rate))))
    f_low = _f0_floor(x, sr, f0)
    cutoff, stop = _cutoffs(f_low, sr / hop, ratio, stop_ratio, max_cutoff)
    sq = _square_spectrum(x, sr, hop)
    power, times = _band_limit(sq, hop, cutoff, stop)
    return Envelope(power.to(x.dtype), times.to(x.dtype), sr / hop, cutoff, stop)


# ---------------------------------------------------------------------------------------------
# the envelope model: modulations, attack


class _ModFit(NamedTuple):
    """Fitted steady-state modulation model of the power envelope (see :func:`_model_power`)."""

    trem_rate: torch.Tensor  # [B] Hz
    trem_coef: torch.Tensor  # [B, 6]: 1, tn, sin r, cos r, sin 2r, cos 2r (power units / scale)
    beat_rate: torch.Tensor  # [B] Hz (NaN where the range is empty)
    beat_coef: torch.Tensor  # [B, 3]: 1, sin Δ, cos Δ, normalised to the first = 1, filter-corrected
    t_mid: float
    half: float
    trem_r2: torch.Tensor  # [B] partial R² of the tremolo lines
    beat_r2: torch.Tensor  # [B] partial R² of the beat line
    beat_gain: torch.Tensor  # [B] filter gain at the beat rate (the coefficients are divided by it)


def _design(t: torch.Tensor, freq: torch.Tensor, harmonics: tuple[int, ...], tn: torch.Tensor | None
            ) -> torch.Tensor:
    ph = 2 * math.pi * freq[:, None] * t[None]
    rows = [torch.ones_like(ph)]
    if tn is not None:
        rows.append(tn[None].expand_as(ph))
    for h in harmonics:
        rows += [torch.sin(h * ph), torch.cos(h * ph)]
    return torch.stack(rows, 1)  # [B, K, T]


def _trem_factor(fit: _ModFit, t: torch.Tensor) -> torch.Tensor:
    tn = (t - fit.t_mid) / fit.half
    phi = _design(t, fit.trem_rate, (1, 2), tn)
    return (phi * fit.trem_coef[:, :, None]).sum(1)


def _beat_factor(fit: _ModFit, t: torch.Tensor) -> torch.Tensor:
    rate = torch.nan_to_num(fit.beat_rate, nan=0.0)
    phi = _design(t, rate, (1,), None)
    coef = torch.nan_to_num(fit.beat_coef, nan=0.0)
    return (phi * coef[:, :, None]).sum(1)


def _partial_r2(y: torch.Tensor, w: torch.Tensor, rss: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """1 - rss / rss0, rss0 the weighted RSS of ``y`` on ``basis [K0, T]`` alone."""
    wb = basis[None] * w[:, None, :]
    gram = wb @ basis.T
    rhs = (wb * y[:, None, :]).sum(-1)
    k = gram.shape[-1]
    coef = torch.linalg.solve(gram + 1e-12 * torch.eye(k, dtype=gram.dtype, device=gram.device), rhs)
    rss0 = (w * y * y).sum(-1) - (coef * rhs).sum(-1)
    return (1 - rss / rss0.clamp_min(1e-300)).clamp(0, 1)


def _fit_modulations(y: torch.Tensor, t: torch.Tensor, w: torch.Tensor, trem_range: tuple[float, float],
                     beat_lo: float, beat_hi: torch.Tensor, gain_fn, iters: int = 3,
                     oversample: float = 8.0) -> _ModFit:
    """Alternating multiplicative fit ``y ≈ E2(t) · (1 + β·[sin, cos] Δt)`` on the weighted frames ``w``."""
    b = y.shape[0]
    dev = y.device
    t_mid = 0.5 * float(t[0] + t[-1])
    half = max(0.5 * float(t[-1] - t[0]), 1e-9)
    tn = (t - t_mid) / half
    lo_t = torch.full((b,), trem_range[0], dtype=torch.float64, device=dev)
    hi_t = torch.full((b,), trem_range[1], dtype=torch.float64, device=dev)
    has_beat = beat_hi > beat_lo
    blo = torch.full((b,), beat_lo, dtype=torch.float64, device=dev)
    bhi = torch.where(has_beat, beat_hi, blo + 1.0)
    beat = torch.ones_like(y)
    ones = torch.ones(1, t.shape[0], dtype=y.dtype, device=dev)
    for it in range(iters):
        refine = 10 if it == iters - 1 else 0
        bc = beat.clamp_min(0.02)
        q, wq = y / bc, w * bc * bc
        # the rate is scanned on the first harmonic alone: with the second in the scan, a beat
        # line at Δ < 2 · 14 Hz would pass for the second harmonic of a tremolo at Δ / 2
        r = best_rate(q, wq, t, lo=lo_t, hi=hi_t, harmonics=(1,), tn=tn, oversample=oversample, iters=refine)
        rss_t, ct = fit_at(q, wq, t, r, (1, 2), tn)
        e2 = (_design(t, r, (1, 2), tn) * ct[:, :, None]).sum(1)
        scale = e2.abs().mean(-1, keepdim=True).clamp_min(1e-300)
        e2c = torch.maximum(e2, 0.02 * scale)
        q2, w2 = y / e2c, w * e2c * e2c
        d = best_rate(q2, w2, t, lo=blo, hi=bhi, harmonics=(1,), tn=None, oversample=oversample, iters=refine)
        rss_b, cb = fit_at(q2, w2, t, d, (1,), None)
        cb = cb / cb[:, :1].clamp_min(1e-300)
        cb = torch.where(has_beat[:, None], cb, torch.nan_to_num(cb * 0.0))
        beat = (_design(t, d, (1,), None) * cb[:, :, None]).sum(1)
    trem_r2 = _partial_r2(q, wq, rss_t, torch.cat([ones, tn[None]]))
    beat_r2 = _partial_r2(q2, w2, rss_b, ones)
    gain = gain_fn(d).clamp_min(1e-3)
    cb = cb.clone()
    cb[:, 1:] = cb[:, 1:] / gain[:, None]
    nan = torch.full_like(d, math.nan)
    return _ModFit(r, ct, torch.where(has_beat, d, nan), cb, t_mid, half, trem_r2,
                   torch.where(has_beat, beat_r2, nan), gain)


def _lowpass(u: torch.Tensor, m_fft: int, gain: torch.Tensor) -> torch.Tensor:
    """The envelope filter (``gain [B, m_fft // 2 + 1]``) applied to ``u [..., B, M]`` on the envelope grid."""
    return torch.fft.irfft(torch.fft.rfft(u, m_fft) * gain, m_fft)[..., : u.shape[-1]]


def _filter_gain(m_fft: int, rate: float, cutoff: torch.Tensor, stop: torch.Tensor) -> torch.Tensor:
    freqs = torch.arange(m_fft // 2 + 1, dtype=torch.float64, device=cutoff.device) * (rate / m_fft)
    return envelope_gain(freqs[None], cutoff[:, None], stop[:, None])


def _attack_rss(p: torch.Tensor, w: torch.Tensor, base: torch.Tensor, model: torch.Tensor,
                t: torch.Tensor, t0: torch.Tensor, length: torch.Tensor, m_fft: int, gain: torch.Tensor
                ) -> torch.Tensor:
    """RSS of ``p ≈ c · LP[ramp² · model]`` for ramp lengths ``length [G, B]`` (10–90 % times) → [G, B]."""
    ramp = ((t[None, None] - t0[None, :, None]) / (1.25 * length[..., None])).clamp(0, 1)
    u = (1 - ramp * ramp) * model[None]
    v = base[None] - _lowpass(u, m_fft, gain)
    wv = w[None] * v
    c = (wv * p[None]).sum(-1) / (wv * v).sum(-1).clamp_min(1e-300)
    r = p[None] - c[..., None] * v
    return (w[None] * r * r).sum(-1)


def _fit_attack(p: torch.Tensor, t: torch.Tensor, m_fft: int, gain: torch.Tensor, model: torch.Tensor,
                t0: torch.Tensor, t_e: torch.Tensor, t_max: torch.Tensor, guess: torch.Tensor | None = None,
                n_grid: int = 24, iters: int = 8, chunk: int = 8) -> torch.Tensor:
    """10–90 % rise time ``[B]`` (s) of a linear ramp starting at ``t0``, fitted through the filter.

    Log-spaced grid from 0.5 ms to ``t_max`` (or within a factor 2 of ``guess``), then
    golden-section search between the neighbours of the best grid point.
    """
    w = (t[None] <= t_e[:, None]).to(p.dtype)
    base = _lowpass(torch.where(t[None] <= t_e[:, None], model, p), m_fft, gain)
    hi = torch.log(t_max.clamp_min(1e-3))
    if guess is None:
        lo = torch.full_like(hi, math.log(5e-4))
    else:
        n_grid = 9
        lo = torch.minimum(torch.log(guess.clamp_min(5e-4)) - math.log(2.0), hi - math.log(4.0))
        hi = torch.minimum(lo + math.log(4.0), hi)
    u = torch.linspace(0, 1, n_grid, dtype=torch.float64, device=p.device)
    logs = lo[None] + u[:, None] * (hi - lo)[None]  # [G, B]
    rss = torch.cat([_attack_rss(p, w, base, model, t, t0, torch.exp(logs[i: i + chunk]), m_fft, gain)
                     for i in range(0, n_grid, chunk)])
    j = rss.argmin(0)
    a = logs.gather(0, (j - 1).clamp(0, n_grid - 1)[None])[0]
    b = logs.gather(0, (j + 1).clamp(0, n_grid - 1)[None])[0]

    def f(x: torch.Tensor) -> torch.Tensor:
        return _attack_rss(p, w, base, model, t, t0, torch.exp(x)[None], m_fft, gain)[0]

    g = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        left = fc < fd
        a, b = torch.where(left, a, c), torch.where(left, d, b)
        new = torch.where(left, b - g * (b - a), a + g * (b - a))
        fn = f(new)
        c, d = torch.where(left, new, d), torch.where(left, c, new)
        fc, fd = torch.where(left, fn, fd), torch.where(left, fc, fn)
    return torch.exp(0.5 * (a + b))


def noise_ratio(audio: np.ndarray | torch.Tensor, sr: int, frame_seconds: float = 0.128,
                quantile: float = 0.2) -> torch.Tensor:
    """Noise-to-harmonic power ratio ``η`` (linear) from the noise floor of the spectrum.

    The Welch power spectrum (Hann frames of ``frame_seconds``, 50 % overlap; Welch
    1967) is averaged over the clip; in a clip of partials plus white noise, the
    lower ``quantile`` of its bins (from 50 Hz to 0.45 sr) lies between the partials,
    on the noise floor. A quantile of averaged periodogram bins of white noise is
    ``χ²_{2K} / 2K`` distributed, so it is divided by that distribution's ``quantile``
    (Wilson-Hilferty approximation; ``K`` ≈ 0.9 × the number of frames, for the overlap) to give the noise power
    density, times the band gives the noise power ``σ²``; ``η = σ² / (P − σ²)`` with ``P``
    the clip's mean square. ``10 log10(1 / η)`` estimates the harmonic-to-noise ratio of
    ``docs/synthesis.md`` (white noise); at high HNR the partials' own skirts set the
    floor, so η reads high there (it then hardly matters).

    Returns
    -------
    Tensor ``[B]`` float64; NaN for silent clips, ``inf`` where all of the power is noise.
    """
    x = as_audio_batch(audio, sr).double()
    b, n = x.shape
    length = min(n, max(16, int(round(frame_seconds * sr))))
    hop = max(1, length // 2)
    frames = x.unfold(1, length, hop)  # [B, F, L]
    win = torch.hann_window(length, periodic=False, dtype=x.dtype, device=x.device)
    spec = torch.fft.rfft(frames * win, length)
    psd = (spec.real ** 2 + spec.imag ** 2).mean(1) / (win * win).sum()  # [B, K]; white noise → σ²
    freqs = torch.arange(psd.shape[-1], dtype=x.dtype, device=x.device) * (sr / length)
    band = (freqs >= 50.0) & (freqs <= 0.45 * sr)
    if int(band.sum()) < 4:
        band = freqs > 0
    dof = 2 * max(1.0, 0.9 * frames.shape[1])
    # chi2.ppf(quantile, dof) / dof by the Wilson-Hilferty approximation
    z = NormalDist().inv_cdf(quantile)
    factor = max(1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof)), 0.05) ** 3
    floor = torch.quantile(psd[:, band], quantile, dim=-1) / factor
    total = (x * x).mean(-1)
    sigma2 = torch.minimum(floor, total)
    eta = sigma2 / (total - sigma2)
    return torch.where(total > 0, eta, torch.full_like(eta, math.nan))


def _onset(x: torch.Tensor, sr: int, rel: float = 1e-6) -> torch.Tensor:
    """Start of the sound ``[B]`` s: the sample before the first one above ``rel`` × the clip's peak."""
    a = x.abs()
    above = a > rel * a.amax(-1, keepdim=True)
    n = x.shape[1]
    idx = torch.arange(n, device=x.device)
    first = torch.where(above, idx, torch.full_like(idx, n - 1)).min(-1).values
    return ((first - 1).clamp_min(0)).double() / sr


def _lcm(a: int, b: int) -> int:
    return a * b // math.gcd(a, b)


def _tremolo_index(coef: torch.Tensor) -> torch.Tensor:
    """Modulation index ``m`` of ``(1 + m sin)²`` from its mean and first harmonic (coefficients [B, 6])."""
    rho = torch.hypot(coef[:, 2], coef[:, 3]) / coef[:, 0].abs().clamp_min(1e-300)
    disc = (4 - 2 * rho * rho).clamp_min(0)
    m = (2 - torch.sqrt(disc)) / rho.clamp_min(1e-12)
    return m.clamp(0, 1)


def _beat_index(rho: torch.Tensor) -> torch.Tensor:
    """Relative amplitude ``d`` of the beating copy from the power modulation ``ρ = 2d / (1 + d²)``."""
    rho = rho.clamp(0, 1)
    return torch.where(rho > 1e-9, (1 - torch.sqrt((1 - rho * rho).clamp_min(0))) / rho.clamp_min(1e-12),
                       rho / 2)


def envelope_analysis(
    audio: np.ndarray | torch.Tensor,
    sr: int,
    f0: Estimate | torch.Tensor | np.ndarray | None = None,
    *,
    hnr: torch.Tensor | np.ndarray | float | None = None,
    tremolo_range: tuple[float, float] = (2.0, 14.0),
    beat_range: tuple[float, float] = (15.0, 80.0),
    min_tremolo_depth: float = 0.05,
    min_beat_depth: float = 0.08,
    min_r2: float = 0.2,
    env_rate: float = 1000.0,
    refit: bool = True,
    chunk: int = 64,
) -> dict[str, Estimate]:
    """Fit the envelope model of ``docs/synthesis.md`` to each clip (see the module docstring).

    Parameters
    ----------
    audio : array or tensor ``[N]`` or ``[B, N]``
        Mono audio.
    sr : int
        Sample rate, Hz.
    f0 : Estimate, Tensor or array, optional
        f0 track ``[B, T]`` (Hz, NaN unvoiced; e.g. the Estimate of
        :func:`ontoscope.descriptors.pitch.f0_track`) or lowest f0 per clip ``[B]``, for the
        envelope's cutoff; default :func:`lowest_f0` of the audio.
    hnr : Tensor, array or float, optional
        Harmonic-to-noise ratio in dB per clip, to correct the beat depth for the
        unmodulated noise; default (and where NaN) estimated by :func:`noise_ratio`.
    tremolo_range, beat_range : (float, float)
        Rates searched, Hz. Beats are searched only where the envelope filter's gain is
        at least 1/2 (below the mid-point of its taper).
    min_tremolo_depth, min_beat_depth : float
        Modulation index below which a modulation is absent (rate NaN, ``"no modulation"``).
    min_r2 : float
        Fraction of the envelope variance (left by the other terms) the modulation must
        explain to be present.
    env_rate : float
        Rate of the envelope the attack is fitted on, Hz.
    refit : bool
        Fit the modulations again on the steady part after the fitted attack.
    chunk : int
        Clips analysed at once (bounds memory).

    Returns
    -------
    dict of str to Estimate
        Each ``[B]`` float64, with its per-clip reasons: ``loudness`` (``"dBFS"``),
        ``attack`` (``"s"``), ``tremolo_rate`` (``"Hz"``), ``tremolo_depth`` (``"index"``,
        ``m``), ``beat_rate`` (``"Hz"``), ``beat_depth`` (``"index"``, ``d``),
        ``tremolo_r2`` and ``beat_r2`` (``"ratio"``: the partial R² of each modulation),
        ``noise_ratio`` (``"ratio"``, η) and ``cutoff`` (``"Hz"``, the envelope's pass-band
        edge).
    """
    x = as_audio_batch(audio, sr)
    b = x.shape[0]
    for name, (lo, hi) in (("tremolo_range", tremolo_range), ("beat_range", beat_range)):
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
            raise ConfigError(f"{name} must satisfy 0 < lo < hi, got ({lo}, {hi})")
    if not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ConfigError(f"chunk must be a positive integer, got {chunk!r}")
    f_low = _f0_floor(x, sr, f0)
    if hnr is not None:
        h = torch.as_tensor(np.asarray(hnr) if not isinstance(hnr, torch.Tensor) else hnr)
        h = h.to(device=x.device, dtype=torch.float64).reshape(-1)
        if h.numel() not in (1, b) or bool(torch.isinf(h).any()):
            raise ConfigError(f"hnr must be one value or one per clip ({b}), not infinite; got shape {tuple(h.shape)}")
        hnr = h.expand(b)
    parts = []
    for i in range(0, b, chunk):
        sl = slice(i, i + chunk)
        parts.append(_analyse(x[sl], sr, f_low[sl], None if hnr is None else hnr[sl],
                              (float(tremolo_range[0]), float(tremolo_range[1])),
                              (float(beat_range[0]), float(beat_range[1])), min_tremolo_depth,
                              min_beat_depth, min_r2, env_rate, refit))
    return {k: Estimate(torch.cat([p[k].value for p in parts]), parts[0][k].unit,
                        tuple(r for p in parts for r in p[k].reason)) for k in parts[0]}


def _analyse(x: torch.Tensor, sr: int, f_low: torch.Tensor, hnr: torch.Tensor | None,
             tremolo_range: tuple[float, float], beat_range: tuple[float, float],
             min_tremolo_depth: float, min_beat_depth: float, min_r2: float, env_rate: float,
             refit: bool) -> dict[str, Estimate]:
    b, n = x.shape
    dev = x.device
    lo_t, hi_t = tremolo_range
    lo_b, hi_b = beat_range
    loud = loudness(x)
    silent = torch.tensor([r == SILENT for r in loud.reason], device=dev)
    xs = torch.where(silent[:, None], torch.ones_like(x) * 1e-3, x)  # keep the maths finite

    hop = max(1, int(round(sr / float(env_rate))))
    hop_lo = max(1, int(round(sr / MOD_RATE)))
    rate, rate_lo = sr / hop, sr / hop_lo
    cutoff, stop = _cutoffs(f_low, rate, 0.8, 0.9, None)
    cut_lo = cutoff.clamp(max=MOD_CUTOFF)
    stop_lo = torch.minimum(stop, torch.full_like(stop, 0.45 * rate_lo)).clamp_min(cut_lo + 1.0)
    cut_lo = torch.minimum(cut_lo, stop_lo - 1.0)
    sq = _square_spectrum(xs, sr, _lcm(hop, hop_lo))
    p_hi, t_hi = _band_limit(sq, hop, cutoff, stop)
    p_lo, t_lo = _band_limit(sq, hop_lo, cut_lo, stop_lo)
    scale = p_lo.mean(-1, keepdim=True).clamp_min(1e-30)
    p_hi, p_lo = p_hi / scale, p_lo / scale

    t0 = _onset(xs, sr)
    t_end = (n - 1) / sr
    t_e = torch.full((b,), t_end - TAIL_SECONDS, dtype=torch.float64, device=dev)
    # a first guess of the end of the attack: the envelope's running maximum reaches 90 % of
    # the median level of the second half
    late = t_lo >= 0.5 * t_end
    level = torch.median(p_lo[:, late], dim=-1).values if bool(late.any()) else p_lo.mean(-1)
    reached = torch.cummax(p_lo, dim=-1).values >= 0.9 * level[:, None]
    idx = torch.arange(t_lo.numel(), device=dev)
    first = torch.where(reached, idx, torch.full_like(idx, t_lo.numel() - 1)).min(-1).values
    rough = t_lo[first] - t0
    t_s = t0 + (2 * rough + 0.05).clamp(max=0.5 * t_end)

    def beat_gain(freq: torch.Tensor) -> torch.Tensor:
        return envelope_gain(freq, cut_lo, stop_lo)

    beat_top = torch.minimum(torch.full_like(cutoff, hi_b), 0.5 * (cutoff + stop))

    def modulations(start: torch.Tensor) -> _ModFit:
        w = ((t_lo[None] >= start[:, None]) & (t_lo[None] <= t_e[:, None])).to(p_lo.dtype)
        return _fit_modulations(p_lo, t_lo, w, (lo_t, hi_t), lo_b, beat_top, beat_gain)

    m_fft = sq.n_fft // hop
    gain_hi = _filter_gain(m_fft, rate, cutoff, stop)
    t_max = (0.8 * (t_e - t0 - 0.05)).clamp(min=2e-3, max=0.5)

    def attack(mods: _ModFit, guess: torch.Tensor | None = None) -> torch.Tensor:
        model = _trem_factor(mods, t_hi) * _beat_factor(mods, t_hi)
        return _fit_attack(p_hi, t_hi, m_fft, gain_hi, model, t0, t_e, t_max, guess)

    mods = modulations(t_s)
    att = attack(mods)
    if refit:
        t_s = t0 + 1.25 * att + 0.02
        mods = modulations(torch.minimum(t_s, t_e - 1.0 / lo_t))
        att = attack(mods, att)
    t_s = t0 + 1.25 * att + 0.02
    steady = (t_e - t_s) >= 1.0 / lo_t

    # depths
    m = _tremolo_index(mods.trem_coef)
    rho = torch.hypot(mods.beat_coef[:, 1], mods.beat_coef[:, 2])
    eta = noise_ratio(xs, sr)
    if hnr is not None:  # a given HNR where it is defined (NaN: estimate it here)
        eta = torch.where(torch.isnan(hnr), eta, 10.0 ** (-hnr / 10))
    d = _beat_index(rho * (1 + torch.nan_to_num(eta, nan=0.0, posinf=0.0)))

    nan = torch.full((b,), math.nan, dtype=torch.float64, device=dev)
    trem_on = steady & ~silent & (m >= min_tremolo_depth) & (mods.trem_r2 >= min_r2)
    has_beat = torch.isfinite(mods.beat_rate)
    beat_on = steady & ~silent & has_beat & (d >= min_beat_depth) & (mods.beat_r2 >= min_r2)

    def reasons(on: torch.Tensor, extra: torch.Tensor | None = None, extra_reason: str = "") -> list[str]:
        out: list[str] = []
        for i in range(b):
            if bool(silent[i]):
                out.append(SILENT)
            elif not bool(steady[i]):
                out.append(NO_STEADY_PART)
            elif extra is not None and bool(extra[i]):
                out.append(extra_reason)
            elif not bool(on[i]):
                out.append(NO_MODULATION)
            else:
                out.append("")
        return out

    trem_reason = reasons(trem_on)
    beat_reason = reasons(beat_on, ~has_beat, ABOVE_CUTOFF)
    truncated = (beat_top < hi_b).tolist()
    beat_reason = [BELOW_CUTOFF if (r == NO_MODULATION and cut) else r
                   for r, cut in zip(beat_reason, truncated, strict=True)]
    depth_ok = steady & ~silent
    att_ok = ~silent & (att < 0.8 * (t_e - t0))
    trem_depth_reason = [r if r in (SILENT, NO_STEADY_PART) else "" for r in trem_reason]
    beat_depth_reason = [r if r in (SILENT, NO_STEADY_PART, ABOVE_CUTOFF) else "" for r in beat_reason]
    values = {
        "loudness": (loud.value.double(), "dBFS", loud.reason),
        "attack": (torch.where(att_ok, att, nan), "s",
                   [SILENT if s else NO_STEADY_PART for s in silent.tolist()]),
        "tremolo_rate": (torch.where(trem_on, mods.trem_rate, nan), "Hz", trem_reason),
        "tremolo_depth": (torch.where(depth_ok, m, nan), "index", trem_depth_reason),
        "beat_rate": (torch.where(beat_on, mods.beat_rate, nan), "Hz", beat_reason),
        "beat_depth": (torch.where(depth_ok & has_beat, d, nan), "index", beat_depth_reason),
        "tremolo_r2": (torch.where(depth_ok, mods.trem_r2, nan), "ratio", trem_depth_reason),
        "beat_r2": (torch.where(depth_ok & has_beat, mods.beat_r2, nan), "ratio", beat_depth_reason),
        "noise_ratio": (torch.where(silent, nan, eta), "ratio", [SILENT] * b),
        "cutoff": (cutoff, "Hz", [""] * b),
    }
    return {k: Estimate(v, unit, reasons_where_undefined(v, why)) for k, (v, unit, why) in values.items()}


# ---------------------------------------------------------------------------------------------
# public descriptors


def attack_time(
    audio: np.ndarray | torch.Tensor,
    sr: int,
    f0: Estimate | torch.Tensor | np.ndarray | None = None,
    **kwargs: object,
) -> Estimate:
    """10 %–90 % rise time of the amplitude envelope, in seconds.

    The power envelope (:func:`amplitude_envelope`) is fitted with
    ``c · LP[ramp_A(t - t0)² · M(t)]``: a linear amplitude ramp from the onset ``t0``
    (the first sample above 1e-6 of the peak) to full level at ``t0 + 1.25 A``, times
    the steady-state modulation model ``M`` (tremolo and beating, fitted after the
    attack and extrapolated back to the onset), low-passed by the envelope's own
    filter ``LP``. The ramp of ``docs/synthesis.md`` is linear, so its 10–90 % rise
    time is exactly ``A``. Because the model goes through the filter, attacks shorter
    than the filter's rise time are still resolved; because the modulations are
    divided out, tremolo and beating do not pass for the attack. White noise shares
    the envelope and only adds variance. Where a deep tremolo (m ≈ 1) is at its
    trough at the onset, the ramp is hidden and the estimate is poor.

    Parameters
    ----------
    audio : array or tensor ``[N]`` or ``[B, N]``
    sr : int
        Sample rate, Hz.
    f0 : Estimate, Tensor or array, optional
        f0 track ``[B, T]`` (e.g. the Estimate of :func:`ontoscope.descriptors.pitch.f0_track`)
        or lowest f0 ``[B]`` (Hz) for the envelope's cutoff.
    **kwargs
        Passed to :func:`envelope_analysis`.

    Returns
    -------
    Estimate
        ``value [B]`` float32 in seconds (``unit`` ``"s"``); NaN with reason ``"silent"`` or
        ``"no steady part after the attack"`` (the ramp does not end before the clip).
    """
    r = envelope_analysis(audio, sr, f0, **kwargs)  # type: ignore[arg-type]
    return r["attack"].to(torch.float32)


def tremolo(
    audio: np.ndarray | torch.Tensor,
    sr: int,
    f0: Estimate | torch.Tensor | np.ndarray | None = None,
    rate_range: tuple[float, float] = (2.0, 14.0),
    **kwargs: object,
) -> dict[str, Estimate]:
    """Tremolo rate (Hz) and depth (modulation index ``m`` of the envelope ``1 + m sin``).

    Fitted on the power envelope after the attack (see :func:`envelope_analysis`):
    ``(1 + m sin θ)² = 1 + m²/2 + 2 m sin θ - (m²/2) cos 2θ``, so the rate is the line
    that best explains the envelope in ``rate_range`` (variable projection, the beating
    divided out) and ``m`` solves ``A₁ / A₀ = 2 m / (1 + m² / 2)`` from the fitted mean
    ``A₀`` and first-harmonic amplitude ``A₁``. White noise shares the envelope, so it
    does not bias ``m``.

    The rate is NaN (reason ``"no modulation"``) where ``m < min_tremolo_depth``
    (default 0.05) or the tremolo lines explain less than ``min_r2`` (default 0.2) of
    the envelope's variance left by level and drift; the depth is then the small
    fitted value.

    Parameters
    ----------
    audio, sr, f0
        As for :func:`attack_time`.
    rate_range : (float, float)
        Rates searched, Hz.
    **kwargs
        Passed to :func:`envelope_analysis`.

    Returns
    -------
    dict of str to Estimate
        ``tremolo_rate`` (``[B]`` float32, ``"Hz"``) and ``tremolo_depth`` (``[B]`` float32,
        ``"index"`` ``m`` in [0, 1]; NaN only with ``"silent"`` or ``"no steady part after the
        attack"``).
    """
    r = envelope_analysis(audio, sr, f0, tremolo_range=rate_range, **kwargs)  # type: ignore[arg-type]
    return {k: r[k].to(torch.float32) for k in ("tremolo_rate", "tremolo_depth")}


def beats(
    audio: np.ndarray | torch.Tensor,
    sr: int,
    f0: Estimate | torch.Tensor | np.ndarray | None = None,
    rate_range: tuple[float, float] = (15.0, 80.0),
    hnr: torch.Tensor | np.ndarray | float | None = None,
    **kwargs: object,
) -> dict[str, Estimate]:
    """Beating (roughness) rate ``Δ`` (Hz) and depth ``d`` (relative amplitude of the beating copy).

    In ``docs/synthesis.md`` every partial has a copy ``Δ`` Hz above it at relative
    amplitude ``d``, so the harmonic power is modulated as ``1 + d² + 2 d cos 2πΔt``
    while the white noise is not. The power envelope after the attack, with the
    tremolo divided out, is fitted with ``1 + ρ cos(2πΔt + φ)`` over ``rate_range``
    (variable projection); the line's amplitude is divided by the envelope filter's
    gain at ``Δ``, and ``d`` solves ``2 d / (1 + d²) = ρ (1 + η)`` with ``η`` the
    noise-to-harmonic power ratio (``hnr`` if given, else :func:`noise_ratio`).

    The range searched stops where the envelope filter's gain falls below 1/2 (its
    cutoff follows the clip's lowest f0, to keep the partials' cross terms out): where
    that is below ``rate_range[0]`` the rate is NaN with reason
    ``"beat range above envelope cutoff"``, and where nothing is found in a truncated
    range, ``"no modulation below envelope cutoff"``. Elsewhere the rate is NaN with
    ``"no modulation"`` where ``d < min_beat_depth`` (default 0.08) or the line explains
    less than ``min_r2`` (default 0.2) of the envelope variance.

    Parameters
    ----------
    audio, sr, f0
        As for :func:`attack_time`.
    rate_range : (float, float)
        Beat rates searched, Hz.
    hnr : float or Tensor ``[B]``, optional
        Harmonic-to-noise ratio in dB.
    **kwargs
        Passed to :func:`envelope_analysis`.

    Returns
    -------
    dict of str to Estimate
        ``beat_rate`` (``[B]`` float32, ``"Hz"``) and ``beat_depth`` (``[B]`` float32,
        ``"index"`` ``d`` in [0, 1]; NaN only with ``"silent"``, ``"no steady part after the
        attack"`` or ``"beat range above envelope cutoff"``).
    """
    r = envelope_analysis(audio, sr, f0, hnr=hnr, beat_range=rate_range, **kwargs)  # type: ignore[arg-type]
    return {k: r[k].to(torch.float32) for k in ("beat_rate", "beat_depth")}


#: Keys of :func:`envelope_descriptors`.
ENVELOPE_KEYS = ("loudness", "attack", "tremolo_rate", "tremolo_depth", "beat_rate", "beat_depth")


def envelope_descriptors(
    audio: np.ndarray | torch.Tensor,
    sr: int,
    f0_track: Estimate | torch.Tensor | np.ndarray | None = None,
    hnr: torch.Tensor | np.ndarray | float | None = None,
    **kwargs: object,
) -> dict[str, Estimate]:
    """Every envelope descriptor of a batch of clips, keyed by factor name.

    One :func:`envelope_analysis` (see :func:`loudness`, :func:`attack_time`,
    :func:`tremolo`, :func:`beats` for what each value means).

    Parameters
    ----------
    audio : array or tensor ``[N]`` or ``[B, N]``
    sr : int
        Sample rate, Hz.
    f0_track : Estimate, Tensor or array ``[B, T]``, optional
        f0 in Hz (NaN unvoiced), e.g. the Estimate of ``ontoscope.descriptors.pitch.f0_track``;
        sets the envelope's cutoff. Default: :func:`lowest_f0` of the audio.
    hnr : float or Tensor ``[B]``, optional
        Harmonic-to-noise ratio in dB, for the beat depth; default estimated.
    **kwargs
        Passed to :func:`envelope_analysis`.

    Returns
    -------
    dict of str to Estimate
        ``loudness`` (``"dBFS"``), ``attack`` (``"s"``), ``tremolo_rate`` (``"Hz"``),
        ``tremolo_depth`` (``"index"``), ``beat_rate`` (``"Hz"``), ``beat_depth``
        (``"index"``): values ``[B]`` float32, NaN where undefined, with the reason.
    """
    r = envelope_analysis(audio, sr, f0_track, hnr=hnr, **kwargs)  # type: ignore[arg-type]
    return {k: r[k].to(torch.float32) for k in ENVELOPE_KEYS}
