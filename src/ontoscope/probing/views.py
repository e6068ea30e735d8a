"""Views of a site's activations: what a probe reads.

A site gives ``[B, C, T]`` (or ``[B, C, F, T]``, flattened to ``[B, C·F, T]``)
per batch of clips. Three views turn that into feature matrices:

``frames``
    Per-frame vectors ``[B·m, C]``: ``m`` frames per clip, evenly spaced over
    its middle (the first and last eighth are left out, where padding shows), so
    the data stays bounded; ``groups`` says which clip each row is from, so
    that folds never split a clip.
``pooled``
    Time-pooled statistics ``[B, 2C]``: each channel's mean and standard
    deviation over frames.
``timing``
    The timing of each channel's trajectory ``[B, 3C]``: the frequency (log2 Hz) of
    the strongest peak of its power spectrum (parabolic interpolation; the DC bin
    left out), the spread of the spectrum within two semitones of that peak (log2
    of its standard deviation in cents), and the modulation index of its envelope
    (standard deviation over mean of its RMS in 20 ms windows). At a site that runs
    at the waveform rate this reads pitch, frequency modulation as spread and
    amplitude modulation (tremolo, beating) as the envelope's index, from the timing
    of the activations, where means and band energies cannot; at a slow site it
    reads the rate of the dominant modulation.
``modulation``
    The modulation spectrum of each channel's trajectory ``[B, C·M]``: the
    magnitude of the Fourier transform of the (mean-removed, Hann-windowed)
    trajectory, averaged in ``M`` log-spaced bands of modulation frequency
    between ``lo`` Hz and the site's Nyquist rate ``frame_rate / 2``. A factor
    that lives in how a site changes over time (a vibrato rate) can be decoded
    here even where no static direction holds it.

References
----------
Dau, T., Kollmeier, B., & Kohlrausch, A. (1997). Modeling auditory processing of
amplitude modulation. J. Acoust. Soc. Am., 102(5), 2892-2905 (modulation filterbanks).
"""

from __future__ import annotations

import numpy as np
import torch

from ontoscope.errors import ConfigError

__all__ = ["VIEWS", "flatten_site", "frame_view", "modulation_bands", "modulation_view", "pooled_view", "timing_view"]

#: The views :func:`ontoscope.probing.capture.capture` can store.
VIEWS = ("frames", "pooled", "modulation", "timing")


def flatten_site(acts: torch.Tensor) -> torch.Tensor:
    """``[B, C, T]`` unchanged; ``[B, C, F, T]`` as ``[B, C·F, T]``; anything else is an error."""
    if acts.ndim == 4:
        return acts.reshape(acts.shape[0], -1, acts.shape[-1])
    if acts.ndim != 3:
        raise ConfigError(f"site activations must be [B, C, T] or [B, C, F, T], got shape {tuple(acts.shape)}")
    return acts


def frame_positions(n_frames: int, per_clip: int) -> np.ndarray:
    """``per_clip`` evenly spaced frame indices within the middle three quarters of ``n_frames``."""
    lo, hi = n_frames // 8, n_frames - n_frames // 8
    if hi <= lo:
        lo, hi = 0, n_frames
    m = min(per_clip, hi - lo)
    return np.unique(np.round(np.linspace(lo, hi - 1, m)).astype(int))


def frame_view(acts: torch.Tensor, per_clip: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame vectors ``[B·m, C]`` and the clip (row of the batch) of each, ``[B·m]``."""
    a = flatten_site(acts)
    pos = torch.as_tensor(frame_positions(a.shape[-1], per_clip), device=a.device)
    x = a[..., pos].permute(0, 2, 1).reshape(-1, a.shape[1])
    groups = torch.arange(a.shape[0], device=a.device).repeat_interleave(len(pos))
    return x, groups


def pooled_view(acts: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation of each channel over frames, ``[B, 2C]`` (means first)."""
    a = flatten_site(acts)
    std = a.std(-1, unbiased=False) if a.shape[-1] > 1 else torch.zeros_like(a[..., 0])
    return torch.cat([a.mean(-1), std], dim=1)


def modulation_bands(frame_rate: float, n_frames: int, n_bands: int = 8, lo: float = 0.5) -> np.ndarray:
    """Band edges ``[M + 1]`` (Hz), log-spaced from ``lo`` (or the lowest resolvable rate) to ``frame_rate / 2``.

    Empty (no bands) when the trajectory is too short or too coarse: fewer than
    4 frames, or a Nyquist rate below the lowest band.
    """
    if n_frames < 4 or frame_rate <= 0:
        return np.zeros(0)
    nyq = frame_rate / 2
    lo = max(lo, frame_rate / n_frames)  # the lowest rate one clip resolves
    if nyq <= lo:
        return np.zeros(0)
    return np.geomspace(lo, nyq, n_bands + 1)


def modulation_view(acts: torch.Tensor, frame_rate: float, n_bands: int = 8, lo: float = 0.5) -> torch.Tensor:
    """Modulation spectrum of every channel's trajectory, ``[B, C·M]`` (band-mean magnitudes, channel-major).

    ``frame_rate`` is the site's frames per second. Returns ``[B, 0]`` when
    :func:`modulation_bands` gives no band.
    """
    a = flatten_site(acts)
    b, c, t = a.shape
    edges = modulation_bands(frame_rate, t, n_bands, lo)
    if edges.size == 0:
        return a.new_zeros(b, 0)
    win = torch.hann_window(t, periodic=False, dtype=a.dtype, device=a.device)
    spec = torch.fft.rfft((a - a.mean(-1, keepdim=True)) * win, dim=-1).abs() / win.sum()  # [B, C, t//2+1]
    freqs = np.fft.rfftfreq(t, d=1.0 / frame_rate)
    bands = []
    for f_lo, f_hi in zip(edges[:-1], edges[1:], strict=True):
        sel = np.flatnonzero((freqs >= f_lo) & (freqs < f_hi))
        if sel.size == 0:  # a band narrower than the bin spacing: its nearest bin
            sel = np.array([int(np.argmin(np.abs(freqs - np.sqrt(f_lo * f_hi))))])
        bands.append(spec[..., torch.as_tensor(sel, device=a.device)].mean(-1))
    return torch.stack(bands, -1).reshape(b, -1)


def timing_view(acts: torch.Tensor, frame_rate: float) -> torch.Tensor:
    """Peak frequency, spread and envelope modulation of every channel's trajectory, ``[B, 3C]`` (in that order).

    ``frame_rate`` is the site's frames per second. The peak is ``log2`` of its frequency in Hz (0 for a
    channel with no energy); the spread is ``log2(1 + σ)``, ``σ`` the standard deviation in cents of the power
    within two semitones of the peak; the envelope index is the standard deviation over the mean of the
    mean-removed trajectory's RMS in windows of 20 ms (one frame at slower sites). ``[B, 0]`` for trajectories
    shorter than 8 frames.
    """
    a = flatten_site(acts).double()
    b, c, t = a.shape
    if t < 8 or frame_rate <= 0:
        return acts.new_zeros(b, 0)
    win = torch.hann_window(t, periodic=False, dtype=a.dtype, device=a.device)
    power = torch.fft.rfft((a - a.mean(-1, keepdim=True)) * win, dim=-1).abs() ** 2  # [B, C, K]
    power[..., 0] = 0
    k = power.shape[-1]
    peak = power.argmax(-1).clamp(1, k - 2)
    y0, y1, y2 = (power.gather(-1, (peak + o)[..., None])[..., 0] for o in (-1, 0, 1))
    den = y0 - 2 * y1 + y2
    shift = torch.where(den.abs() > 0, 0.5 * (y0 - y2) / den, torch.zeros_like(den)).clamp(-0.5, 0.5)
    hz_per_bin = frame_rate / t
    f_peak = (peak + shift) * hz_per_bin
    freqs = torch.arange(k, dtype=a.dtype, device=a.device) * hz_per_bin
    cents = 1200 * torch.log2(freqs.clamp_min(1e-9)[None, None] / f_peak.clamp_min(1e-9)[..., None])
    near = (cents.abs() <= 200) & (freqs[None, None] > 0)
    w = torch.where(near, power, torch.zeros_like(power))
    tot = w.sum(-1).clamp_min(1e-300)
    mean = (w * cents).sum(-1) / tot
    spread = ((w * (cents - mean[..., None]) ** 2).sum(-1) / tot).clamp_min(0).sqrt()
    has = power.sum(-1) > 0
    peaks = torch.where(has, torch.log2(f_peak.clamp_min(1e-9)), torch.zeros_like(f_peak))
    spreads = torch.where(has, torch.log2(1 + spread), torch.zeros_like(spread))
    dev = a - a.mean(-1, keepdim=True)
    w = max(1, int(round(0.02 * frame_rate)))
    n_win = t // w
    env = dev[..., : n_win * w].reshape(b, c, n_win, w).pow(2).mean(-1).sqrt()  # [B, C, windows]
    index = env.std(-1) / env.mean(-1).clamp_min(1e-12) if n_win > 1 else torch.zeros_like(spread)
    index = torch.where(has, index, torch.zeros_like(index))
    return torch.cat([peaks, spreads, index], 1).to(acts.dtype)
