"""Vibrato retention: how much of a known vibrato's depth a pitch tracker's f0 curve keeps.

This is the "vibrato" readout of the Tracking (earlier: Dynamics) track of the public pitch-tracker
benchmark *pitch-benchmark* by lars76 (https://github.com/lars76/pitch-benchmark), reimplemented
from its source: the stimuli of ``synthetic_benchmark.py`` (families ``vib_half``, ``vib_one``,
``vib_two``; function ``_score_trajectory``) and the track score of ``metrics.py``
(``track_tracking``), read at commits ``54f1983`` (``synthetic_benchmark.py``) and ``a6a606e``
(``metrics.py``, ``benchmark_report.md``). No code is copied.

The test signal (:func:`vibrato_tone`)
--------------------------------------
A 2 s harmonic tone at 16 kHz whose f0 follows

    f0(t) = 220 Hz * 2 ** (d / 12 * sin(2 pi 6 t)),

a 6 Hz vibrato of depth ``d`` semitones, where ``d`` is the *peak* deviation: the pitch swings
``±d`` semitones (``±100 d`` cents, ``2 d`` semitones peak to peak), starting at the centre and going
up (sine phase 0 at the first sample). The benchmark uses ``d = 0.5, 1, 2``. The partials are
``k = 1, 2, ...`` (at most 60) with amplitude ``1 / k`` (a sawtooth-like spectrum), phase-locked
(each is ``sin(k * phase)``, the phase being the running sum of the instantaneous f0), up to the last
one whose highest frequency stays below Nyquist less 100 Hz (31 partials at ``d = 2``, 34 at
``d = 0.5``). The tone gets a 20 ms raised-cosine fade at both ends, is scaled to an RMS of 0.1 and,
were its peak above 0.95, scaled down to that peak.

The score (:func:`vibrato_retention`, :func:`vibrato_readout`)
---------------------------------------------------------------
From the tracker's f0 curve ``f0[i]`` (Hz) at frame times ``t[i] = t0 + i / frame_rate``:

1. *Frames used*: the voiced frames (finite, positive f0, and the tracker's own voicing decision
   where one is given) of the *interior*: the first and last 128 ms of frames are dropped (8 frames
   on the benchmark's grid of 16 ms frames, hop 256 at 16 kHz), which is where the fades and the
   trackers' edge effects sit.
2. *Depth*: the curve in cents (``1200 log2 f0``) is fitted by least squares with
   ``a sin(2 pi r t) + b cos(2 pi r t) + c`` at the known rate ``r = 6 Hz``; the retained depth is the
   amplitude ``sqrt(a² + b²)`` in cents. The free phase makes the score blind to a tracker's delay,
   the constant ``c`` to its tuning bias (and to the reference of the cents, which the benchmark
   puts at 220 Hz); neither is part of "depth".
3. *Depth ratio* (the number the benchmark's report prints as ``depth``, and this module's
   :func:`vibrato_retention`): that amplitude over the true one, ``100 d`` cents. 1 is a perfect
   copy, 0.5 half the swing, ~0 a flat curve; above 1 the tracker exaggerates (overshoot, or
   octave jumps in step with the vibrato). It is undefined (NaN here; ``None`` scored 0 there) when
   fewer than 30 interior frames (480 ms) are voiced.
4. *Voiced fraction*: the fraction of interior frames that are voiced.
5. *Track score* (per stimulus; the benchmark then averages the three depths with equal weight and
   the result with the steady-tone score): the depth ratio clipped to ``[0, 1]`` times the voiced
   fraction, 0 when the ratio is undefined.

The benchmark moves every tracker's output onto its 16 ms grid (frame ``m`` at ``m * 256 / 16000``
s) before scoring; this module scores a curve at whatever frame rate it comes, with the edge and the
minimum count expressed in seconds (they equal 8 and 30 frames at 62.5 frames per second). The depth
of a sinusoid fitted at a known rate does not depend on the frame rate, only its noise does.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from ontoscope.errors import AudioError, ConfigError

__all__ = [
    "BENCHMARK_DEPTHS",
    "BENCHMARK_F0_HZ",
    "BENCHMARK_FRAME_RATE",
    "BENCHMARK_RATE_HZ",
    "BENCHMARK_SR",
    "VibratoReadout",
    "vibrato_f0",
    "vibrato_readout",
    "vibrato_retention",
    "vibrato_tone",
]

#: Sample rate of the benchmark's stimuli, Hz.
BENCHMARK_SR = 16000
#: Frame rate of the benchmark's common scoring grid (hop 256 samples at 16 kHz), frames per second.
BENCHMARK_FRAME_RATE = BENCHMARK_SR / 256
#: Centre frequency of the vibrato tone, Hz.
BENCHMARK_F0_HZ = 220.0
#: Vibrato rate, Hz.
BENCHMARK_RATE_HZ = 6.0
#: Vibrato depths of the three stimuli (``vib_half``, ``vib_one``, ``vib_two``), ± semitones.
BENCHMARK_DEPTHS = (0.5, 1.0, 2.0)
#: Edge dropped at each end before fitting, s (8 frames of the benchmark's grid).
EDGE_SECONDS = 8 / BENCHMARK_FRAME_RATE
#: Fewest voiced interior frames for a defined depth, s (30 frames of the benchmark's grid).
MIN_SECONDS = 30 / BENCHMARK_FRAME_RATE


def vibrato_f0(
    times: np.ndarray | torch.Tensor | float,
    *,
    depth_semitones: float,
    f0_hz: float = BENCHMARK_F0_HZ,
    rate_hz: float = BENCHMARK_RATE_HZ,
) -> np.ndarray:
    """The exact f0 curve of :func:`vibrato_tone`: ``f0_hz * 2 ** (depth / 12 * sin(2 pi rate t))``.

    Parameters
    ----------
    times : array ``[...]`` of times in s (``t = 0`` at the tone's first sample)
    depth_semitones : float
        Peak deviation, ± semitones.
    f0_hz, rate_hz : float
        Centre frequency and vibrato rate, Hz.

    Returns
    -------
    ndarray, same shape as ``times``, float64, Hz.
    """
    t = np.asarray(times.detach().cpu() if isinstance(times, torch.Tensor) else times, dtype=np.float64)
    return f0_hz * 2.0 ** (depth_semitones / 12.0 * np.sin(2.0 * np.pi * rate_hz * t))


def vibrato_tone(
    depth_semitones: float,
    *,
    sr: int = BENCHMARK_SR,
    duration: float = 2.0,
    f0_hz: float = BENCHMARK_F0_HZ,
    rate_hz: float = BENCHMARK_RATE_HZ,
    max_partials: int = 60,
    nyquist_margin_hz: float = 100.0,
    ramp_seconds: float = 0.02,
    rms: float = 0.1,
    peak: float = 0.95,
) -> np.ndarray:
    """The benchmark's vibrato stimulus: a harmonic tone with a sinusoidal vibrato (module docstring).

    Parameters
    ----------
    depth_semitones : float
        Peak deviation of the vibrato, ± semitones (0 gives a steady tone).
    sr : int
        Sample rate, Hz.
    duration : float
        Length, s (``round(duration * sr)`` samples).
    f0_hz, rate_hz : float
        Centre frequency and vibrato rate, Hz.
    max_partials : int
        Most partials; partials stop earlier at the first whose highest frequency reaches
        ``sr / 2 - nyquist_margin_hz``.
    nyquist_margin_hz : float
        Distance kept from Nyquist, Hz.
    ramp_seconds : float
        Raised-cosine fade-in and fade-out, s (skipped when the two would overlap).
    rms, peak : float
        Target RMS; the tone is then scaled down if its peak exceeds ``peak``.

    Returns
    -------
    ndarray ``[N]`` float32 (``torch.from_numpy`` gives the tensor).
    """
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ConfigError(f"sr must be a positive integer in Hz, got {sr!r}")
    if not (duration > 0 and f0_hz > 0 and rate_hz >= 0 and depth_semitones >= 0):
        raise ConfigError("duration and f0_hz must be positive, rate_hz and depth_semitones non-negative")
    n = int(round(duration * sr))
    track = vibrato_f0(np.arange(n) / sr, depth_semitones=depth_semitones, f0_hz=f0_hz, rate_hz=rate_hz)
    phase = 2.0 * np.pi * np.cumsum(track) / sr
    top, limit = float(track.max()), sr / 2.0 - nyquist_margin_hz
    x = np.zeros(n)
    for k in range(1, max_partials + 1):
        if k * top >= limit:
            break
        x += np.sin(k * phase) / k
    if not x.any():
        raise ConfigError(f"no partial of a {f0_hz} Hz tone fits below {limit} Hz")
    r = int(ramp_seconds * sr)
    if 0 < r and 2 * r < n:
        fade = 0.5 * (1.0 - np.cos(np.pi * np.arange(r) / r))
        x[:r] *= fade
        x[-r:] *= fade[::-1]
    x *= rms / (np.sqrt(np.mean(x**2)) + 1e-9)
    top = np.abs(x).max()
    if top > peak:
        x *= peak / top
    return x.astype(np.float32)


class VibratoReadout(NamedTuple):
    """Result of :func:`vibrato_readout`.

    Attributes
    ----------
    depth_ratio : float
        Fitted depth over the true depth (NaN: too few voiced interior frames).
    depth_cents : float
        Fitted depth, peak deviation in cents (NaN likewise).
    voiced_fraction : float
        Voiced frames among the interior ones (0 when there are none).
    score : float
        The benchmark's per-stimulus track score, ``clip(depth_ratio, 0, 1) * voiced_fraction``
        (0 where the ratio is NaN).
    frames : int
        Voiced interior frames the fit used.
    """

    depth_ratio: float
    depth_cents: float
    voiced_fraction: float
    score: float
    frames: int


def _as_curve(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise AudioError(f"{name} must have shape [T] (or [1, T]), got {arr.shape}")
    return arr


def vibrato_readout(
    f0_hz: np.ndarray | torch.Tensor,
    *,
    frame_rate: float,
    rate_hz: float,
    depth_semitones: float,
    voiced: np.ndarray | torch.Tensor | None = None,
    t0: float = 0.0,
    edge_seconds: float = EDGE_SECONDS,
    min_seconds: float = MIN_SECONDS,
) -> VibratoReadout:
    """Depth ratio, voiced fraction and track score of one tracked vibrato tone (module docstring).

    Parameters
    ----------
    f0_hz : array or tensor ``[T]`` (or ``[1, T]``)
        The tracker's f0 per frame, Hz; NaN, 0 or negative values mark unvoiced frames.
    frame_rate : float
        Frames per second.
    rate_hz : float
        The known vibrato rate, Hz (6 in the benchmark).
    depth_semitones : float
        The true depth, ± semitones (the peak deviation, half the peak-to-peak swing).
    voiced : bool array ``[T]``, optional
        The tracker's voicing decision (e.g. its confidence at or above a threshold); frames it
        marks unvoiced are dropped even where they carry an f0.
    t0 : float
        Time of frame 0, s (only moves the fitted phase, never the depth).
    edge_seconds : float
        Frames within this time of either end are left out: ``round(edge_seconds * frame_rate)``
        frames at each end (8 at the benchmark's 62.5 frames/s).
    min_seconds : float
        The depth is NaN unless at least ``ceil(min_seconds * frame_rate)`` voiced interior frames
        remain (30 at 62.5 frames/s).

    Returns
    -------
    VibratoReadout
    """
    if not (frame_rate > 0 and rate_hz > 0 and depth_semitones > 0):
        raise ConfigError("frame_rate, rate_hz and depth_semitones must be positive")
    if edge_seconds < 0 or min_seconds < 0:
        raise ConfigError("edge_seconds and min_seconds must be non-negative")
    f0 = _as_curve(f0_hz, "f0_hz").astype(np.float64)
    n = f0.shape[0]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(f0) & (f0 > 0)
    if voiced is not None:
        v = _as_curve(voiced, "voiced").astype(bool)
        if v.shape != f0.shape:
            raise AudioError(f"voiced has shape {v.shape}, f0_hz {f0.shape}")
        ok &= v
    edge = int(round(edge_seconds * frame_rate))
    interior = np.zeros(n, dtype=bool)
    interior[edge:max(edge, n - edge)] = True
    voiced_fraction = float(ok[interior].mean()) if interior.any() else 0.0
    use = ok & interior
    frames = int(use.sum())
    if frames < max(1, math.ceil(min_seconds * frame_rate - 1e-9)) or frames < 3:
        return VibratoReadout(float("nan"), float("nan"), voiced_fraction, 0.0, frames)
    t = t0 + np.arange(n)[use] / frame_rate
    cents = 1200.0 * np.log2(f0[use] / BENCHMARK_F0_HZ)
    w = 2.0 * np.pi * rate_hz * t
    design = np.column_stack([np.sin(w), np.cos(w), np.ones_like(w)])
    coef, *_ = np.linalg.lstsq(design, cents, rcond=None)
    depth_cents = float(np.hypot(coef[0], coef[1]))
    ratio = depth_cents / (100.0 * depth_semitones)
    return VibratoReadout(ratio, depth_cents, voiced_fraction, float(np.clip(ratio, 0.0, 1.0)) * voiced_fraction,
                          frames)


def vibrato_retention(
    f0_hz: np.ndarray | torch.Tensor,
    *,
    frame_rate: float,
    rate_hz: float,
    depth_semitones: float,
    voiced: np.ndarray | torch.Tensor | None = None,
    t0: float = 0.0,
    edge_seconds: float = EDGE_SECONDS,
    min_seconds: float = MIN_SECONDS,
) -> float:
    """Vibrato retention: the depth of the f0 curve's sinusoid at the known rate over the true depth.

    The benchmark's ``depth`` readout (module docstring): the voiced interior frames of ``f0_hz``
    (128 ms dropped at each end) are fitted in cents with a sinusoid of rate ``rate_hz`` (free
    phase) plus a constant, and the fitted amplitude is divided by ``100 * depth_semitones`` cents.
    1: the full vibrato; 0.5: half its swing; ~0: a flat curve; > 1: exaggerated.

    Parameters
    ----------
    f0_hz : array or tensor ``[T]`` (or ``[1, T]``)
        f0 per frame, Hz; NaN or non-positive where unvoiced.
    frame_rate : float
        Frames per second (frame ``i`` at ``t0 + i / frame_rate`` s).
    rate_hz : float
        Vibrato rate, Hz.
    depth_semitones : float
        True vibrato depth, ± semitones (peak deviation).
    voiced, t0, edge_seconds, min_seconds
        As :func:`vibrato_readout`.

    Returns
    -------
    float
        The depth ratio (dimensionless); NaN when fewer than ``min_seconds`` of interior frames
        are voiced. :func:`vibrato_readout` also gives the voiced fraction and the track score.
    """
    return vibrato_readout(f0_hz, frame_rate=frame_rate, rate_hz=rate_hz, depth_semitones=depth_semitones,
                           voiced=voiced, t0=t0, edge_seconds=edge_seconds, min_seconds=min_seconds).depth_ratio
