"""Partials of a pitched clip, measured on a pitch-synchronous time warp.

The analysis shared by :mod:`ontoscope.descriptors.pitch` (the final f0
correction) and :mod:`ontoscope.descriptors.harmonic` (tilt, odd/even balance,
inharmonicity, HNR): :func:`measure_partials` returns a :class:`Partials`, the
raw measurements those descriptors are computed from (not an estimate of a
factor itself).

The clip is resampled at uniform steps of its integrated phase (the phase of
its f0 track, low-passed at 12 Hz), so that a tone with vibrato becomes a tone
of constant pitch; one long Blackman-Harris FFT of the warped clip then
resolves every partial as a line, and the beating copies (``beat_rate`` Hz
above each partial) as separate lines. Where the plain clip's spectrum is the
sharper (its 64 strongest bins hold more of its energy: a steady pitch, or a
track that wobbles under deep beating), the plain clip is analysed instead.
Frequencies on the warp are in *harmonic units*: multiples of the warp's
reference frequency ``f_ref`` (the median of the smoothed track),
so partial ``k`` of a harmonic tone sits at ``k * c`` with ``c`` close to 1.

Partials are found in stages (``k <= 4``, ``<= 12``, ``<= 32``, ``<= 64``), each
searched within +-``band`` harmonic units of where the stiff-string fit of the
partials found in the stages before puts it (so stretched partials are
followed), the lowest of two comparable lines taken (a partial's beating copy
lies above it and is never stronger). Each partial's energy is summed over
+-``band`` units around it (it includes its tremolo sidebands and, for beat
rates below ``band * f0``, its beating copy: the same share for every partial,
so level differences between partials are unaffected) less the local noise
floor (the median of the power between partials).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_LN2 = math.log(2.0)
_BH = (0.35875, 0.48829, 0.14128, 0.01168)  # 4-term Blackman-Harris, -92 dB sidelobes


def fast_len(n: int) -> int:
    """Smallest ``2**a * 3**b >= n`` (a fast FFT length)."""
    best = 1 << max(0, (n - 1).bit_length())
    p3 = 1
    while p3 < best:
        p2 = p3
        while p2 < n:
            p2 *= 2
        best = min(best, p2)
        p3 *= 3
    return best


@dataclass
class Partials:
    """Partials of each clip, measured on the warp (``K`` = most partials searched).

    Attributes
    ----------
    freq : Tensor ``[B, K]``
        Frequency of partial ``k`` in harmonic units (multiples of ``f_ref``); NaN if not found.
    level : Tensor ``[B, K]``
        Energy of partial ``k`` less the noise in its band, dB (common arbitrary offset);
        NaN where not measurable.
    snr : Tensor ``[B, K]``
        Partial energy over the noise energy in its band, dB.
    peak_snr : Tensor ``[B, K]``
        Peak bin over the local noise floor, dB.
    found : Tensor ``[B, K]`` bool
        A clear line was found (``peak_snr >= 20`` dB); its frequency is fitted.
    f_ref : Tensor ``[B]``
        Reference frequency of the warp, Hz.
    c : Tensor ``[B]``
        Fundamental of the stiff-string fit ``(f_k / k)**2 = c**2 (1 + B k**2)``, harmonic units.
    f0 : Tensor ``[B]``
        That fundamental in Hz, ``c * f_ref``: exact for a steady pitch (measured on
        the plain spectrum); under vibrato, the centre of the warp's track corrected
        by the ratio of the partials to the track.
    warped : Tensor ``[B]`` bool
        The partials were measured on the warp (else on the plain clip, whose
        spectrum was the sharper: a steady pitch).
    inharmonicity : Tensor ``[B]``
        ``B`` of that fit.
    n_found : Tensor ``[B]``
        Partials used in the fit.
    hnr : Tensor ``[B]``
        Harmonic-to-noise ratio of the warped clip, dB (total energy less the white
        noise floor, over that floor times the bandwidth).
    valid : Tensor ``[B]`` bool
        The clip had a voiced f0 track and a fundamental line.
    """

    freq: torch.Tensor
    level: torch.Tensor
    snr: torch.Tensor
    peak_snr: torch.Tensor
    found: torch.Tensor
    f_ref: torch.Tensor
    c: torch.Tensor
    f0: torch.Tensor
    warped: torch.Tensor
    inharmonicity: torch.Tensor
    n_found: torch.Tensor
    hnr: torch.Tensor
    valid: torch.Tensor

    @classmethod
    def cat(cls, parts: list[Partials]) -> Partials:
        """The partials of several batches of clips, one after the other (``[sum B, ...]``)."""
        return cls(**{name: torch.cat([getattr(p, name) for p in parts]) for name in cls.__dataclass_fields__})


def fill_log_track(f0: torch.Tensor, clamp_octaves: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """``log2`` of an f0 track with unvoiced frames filled by linear interpolation.

    Values further than ``clamp_octaves`` from the clip's median are clamped (octave
    slips and frames at beating nulls). Returns (``[B, T]`` log2 Hz, ``[B]`` bool: the
    clip had a voiced frame); clips with none are filled with 0.
    """
    lf = torch.log2(f0.to(torch.float64))
    ok = torch.isfinite(lf)
    has = ok.any(-1)
    t = lf.shape[-1]
    idx = torch.arange(t, device=f0.device).expand_as(lf)
    big = t + 1
    # index of the previous and next voiced frame
    prev = torch.where(ok, idx, torch.full_like(idx, -1)).cummax(-1).values
    nxt = torch.where(ok, idx, torch.full_like(idx, big)).flip(-1).cummin(-1).values.flip(-1)
    safe = torch.where(ok, lf, torch.zeros_like(lf))
    v_prev = torch.gather(safe, -1, prev.clamp(0, t - 1))
    v_next = torch.gather(safe, -1, nxt.clamp(0, t - 1))
    has_prev, has_next = prev >= 0, nxt < big
    span = (nxt - prev).clamp(min=1).to(lf.dtype)
    interp = v_prev + (v_next - v_prev) * (idx - prev).to(lf.dtype) / span
    out = torch.where(has_prev & has_next, interp, torch.where(has_prev, v_prev, v_next))
    out = torch.where(ok, lf, out)
    med = torch.nanmedian(torch.where(ok, lf, torch.nan), -1, keepdim=True).values
    med = torch.nan_to_num(med, nan=0.0)
    out = torch.minimum(torch.maximum(out, med - clamp_octaves), med + clamp_octaves)
    return torch.where(has[:, None], out, torch.zeros_like(out)), has


def lowpass_track(lf: torch.Tensor, frame_rate: float, cutoff: float = 12.0,
                  width: float = 4.0) -> torch.Tensor:
    """Zero-phase low-pass of a track ``[B, T]`` (FFT, raised-cosine edge over +-``width / 2`` Hz).

    Passes vibrato (3-9 Hz) unchanged and removes the fluctuation that beating at
    15 Hz and above leaves in a short-window f0 track. The track is mirrored at
    both ends first.
    """
    if frame_rate / 2 <= cutoff + width / 2:
        return lf
    t = lf.shape[-1]
    ext = torch.cat([lf.flip(-1), lf, lf.flip(-1)], -1)
    n = ext.shape[-1]
    spec = torch.fft.rfft(ext, dim=-1)
    freqs = torch.fft.rfftfreq(n, 1.0 / frame_rate).to(lf.device)
    lo, hi = cutoff - width / 2, cutoff + width / 2
    gain = torch.clamp((hi - freqs) / (hi - lo), 0.0, 1.0)
    gain = 0.5 - 0.5 * torch.cos(math.pi * gain)
    out = torch.fft.irfft(spec * gain.to(spec.real.dtype), n, dim=-1)
    return out[..., t: 2 * t]


def warp(x: torch.Tensor, sr: float, lf: torch.Tensor, frame_dt: float,
         upsampled: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Resample clips at uniform steps of the phase of a log2-f0 track.

    The instantaneous frequency is the track, linear between frames (at
    ``i * frame_dt`` seconds); its phase is integrated exactly (quadratic within a
    frame) and inverted exactly.

    Parameters
    ----------
    x : Tensor ``[B, N]``
    sr : float
        Sample rate of ``x``.
    lf : Tensor ``[B, T]``
        log2 f0 (Hz) at frame times ``i * frame_dt``, no NaN.
    frame_dt : float
        Seconds between frames.
    upsampled : Tensor ``[B, U N]``, optional
        ``x`` upsampled ``U`` times (band-limited), if already at hand; by default
        ``U = 4``.

    Returns
    -------
    warped : Tensor ``[B, M]``
        ``x`` read where the phase crosses ``m / P`` cycles (band-limited
        interpolation: 4x FFT upsampling, then Keys cubic, flat within 0.04 dB up
        to Nyquist), zero beyond each clip's own length.
    length : Tensor ``[B]`` long
        Samples of each warped clip.
    f_ref : Tensor ``[B]`` float64
        Reference frequency (Hz), the median of the track: ``P = sr / f_ref`` warped
        samples per cycle, so the warped clip keeps about the original sample rate.
    """
    b, n = x.shape
    dev = x.device
    n_t = lf.shape[-1]
    f = torch.exp2(lf.to(torch.float64))  # [B, T] Hz at the frame times
    # one more frame so that the last samples lie inside a frame
    f = torch.cat([f, f[:, -1:]], -1)
    dt = frame_dt
    phi = torch.nn.functional.pad(torch.cumsum(0.5 * dt * (f[:, 1:] + f[:, :-1]), -1), (1, 0))
    f_ref = torch.exp2(lf.to(torch.float64).median(-1).values)
    per = sr / f_ref
    # phase at the last sample
    last = (n - 1) / sr / dt
    i_l = min(int(last), n_t - 1)
    s_l = (last - i_l) * dt
    slope = (f[:, i_l + 1] - f[:, i_l]) / dt
    phi_end = phi[:, i_l] + f[:, i_l] * s_l + 0.5 * slope * s_l * s_l
    length = torch.floor(phi_end * per).long() + 1
    m_max = int(length.max())
    # frame of each warped sample: count the frame starts at or below its phase
    first = torch.ceil(phi[:, 1:] * per[:, None]).long().clamp(0, m_max)  # first m of frame i+1
    marks = torch.zeros(b, m_max + 1, device=dev, dtype=torch.int32)
    marks.scatter_add_(1, first, torch.ones_like(first, dtype=torch.int32))
    frame = torch.cumsum(marks[:, :m_max], -1).long().clamp(max=n_t)  # [B, M]
    m = torch.arange(m_max, device=dev, dtype=torch.float64)
    du = m[None] / per[:, None] - torch.gather(phi, 1, frame)  # cycles into the frame
    f0_ = torch.gather(f, 1, frame)
    f1_ = torch.gather(f, 1, (frame + 1).clamp(max=n_t))
    a = ((f1_ - f0_) / (2 * dt)).to(torch.float32)
    bq = f0_.to(torch.float32)
    du = du.to(torch.float32).clamp(min=0.0)
    s = 2 * du / (bq + torch.sqrt((bq * bq + 4 * a * du).clamp(min=0.0)))  # seconds
    up = 4 if upsampled is None else upsampled.shape[1] // n
    # position in the upsampled signal
    pos = (frame.to(torch.float64) * dt + s.double()) * (up * sr)
    k0 = pos.floor()
    frac = (pos - k0).to(torch.float32)
    k0 = k0.long()
    # band-limited interpolation: 4x upsampling by FFT, then Keys cubic (a = -1/2)
    xu = upsampled
    if xu is None:
        xu = torch.fft.irfft(torch.fft.rfft(x, n, dim=-1), up * n, dim=-1) * up  # [B, 4N]
    xu = torch.nn.functional.pad(xu, (1, 3))  # off 0 below reads sample k0 - 1
    k0 = k0.clamp_(0, xu.shape[1] - 4)
    f2 = frac * frac
    f3 = f2 * frac
    weights = (-0.5 * f3 + f2 - 0.5 * frac, 1.5 * f3 - 2.5 * f2 + 1,
               -1.5 * f3 + 2 * f2 + 0.5 * frac, 0.5 * f3 - 0.5 * f2)
    out = weights[0] * torch.gather(xu, 1, k0)
    for off in (1, 2, 3):
        out.addcmul_(weights[off], torch.gather(xu, 1, k0 + off))
    out *= (m[None] < length[:, None])
    return out, length, f_ref


def _resample(x: torch.Tensor, factor: int, up: int = 4, spec: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` low-passed and downsampled by ``factor`` (FFT truncation), and that ``up`` x upsampled.

    Returns (``[B, up M]``, ``[B, M]``), ``M = ceil(N / factor)``; sample ``j`` of the
    second is at ``j * factor`` of ``x``. ``spec``: ``rfft(x)``, if at hand (then
    ``factor`` must divide ``N``).
    """
    n = x.shape[-1]
    m = -(-n // factor)
    if spec is None or m * factor != n:
        if m * factor != n:  # whole periods of the new rate: sample j stays at j * factor
            x = torch.nn.functional.pad(x, (0, m * factor - n))
        spec = torch.fft.rfft(x, dim=-1)
    spec = spec[..., : m // 2 + 1]
    xu = torch.fft.irfft(spec, up * m, dim=-1) * (up / factor)
    return xu, xu[:, ::up]


def _median_floor(values: torch.Tensor) -> torch.Tensor:
    """Mean noise power from the median of exponentially distributed bin powers."""
    return torch.nanmedian(values, -1).values / _LN2


def _bh_power(sig: torch.Tensor, length: torch.Tensor, nfft: int
              ) -> torch.Tensor:
    """Power spectrum ``[B, nfft // 2 + 1]`` of each clip under a Blackman-Harris window
    spanning its own ``length``."""
    m = torch.arange(sig.shape[-1], device=sig.device, dtype=torch.float32)
    if bool((length == length[0]).all()):
        length = length[:1]
    c1 = torch.cos(2 * math.pi * m[None] / (length[:, None] - 1).clamp(min=1).to(torch.float32))
    c2 = 2 * c1 * c1 - 1
    c3 = 2 * c1 * c2 - c1
    win = _BH[0] - _BH[1] * c1 + _BH[2] * c2 - _BH[3] * c3
    win = win * (m[None] < length[:, None])
    return torch.fft.rfft(sig * win, nfft, dim=-1).abs().pow(2)


def _fit(h: torch.Tensor, ok: torch.Tensor, peak_snr: torch.Tensor, unit: torch.Tensor
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted least squares of ``(h_k / k)**2 = a + s k**2`` over the found partials.

    Returns (``c = sqrt(a)``, ``B = s / a``, partials used), ``[B]`` each; ``B`` is 0 with
    fewer than three partials.
    """
    kk = torch.arange(1, h.shape[-1] + 1, device=h.device, dtype=torch.float64)
    sig_h = (0.05 + 10 ** (-peak_snr.clamp(max=80) / 20)) / unit[:, None]
    hh = torch.where(ok, h, torch.zeros_like(h))
    y = (hh / kk) ** 2
    sig_y = 2 * (hh / kk) * sig_h / kk
    w = torch.where(ok, 1.0 / sig_y.clamp(min=1e-12) ** 2, torch.zeros_like(sig_y))
    x2 = kk * kk
    sw, sx, sxx = w.sum(-1), (w * x2).sum(-1), (w * x2 * x2).sum(-1)
    sy, sxy = (w * y).sum(-1), (w * x2 * y).sum(-1)
    used = ok.sum(-1)
    det = sw * sxx - sx * sx
    two = (used >= 3) & (det > 1e-9 * sw * sxx)
    slope = torch.where(two, (sw * sxy - sx * sy) / det.clamp(min=1e-300), 0.0)
    icpt = torch.where(two, (sy - slope * sx) / sw.clamp(min=1e-300), sy / sw.clamp(min=1e-300))
    icpt = icpt.clamp(min=1e-12)
    return icpt.sqrt(), slope / icpt, used


def measure_partials(x: torch.Tensor, sr: int, f0: torch.Tensor, *, hop: int, max_partials: int = 64,
                     band: float = 0.25, min_peak_snr: float = 20.0, max_range: float = 100.0,
                     stages: tuple[int, ...] = (4, 12, 32, 64), max_freq: float | None = None,
                     upsample: int = 4, spectrum: torch.Tensor | None = None, with_hnr: bool = True,
                     zero_pad: int = 2) -> Partials:
    """Find and measure the partials of each clip (see the module docstring).

    ``f0`` ``[B, T]`` is a frame f0 track (Hz, NaN where unvoiced) at ``i * hop / sr``.
    Partials are searched in stages (``k <= 4``, ``<= 12``, ...), each placed by the
    stiff-string fit of the partials found in the stages before. A partial is
    found when its peak stands ``min_peak_snr`` dB above the local noise floor and
    within ``max_range`` dB of the fundamental's. With ``max_freq`` (Hz), only the
    band below it is analysed, at a sample rate reduced accordingly (faster).
    ``upsample`` is the band-limited upsampling before the warp's cubic
    interpolation: 4 keeps levels flat within 0.04 dB up to Nyquist; 2 (-0.55 dB
    at Nyquist) is enough where only frequencies matter. ``spectrum`` is
    ``rfft(x)`` if at hand; ``with_hnr=False`` skips the HNR. ``zero_pad``: FFT length
    over the clip's length (2 makes peak interpolation exact to ~0.01 bin).
    """
    lf, has = fill_log_track(f0)
    lf = lowpass_track(lf, sr / hop)
    frame_dt = hop / sr
    factor = 1 if max_freq is None else max(1, int(sr / 2 // max_freq))
    if spectrum is not None:  # reuse it: a factor that divides the length
        factor = max(d for d in range(1, factor + 1) if x.shape[-1] % d == 0)
    xu, x = _resample(x, factor, upsample, spectrum)
    sr = sr / factor
    b, n = x.shape
    dev = x.device
    w, length, f_ref = warp(x, sr, lf, frame_dt, xu)
    per = (sr / f_ref).to(torch.float64)  # samples per cycle on the warp
    m_max = max(w.shape[1], n)
    nfft = fast_len(zero_pad * m_max)
    power_w = _bh_power(w, length, nfft)
    power_x = _bh_power(x, torch.full_like(length, n), nfft)
    # The warp follows the track; if the track wobbles (a short-window f0 estimate under
    # strong beating does, and its harmonics alias to low rates), the warp smears the
    # partials instead. Keep whichever spectrum concentrates the clip's energy better
    # (the plain one when the pitch is steady).
    def sharpness(pw: torch.Tensor) -> torch.Tensor:
        return torch.topk(pw, min(64, pw.shape[-1]), dim=-1).values.sum(-1) / pw.sum(-1).clamp(min=1e-30)

    plain = sharpness(power_x) >= sharpness(power_w)
    power = torch.where(plain[:, None], power_x, power_w)
    nbins = power.shape[-1]
    unit = (nfft / per)  # [B] bins per harmonic unit
    cs = torch.nn.functional.pad(torch.cumsum(power.double(), -1), (1, 0))
    db = 10 * torch.log10(power.clamp(min=1e-30))
    # a beating copy lies at least 15 Hz above its partial; 4.5 bins is the Blackman-Harris
    # main lobe's half width
    guard = int(math.ceil(max(4.5 * nfft / m_max, 10.0 * nfft / sr)))
    del w, power_w, power_x

    # global white-noise floor: median over the bins above half the reference frequency
    lo_bin = (0.5 * unit).long()
    bins = torch.arange(nbins, device=dev)
    if with_hnr:
        floor_g = _median_floor(torch.where(bins[None] >= lo_bin[:, None], power, torch.nan))
        total = cs[:, -1] - cs.gather(1, lo_bin[:, None])[:, 0]
        noise_e = floor_g.double() * (nbins - lo_bin).to(torch.float64)
        hnr = 10 * torch.log10((total - noise_e).clamp(min=1e-30) / noise_e.clamp(min=1e-300))
    else:
        hnr = torch.full((b,), float("nan"), device=dev, dtype=torch.float64)

    def peaks(center: torch.Tensor, half: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Main line within ``center +- half`` bins (``[B, K]``): position (bins), dB.

        The strongest bin, unless a line at least half as strong lies below it (the
        partial under its own beating copy, which is never stronger than the partial).
        """
        lo = (center - half).floor().long().clamp(1, nbins - 2)
        hi = (center + half).ceil().long().clamp(1, nbins - 2)
        width = int((hi - lo).max()) + 1
        off = torch.arange(width, device=dev)
        idx = (lo[..., None] + off).clamp(max=nbins - 2)
        vals = torch.gather(db[:, None, :].expand(-1, lo.shape[1], -1), 2, idx)
        vals = torch.where(off <= (hi - lo)[..., None], vals, torch.full_like(vals, -1e9))
        top, i_top = vals.max(-1)
        below = torch.where(off < (i_top - guard)[..., None], vals, torch.full_like(vals, -1e9))
        low, i_low = below.max(-1)
        # a separate line: a dip of 6 dB between it and the top
        between = (off > i_low[..., None]) & (off < i_top[..., None])
        dip = torch.where(between, vals, torch.full_like(vals, 1e9)).min(-1).values
        i = torch.where((low >= top - 3.0) & (dip <= low - 6.0), i_low, i_top)
        i = torch.gather(idx, 2, i[..., None])[..., 0]
        y = torch.stack([torch.gather(db, 1, (i + o).reshape(b, -1)).reshape(i.shape)
                         for o in (-1, 0, 1)], -1).double()
        den = y[..., 0] - 2 * y[..., 1] + y[..., 2]
        d = torch.where(den < 0, 0.5 * (y[..., 0] - y[..., 2]) / den.clamp(max=-1e-12),
                        torch.zeros_like(den)).clamp(-0.5, 0.5)
        return i.to(torch.float64) + d, y[..., 1] - 0.25 * (y[..., 0] - y[..., 2]) * d

    def local_floor(center: torch.Tensor, spacing: torch.Tensor, pts: int = 48) -> torch.Tensor:
        """Noise power per bin: median of the bins 0.3-0.5 spacings either side."""
        frac = torch.linspace(0.3, 0.5, pts, device=dev, dtype=torch.float64)
        offs = torch.cat([-frac, frac])
        idx = (center[..., None] + offs * spacing[:, None, None]).round().long().clamp(1, nbins - 1)
        vals = torch.gather(power, 1, idx.reshape(b, -1)).reshape(idx.shape)
        return _median_floor(vals).double()

    # the fundamental: the main line between 0.7 and 1.4 units
    p1, db1 = peaks((1.05 * unit)[:, None], (0.35 * unit)[:, None])
    fl1 = local_floor(p1, unit)
    valid = has & ((db1 - 10 * torch.log10(fl1.clamp(min=1e-30)))[:, 0] >= min_peak_snr)
    c = (p1[:, 0] / unit)
    binh = torch.zeros_like(c)
    kk = max(1, min(max_partials, stages[-1] if stages else max_partials))
    nyq = per / 2  # Nyquist in harmonic units
    nan = torch.full((b, kk), float("nan"), device=dev, dtype=torch.float64)
    freq, level, snr, psnr = nan.clone(), nan.clone(), nan.clone(), nan.clone()
    found = torch.zeros(b, kk, dtype=torch.bool, device=dev)
    c0 = c.clone()
    for stage in [s_ for s_ in stages if s_ <= kk] + ([kk] if kk not in stages else []):
        k = torch.arange(1, stage + 1, device=dev, dtype=torch.float64)
        pred = c[:, None] * k * torch.sqrt((1 + binh[:, None] * k * k).clamp(min=0.01))  # [B, K]
        inside = valid[:, None] & (pred + band * c0[:, None] < 0.99 * nyq[:, None])
        half = (band * c0 * unit)[:, None].expand(-1, stage)
        pos, pdb = peaks(pred * unit[:, None], half)
        fl = local_floor(pos, c0 * unit)
        ps = pdb - 10 * torch.log10(fl.clamp(min=1e-30))
        hk = pos / unit[:, None]
        ok = (inside & (ps >= min_peak_snr) & ((hk - pred).abs() <= band * c0[:, None])
              & (hk >= (k - band) * c[:, None])  # stiffness only raises partials
              & (pdb >= db1 - max_range))  # not float32 rounding noise
        centre = torch.where(ok, pos, pred * unit[:, None])
        lo = (centre - half).round().long().clamp(0, nbins)
        hi = (centre + half).round().long().clamp(0, nbins)
        e_band = cs.gather(1, hi) - cs.gather(1, lo)
        e_noise = fl * (hi - lo).to(torch.float64)
        e_sig = e_band - e_noise
        sl = slice(0, stage)
        level[:, sl] = torch.where(inside & (e_sig > 0) & (pdb >= db1 - max_range),
                                   10 * torch.log10(e_sig.clamp(min=1e-300)), torch.nan)
        snr[:, sl] = torch.where(inside, 10 * torch.log10(e_sig.clamp(min=1e-300)
                                                          / e_noise.clamp(min=1e-300)), torch.nan)
        psnr[:, sl] = torch.where(inside, ps, torch.nan)
        freq[:, sl] = torch.where(ok, hk, torch.nan)
        found[:, sl] = ok
        c_new, b_new, used = _fit(hk, ok, ps, unit)
        c = torch.where(used >= 1, c_new, c)
        binh = torch.where(used >= 3, b_new.clamp(0.0, 0.05), binh)
    c_fit, b_fit, n_found = _fit(torch.nan_to_num(freq), found, torch.nan_to_num(psnr), unit)
    c_out = torch.where(valid & (n_found >= 1), c_fit, torch.nan)
    f1 = c_out * f_ref
    b_out = torch.where(valid & (n_found >= 3), b_fit, torch.nan)
    return Partials(freq=freq, level=level, snr=snr, peak_snr=psnr, found=found, f_ref=f_ref,
                    c=c_out, f0=f1, warped=~plain, inharmonicity=b_out, n_found=n_found,
                    hnr=torch.where(has, hnr, torch.nan), valid=valid)
