"""The three input tables of a comparison: their columns, their checks, and the per-model scores.

A study writes, for all its models together:

``models``
    One row per model: ``model`` (id), ``family`` (``conv_ae``, ``tcn``, ``spec_cnn``, ``pretrained``),
    ``total_stride``, ``bottleneck``, ``antialias`` (bool, or the spec's ``none`` / ``blur``), ``width``,
    ``depth``, ``data_size`` (training clips), ``steps``, ``seed``, ``trained`` (False: random
    initialisation), optionally ``ref``, ``compression`` (input samples per latent float; default
    ``total_stride / bottleneck``), ``activation`` (``elu`` / ``snake``; default ``elu`` for the family)
    and ``bitrate`` (the quantizer's bits per second; default NaN, no quantizer). Architecture knobs
    are NaN where they do not apply (pretrained models).
``latent``
    The latent ontologies' ``factors`` tables concatenated (:func:`~ontoscope.operators.latent.analyze`):
    one row per (model, site, factor) with the predicted ``status`` and its ``reason``.
``operational``
    The operational ontologies' tables concatenated with a ``model`` column
    (:class:`~ontoscope.probing.operational.OperationalOntology`): one row per (model, site, factor,
    family) with ``factor_kind``, ``icv_score`` and the measured ``status``.

:func:`best_family` keeps, per (model, site, factor), the intervention family that controls it (``icv``
first, then the higher ICV score), as :meth:`OperationalOntology.best` does per model; :func:`model_scores`
aggregates it per model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ontoscope.errors import ConfigError
from ontoscope.operators.latent import STATUSES
from ontoscope.probing.icv import best_family as icv_best_family

__all__ = [
    "FACTOR_KINDS",
    "LATENT_COLUMNS",
    "MEASURED",
    "MODEL_COLUMNS",
    "OPERATIONAL_COLUMNS",
    "STATUSES",
    "best_family",
    "check_latent",
    "check_models",
    "check_operational",
    "check_same_models",
    "model_scores",
]

#: Measured statuses (:mod:`ontoscope.probing.icv`).
MEASURED = ("icv", "entangled", "absent")
#: Kinds of factor (:class:`~ontoscope.stimuli.factors.Factor`).
FACTOR_KINDS = ("static", "oscillatory")

MODEL_COLUMNS = ("model", "family", "total_stride", "bottleneck", "antialias", "width", "depth", "data_size",
                 "steps", "seed", "trained")
LATENT_COLUMNS = ("model", "site", "factor", "status")
OPERATIONAL_COLUMNS = ("model", "site", "factor", "factor_kind", "icv_score", "status")

_NUMERIC = ("total_stride", "bottleneck", "width", "depth", "data_size", "steps", "seed")
_FLAGS = {True: 1.0, False: 0.0, "true": 1.0, "false": 0.0, "blur": 1.0, "none": 0.0,  # 1 == True, 0 == False
          "snake": 1.0, "elu": 0.0}
_HINTS = {
    "models": "one row per model with the architecture, scale and training knobs",
    "latent": "the latent ontologies' `factors` tables concatenated, each with its `model`",
    "operational": "the operational ontologies' tables concatenated, each with a `model` column",
}


def _check_columns(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise ConfigError(f"the {name} table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ConfigError(f"the {name} table lacks the columns {missing}; pass {_HINTS[name]}")
    if table.empty:
        raise ConfigError(f"the {name} table is empty; pass {_HINTS[name]}")


def _check_values(table: pd.DataFrame, column: str, allowed: Sequence[str], name: str) -> None:
    bad = sorted({str(v) for v in table[column].unique()} - set(allowed))
    if bad:
        raise ConfigError(f"the {name} table has unknown {column} values {bad}; expected one of {list(allowed)}")


def _flag(series: pd.Series, column: str, allow_nan: bool) -> pd.Series:
    def one(v: object) -> float:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            if allow_nan:
                return np.nan
            raise ConfigError(f"the models table has a missing {column}; give True or False for every model")
        key = v.lower() if isinstance(v, str) else (bool(v) if isinstance(v, (bool, np.bool_)) else v)
        if key not in _FLAGS:
            raise ConfigError(f"the models table has {column}={v!r}; give True / False (or none / blur, elu / "
                              "snake)")
        return _FLAGS[key]

    return series.map(one).astype(np.float64)


def check_models(models: pd.DataFrame) -> pd.DataFrame:
    """The checked ``models`` table: numeric knobs as float, ``antialias`` and ``trained`` as 0 / 1 (NaN allowed
    for ``antialias``); one row per unique ``model``."""
    _check_columns(models, MODEL_COLUMNS, "models")
    dup = models["model"][models["model"].duplicated()].unique().tolist()
    if dup:
        raise ConfigError(f"the models table lists the models {dup} more than once; keep one row per model")
    out = models.copy()
    out["model"] = out["model"].astype(str)
    family = out["family"].astype(str) != "pretrained"
    for c, default in {"compression": None, "bitrate": np.nan, "activation": np.where(family, "elu", None)}.items():
        if c not in out.columns:
            out[c] = default
    for c in (*_NUMERIC, "compression", "bitrate"):
        try:
            out[c] = pd.to_numeric(out[c]).astype(np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"the models table's {c} column is not numeric; give numbers (NaN where it does "
                              "not apply)") from None
    if out["compression"].isna().all():  # not given: input samples per latent float of a waveform model
        out["compression"] = out["total_stride"] / out["bottleneck"]
    out["antialias"] = _flag(out["antialias"], "antialias", allow_nan=True)
    out["trained"] = _flag(out["trained"], "trained", allow_nan=False)
    out["activation"] = _flag(out["activation"], "activation", allow_nan=True)
    return out.reset_index(drop=True)


def check_latent(latent: pd.DataFrame) -> pd.DataFrame:
    """The checked ``latent`` table (known statuses, one row per (model, site, factor))."""
    _check_columns(latent, LATENT_COLUMNS, "latent")
    _check_values(latent, "status", STATUSES, "latent")
    out = latent.assign(model=latent["model"].astype(str))
    dup = out.duplicated(["model", "site", "factor"])
    if dup.any():
        r = out[dup].iloc[0]
        raise ConfigError(f"the latent table has more than one row for ({r['model']}, {r['site']}, {r['factor']}); "
                          "keep one row per (model, site, factor)")
    return out.reset_index(drop=True)


def check_operational(operational: pd.DataFrame) -> pd.DataFrame:
    """The checked ``operational`` table (known statuses and factor kinds, numeric ``icv_score``)."""
    _check_columns(operational, OPERATIONAL_COLUMNS, "operational")
    _check_values(operational, "status", MEASURED, "operational")
    _check_values(operational, "factor_kind", FACTOR_KINDS, "operational")
    out = operational.assign(model=operational["model"].astype(str))
    try:
        out["icv_score"] = pd.to_numeric(out["icv_score"]).astype(np.float64)
    except (TypeError, ValueError):
        raise ConfigError("the operational table's icv_score column is not numeric; pass the scores of "
                          "ontoscope.probing.icv") from None
    return out.reset_index(drop=True)


def check_same_models(a: pd.DataFrame, b: pd.DataFrame, name_a: str, name_b: str) -> None:
    """Raise :class:`ConfigError` unless ``a`` and ``b`` hold the same ``model`` ids."""
    ma, mb = set(a["model"].astype(str)), set(b["model"].astype(str))
    for only, here, there in ((sorted(ma - mb), name_a, name_b), (sorted(mb - ma), name_b, name_a)):
        if only:
            shown = only[:5] + (["..."] if len(only) > 5 else [])
            raise ConfigError(f"models {shown} are in the {here} table but not in the {there} table; "
                              "give both tables the same models")


def best_family(operational: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, site, factor): the intervention family that controls it.

    The rule of :meth:`~ontoscope.probing.operational.OperationalOntology.best`
    (:func:`ontoscope.probing.icv.best_family`), per model: an ``icv`` row first, then the highest ICV score;
    rows along random directions are never picked. Sorted by model, site order (``site_index``, where present)
    and factor.
    """
    return icv_best_family(operational, ["model", "site", "factor"])


def model_scores(best: pd.DataFrame) -> pd.DataFrame:
    """ICV scores per model, over every factor and over each kind of factor.

    Parameters
    ----------
    best : DataFrame
        :func:`best_family` of the operational table.

    Returns
    -------
    DataFrame
        One row per (model, factor_family) with ``factor_kind`` in ``all``, ``static``, ``oscillatory``
        (a kind the model was not measured on has no row): ``mean`` (mean ICV score over its (site,
        factor) pairs; a missing score is left out), ``best_site`` (mean over factors of the largest
        score over sites: does any site make the factor an ICV), ``icv_rate`` (share of (site, factor)
        pairs that are ``icv``), ``any_site_icv`` (share of factors that are ``icv`` at some site),
        ``n_pairs``, ``n_factors``, ``n_icv_factors``.
    """
    b = best.assign(_icv=(best["status"] == "icv").astype(np.float64))
    per_factor = (b.groupby(["model", "factor_kind", "factor"], sort=False)
                  .agg(best=("icv_score", "max"), icv=("_icv", "max")).reset_index())
    frames = []
    for kind in ("all", *FACTOR_KINDS):
        rows = b if kind == "all" else b[b["factor_kind"] == kind]
        pf = per_factor if kind == "all" else per_factor[per_factor["factor_kind"] == kind]
        if rows.empty:
            continue
        pairs = rows.groupby("model", sort=False).agg(mean=("icv_score", "mean"), icv_rate=("_icv", "mean"),
                                                      n_pairs=("_icv", "size"))
        factors = pf.groupby("model", sort=False).agg(best_site=("best", "mean"), any_site_icv=("icv", "mean"),
                                                      n_factors=("icv", "size"), n_icv_factors=("icv", "sum"))
        frames.append(pairs.join(factors).reset_index().assign(factor_kind=kind))
    out = pd.concat(frames, ignore_index=True)
    out["n_icv_factors"] = out["n_icv_factors"].astype(np.int64)
    cols = ["model", "factor_kind", "mean", "best_site", "icv_rate", "any_site_icv", "n_pairs", "n_factors",
            "n_icv_factors"]
    return out[cols].sort_values(["model", "factor_kind"], kind="stable").reset_index(drop=True)
