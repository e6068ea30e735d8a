"""The ICV score and status of a (site, factor): one number and one word from the interventions' measures.

A factor is an independently controllable internal variable (ICV) at a site when
a direction there decodes it, moving along it changes that factor in what the
model produces, the same way on every input, and little else changes
(``docs/operational_ontology.md``). Each condition is measured on [0, 1]:

=================  ====================================================================
``decodability``   held-out R² of the site's linear probe, clipped at 0
``efficacy``       ``|E[i, i]| / σ_i``: the factor's movement per standard deviation of the
                   site along the direction, over the factor's own standard deviation in
                   the stimuli (1: the direction moves the factor as much as the data
                   vary it), clipped at 1
``specificity``    ``|E[i, i]| / Σ_j |E[i, j]|`` (1 − normalised leakage)
``consistency``    ``2 c − 1`` clipped at 0, with ``c`` the share of clips moved the
                   intended way (0: no better than chance)
``iia``            interchange intervention accuracy on counterfactual pairs (DAS
                   subspace where one was fitted, else the probe direction)
=================  ====================================================================

The ICV score is their geometric mean, over the measures available (``iia``
needs pairs): each is a necessary condition, so one near 0 pulls the score to
0, and a score of ``s`` means the conditions hold "on average" to degree ``s``.

The status, with the thresholds of :class:`ICVThresholds`:

- ``absent``: ``decodability < absent`` and ``efficacy < efficacy``: the site neither
  holds the factor nor moves it;
- ``icv``: ``decodability ≥ decodable``, ``efficacy ≥ efficacy``, ``specificity ≥ specificity``,
  the share ``c ≥ consistency`` and (where measured) ``iia ≥ iia``;
- ``entangled``: everything else: the factor is there, but no intervention found
  controls it on its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ontoscope.errors import ConfigError

__all__ = ["ICVThresholds", "MEASURES", "icv_scores"]

#: The measures an ICV score combines, in the order of the table.
MEASURES = ("decodability", "efficacy", "specificity", "consistency", "iia")


@dataclass(frozen=True)
class ICVThresholds:
    """Thresholds of the status (each on the measure's [0, 1] scale)."""

    decodable: float = 0.5
    absent: float = 0.2
    efficacy: float = 0.3
    specificity: float = 0.6
    consistency: float = 0.6
    iia: float = 0.5

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0 <= value <= 1:
                raise ConfigError(f"ICV threshold {name}={value} must lie in [0, 1]")
        if self.absent > self.decodable:
            raise ConfigError(f"ICV threshold absent={self.absent} exceeds decodable={self.decodable}")


def _components(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=table.index)
    out["decodability"] = table["decodability"].clip(lower=0, upper=1)
    out["efficacy"] = table["efficacy"].abs().clip(upper=1)
    out["specificity"] = table["specificity"].clip(0, 1)
    out["consistency"] = (2 * table["consistency"] - 1).clip(0, 1)
    out["iia"] = table["iia"].clip(0, 1) if "iia" in table else np.nan
    return out


def icv_scores(table: pd.DataFrame, thresholds: ICVThresholds | None = None) -> pd.DataFrame:
    """``table`` with ``icv_score`` and ``status`` added, from its raw measures.

    ``table`` has the columns ``decodability`` (R²), ``efficacy`` (normalised, signed or not),
    ``specificity``, ``consistency`` (the raw share ``c``) and optionally ``iia``.
    """
    th = thresholds or ICVThresholds()
    missing = [c for c in MEASURES[:4] if c not in table]
    if missing:
        raise ConfigError(f"the table lacks the measures {missing}")
    comp = _components(table)
    logs = np.log(comp.clip(lower=1e-6).to_numpy(dtype=np.float64))
    have = np.isfinite(comp.to_numpy(dtype=np.float64))
    with np.errstate(invalid="ignore"):
        score = np.exp(np.where(have, logs, 0).sum(1) / have.sum(1))
    score[~have[:, :4].all(1)] = np.nan  # no score without decodability and the three steering measures
    out = table.copy()
    out["icv_score"] = score
    dec, eff = comp["decodability"], comp["efficacy"]
    iia_ok = comp["iia"].isna() | (comp["iia"] >= th.iia)
    icv = ((dec >= th.decodable) & (eff >= th.efficacy) & (comp["specificity"] >= th.specificity)
           & (table["consistency"] >= th.consistency) & iia_ok)
    absent = (dec.fillna(0) < th.absent) & (eff.fillna(0) < th.efficacy)
    out["status"] = np.where(icv, "icv", np.where(absent, "absent", "entangled"))
    return out
