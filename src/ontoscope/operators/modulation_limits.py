"""Modulation limits: can an oscillatory factor be an independent variable at a site, given its geometry?

A modulation at rate ``r`` Hz (vibrato, tremolo, beating) can be held at a
site in two ways:

* **as a trajectory across frames**: the site's frame sequence follows the
  modulation. By the sampling theorem (Shannon 1949) that needs ``r`` below
  half the frame rate, ``r < f_s / (2 R)`` (``R`` the site's stride).
* **as a per-frame variable**: each frame holds the rate (or depth) as a
  value. A frame can only measure a periodicity it sees, so its receptive
  field must span at least ``periods`` periods: ``RF / f_s >= periods / r``,
  i.e. ``r >= periods * f_s / RF``.

A rate satisfying neither condition cannot be an independent variable at the
site. Over a factor's rate range ``[lo, hi]`` the fraction of the range (by
measure) satisfying each condition is reported. Modulation *depths* are
limited by the rate of their modulation: a depth is checked over the range of
its rate factor (or at the rate's fixed value). Sites after attention see
the whole input: the per-frame condition holds for every rate whose period
fits in the clip, which is taken as always. Sites after a recurrence see the
whole past in principle, but a trained recurrence forgets: where the geometry
table measured its *effective memory* (``effective_rf_samples``, the span of
95 % of the squared gradient of a frame, see
:func:`~ontoscope.operators.receptive_field.site_geometry`), that span plays
the receptive field's part in the per-frame condition; where it was not
measured the site is treated as global.

Status per (site, factor): ``affords`` when the share of the range satisfying
neither condition is at most ``tolerance`` (default 0), else ``rate-limited``;
``trajectory_status`` and ``per_frame_status`` say the same for each
condition alone (``rate-limited`` when any part of the range fails it).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ontoscope.stimuli.factors import CANON, Factor, FactorSpace

__all__ = ["modulation_limits", "modulation_status", "oscillatory_ranges"]


def _measure_above(lo: float, hi: float, x: float) -> float:
    """Fraction of [lo, hi] at or above ``x`` (a point range counts as 0 or 1)."""
    if hi <= lo:
        return float(lo >= x)
    return float(np.clip((hi - max(lo, x)) / (hi - lo), 0.0, 1.0))


def _measure_below(lo: float, hi: float, x: float) -> float:
    """Fraction of [lo, hi] strictly below ``x``."""
    if hi <= lo:
        return float(lo < x)
    return float(np.clip((min(hi, x) - lo) / (hi - lo), 0.0, 1.0))


def modulation_status(
    rate_hz: float,
    frame_rate_hz: float,
    receptive_field_s: float,
    periods: float = 1.0,
    global_context: bool = False,
) -> dict[str, object]:
    """The two conditions for one modulation rate at one site.

    Parameters
    ----------
    rate_hz : float
        Modulation rate.
    frame_rate_hz : float
        Frames per second at the site (``f_s / R``).
    receptive_field_s : float
        Receptive field in seconds.
    periods : float
        Periods of the modulation a frame's receptive field must span.
    global_context : bool
        Attention / recurrence before the site: the per-frame condition always holds.

    Returns
    -------
    dict: ``trajectory`` (bool), ``per_frame`` (bool), ``trajectory_status``, ``per_frame_status``,
    ``status`` (``affords`` if either holds, else ``rate-limited``).
    """
    traj = bool(frame_rate_hz == frame_rate_hz and rate_hz < frame_rate_hz / 2)
    per = bool(global_context or receptive_field_s * rate_hz >= periods)
    return {"trajectory": traj, "per_frame": per,
            "trajectory_status": "affords" if traj else "rate-limited",
            "per_frame_status": "affords" if per else "rate-limited",
            "status": "affords" if traj or per else "rate-limited"}


def oscillatory_ranges(space: FactorSpace | Iterable[str] | None = None) -> dict[str, tuple[float, float, str]]:
    """Rate range (Hz) that limits each oscillatory factor: ``{factor: (lo, hi, rate_factor)}``.

    A rate factor is limited by its own range; a depth by its rate's range when that rate is
    varied in ``space``, else by the rate's fixed value (canon default).
    """
    if space is None:
        space = FactorSpace.create()
    if not isinstance(space, FactorSpace):
        space = FactorSpace.create(list(space))
    out: dict[str, tuple[float, float, str]] = {}
    for f in space.factors:
        if f.kind != "oscillatory" or f.rate is None:
            continue
        rate: Factor = space[f.rate]
        if f.rate in space.names:
            lo, hi = rate.low, rate.high
        else:
            v = float(space.fixed.get(f.rate, CANON[f.rate].default))
            lo = hi = v
        out[f.name] = (float(lo), float(hi), f.rate)
    return out


def modulation_limits(
    sites: pd.DataFrame,
    space: FactorSpace | Iterable[str] | None = None,
    periods: float = 1.0,
    tolerance: float = 0.0,
    sample_rate: int | None = None,
) -> pd.DataFrame:
    """For each site and oscillatory factor, the share of its rate range each representation allows.

    Parameters
    ----------
    sites : DataFrame
        The geometry table of :func:`~ontoscope.operators.receptive_field.site_geometry` (needs
        ``site, frame_rate_hz, receptive_field_s, global_context``; ``model`` is copied if present).
    space : FactorSpace or factor names, optional
        Default: the canon's default space.
    periods : float
        Periods a frame must span for the per-frame representation.
    tolerance : float
        Share of the range allowed to satisfy neither condition before ``rate-limited``.

    Returns
    -------
    DataFrame, one row per (site, factor): ``model, site, factor, rate_factor, rate_lo_hz, rate_hi_hz,
    frame_rate_hz, frame_nyquist_hz, receptive_field_s, min_rate_per_frame_hz`` (``periods / RF``),
    ``frac_trajectory, frac_per_frame, frac_either, trajectory_status, per_frame_status, status, reason``.
    """
    ranges = oscillatory_ranges(space)
    rows = []
    for _, s in sites.iterrows():
        fr = float(s["frame_rate_hz"])
        rf = float(s["receptive_field_s"])
        glob = bool(s.get("global_context", False))
        memory = float(s.get("effective_rf_samples", float("nan"))) / (fr * float(s.get("stride", float("nan"))))
        span = "receptive field"
        if bool(s.get("recurrent", False)) and memory == memory and memory > 0:
            rf, glob, span = memory, False, "effective memory"
        nyq = fr / 2 if fr == fr else float("nan")
        min_rate = 0.0 if glob else (periods / rf if rf == rf and rf > 0 else float("inf"))
        for name, (lo, hi, rate) in ranges.items():
            f_traj = _measure_below(lo, hi, nyq) if nyq == nyq else 0.0
            f_frame = _measure_above(lo, hi, min_rate)
            # the two sets are [lo, nyq) and [min_rate, hi]: their union
            if hi <= lo:
                f_either = float(f_traj > 0 or f_frame > 0)
            else:
                gap_lo, gap_hi = max(lo, nyq if nyq == nyq else lo), min(hi, min_rate)
                f_either = 1.0 - max(0.0, gap_hi - gap_lo) / (hi - lo)
            status = "affords" if 1.0 - f_either <= tolerance + 1e-12 else "rate-limited"
            t_status = "affords" if f_traj >= 1.0 - 1e-12 else "rate-limited"
            p_status = "affords" if f_frame >= 1.0 - 1e-12 else "rate-limited"
            if status == "affords":
                reason = (f"rates {lo:g}-{hi:g} Hz: below the frame Nyquist {nyq:.3g} Hz on "
                          f"{100 * f_traj:.0f}% of the range, spanned by the {rf * 1000:.3g} ms {span} on "
                          f"{100 * f_frame:.0f}%")
            else:
                reason = (f"{100 * (1 - f_either):.0f}% of {lo:g}-{hi:g} Hz is neither below the frame Nyquist "
                          f"{nyq:.3g} Hz nor spanned ({periods:g} period) by the {rf * 1000:.3g} ms {span} "
                          f"(needs >= {min_rate:.3g} Hz)")
            rows.append({
                "model": s.get("model", ""), "site": s["site"], "factor": name, "rate_factor": rate,
                "rate_lo_hz": lo, "rate_hi_hz": hi, "frame_rate_hz": fr, "frame_nyquist_hz": nyq,
                "receptive_field_s": rf, "min_rate_per_frame_hz": min_rate, "frac_trajectory": f_traj,
                "frac_per_frame": f_frame, "frac_either": f_either, "trajectory_status": t_status,
                "per_frame_status": p_status, "status": status, "reason": reason,
            })
    cols = ["model", "site", "factor", "rate_factor", "rate_lo_hz", "rate_hi_hz", "frame_rate_hz", "frame_nyquist_hz",
            "receptive_field_s", "min_rate_per_frame_hz", "frac_trajectory", "frac_per_frame", "frac_either",
            "trajectory_status", "per_frame_status", "status", "reason"]
    return pd.DataFrame(rows, columns=cols)
