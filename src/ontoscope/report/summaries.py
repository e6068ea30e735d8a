"""Summaries the report draws from the run's tables: the better intervention per cell, the bottleneck,
ICV score per knob value, and how often the latent ontology's prediction held."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import t as student

from ontoscope.probing.icv import best_family

__all__ = ["KNOBS", "KNOB_LABELS", "agreement", "axes", "best_rows", "bottleneck_site", "canonical_knob", "knob_means",
           "model_means", "plotted_means", "site_roles"]

#: The knobs of claims 1 and 3, in the order the report plots them, with their labels.
KNOBS = {"total_stride": "total stride", "compression": "compression (samples per latent float)", "width": "width",
         "depth": "depth", "data_size": "data (clips)"}

#: Labels of every knob a knob-means table may hold, in plotting order.
KNOB_LABELS = {**KNOBS, "antialias": "antialias (0 none, 1 blur)", "activation": "activation (0 elu, 1 snake)",
               "bitrate": "quantizer bitrate (bit/s)", "trained": "trained (0 no, 1 yes)"}

_KNOB_ALIASES = {"data": "data_size", "stride": "total_stride"}


def best_rows(operational: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, site, factor): the family that controls it (:func:`ontoscope.probing.icv.best_family`,
    over whichever of those key columns the table has)."""
    if operational.empty:
        return operational
    return best_family(operational, [c for c in ("model", "site", "factor") if c in operational.columns])


def bottleneck_site(rows: pd.DataFrame) -> str | None:
    """One model's bottleneck, found by role in its rows (``site``, and ``role``, ``site_index`` where present).

    The (first, in site order) site whose ``role`` is ``bottleneck``. Rows without a ``role`` column (tables
    written before sites carried it) fall back to the site named ``bottleneck``. A model with no bottleneck
    (a pitch tracker, an encoder) gets its last (deepest) site; None for no rows.
    """
    sites = _site_order(rows)
    if not sites:
        return None
    if "role" in rows.columns:
        roles = site_roles(rows)
        return next((s for s in sites if roles.get(s) == "bottleneck"), sites[-1])
    return "bottleneck" if "bottleneck" in sites else sites[-1]


def site_roles(rows: pd.DataFrame) -> dict[str, str]:
    """``{site: role}`` from a table's ``site`` and ``role`` columns; empty when it has no ``role``."""
    if rows.empty or not {"site", "role"} <= set(rows.columns):
        return {}
    first = rows.drop_duplicates("site")
    return {str(s): str(r) for s, r in zip(first["site"], first["role"], strict=True) if isinstance(r, str)}


def _site_order(table: pd.DataFrame) -> list[str]:
    if table.empty or "site" not in table.columns:
        return []
    if "site_index" in table.columns:
        return table.drop_duplicates("site").sort_values("site_index", kind="stable")["site"].astype(str).tolist()
    return list(dict.fromkeys(table["site"].astype(str)))


def axes(latent: pd.DataFrame, operational: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Factors (rows) and sites (columns) shared by one model's two heatmaps, in model order."""
    sites = _site_order(latent)
    sites += [s for s in _site_order(operational) if s not in sites]
    factors: list[str] = []
    for t in (latent, operational):
        if not t.empty and "factor" in t.columns:
            factors += [f for f in dict.fromkeys(t["factor"].astype(str)) if f not in factors]
    return factors, sites


def _interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(student.ppf(0.5 + level / 2, len(values) - 1)) * float(values.std(ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def model_means(operational: pd.DataFrame) -> pd.DataFrame:
    """Per model and factor kind (``all``, ``static``, ``oscillatory``) the mean ICV score over its (site,
    factor) pairs, the better kind of intervention of each; undefined scores are left out.

    Returns
    -------
    DataFrame
        ``model, factor_kind, score``.
    """
    best = best_rows(operational)
    if best.empty or not {"model", "icv_score"} <= set(best.columns):
        return pd.DataFrame(columns=["model", "factor_kind", "score"])
    best = best.assign(icv_score=pd.to_numeric(best["icv_score"], errors="coerce"))
    kinds = best["factor_kind"] if "factor_kind" in best.columns else pd.Series("static", index=best.index)
    frames = [best.groupby("model", sort=False)["icv_score"].mean().rename("score").reset_index()
              .assign(factor_kind="all")]
    for kind in ("static", "oscillatory"):
        sub = best[kinds == kind]
        if len(sub):
            frames.append(sub.groupby("model", sort=False)["icv_score"].mean().rename("score").reset_index()
                          .assign(factor_kind=kind))
    out = pd.concat(frames, ignore_index=True)
    return out[out["score"].notna()][["model", "factor_kind", "score"]].reset_index(drop=True)


def knob_means(operational: pd.DataFrame, models: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean ICV score per knob value and factor kind, with a t interval over the models at that value.

    Each model's score is :func:`model_means` (its mean ICV score over sites and factors). The trained
    models are compared where the run has any, else every model. Per knob of :data:`KNOBS` that takes at
    least two values among them, the models sharing a value are averaged (no other knob is held fixed
    here: that is the comparison's attribution, ``knob_means.parquet``, which the report prefers).

    Returns
    -------
    DataFrame
        ``knob, value, factor_kind, mean, ci_low, ci_high, n``.
    """
    cols = ["knob", "value", "factor_kind", "mean", "ci_low", "ci_high", "n"]
    scores = model_means(operational)
    if scores.empty or models.empty or "model" not in models.columns:
        return pd.DataFrame(columns=cols)
    design = models
    if "trained" in models.columns:
        trained = models["trained"].map(lambda v: v is True or str(v).lower() in ("true", "1", "1.0"))
        if trained.any():
            design = models[trained]
    scores = scores.merge(design, on="model", how="inner")
    rows = []
    for knob in KNOBS:
        if knob not in scores.columns:
            continue
        known = scores[scores[knob].notna()]
        if known[knob].nunique() < 2:
            continue
        for (value, kind), g in known.groupby([knob, "factor_kind"], sort=True):
            mean, lo, hi = _interval(g["score"].to_numpy(dtype=float), level)
            rows.append({"knob": knob, "value": value, "factor_kind": kind, "mean": mean, "ci_low": lo,
                         "ci_high": hi, "n": int(len(g))})
    return pd.DataFrame(rows, columns=cols)


def plotted_means(means: pd.DataFrame) -> pd.DataFrame:
    """The rows of a knob-means table to plot: the ``pooled`` group and the ``mean`` score where the table
    has those columns (``ontoscope.ontology``'s attribution), static and oscillatory factors (``all`` only
    where neither is there), with ``n`` (from ``n_models``)."""
    m = means.copy()
    if m.empty:
        return m
    if "group" in m.columns and (m["group"] == "pooled").any():
        m = m[m["group"] == "pooled"]
    if "score" in m.columns:
        m = m[m["score"] == ("mean" if (m["score"] == "mean").any() else m["score"].iloc[0])]
    if "n" not in m.columns:
        m["n"] = m["n_models"] if "n_models" in m.columns else np.nan
    for c, default in (("factor_kind", "all"), ("ci_low", np.nan), ("ci_high", np.nan)):
        if c not in m.columns:
            m[c] = default
    m["knob"] = m["knob"].map(canonical_knob)
    keep = []
    for _, g in m.groupby("knob", sort=False):
        split = g[g["factor_kind"].isin(["static", "oscillatory"])]
        keep.append(split if len(split) else g)
    return pd.concat(keep, ignore_index=True)[["knob", "value", "factor_kind", "mean", "ci_low", "ci_high", "n"]]


def canonical_knob(name: str) -> str:
    """The :data:`KNOBS` key of a knob name as a table may spell it (``data`` for ``data_size``)."""
    return _KNOB_ALIASES.get(str(name), str(name))


def agreement(comparison: pd.DataFrame) -> dict[str, object]:
    """How often the prediction held in one model's comparison rows: ``{"held", "total", "share"}``."""
    if comparison.empty or "held" not in comparison.columns:
        return {}
    held = comparison["held"].dropna().astype(bool)
    if not len(held):
        return {}
    return {"held": int(held.sum()), "total": int(len(held)), "share": float(held.mean())}
