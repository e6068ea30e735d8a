"""Attribution: how a model's ICV scores move with each knob of its design, all other knobs held fixed.

Each model gets its scores (:func:`~ontoscope.ontology.tables.model_scores`): ``mean`` (over its sites
and factors) and ``best_site`` (over its factors, of the best site's score), over every factor and
over the static and oscillatory ones apart. For each knob:

==================  ===========  ==================================================================
knob                x            models compared, with every other knob held fixed
==================  ===========  ==================================================================
``total_stride``    log2         trained; groups share family, compression, antialias, activation,
                                 bitrate, width, depth, data_size, steps
``compression``     log2         trained; likewise (input samples per latent float: at a fixed
                                 stride, halving the bottleneck doubles it)
``antialias``       0 / 1        trained; likewise
``activation``      0 / 1        trained; likewise (snake = 1, elu = 0)
``bitrate``         log2         trained, with a quantizer; likewise
``width``           log2         trained; groups share family, the architecture knobs, depth,
                                 data_size, steps
``depth``           linear       trained; likewise (a depth may be 0)
``data_size``       log2         trained; likewise
``trained``         0 / 1        all; groups share family, the architecture knobs, width, depth
==================  ===========  ==================================================================

Downsampling and compression are separate knobs: the stride slope compares models at one compression
(their bottlenecks widen with the stride), the compression slope models at one stride. The seed is
never held fixed: models that differ only in it are the replicates. Within a group the
slope of the score on ``x`` is fitted by least squares; across groups, by the within estimator (one
intercept per group, a common slope: :func:`~ontoscope.ontology.stats.within_slope`), with its t
interval. A log2 slope is the change per doubling of the knob, a 0 / 1 slope the difference
(with minus without, snake minus elu, trained minus random). Models where the knob is NaN (pretrained
models' strides, models without a quantizer's bitrate) are left out of that knob's fits. Per knob
value, the mean score and its t interval over the models at that value (for error bars).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from ontoscope.errors import ConfigError
from ontoscope.ontology.stats import Fit, mean_interval, within_slope
from ontoscope.ontology.tables import best_family, check_models, check_operational, check_same_models, model_scores

__all__ = ["ARCHITECTURE", "KNOBS", "MEAN_COLUMNS", "SCALE", "SCORES", "SLOPE_COLUMNS", "Attribution",
           "attribute", "attribution", "held_fixed"]

#: Architecture knobs (claim 1 reads the first two).
ARCHITECTURE = ("total_stride", "compression", "antialias", "activation", "bitrate")
#: Scale knobs (claim 3).
SCALE = ("width", "depth", "data_size")
#: Every knob and the transform of its values into ``x``.
KNOBS = {"total_stride": "log2", "compression": "log2", "antialias": "binary", "activation": "binary",
         "bitrate": "log2", "width": "log2", "depth": "linear", "data_size": "log2", "trained": "binary"}
#: The per-model scores attributed.
SCORES = ("mean", "best_site")

SLOPE_COLUMNS = ("knob", "scale", "group", "factor_kind", "score", "slope", "ci_low", "ci_high", "se", "df",
                 "n_models", "n_seeds", "n_values")
MEAN_COLUMNS = ("knob", "scale", "group", "factor_kind", "score", "value", "mean", "ci_low", "ci_high", "n_models",
                "n_seeds")
_FLAG_KNOBS = ("antialias", "activation", "trained")


class Attribution(NamedTuple):
    """What :func:`attribution` returns: the slopes, the per-value means, and the per-model scores."""

    slopes: pd.DataFrame
    means: pd.DataFrame
    scores: pd.DataFrame


def held_fixed(knob: str) -> tuple[str, ...]:
    """The knobs held fixed while ``knob`` varies (see the module docstring)."""
    if knob == "trained":
        return ("family", *ARCHITECTURE, "width", "depth")
    return ("family", *(k for k in ARCHITECTURE + SCALE if k != knob), "steps")


def _fmt(column: str, v: object) -> str:
    if isinstance(v, float):
        if np.isnan(v):
            return "nan"
        if column == "activation":
            return "snake" if v else "elu"
        if column in _FLAG_KNOBS:
            return str(bool(v))
        if v.is_integer():
            return str(int(v))
    return str(v)


def _group_labels(design: pd.DataFrame, keys: tuple[str, ...]) -> pd.Series:
    """``key=value, ...`` over the held-fixed knobs that vary among ``design``'s models; ``all`` if none does."""
    varying = [k for k in keys if design[k].astype(str).nunique() > 1]
    if not varying:
        return pd.Series("all", index=design.index)
    return design[varying].apply(lambda r: ", ".join(f"{k}={_fmt(k, r[k])}" for k in varying), axis=1)


def _x(design: pd.DataFrame, knob: str) -> pd.Series:
    v = design[knob].astype(np.float64)
    if KNOBS[knob] != "log2":
        return v
    bad = v[v <= 0]
    if len(bad):
        raise ConfigError(f"model {bad.index[0]!r} has {knob}={_fmt(knob, float(bad.iloc[0]))}; {knob} is compared "
                          "per doubling and must be positive")
    return np.log2(v)


def _slope_row(knob: str, group: str, kind: str, score: str, fit: Fit, seeds: pd.Series, x: pd.Series) -> dict:
    return {"knob": knob, "scale": KNOBS[knob], "group": group, "factor_kind": kind, "score": score,
            "slope": fit.estimate, "ci_low": fit.ci_low, "ci_high": fit.ci_high, "se": fit.se, "df": fit.df,
            "n_models": fit.n, "n_seeds": int(seeds.dropna().nunique()), "n_values": int(x.nunique())}


def attribute(design: pd.DataFrame, scores: pd.DataFrame, level: float = 0.95) -> Attribution:
    """Slopes and per-value means from a checked ``models`` table and :func:`model_scores` (no checks)."""
    design = design.set_index("model", drop=False)
    slopes, means = [], []
    for knob in KNOBS:
        pool = design if knob == "trained" else design[design["trained"] == 1]
        pool = pool[pool[knob].notna()]
        if pool.empty:
            continue
        x = _x(pool, knob)
        labels = _group_labels(pool, held_fixed(knob))
        swept = x.groupby(labels).transform("nunique") > 1
        if not swept.any():
            continue
        x, labels, pool = x[swept], labels[swept], pool[swept]
        for kind in ("all", "static", "oscillatory"):
            sk = scores[scores["factor_kind"] == kind].set_index("model")
            if sk.empty:
                continue
            for score in SCORES:
                y = sk[score].reindex(pool.index)
                ok = y.notna()
                if x[ok].nunique() < 2:
                    continue
                groups = list(dict.fromkeys(labels[ok]))
                for group in [*groups, "pooled"]:
                    m = ok & ((labels == group) if group != "pooled" else True)
                    fit = within_slope(x[m].to_numpy(), y[m].to_numpy(), labels[m].to_numpy(), level)
                    if np.isfinite(fit.estimate):
                        slopes.append(_slope_row(knob, group, kind, score, fit, pool.loc[m, "seed"], x[m]))
                    for value, at in pool[m].groupby(knob, sort=True):
                        f = mean_interval(y[at.index].to_numpy(), level)
                        means.append({"knob": knob, "scale": KNOBS[knob], "group": group, "factor_kind": kind,
                                      "score": score, "value": float(value), "mean": f.estimate,
                                      "ci_low": f.ci_low, "ci_high": f.ci_high, "n_models": f.n,
                                      "n_seeds": int(at["seed"].dropna().nunique())})
    return Attribution(pd.DataFrame(slopes, columns=list(SLOPE_COLUMNS)),
                       pd.DataFrame(means, columns=list(MEAN_COLUMNS)), scores)


def attribution(models: pd.DataFrame, operational: pd.DataFrame, level: float = 0.95) -> Attribution:
    """How ICV scores move with every knob of the models' design (module docstring).

    Parameters
    ----------
    models : DataFrame
        One row per model (:mod:`~ontoscope.ontology.tables`).
    operational : DataFrame
        The operational tables concatenated, with a ``model`` column.
    level : float
        Level of the intervals.

    Returns
    -------
    Attribution
        ``slopes``: one row per (knob, group, factor_kind, score) with ``scale`` (``log2``, ``linear``,
        ``binary``), ``slope``, ``ci_low``, ``ci_high``, ``se``, ``df``, ``n_models``, ``n_seeds``,
        ``n_values``; ``group`` is the held-fixed knobs' values, or ``pooled`` for the within estimate
        over every group. A knob that no group sweeps has no rows. ``means``: one row per (knob, group,
        factor_kind, score, value) with ``mean``, ``ci_low``, ``ci_high``, ``n_models``, ``n_seeds``.
        ``scores``: :func:`~ontoscope.ontology.tables.model_scores`.
    """
    design = check_models(models)
    op = check_operational(operational)
    check_same_models(design, op, "models", "operational")
    return attribute(design, model_scores(best_family(op)), level)
