"""A differentiable harmonic-plus-noise synthesizer driven by the factor canon.

The signal model, term by term, is in ``docs/synthesis.md``; this module
implements it. Two entry points:

- :func:`synthesize` — the pure function: factor tensors plus nuisances (phases,
  noise) in, audio out. Differentiable in every continuous factor with
  ``torch.autograd`` and ``torch.func.jvp``; later stages compute
  d(activations)/d(factor) through it.
- :func:`render` — the convenience wrapper: a factor table (one row per clip, a
  ``seed`` per clip) in, audio out, rendered in chunks.

Harmonic clips are read from a per-clip one-period complex wavetable with cubic
Hermite interpolation (cost per sample independent of the number of partials);
inharmonic clips are summed partial by partial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ontoscope.errors import FactorError, SampleRateError
from ontoscope.stimuli.factors import CANON, FACTOR_NAMES, FADE_SECONDS, get_factor

#: Default number of partials (before band-limiting).
MAX_PARTIALS = 64
#: Samples per period of the wavetable.
TABLE_SIZE = 4096

FactorValues = Mapping[str, "torch.Tensor | np.ndarray | float"]


@dataclass(frozen=True)
class Nuisance:
    """The random parts of a clip, drawn from its seed and shared by counterfactual pairs.

    Attributes
    ----------
    partial_phase : Tensor ``[B, K]``
        Initial phase of each partial, radians.
    vibrato_phase, tremolo_phase : Tensor ``[B]``
        Initial phases of the modulations, radians.
    noise : Tensor ``[B, N]``
        Unit-variance white Gaussian noise.
    """

    partial_phase: torch.Tensor
    vibrato_phase: torch.Tensor
    tremolo_phase: torch.Tensor
    noise: torch.Tensor

    @classmethod
    def from_seeds(
        cls, seeds: torch.Tensor | np.ndarray | list[int], n_samples: int,
        max_partials: int = MAX_PARTIALS, device: torch.device | str | None = None,
    ) -> Nuisance:
        """Draw nuisances for each seed (one clip per seed); the same seed, the same draws."""
        seeds = [int(s) for s in np.asarray(seeds).reshape(-1)]
        phases, vib, trem, noise = [], [], [], []
        for s in seeds:
            g = torch.Generator().manual_seed(s)
            u = torch.rand(max_partials + 2, generator=g, dtype=torch.float64) * (2 * math.pi)
            phases.append(u[:max_partials])
            vib.append(u[max_partials])
            trem.append(u[max_partials + 1])
            noise.append(torch.randn(n_samples, generator=g))
        return cls(
            torch.stack(phases).to(device=device, dtype=torch.float32),
            torch.stack(vib).to(device),
            torch.stack(trem).to(device),
            torch.stack(noise).to(device),
        )


def _param(values: FactorValues, name: str, batch: int, like: torch.Tensor) -> torch.Tensor:
    """Factor ``name`` as a float64 tensor ``[B]``; the canon default where absent or NaN."""
    default = CANON[name].default
    v = values.get(name, default)
    if not isinstance(v, torch.Tensor):
        v = torch.tensor(np.asarray(v, dtype=np.float64))
    v = v.to(device=like.device, dtype=torch.float64)
    if v.ndim == 0:
        v = v.expand(batch)
    if v.shape != (batch,):
        raise FactorError(f"factor {name!r} has shape {tuple(v.shape)}; expected ({batch},)")
    return torch.nan_to_num(v, nan=default)


def partial_amplitudes(brightness: torch.Tensor, odd_even: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Linear amplitude of partial ``k`` (``[K]``) for tilts ``[B]`` (dB/oct) and odd/even ``[B]`` (dB).

    ``20 log10 a_k = brightness * log2(k) + sigma_k * odd_even / 2`` with
    ``sigma_k = +1`` for odd and ``-1`` for even ``k``. Returns ``[B, K]``.
    """
    sigma = torch.where(k % 2 == 1, 1.0, -1.0).to(brightness.dtype)
    db = brightness[:, None] * torch.log2(k.to(brightness.dtype))[None] + sigma[None] * odd_even[:, None] / 2
    return 10.0 ** (db / 20.0)


def _cubic_table(spec: torch.Tensor) -> torch.Tensor:
    """Per-interval cubic coefficients of a one-period complex wavetable.

    ``spec`` ``[B, M]`` holds the complex Fourier coefficients of one period.
    Returns ``[8, B, M]``: for interval ``j`` (between samples ``j`` and ``j + 1``),
    the coefficients of ``u**0 .. u**3`` (``u`` in [0, 1)) of the cubic Hermite
    polynomial of the real part, then of the imaginary part, built from the table
    and its exact derivative.
    """
    m = spec.shape[-1]
    h = 2 * math.pi / m
    c = torch.fft.ifft(spec, dim=-1) * m
    dc = torch.fft.ifft(spec * (1j * torch.arange(m, device=spec.device, dtype=spec.real.dtype)),
                        dim=-1) * (m * h)
    c1 = torch.roll(c, -1, dims=-1)
    dc1 = torch.roll(dc, -1, dims=-1)
    a = c
    b = dc
    cc = -3 * c - 2 * dc + 3 * c1 - dc1
    d = 2 * c + dc - 2 * c1 + dc1
    return torch.stack([a.real, b.real, cc.real, d.real, a.imag, b.imag, cc.imag, d.imag])


def _read_table(coef: torch.Tensor, cycles: torch.Tensor, parts: tuple[int, ...] = (0, 1)
                ) -> list[torch.Tensor]:
    """Read per-interval cubics ``[8, B, M]`` at phases ``cycles`` ``[B, N]`` (in periods).

    Returns the requested parts (0: real, 1: imaginary), each ``[B, N]`` float32.
    """
    m = coef.shape[-1]
    pos = _frac(cycles) * m
    j = torch.floor(pos).detach()
    u = (pos - j).to(torch.float32)
    j = j.long().clamp_(0, m - 1)
    out = []
    for part in parts:
        c = [torch.gather(coef[4 * part + i], 1, j) for i in range(4)]
        out.append(torch.addcmul(c[0], u, torch.addcmul(c[1], u, torch.addcmul(c[2], u, c[3]))))
    return out


def synthesize(
    values: FactorValues,
    nuisance: Nuisance,
    sr: int,
    max_partials: int | None = None,
    table_size: int = TABLE_SIZE,
) -> torch.Tensor:
    """Render clips from factor values and nuisances (the signal model of docs/synthesis.md).

    Parameters
    ----------
    values : mapping of factor name to Tensor ``[B]`` (or array / float)
        Factor values in natural units; missing factors (and NaN rates) take the
        canon defaults. Tensors that require grad are differentiated through.
    nuisance : Nuisance
        Phases and noise for ``B`` clips of ``N`` samples (``N`` from ``nuisance.noise``).
    sr : int
        Sample rate in Hz.
    max_partials : int, optional
        Partials before band-limiting; default: as many as ``nuisance`` holds.
    table_size : int
        Samples per period of the wavetable used for harmonic clips.

    Returns
    -------
    Tensor ``[B, N]`` float32
        Audio at RMS level ``loudness`` dBFS.
    """
    noise = nuisance.noise
    batch, n = noise.shape
    k_max = nuisance.partial_phase.shape[1] if max_partials is None else int(max_partials)
    if k_max > nuisance.partial_phase.shape[1]:
        raise FactorError(f"max_partials={k_max} exceeds the {nuisance.partial_phase.shape[1]} "
                          "partial phases drawn")
    if 2 * k_max >= table_size:
        raise FactorError(f"table_size={table_size} is too small for {k_max} partials")
    p = {name: _param(values, name, batch, noise) for name in FACTOR_NAMES}
    f0, cents = p["f0"], p["vibrato_depth"]
    nyquist = sr / 2
    if bool((f0 * 2.0 ** (cents / 1200) >= nyquist).any()):
        raise SampleRateError(
            f"f0 up to {float((f0 * 2.0 ** (cents / 1200)).max()):.0f} Hz (with vibrato) reaches "
            f"Nyquist ({nyquist:.0f} Hz at {sr} Hz); raise the sample rate or lower f0"
        )
    dev = noise.device
    n_idx = torch.arange(n, device=dev, dtype=torch.float64)
    t64 = n_idx / sr  # [N]
    t = t64.to(torch.float32)
    k = torch.arange(1, k_max + 1, device=dev)
    kf = k.to(torch.float64)

    # 1. pitch trajectory and base phase Φ / 2π (in cycles, accumulated in float64);
    # every clip takes the same path whatever else is in the batch
    if bool((cents > 0).any()):
        vib = torch.sin(2 * math.pi * _frac(p["vibrato_rate"][:, None] * t64[None])
                        + nuisance.vibrato_phase[:, None])
        f_t = f0[:, None] * torch.exp2(cents[:, None] / 1200 * vib)  # [B, N] float64
    else:
        f_t = f0[:, None].expand(batch, n)
    cycles = torch.cumsum(f_t, dim=1)
    cycles = (cycles - cycles[:, :1]) / sr  # phase 0 at t = 0

    # 2-3. partials: stretch, band-limiting mask, amplitudes
    stretch = torch.sqrt(1 + p["inharmonicity"][:, None] * kf[None] ** 2)  # [B, K]
    beat = p["beat_rate"] * (p["beat_depth"] > 0)
    top = kf[None] * stretch * (f0 * 2.0 ** (cents / 1200))[:, None] + beat[:, None]
    audible = (top < nyquist).detach()
    amp = partial_amplitudes(p["brightness"], p["odd_even"], kf) * audible  # [B, K]
    theta = nuisance.partial_phase[:, :k_max].to(torch.float64)
    beating = bool((p["beat_depth"] > 0).any())
    d = p["beat_depth"].float()[:, None]
    # beating phase 2π Δ t, [B, N] (a placeholder when no clip beats)
    bp = (2 * math.pi * _frac(p["beat_rate"][:, None] * t64[None])).float() if beating else d
    inharmonic = p["inharmonicity"] > 0
    if not bool(inharmonic.any()):
        h = _harmonic(amp, theta, cycles, d, bp, beating, table_size)
    elif bool(inharmonic.all()):
        h = _inharmonic(amp, theta, cycles, stretch, d, bp, beating)
    else:  # each clip by its own path, so a clip renders the same in any batch
        ih = torch.nonzero(inharmonic).flatten()
        hh = torch.nonzero(~inharmonic).flatten()
        parts = torch.cat([
            _harmonic(amp[hh], theta[hh], cycles[hh], d[hh], bp[hh], beating, table_size),
            _inharmonic(amp[ih], theta[ih], cycles[ih], stretch[ih], d[ih], bp[ih], beating)])
        h = parts[torch.argsort(torch.cat([hh, ih]))]

    # 6. envelope: linear attack ramp, tremolo, fade-out
    env = torch.clamp(0.8 * t[None] / p["attack"].float()[:, None], max=1.0)
    if bool((p["tremolo_depth"] > 0).any()):
        env = env * (1 + p["tremolo_depth"].float()[:, None] * torch.sin(
            (2 * math.pi * _frac(p["tremolo_rate"][:, None] * t64[None])
             + nuisance.tremolo_phase[:, None]).float()))
    fade = torch.clamp((n - n_idx.float()) / (sr * FADE_SECONDS), max=1.0)
    env = env * fade[None]

    # 5. noise at the exact harmonic-to-noise ratio
    eh = env * h
    en = env * noise
    ratio = (eh ** 2).sum(1, dtype=torch.float64) / (en ** 2).sum(1, dtype=torch.float64)
    gain = torch.sqrt(ratio / 10.0 ** (p["noise"] / 10)).float()
    s = eh + gain[:, None] * en

    # 7. level
    rms = torch.sqrt((s ** 2).mean(1, dtype=torch.float64))
    return (s * (10.0 ** (p["loudness"] / 20) / rms).float()[:, None]).float()


def _harmonic(amp: torch.Tensor, theta: torch.Tensor, cycles: torch.Tensor, d: torch.Tensor,
              bp: torch.Tensor, beating: bool, table_size: int) -> torch.Tensor:
    """Harmonic part of harmonic clips, read from their one-period wavetables."""
    batch, k_max = amp.shape
    coef = amp * torch.exp(1j * theta)
    spec = torch.cat([coef.new_zeros(batch, 1), coef, coef.new_zeros(batch, table_size - k_max - 1)], dim=1)
    table = _cubic_table(spec).to(torch.float32)
    # main tone Im C(Φ); beating copy Im(e^{ib} C(Φ)) = Im C cos b + Re C sin b
    if beating:
        im, re = _read_table(table, cycles, (1, 0))
        return im * (1 + d * torch.cos(bp)) + d * re * torch.sin(bp)
    (im,) = _read_table(table, cycles, (1,))
    return im


def _inharmonic(amp: torch.Tensor, theta: torch.Tensor, cycles: torch.Tensor, stretch: torch.Tensor,
                d: torch.Tensor, bp: torch.Tensor, beating: bool) -> torch.Tensor:
    """Harmonic part of inharmonic clips, summed partial by partial (a loop keeps each pass in cache)."""
    ks = torch.arange(1, amp.shape[1] + 1, device=amp.device, dtype=torch.float64)[None] * stretch  # [B, K]
    h = cycles.new_zeros(cycles.shape, dtype=torch.float32)
    for k in range(amp.shape[1]):
        ph = (2 * math.pi * _frac(cycles * ks[:, k:k + 1]) + theta[:, k:k + 1]).float()
        a = amp[:, k:k + 1].float()
        h = h + a * torch.sin(ph)
        if beating:
            h = h + a * d * torch.sin(ph + bp)
    return h


def _frac(x: torch.Tensor) -> torch.Tensor:
    """Fractional part of ``x`` (a phase in cycles), differentiable as the identity."""
    return x - torch.floor(x).detach()


def _table_values(table: pd.DataFrame | Mapping, rows: slice) -> tuple[dict, np.ndarray]:
    if isinstance(table, pd.DataFrame):
        cols = {c: table[c].to_numpy()[rows] for c in table.columns}
    else:
        cols = {c: np.asarray(v)[rows] if np.ndim(v) else v for c, v in table.items()}
    values = {c: np.asarray(v, dtype=np.float64) for c, v in cols.items() if c in CANON}
    if "seed" not in cols:
        raise FactorError("the factor table needs a 'seed' column (one synthesis seed per clip)")
    return values, np.asarray(cols["seed"], dtype=np.int64).reshape(-1)


def table_length(table: pd.DataFrame | Mapping) -> int:
    """Number of clips in a factor table (DataFrame or mapping of arrays)."""
    if isinstance(table, pd.DataFrame):
        return len(table)
    if "seed" not in table:
        raise FactorError("the factor table needs a 'seed' column (one synthesis seed per clip)")
    return int(np.asarray(table["seed"]).reshape(-1).shape[0])


def check_table(table: pd.DataFrame | Mapping) -> None:
    """Raise :class:`FactorError` for values outside a factor's physical limits or non-finite."""
    for name in table.keys() if isinstance(table, Mapping) else table.columns:
        if name not in CANON:
            continue
        f = get_factor(name)
        v = np.asarray(table[name], dtype=np.float64)
        finite = v[np.isfinite(v)]
        if (np.isnan(v).any() and not f.is_rate) or np.isinf(v).any():
            raise FactorError(f"factor {name!r} has NaN or infinite values; only rates may be NaN "
                              "(where their depth is 0)")
        lo, hi = f.bounds
        if finite.size and (finite.min() < lo or finite.max() > hi):
            raise FactorError(f"factor {name!r} has values in [{finite.min():g}, {finite.max():g}], "
                              f"outside its limits [{lo:g}, {hi:g}] {f.unit}")


def render(
    table: pd.DataFrame | Mapping,
    sr: int = 16000,
    seconds: float = 1.0,
    max_partials: int = MAX_PARTIALS,
    chunk: int = 64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Render every clip of a factor table.

    Parameters
    ----------
    table : DataFrame or mapping of arrays
        One row per clip: factor values in natural units (missing factors take
        the canon defaults) and a ``seed`` per clip (see
        :meth:`FactorSpace.sample`).
    sr : int
        Sample rate in Hz (8000 to 48000 are typical; any positive rate works
        if the factors fit below Nyquist).
    seconds : float
        Duration of every clip.
    max_partials : int
        Partials per clip before band-limiting.
    chunk : int
        Clips rendered at once (bounds memory).
    device : torch device, optional
        Where to render; CPU by default.

    Returns
    -------
    Tensor ``[B, round(seconds * sr)]`` float32 on ``device``.
    """
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise SampleRateError(f"sample rate must be a positive integer in Hz, got {sr!r}")
    n_samples = int(round(float(seconds) * sr))
    if not math.isfinite(seconds) or n_samples < 2:
        raise FactorError(f"duration {seconds} s gives {n_samples} samples at {sr} Hz; "
                          "ask for a longer clip")
    check_table(table)
    total = table_length(table)
    out = []
    for start in range(0, total, chunk):
        values, seeds = _table_values(table, slice(start, start + chunk))
        nui = Nuisance.from_seeds(seeds, n_samples, max_partials, device)
        with torch.no_grad():
            out.append(synthesize(values, nui, sr))
    if not out:
        return torch.zeros(0, n_samples, device=device)
    return torch.cat(out)
