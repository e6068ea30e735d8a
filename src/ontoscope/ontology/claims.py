"""The four claims of the design, each judged from this study's own numbers by a stated rule.

A verdict is ``supported``, ``not supported`` or ``inconclusive``; it is never forced: where the study
lacks the sweep, the seeds or the models to decide, the verdict is ``inconclusive`` and ``reason`` says
what is missing. An effect of a knob is judged from the pooled within slope of the per-model ``mean``
ICV score (:mod:`~ontoscope.ontology.attribution`), in the claimed direction ``±``:

- *absent*: the interval excludes every change of ``min_slope`` or more on the claimed side (an
  equivalence bound: a flat design is told apart from an underpowered one, and an effect too small to
  matter counts as none even where it is significant);
- *present*: otherwise, the interval excludes 0 on the claimed side;
- *undecided*: neither, or fewer than ``min_seeds`` seeds, or no interval (too few models).

Claim 1 (compression and downsampling): the slope on log2 total stride at a fixed compression and on
log2 compression (input samples per latent float) at a fixed stride, both claimed negative, over every
factor. Supported if either swept knob's effect is present; not supported if every swept knob's is
absent; inconclusive otherwise, or if neither is swept.

Claim 2 (oscillatory features): over the trained models measured on both kinds, the mean of the
per-model difference static minus oscillatory mean score, with its t interval, and the share of
(model, oscillatory factor) pairs that are an ICV at some site, with its Wilson interval. Supported if
the difference's interval lies above 0 (and not wholly below ``min_difference``) and the share's below
``rare``; not supported if the difference's lies below ``min_difference`` or the share's at or above
``rare``; inconclusive otherwise, or with fewer than two such models.

Claim 3 (scale): the slopes of the oscillatory mean score (every factor's, where no oscillatory factor
was measured) on log2 width, depth and log2 data size (claimed: no rise). Not supported if a swept
knob's rise is present; supported if every swept knob's rise is absent; inconclusive otherwise, or if
none is swept.

Claim 4 (prediction): over the trained models' (site, factor) pairs, the agreement rate of the latent
ontology with the measured outcome (Wilson interval) against the base rate, the agreement of always
saying the commoner outcome. Supported if the interval lies above the base rate; not supported if it
lies at or below it, or if the latent ontology predicts the same for every pair (it then cannot beat
the base rate); inconclusive otherwise, or when every outcome is the same.

See ``docs/comparison.md``.

References
----------
Lakens, D. (2017). Equivalence tests: a practical primer for t tests, correlations, and meta-analyses.
Social Psychological and Personality Science 8(4).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ontoscope.claims import STATEMENTS
from ontoscope.errors import ConfigError
from ontoscope.ontology.agreement import agreement, agreement_summary
from ontoscope.ontology.attribution import SCALE, Attribution, attribute
from ontoscope.ontology.stats import mean_interval, wilson_interval
from ontoscope.ontology.tables import (
    best_family,
    check_latent,
    check_models,
    check_operational,
    check_same_models,
    model_scores,
)

__all__ = ["CLAIM_COLUMNS", "STATEMENTS", "VERDICTS", "VerdictRules", "claims", "judge"]

VERDICTS = ("supported", "not supported", "inconclusive")
CLAIM_COLUMNS = ("claim", "statement", "verdict", "numbers", "reason", "estimate", "ci_low", "ci_high")
_UNITS = {"log2": "per doubling", "linear": "per unit", "binary": "with minus without"}
_OVER = {"all": "mean ICV score over every factor", "oscillatory": "mean ICV score of the oscillatory factors"}


@dataclass(frozen=True)
class VerdictRules:
    """Thresholds of the verdicts (module docstring).

    Attributes
    ----------
    level : float
        Level of every interval.
    min_slope : float
        The smallest change of ICV score per doubling (per unit of depth) that counts as an effect.
    min_difference : float
        The smallest static-minus-oscillatory difference of mean ICV score that counts.
    rare : float
        A share of ICVs below this is rare.
    min_seeds : int
        Seeds a knob's fit needs before it can decide.
    """

    level: float = 0.95
    min_slope: float = 0.025
    min_difference: float = 0.05
    rare: float = 0.25
    min_seeds: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.level < 1:
            raise ConfigError(f"verdict level {self.level} must lie strictly between 0 and 1, e.g. 0.95")
        for name in ("min_slope", "min_difference"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"verdict rule {name}={getattr(self, name)} must be positive")
        if not 0 < self.rare < 1:
            raise ConfigError(f"verdict rule rare={self.rare} must lie strictly between 0 and 1")
        if self.min_seeds < 1:
            raise ConfigError(f"verdict rule min_seeds={self.min_seeds} must be at least 1")

    def to_dict(self) -> dict[str, float | int]:
        """The thresholds as a plain dict (for a manifest)."""
        return asdict(self)


def _ci(estimate: float, low: float, high: float, digits: int = 3) -> str:
    if not math.isfinite(low):
        return f"{estimate:+.{digits}f} (no interval)"
    return f"{estimate:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _pooled(slopes: pd.DataFrame, knob: str, kind: str) -> pd.Series | None:
    r = slopes[(slopes["knob"] == knob) & (slopes["group"] == "pooled") & (slopes["factor_kind"] == kind)
               & (slopes["score"] == "mean")]
    return r.iloc[0] if len(r) else None


def _effect(row: pd.Series | None, knob: str, direction: int, rules: VerdictRules) -> tuple[str, str]:
    """``(state, text)``: state ``unswept``, ``present``, ``absent`` or ``undecided`` of a knob's effect."""
    name = knob.replace("_", " ")
    if row is None:
        return "unswept", f"{name} not swept"
    text = (f"{name} {_ci(row['slope'], row['ci_low'], row['ci_high'])} {_UNITS[row['scale']]} "
            f"({row['n_models']} models, {row['n_seeds']} seeds)")
    if row["n_seeds"] < rules.min_seeds:
        return "undecided", f"{text}, fewer than {rules.min_seeds} seeds"
    if not (math.isfinite(row["ci_low"]) and math.isfinite(row["ci_high"])):
        return "undecided", f"{text}, too few models for an interval"
    near, far = sorted((direction * row["ci_low"], direction * row["ci_high"]))
    if far < rules.min_slope:
        return "absent", text
    if near > 0:
        return "present", text
    return "undecided", f"{text}, interval spans 0 and {direction * rules.min_slope:+g}"


def _row(claim: int, verdict: str, numbers: str, reason: str, estimate: float = np.nan, low: float = np.nan,
         high: float = np.nan) -> dict:
    return {"claim": claim, "statement": STATEMENTS[claim], "verdict": verdict, "numbers": numbers,
            "reason": reason, "estimate": float(estimate), "ci_low": float(low), "ci_high": float(high)}


def unjudged(reason: str) -> pd.DataFrame:
    """The four claims, each ``inconclusive`` for the same ``reason`` (a study with nothing left to judge)."""
    return pd.DataFrame([_row(n, "inconclusive", "", reason) for n in sorted(STATEMENTS)], columns=list(CLAIM_COLUMNS))


def _knob_claim(claim: int, slopes: pd.DataFrame, knobs: list[tuple[str, int]], kind: str,
                rules: VerdictRules) -> dict:
    rows = {k: _pooled(slopes, k, kind) for k, _ in knobs}
    effects = {k: _effect(rows[k], k, d, rules) for k, d in knobs}
    numbers = f"{_OVER[kind]}: " + "; ".join(t for _, t in effects.values())
    swept = [k for k, _ in knobs if effects[k][0] != "unswept"]
    lead = rows[swept[0]] if swept else None
    est = (lead["slope"], lead["ci_low"], lead["ci_high"]) if lead is not None else (np.nan,) * 3
    if not swept:
        names = (f"neither {knobs[0][0].replace('_', ' ')} nor {knobs[1][0].replace('_', ' ')}" if claim == 1
                 else "no scale knob")
        return _row(claim, "inconclusive", numbers, f"the study sweeps {names} (one value each): nothing to compare")
    states = [effects[k][0] for k in swept]
    # claim 1 is borne out by an effect; claim 3 (no lift) is refuted by one
    present = [k.replace("_", " ") for k in swept if effects[k][0] == "present"]
    if present:
        for k in swept:
            if effects[k][0] == "present":
                est = (rows[k]["slope"], rows[k]["ci_low"], rows[k]["ci_high"])
                break
        verdict = "supported" if claim == 1 else "not supported"
        side = "excludes 0 in the claimed direction" if claim == 1 else "lies above 0: a rise"
        return _row(claim, verdict, numbers, f"the interval of {', '.join(present)} {side}", *est)
    if all(s == "absent" for s in states):
        verdict = "not supported" if claim == 1 else "supported"
        what = "a fall" if claim == 1 else "a rise"
        unit = "per doubling" + (" (per unit of depth)" if "depth" in swept else "")
        return _row(claim, verdict, numbers, f"every swept knob's interval rules out {what} of {rules.min_slope:g} "
                    f"or more {unit}", *est)
    undecided = [effects[k][1] for k in swept if effects[k][0] == "undecided"]
    return _row(claim, "inconclusive", numbers, "cannot decide: " + "; ".join(undecided), *est)


def _oscillatory_claim(design: pd.DataFrame, scores: pd.DataFrame, rules: VerdictRules) -> dict:
    trained = set(design.loc[design["trained"] == 1, "model"])
    sc = scores[scores["model"].isin(trained)]
    static = sc[sc["factor_kind"] == "static"].set_index("model")
    osc = sc[sc["factor_kind"] == "oscillatory"].set_index("model")
    if osc.empty or static.empty:
        missing = "oscillatory" if osc.empty else "static"
        return _row(2, "inconclusive", f"no {missing} factor was measured in a trained model",
                    f"the study measures no {missing} factor in a trained model")
    d = (static["mean"] - osc["mean"]).dropna()
    fit = mean_interval(d.to_numpy(), rules.level)
    k, n = int(osc["n_icv_factors"].sum()), int(osc["n_factors"].sum())
    ks, ns = int(static["n_icv_factors"].sum()), int(static["n_factors"].sum())
    lo, hi = wilson_interval(k, n, rules.level)
    numbers = (f"static minus oscillatory mean ICV score {_ci(fit.estimate, fit.ci_low, fit.ci_high)} over "
               f"{fit.n} trained models; oscillatory factors an ICV at some site in {k} of {n} "
               f"({100 * lo:.0f}-{100 * hi:.0f}%), static ones in {ks} of {ns}")
    est = (fit.estimate, fit.ci_low, fit.ci_high)
    if fit.n < 2:
        return _row(2, "inconclusive", numbers, "needs at least two trained models measured on both kinds of "
                    "factor", *est)
    diff = ("absent" if fit.ci_high < rules.min_difference else "present" if fit.ci_low > 0 else "undecided")
    rare = "rare" if hi < rules.rare else "common" if lo >= rules.rare else "undecided"
    if diff == "present" and rare == "rare":
        return _row(2, "supported", numbers, f"the difference's interval lies above 0 and the oscillatory ICV "
                    f"share's below {rules.rare:g}", *est)
    if diff == "absent" or rare == "common":
        why = (f"the difference's interval lies below {rules.min_difference:g}" if diff == "absent" else
               f"the oscillatory ICV share's interval lies at or above {rules.rare:g}")
        return _row(2, "not supported", numbers, why, *est)
    parts = []
    if diff == "undecided":
        parts.append(f"the difference's interval spans 0 and {rules.min_difference:g}")
    if rare == "undecided":
        parts.append(f"the oscillatory ICV share's interval spans {rules.rare:g}")
    return _row(2, "inconclusive", numbers, "cannot decide: " + "; ".join(parts), *est)


def _prediction_claim(table: pd.DataFrame, design: pd.DataFrame, rules: VerdictRules) -> dict:
    trained = set(design.loc[design["trained"] == 1, "model"])
    s = agreement_summary(table[table["model"].isin(trained)], rules.level)
    if s["n"] == 0:
        return _row(4, "inconclusive", "no trained model's (site, factor) is in both ontologies",
                    "the study has no trained model to compare")
    numbers = (f"agreement {s['rate']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}] over {s['n']} (model, site, "
               f"factor) pairs of trained models, against {s['base_rate']:.3f} for always saying "
               f"'{s['majority']}'; {s['over_predicted']} over-predicted (a limit of data or training), "
               f"{s['under_predicted']} under-predicted")
    est = (s["rate"], s["ci_low"], s["ci_high"])
    if s["base_rate"] >= 1:
        return _row(4, "inconclusive", numbers, f"every measured outcome is '{s['majority']}': no prediction can "
                    "beat always saying it", *est)
    predicted = table.loc[table["model"].isin(trained), "prediction"].unique()
    if len(predicted) == 1:
        return _row(4, "not supported", numbers, f"the latent ontology predicts '{predicted[0]}' for every pair while "
                    "the outcomes differ: it tells no limit of design from one of data", *est)
    if s["ci_low"] > s["base_rate"]:
        return _row(4, "supported", numbers, "the agreement's Wilson interval lies above the base rate", *est)
    if s["ci_high"] <= s["base_rate"]:
        return _row(4, "not supported", numbers, "the agreement's Wilson interval lies at or below the base rate",
                    *est)
    return _row(4, "inconclusive", numbers, "cannot decide: the agreement's Wilson interval contains the base rate",
                *est)


def judge(agreement_table: pd.DataFrame, attributed: Attribution, design: pd.DataFrame,
          rules: VerdictRules | None = None) -> pd.DataFrame:
    """The four claims from an :func:`~ontoscope.ontology.agreement.agreement` table, an :class:`Attribution`
    and the checked ``models`` table (no checks; :func:`claims` checks and computes them)."""
    rules = rules or VerdictRules()
    slopes = attributed.slopes
    osc = "oscillatory" if (attributed.scores["factor_kind"] == "oscillatory").any() else "all"
    rows = [_knob_claim(1, slopes, [("total_stride", -1), ("compression", -1)], "all", rules),
            _oscillatory_claim(design, attributed.scores, rules),
            _knob_claim(3, slopes, [(k, +1) for k in SCALE], osc, rules),
            _prediction_claim(agreement_table, design, rules)]
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


#: The verdict of every claim when the instrument did not recover its controls.
FAILED_CONTROLS = "instrument failed its controls"


def with_controls(claims_table: pd.DataFrame, rates: pd.DataFrame | None) -> pd.DataFrame:
    """The claims with every verdict replaced by :data:`FAILED_CONTROLS` when ``rates`` (the controls'
    sensitivity and false-positive rate per family, with a ``passed`` column) says a family failed; the reason
    names the families and their rates. Unchanged when ``rates`` is None or empty."""
    if rates is None or not len(rates) or bool(rates["passed"].all()):
        return claims_table
    bad = rates[~rates["passed"].astype(bool)]
    why = "; ".join(f"{r.family}: sensitivity {r.sensitivity:.2f}, false positives {r.fpr:.2f}"
                    for r in bad.itertuples())
    out = claims_table.copy()
    out["verdict"] = FAILED_CONTROLS
    out["reason"] = f"the operational measurement missed what the control models hold by construction ({why})"
    return out


def claims(models: pd.DataFrame, latent: pd.DataFrame, operational: pd.DataFrame,
           rules: VerdictRules | None = None) -> pd.DataFrame:
    """Judge the four claims of the design on a study's tables.

    Parameters
    ----------
    models, latent, operational : DataFrame
        The study's tables (:mod:`~ontoscope.ontology.tables`), holding the same models.
    rules : VerdictRules, optional

    Returns
    -------
    DataFrame
        One row per claim: ``claim`` (1-4), ``statement``, ``verdict`` (``supported`` / ``not supported`` /
        ``inconclusive``), ``numbers`` (the study's numbers, in a sentence), ``reason`` (the rule that
        decided, or what is missing), and the deciding ``estimate`` with its ``ci_low``, ``ci_high``.
    """
    rules = rules or VerdictRules()
    design = check_models(models)
    lat, op = check_latent(latent), check_operational(operational)
    check_same_models(design, op, "models", "operational")
    check_same_models(lat, op, "latent", "operational")
    attributed = attribute(design, model_scores(best_family(op)), rules.level)
    return judge(agreement(lat, op), attributed, design, rules)
