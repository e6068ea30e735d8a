"""The ICV score and status of a (site, factor, family): one number and one word from the measures.

A factor is an independently controllable internal variable (ICV) at a site when
the site holds it, an intervention there changes that factor in what the model
produces, the same way on every input, and little else changes
(``docs/operational_ontology.md``). Each condition is measured on [0, 1]:

=================  ====================================================================
``decodability``   held-out R² of the site's ridge probe in the views that match the
                   family, clipped at 0
``efficacy``       steering: ``|R_i| / σ_i`` at the dose kept (the factor's movement over
                   its own standard deviation in the stimuli), clipped at 1; interchange
                   and DAS: the interchange intervention accuracy (IIA) against the
                   model's own counterfactual output
``specificity``    ``|R_i| / (|R_i| + Σ_j |R_j − E_j|)`` (1 − normalised leakage, the
                   family's expected side effects ``E`` set aside)
``consistency``    ``2 c − 1`` clipped at 0, with ``c`` the share of clips (pairs) moved
                   the intended way (0: no better than chance)
=================  ====================================================================

The ICV score is their geometric mean: each is a necessary condition, so one near
0 pulls the score to 0.

The status, with the thresholds of :class:`ICVThresholds`:

- ``icv``: ``decodability ≥ decodable``, efficacy at least ``efficacy`` (steering) or
  ``iia`` (interchange, DAS; and at least ``iia_margin`` above the IIA of a random
  subspace of the same rank), ``specificity ≥ specificity`` and ``c ≥ consistency``;
- ``absent``: ``decodability < absent`` and the efficacy below its threshold: the
  site neither holds the factor nor moves it;
- ``entangled``: everything else: the factor is there, but this family does not
  control it on its own.

The defaults were chosen on the control models (``benchmarks/controls_roc.py``,
``docs/operational_ontology.md``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ontoscope.errors import ConfigError

__all__ = ["ICVThresholds", "MEASURES", "best_family", "icv_scores"]

#: The measures an ICV score combines, in the order of the table.
MEASURES = ("decodability", "efficacy", "specificity", "consistency")
#: Families whose efficacy is an interchange intervention accuracy.
INTERCHANGE = ("interchange", "das")


@dataclass(frozen=True)
class ICVThresholds:
    """Thresholds of the status (each on the measure's [0, 1] scale)."""

    decodable: float = 0.5
    absent: float = 0.2
    efficacy: float = 0.3
    specificity: float = 0.7
    consistency: float = 0.8
    iia: float = 0.6
    iia_margin: float = 0.2

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0 <= value <= 1:
                raise ConfigError(f"ICV threshold {name}={value} must lie in [0, 1]")
        if self.absent > self.decodable:
            raise ConfigError(f"ICV threshold absent={self.absent} exceeds decodable={self.decodable}")


def _components(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=table.index)
    out["decodability"] = pd.to_numeric(table["decodability"]).clip(lower=0, upper=1)
    out["efficacy"] = pd.to_numeric(table["efficacy"]).abs().clip(upper=1)
    out["specificity"] = pd.to_numeric(table["specificity"]).clip(0, 1)
    out["consistency"] = (2 * pd.to_numeric(table["consistency"]) - 1).clip(0, 1)
    return out


def icv_scores(table: pd.DataFrame, thresholds: ICVThresholds | None = None) -> pd.DataFrame:
    """``table`` with ``icv_score`` and ``status`` added, from its raw measures.

    ``table`` has the columns ``decodability`` (R²), ``efficacy`` (normalised, signed or not),
    ``specificity``, ``consistency`` (the raw share ``c``), and optionally ``family`` and ``iia_random``
    (rows of the ``interchange`` and ``das`` families are held to the IIA thresholds).
    """
    th = thresholds or ICVThresholds()
    missing = [c for c in MEASURES if c not in table]
    if missing:
        raise ConfigError(f"the table lacks the measures {missing}")
    comp = _components(table)
    values = comp.to_numpy(dtype=np.float64)
    have = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.exp(np.log(np.clip(np.where(have, values, 1.0), 1e-6, None)).sum(1) / 4)
    score[~have.all(1)] = np.nan  # no score without every measure
    out = table.copy()
    out["icv_score"] = score
    fam = table["family"].astype(str) if "family" in table else pd.Series("", index=table.index)
    swap = fam.isin(INTERCHANGE)
    eff_th = np.where(swap, th.iia, th.efficacy)
    rand = pd.to_numeric(table["iia_random"]) if "iia_random" in table else pd.Series(np.nan, index=table.index)
    margin_ok = ~swap | rand.isna() | (comp["efficacy"] - rand.clip(lower=0) >= th.iia_margin)
    dec, eff = comp["decodability"], comp["efficacy"]
    icv = ((dec >= th.decodable) & (eff >= eff_th) & (comp["specificity"] >= th.specificity)
           & (pd.to_numeric(table["consistency"]) >= th.consistency) & margin_ok)
    absent = (dec.fillna(0) < th.absent) & (eff.fillna(0) < eff_th)
    out["status"] = np.where(icv, "icv", np.where(absent, "absent", "entangled"))
    return out


def best_family(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per ``keys`` (e.g. site and factor): the intervention family that controls it.

    An ``icv`` row first, then the highest ICV score (a missing one counts as -1; ties keep the first row);
    rows along random directions (``variant == "random"``, the controls' negative cells) are never kept.
    Sorted by ``keys`` in model order where ``site_index`` is there. Columns a table lacks are skipped.
    """
    if table.empty:
        return table
    t = table[table["variant"] != "random"] if "variant" in table else table
    icv = (t["status"] == "icv").astype(int) if "status" in t else 0
    score = pd.to_numeric(t["icv_score"], errors="coerce").fillna(-1.0) if "icv_score" in t else -1.0
    t = t.assign(_icv=icv, _s=score)
    site = ["site_index"] if "site_index" in t else [k for k in keys if k == "site"]
    order = [k for k in keys if k not in ("site", "factor")] + site + [k for k in keys if k == "factor"]
    return (t.sort_values(["_icv", "_s"], ascending=False, kind="stable").drop_duplicates(list(keys))
            .drop(columns=["_icv", "_s"]).sort_values(order, kind="stable").reset_index(drop=True))

