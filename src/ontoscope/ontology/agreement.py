"""Agreement: does the latent ontology (predicted from the architecture) say what the operational one measures?

Per (model, site, factor) the predicted status (:mod:`ontoscope.operators.latent`) is reduced to a
prediction, and the measured status (:mod:`ontoscope.probing.icv`, the family that controls the pair)
to an outcome:

=================  ======================================================================
``prediction``     ``affords``, or ``limited`` for any of ``rate-limited``, ``invariant``,
                   ``alias-limited``, ``capacity-limited``
``outcome``        ``icv``, or ``not icv`` for ``entangled`` and ``absent``
``held``           the prediction matched: ``affords`` and ``icv``, or ``limited`` and ``not icv``
``failure``        where it did not: ``over-predicted`` (afforded, not an ICV: a limit imposed by
                   the data or the training, not by the design) or ``under-predicted`` (limited,
                   yet an ICV: the rule saw a limit the trained model got around)
=================  ======================================================================

:func:`agreement_summary` gives the agreement rate with its Wilson interval, and the rate of the
predictor that always says the majority outcome (the base rate a prediction must beat).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ontoscope.errors import ConfigError
from ontoscope.ontology.stats import wilson_interval
from ontoscope.ontology.tables import (
    MEASURED,
    STATUSES,
    best_family,
    check_latent,
    check_operational,
    check_same_models,
)

__all__ = ["AGREEMENT_COLUMNS", "agreement", "agreement_summary", "confusion"]

AGREEMENT_COLUMNS = ("model", "site", "role", "factor", "factor_kind", "predicted_status", "prediction",
                     "measured_status", "outcome", "held", "failure", "icv_score", "intervention", "reason")


def agreement(latent: pd.DataFrame, operational: pd.DataFrame) -> pd.DataFrame:
    """Join the predicted and the measured status of every (model, site, factor) both tables hold.

    Parameters
    ----------
    latent : DataFrame
        The latent ontologies' ``factors`` tables concatenated (``model, site, factor, status``, ``reason``).
    operational : DataFrame
        The operational tables concatenated (``model, site, factor, factor_kind, icv_score, status``,
        ``family``); the family that controls each (model, site, factor) is kept
        (:func:`~ontoscope.ontology.tables.best_family`).

    Returns
    -------
    DataFrame
        One row per (model, site, factor) in both tables: ``model, site, role, factor, factor_kind,
        predicted_status, prediction, measured_status, outcome, held, failure, icv_score, intervention``
        (the intervention family kept: ``additive``, ``gain``, ``time_warp``, ...), ``reason`` (the latent rule's), and
        ``site_index`` where the operational table has it. ``failure`` is None where the prediction held.
    """
    lat = check_latent(latent)
    op = check_operational(operational)
    check_same_models(lat, op, "latent", "operational")
    best = best_family(op)
    keys = ["model", "site", "factor"]
    left = lat[keys + [c for c in ("role", "status", "reason") if c in lat]].rename(
        columns={"status": "predicted_status"})
    right_cols = keys + ["factor_kind", "icv_score", "status"] + [c for c in ("family", "site_index") if c in best]
    right = best[right_cols].rename(columns={"status": "measured_status", "family": "intervention"})
    joined = left.merge(right, on=keys, how="inner", validate="one_to_one")
    lost = sorted(set(lat["model"]) - set(joined["model"]))
    if lost:
        raise ConfigError(f"model {lost[0]!r} shares no (site, factor) between the latent and operational tables; "
                          "their site or factor names differ")
    limited = joined["predicted_status"] != "affords"
    icv = joined["measured_status"] == "icv"
    joined["prediction"] = np.where(limited, "limited", "affords")
    joined["outcome"] = np.where(icv, "icv", "not icv")
    joined["held"] = limited != icv
    joined["failure"] = np.where(~limited & ~icv, "over-predicted", np.where(limited & icv, "under-predicted", None))
    for c in ("intervention", "reason", "role"):
        if c not in joined:
            joined[c] = None
    order = ["model", "site_index", "factor"] if "site_index" in joined else keys
    joined = joined.sort_values(order, kind="stable").reset_index(drop=True)
    return joined[list(AGREEMENT_COLUMNS) + (["site_index"] if "site_index" in joined else [])]


def confusion(table: pd.DataFrame) -> pd.DataFrame:
    """Counts of predicted status (rows, in the latent rules' order) against measured status (columns).

    Returns
    -------
    DataFrame
        One row per predicted status (every one, zeros included): ``predicted_status, prediction, icv,
        entangled, absent, n`` (the row's total), ``held`` (how many of them the prediction got right).
    """
    counts = (pd.crosstab(table["predicted_status"], table["measured_status"])
              .reindex(index=list(STATUSES), columns=list(MEASURED), fill_value=0).astype(np.int64))
    out = counts.rename_axis(index="predicted_status", columns=None).reset_index()
    out.insert(1, "prediction", np.where(out["predicted_status"] == "affords", "affords", "limited"))
    out["n"] = out[list(MEASURED)].sum(axis=1)
    out["held"] = np.where(out["prediction"] == "affords", out["icv"], out["entangled"] + out["absent"])
    return out


def agreement_summary(table: pd.DataFrame, level: float = 0.95) -> dict[str, Any]:
    """The agreement rate of an :func:`agreement` table, with its Wilson interval and the base rate.

    Returns
    -------
    dict
        ``n`` (pairs), ``held``, ``rate``, ``ci_low``, ``ci_high`` (Wilson, at ``level``), ``majority`` (the
        commoner outcome), ``base_rate`` (the agreement of always predicting it, ``max(p, 1 - p)`` with ``p``
        the share of ``icv``), ``over_predicted``, ``under_predicted``.
    """
    n = int(len(table))
    held = int(table["held"].sum()) if n else 0
    lo, hi = wilson_interval(held, n, level)
    p_icv = float((table["outcome"] == "icv").mean()) if n else float("nan")
    failure = table["failure"] if n else pd.Series(dtype=object)
    return {"n": n, "held": held, "rate": held / n if n else float("nan"), "ci_low": lo, "ci_high": hi,
            "majority": "icv" if p_icv > 0.5 else "not icv", "base_rate": max(p_icv, 1 - p_icv),
            "over_predicted": int((failure == "over-predicted").sum()),
            "under_predicted": int((failure == "under-predicted").sum())}
