"""Round-trip accuracy: how closely measured factors match the values a stimulus was made with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Criterion:
    """How one factor's error is computed, where, and the target it should meet."""

    factor: str
    error: str  # "abs", "rel" or "cents"
    unit: str
    target: float | None  # on the median error
    where: str | None = None  # a pandas query on the truth table
    label: str | None = None
    p95_target: float | None = None  # on the 95th percentile of the error


#: The criteria of the round trip, with the accuracy targets ontoscope commits to.
CRITERIA: tuple[Criterion, ...] = (
    Criterion("f0", "cents", "cents", 5.0, "vibrato_depth < 20", "f0 (vibrato < 20 cents)", p95_target=20.0),
    Criterion("f0", "cents", "cents", 5.0, p95_target=20.0),
    Criterion("loudness", "abs", "dB", 0.5),
    Criterion("brightness", "abs", "dB/oct", 1.0),
    Criterion("odd_even", "abs", "dB", 1.0),
    Criterion("noise", "abs", "dB", None),
    Criterion("inharmonicity", "rel", "ratio", None, "inharmonicity > 0"),
    Criterion("attack", "rel", "ratio", 0.20),
    Criterion("vibrato_rate", "abs", "Hz", 0.3, "vibrato_depth >= 20"),
    Criterion("vibrato_depth", "rel", "ratio", 0.15, "vibrato_depth >= 20"),
    Criterion("tremolo_rate", "abs", "Hz", 0.3, "tremolo_depth >= 0.2"),
    Criterion("tremolo_depth", "abs", "index", None, "tremolo_depth >= 0.2"),
    Criterion("beat_rate", "abs", "Hz", 2.0, "beat_depth >= 0.3"),
    Criterion("beat_depth", "abs", "index", None, "beat_depth >= 0.3"),
)


def factor_errors(truth: np.ndarray, measured: np.ndarray, kind: str) -> np.ndarray:
    """Element-wise error: ``abs`` difference, ``rel`` |m - t| / |t|, or ``cents`` 1200 |log2(m / t)|."""
    t = np.asarray(truth, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "abs":
            return np.abs(m - t)
        if kind == "rel":
            return np.abs(m - t) / np.abs(t)
        if kind == "cents":
            return np.abs(1200 * np.log2(m / t))
    raise ValueError(f"unknown error kind {kind!r}")


def round_trip_errors(
    truth: pd.DataFrame, measured: pd.DataFrame, criteria: tuple[Criterion, ...] = CRITERIA,
) -> pd.DataFrame:
    """Accuracy table of a round trip (synthesize, then measure back).

    Parameters
    ----------
    truth : DataFrame
        The factor table the clips were rendered from (``clip`` column plus factors).
    measured : DataFrame
        :func:`ontoscope.descriptors.measure` output for the same clips, joined on
        ``clip`` (or row order if it has no ``clip`` column).
    criteria : tuple of Criterion
        What to score; default :data:`CRITERIA`.

    Returns
    -------
    DataFrame
        One row per criterion: ``factor``, ``where`` (the subset scored), ``n``,
        ``defined`` (fraction of the subset with a measurement, not NaN),
        ``median`` and ``p95`` of the error over defined clips, ``unit``,
        ``target`` (on the median), ``p95_target`` and ``met`` (``yes`` when every
        target is met, blank where the criterion has none).
    """
    if "clip" in measured and "clip" in truth:
        joined = truth.merge(measured, on="clip", suffixes=("", "_measured"))
    else:
        joined = truth.reset_index(drop=True).join(measured.reset_index(drop=True), rsuffix="_measured")
    rows = []
    for c in criteria:
        col = f"{c.factor}_measured"
        if c.factor not in truth or col not in joined:
            continue
        sub = joined.query(c.where) if c.where else joined
        err = factor_errors(sub[c.factor].to_numpy(), sub[col].to_numpy(), c.error)
        ok = np.isfinite(err)
        med = float(np.median(err[ok])) if ok.any() else float("nan")
        p95 = float(np.percentile(err[ok], 95)) if ok.any() else float("nan")
        rows.append({
            "factor": c.label or c.factor,
            "where": c.where or "all",
            "n": int(len(sub)),
            "defined": float(ok.mean()) if len(sub) else float("nan"),
            "median": med,
            "p95": p95,
            "unit": c.unit,
            "target": c.target if c.target is not None else float("nan"),
            "p95_target": c.p95_target if c.p95_target is not None else float("nan"),
            "met": _met(c, med, p95) if ok.any() else "",
        })
    return pd.DataFrame(rows)


def _met(c: Criterion, median: float, p95: float) -> str:
    if c.target is None and c.p95_target is None:
        return ""
    ok = (c.target is None or median <= c.target) and (c.p95_target is None or p95 <= c.p95_target)
    return "yes" if ok else "no"
