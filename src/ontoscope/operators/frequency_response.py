"""Sine sweeps through the real model: channel responses, bandwidths, and the alias-induced injectivity collapse.

For every frequency ``f`` of a log-spaced grid, a sine ``a sin(2 pi f t + phi)``
(amplitude ``a``, a seeded random phase) runs through the model; the response
of channel ``c`` at a site is the RMS over frames (and over the site's
frequency bins) of the activation minus its value for silence, so that biases
and offsets do not count as response. Frames within half a receptive field
of either end are dropped where the clip is long enough (boundary effects).

Bandwidth
---------
A channel's effective bandwidth is the measure (Hz) of the input frequencies
where its response is at least ``level`` (default 1/2, -6 dB) of its peak,
each grid frequency standing for the cell between the geometric midpoints
to its neighbours. It is reported in Hz and relative to the site's frame rate
``f_s / R``: a channel whose band is wider than the frame rate folds different
input frequencies onto the same frame-rate sequence (the decimation identity).

Injectivity collapse
--------------------
The site's response to frequency ``f_i`` is a phase-invariant vector ``v_i``:
for every channel (and bin), the magnitude spectrum *over frames* of its
activation (Hann window; optionally pooled into ``n_bands`` equal bands from 0
to half the frame rate). It keeps what the frame sequence says about the input
frequency: a sine below half the frame rate shows up as a trajectory at that
frequency, one above it folds to ``|f - k f_s / R|`` (the decimation
identity), and two frequencies that fold to the same place are told apart
only by the channels' gains. Vectors longer than ``max_dims`` are reduced by
a seeded count sketch (feature hashing, Weinberger et al. 2009), which keeps
distances in expectation.

The tolerance is local: ``delta_i``, the mean distance from ``v_i`` to its two
grid neighbours, is how far the site moves when the input moves by one grid
step there. Frequency ``f_i`` *collapses* when some frequency ``f_j`` that is
neither a grid neighbour (``|i - j| > exclude``, default 1) nor closer than
the clip's frequency resolution (``|f_i - f_j| >= min_separation_hz``, by
default ``2 / seconds``) lies within ``tau * delta_i`` (default ``tau = 0.5``),
or within the floor ``floor * max_k ||v_k||`` (default 1e-3, 60 dB below the
strongest response: what a site has erased cannot be told apart either). So a
frequency collapses when the site confuses it with a distant one more than
with its own neighbours. The collapse fraction is the share of grid
frequencies that collapse; the grid's spacing sets the resolution asked for
(default 192 points from 20 Hz to 0.95 Nyquist, about 1/20 octave at 16 kHz).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ontoscope.models.protocol import AudioModel, encode_sites
from ontoscope.operators._common import site_names

__all__ = ["SweepResult", "channel_bandwidths", "injectivity", "sine_sweep", "sweep_frequencies"]


def sweep_frequencies(sample_rate: int, n: int = 192, f_lo: float = 20.0, f_hi: float | None = None) -> np.ndarray:
    """``n`` log-spaced frequencies (Hz) from ``f_lo`` to ``f_hi`` (default 0.95 x Nyquist)."""
    f_hi = 0.95 * sample_rate / 2 if f_hi is None else float(f_hi)
    return np.geomspace(float(f_lo), f_hi, int(n))


@dataclass
class SweepResult:
    """Responses of the sites to a sine sweep.

    Attributes
    ----------
    freqs : ndarray ``[F]``
        Input frequencies, Hz.
    responses : dict site -> ndarray ``[F, C]``
        RMS over frames (and bins) of (activation - silence activation) per channel.
    features : dict site -> ndarray ``[F, D]``
        Phase-invariant response vectors for :func:`injectivity` (see the module docstring).
    """

    freqs: np.ndarray
    responses: dict[str, np.ndarray]
    features: dict[str, np.ndarray]

    def channel_responses(self, site: str) -> np.ndarray:
        """``[F, C]``: each channel's RMS response at each input frequency."""
        return self.responses[site]

    def table(self, model_name: str = "") -> pd.DataFrame:
        """Long table ``model, site, channel, freq_hz, response``."""
        parts = []
        for site in self.responses:
            r = self.channel_responses(site)
            f_idx, c_idx = np.meshgrid(np.arange(r.shape[0]), np.arange(r.shape[1]), indexing="ij")
            parts.append(pd.DataFrame({"model": model_name, "site": site, "channel": c_idx.ravel(),
                                       "freq_hz": self.freqs[f_idx.ravel()], "response": r.ravel()}))
        if not parts:
            return pd.DataFrame(columns=["model", "site", "channel", "freq_hz", "response"])
        return pd.concat(parts, ignore_index=True)


def _trim(acts: torch.Tensor, margin: int) -> torch.Tensor:
    t = acts.shape[-1]
    m = min(margin, max((t - 1) // 2, 0))
    return acts[..., m: t - m] if m > 0 else acts


def sine_sweep(
    model: AudioModel,
    sites: Sequence[str] | None = None,
    *,
    freqs: np.ndarray | None = None,
    seconds: float = 0.25,
    amplitude: float = 0.1,
    chunk: int = 32,
    margins: dict[str, int] | None = None,
    seed: int = 0,
    n_bands: int | None = None,
    max_dims: int = 4096,
    progress: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run a batch of sines through the model and record every channel's response at each site.

    Parameters
    ----------
    model : AudioModel
    sites : list of str, optional
        Sites to read (default all).
    freqs : ndarray, optional
        Input frequencies in Hz (default :func:`sweep_frequencies`).
    seconds : float
        Length of each sine.
    amplitude : float
        Peak amplitude (0.1 is -23 dBFS RMS).
    chunk : int
        Sines per forward pass.
    margins : dict site -> frames, optional
        Frames to drop at each end (default: none; :func:`~ontoscope.operators.latent.analyze` passes
        half the receptive field in frames).
    seed : int
        Seed of the sines' phases and of the count sketch.
    n_bands : int, optional
        Pool the per-channel magnitude spectrum over frames into this many bands (default: keep
        every DFT bin).
    max_dims : int
        Feature vectors longer than this are count-sketched to this many dimensions (the sketch of a
        site is drawn from ``seed`` and the site's name alone, so it does not depend on which other
        sites are swept).
    progress : callable, optional
        Called after each batch of sines with the highest frequency done.

    Returns
    -------
    SweepResult
    """
    sr = int(model.sample_rate)
    names = site_names(model, sites)
    freqs = sweep_frequencies(sr) if freqs is None else np.asarray(freqs, dtype=np.float64)
    n = max(int(round(seconds * sr)), int(getattr(model, "min_samples", 1)))
    t = torch.arange(n, dtype=torch.float64) / sr
    phase = np.random.default_rng(seed).uniform(0, 2 * math.pi, freqs.size)
    margins = margins or {}
    sketches: dict[str, tuple[torch.Tensor, torch.Tensor] | None] = {}
    with torch.no_grad():
        base = encode_sites(model, torch.zeros(1, n), names)
        resp: dict[str, list[np.ndarray]] = {s: [] for s in names}
        feats: dict[str, list[np.ndarray]] = {s: [] for s in names}
        for start in range(0, freqs.size, chunk):
            f = torch.from_numpy(freqs[start:start + chunk])
            ph = torch.from_numpy(phase[start:start + chunk])
            x = (amplitude * torch.sin(2 * math.pi * f[:, None] * t[None] + ph[:, None])).float()
            acts = encode_sites(model, x, names)
            for s in names:
                a = acts[s] - base[s]
                a = _trim(a, margins.get(s, 0)).double()
                a = a if a.ndim == 4 else a.unsqueeze(2)  # [B, C, bins, T]
                resp[s].append(a.pow(2).mean((-1, -2)).sqrt().numpy())
                v = _frame_spectrum(a, n_bands).reshape(a.shape[0], -1)
                if s not in sketches:
                    sketches[s] = None if v.shape[1] <= max_dims else _sketch(v.shape[1], max_dims, seed, s)
                sk = sketches[s]
                if sk is not None:
                    v = v.new_zeros(v.shape[0], max_dims).index_add_(1, sk[0], v * sk[1])
                feats[s].append(v.numpy())
            if progress is not None:
                progress(f"{float(f[-1]):.0f} Hz")
    return SweepResult(freqs, {s: np.concatenate(v) for s, v in resp.items()},
                       {s: np.concatenate(v) for s, v in feats.items()})


def _sketch(dims: int, width: int, seed: int, site: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A count sketch ``dims -> width`` (bucket and sign per input dim) drawn from ``seed`` and ``site``."""
    key = int.from_bytes(hashlib.blake2b(f"{seed}:{site}".encode(), digest_size=8).digest(), "little") >> 1
    gen = torch.Generator().manual_seed(key)
    return (torch.randint(0, width, (dims,), generator=gen),
            torch.randint(0, 2, (dims,), generator=gen).double() * 2 - 1)


def _frame_spectrum(a: torch.Tensor, n_bands: int | None) -> torch.Tensor:
    """``[B, C, bins, T]`` -> ``[B, C, bins, K]``: magnitude of the Hann-windowed DFT over frames
    (RMS-pooled into ``n_bands`` equal bands when given; the RMS over frames when ``T < 4``)."""
    t = a.shape[-1]
    if t < 4:
        return a.pow(2).mean(-1, keepdim=True).sqrt()
    w = torch.hann_window(t, periodic=False, dtype=a.dtype)
    mag = torch.fft.rfft(a * w, dim=-1).abs() / w.pow(2).sum().sqrt()
    if n_bands is None:
        return mag
    p = mag.pow(2)
    k = p.shape[-1]
    edges = np.unique(np.linspace(0, k, min(n_bands, k) + 1).round().astype(int))
    bands = [p[..., lo:hi].mean(-1) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return torch.stack(bands, -1).sqrt()


def _cell_widths(freqs: np.ndarray) -> np.ndarray:
    """Width (Hz) of the cell each grid frequency stands for (geometric midpoints to its neighbours)."""
    f = np.asarray(freqs, dtype=np.float64)
    if f.size == 1:
        return np.ones(1)
    mid = np.sqrt(f[1:] * f[:-1])
    edges = np.concatenate([[f[0] ** 2 / mid[0]], mid, [f[-1] ** 2 / mid[-1]]])
    return np.diff(edges)


def channel_bandwidths(
    responses: np.ndarray,
    freqs: np.ndarray,
    frame_rate: float,
    level: float = 0.5,
) -> pd.DataFrame:
    """Each channel's peak frequency and effective bandwidth.

    Parameters
    ----------
    responses : ndarray ``[F, C]``
        Channel responses (see :meth:`SweepResult.channel_responses`).
    freqs : ndarray ``[F]``
        Hz.
    frame_rate : float
        The site's frame rate ``f_s / R`` in Hz (NaN when it has no time axis).
    level : float
        Fraction of the peak response that counts as inside the band (0.5: -6 dB).

    Returns
    -------
    DataFrame: ``channel, peak_hz, peak_response, bandwidth_hz, bandwidth_rel_frame_rate``
    (bandwidth / frame rate), ``above_frame_nyquist`` (fraction of the in-band measure above
    ``frame_rate / 2``).
    """
    r = np.asarray(responses, dtype=np.float64)
    widths = _cell_widths(freqs)
    peak_i = r.argmax(0)
    peak = r.max(0)
    inband = r >= level * peak[None]
    inband &= peak[None] > 0
    bw = (inband * widths[:, None]).sum(0)
    hi = (inband * (widths * (freqs > frame_rate / 2))[:, None]).sum(0) if frame_rate == frame_rate else \
        np.full(r.shape[1], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        above = np.where(bw > 0, hi / bw, np.nan)
    return pd.DataFrame({
        "channel": np.arange(r.shape[1]), "peak_hz": freqs[peak_i], "peak_response": peak,
        "bandwidth_hz": bw, "bandwidth_rel_frame_rate": bw / frame_rate if frame_rate == frame_rate else np.nan,
        "above_frame_nyquist": above,
    })


def injectivity(
    features: np.ndarray,
    freqs: np.ndarray,
    tau: float = 0.5,
    exclude: int = 1,
    min_separation_hz: float = 0.0,
    floor: float = 1e-3,
) -> dict[str, object]:
    """Which input frequencies the site's responses cannot tell from another (see the module docstring).

    Parameters
    ----------
    features : ndarray ``[F, ...]``
        Response vector per frequency (flattened beyond the first axis).
    freqs : ndarray ``[F]``
    tau : float
        Tolerance, as a multiple of the local neighbour distance.
    exclude : int
        Grid neighbours within this many steps are not counted as confusions.
    min_separation_hz : float
        Nor are frequencies closer than this (the clip's resolution, ``2 / seconds``).
    floor : float
        Distances below ``floor`` times the largest response norm count as indistinguishable.

    Returns
    -------
    dict: ``collapsed`` (bool ``[F]``), ``collapse_fraction``, ``neighbour_distance`` (``[F]``, local
    ``delta_i``), ``nearest`` (``[F]`` index of the closest non-neighbour, -1 if none),
    ``nearest_distance`` (``[F]``).
    """
    v = np.asarray(features, dtype=np.float64).reshape(len(freqs), -1)
    n = v.shape[0]
    if n < exclude + 2:
        raise ValueError(f"need more than {exclude + 1} frequencies, got {n}")
    sq = (v ** 2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * v @ v.T, 0.0)
    d = np.sqrt(d2)
    neigh = np.sqrt(((v[1:] - v[:-1]) ** 2).sum(1))
    delta = np.empty(n)
    delta[0], delta[-1] = neigh[0], neigh[-1]
    delta[1:-1] = (neigh[1:] + neigh[:-1]) / 2
    i, j = np.indices((n, n))
    f = np.asarray(freqs, dtype=np.float64)
    far = (np.abs(i - j) > exclude) & (np.abs(f[:, None] - f[None, :]) >= min_separation_hz)
    masked = np.where(far, d, np.inf)
    nearest = masked.argmin(1)
    near_d = masked[np.arange(n), nearest]
    nearest = np.where(np.isfinite(near_d), nearest, -1)
    scale = float(np.sqrt(sq.max())) if sq.size else 0.0
    collapsed = near_d <= tau * delta + floor * scale
    return {"collapsed": collapsed, "collapse_fraction": float(collapsed.mean()), "neighbour_distance": delta,
            "nearest": nearest, "nearest_distance": near_d}


def band_collapse(result: dict[str, object], freqs: np.ndarray, lo: float, hi: float) -> float:
    """Collapse fraction restricted to grid frequencies in ``[lo, hi]`` Hz (NaN when none lie there)."""
    sel = (freqs >= lo) & (freqs <= hi)
    c = np.asarray(result["collapsed"])
    return float(c[sel].mean()) if sel.any() else float("nan")
