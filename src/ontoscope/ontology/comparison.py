"""The comparison of a study's latent and operational ontologies: every table of it, saved and loaded together.

:func:`compare` checks the three tables (:mod:`~ontoscope.ontology.tables`), joins the ontologies
(:mod:`~ontoscope.ontology.agreement`), attributes the ICV scores to the knobs
(:mod:`~ontoscope.ontology.attribution`) and judges the four claims (:mod:`~ontoscope.ontology.claims`).
See ``docs/comparison.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd

from ontoscope.artifacts import ensure_dir, save_json, save_table
from ontoscope.errors import ConfigError
from ontoscope.ontology.agreement import agreement, agreement_summary, confusion
from ontoscope.ontology.attribution import attribute
from ontoscope.ontology.claims import VerdictRules, judge, unjudged, with_controls
from ontoscope.ontology.tables import (
    best_family,
    check_latent,
    check_models,
    check_operational,
    check_same_models,
    model_scores,
)

__all__ = ["FILES", "OntologyComparison", "compare", "undertrained_models"]

#: The file each table is saved to.
FILES = {"agreement": "comparison.parquet", "confusion": "confusion.parquet", "attribution": "attribution.parquet",
         "knob_means": "knob_means.parquet", "claims": "claims.parquet", "scores": "scores.parquet"}
MANIFEST = "comparison.json"


@dataclass
class OntologyComparison:
    """The latent ontology against the operational one over a study's models.

    Attributes
    ----------
    agreement : DataFrame
        One row per (model, site, factor) in both ontologies (:func:`~ontoscope.ontology.agreement.agreement`)
        with the model's ``trained`` flag.
    confusion : DataFrame
        Predicted against measured status over the trained models
        (:func:`~ontoscope.ontology.agreement.confusion`).
    attribution : DataFrame
        Slopes of the ICV scores on each knob (``Attribution.slopes``).
    knob_means : DataFrame
        Mean score per knob value with its interval (``Attribution.means``).
    claims : DataFrame
        The four claims and their verdicts (:func:`~ontoscope.ontology.claims.claims`).
    scores : DataFrame
        Per-model scores (:func:`~ontoscope.ontology.tables.model_scores`).
    rules : VerdictRules
    """

    agreement: pd.DataFrame
    confusion: pd.DataFrame
    attribution: pd.DataFrame
    knob_means: pd.DataFrame
    claims: pd.DataFrame
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    rules: VerdictRules = field(default_factory=VerdictRules)

    def verdicts(self) -> dict[int, str]:
        """``{claim: verdict}``."""
        return dict(zip(self.claims["claim"].astype(int), self.claims["verdict"], strict=True))

    def summary(self) -> dict:
        """Agreement over the trained models (:func:`~ontoscope.ontology.agreement.agreement_summary`)."""
        trained = self.agreement[self.agreement["trained"]] if "trained" in self.agreement else self.agreement
        return agreement_summary(trained, self.rules.level)

    def save(self, out: str | Path) -> Path:
        """Write every table as Parquet under ``out`` (``comparison.parquet`` is the agreement table), then the
        manifest ``comparison.json`` (rules, verdicts, agreement summary), atomically."""
        out = ensure_dir(out)
        for name, filename in FILES.items():
            save_table(out / filename, getattr(self, name))
        save_json(out / MANIFEST, {"tables": FILES, "rules": self.rules.to_dict(),
                                   "verdicts": {str(k): v for k, v in self.verdicts().items()},
                                   "agreement": self.summary()})
        return out

    @classmethod
    def load(cls, root: str | Path) -> OntologyComparison:
        """Read what :meth:`save` wrote."""
        root = Path(root)
        manifest = root / MANIFEST
        if not manifest.exists():
            raise ConfigError(f"{root} holds no ontology comparison (no {MANIFEST}); run compare(...).save({root}) "
                              "first")
        meta = json.loads(manifest.read_text())
        missing = [f for f in FILES.values() if not (root / f).exists()]
        if missing:
            raise ConfigError(f"{root} lacks {missing} of its ontology comparison; write it again with save()")
        tables = {name: pd.read_parquet(root / filename) for name, filename in FILES.items()}
        known = {f.name for f in fields(VerdictRules)}
        return cls(**tables, rules=VerdictRules(**{k: v for k, v in meta.get("rules", {}).items() if k in known}))


def compare(models: pd.DataFrame, latent: pd.DataFrame, operational: pd.DataFrame,
            rules: VerdictRules | None = None, *, controls: pd.DataFrame | None = None) -> OntologyComparison:
    """Compare a study's latent and operational ontologies.

    Parameters
    ----------
    models : DataFrame
        One row per model: ``model, family, total_stride, bottleneck, antialias, width, depth, data_size,
        steps, seed, trained`` (:mod:`~ontoscope.ontology.tables`), optionally ``fidelity``: a model marked
        ``undertrained`` (it failed the fidelity gate) keeps its agreement rows, flagged in their
        ``undertrained`` column, and is left out of the confusion table, the attribution and the claims,
        whose ``numbers`` say how many were left out.
    latent : DataFrame
        The latent ontologies' ``factors`` tables concatenated (one row per (model, site, factor)).
    operational : DataFrame
        The operational tables concatenated, with a ``model`` column (one row per (model, site, factor, kind)).
    rules : VerdictRules, optional
        Thresholds of the verdicts and level of the intervals.
    controls : DataFrame, optional
        The controls' rates per family (:func:`~ontoscope.probing.controls.control_rates`); where a family
        failed, every claim's verdict reads ``instrument failed its controls``.

    Returns
    -------
    OntologyComparison

    Raises
    ------
    ConfigError
        A table that is empty, lacks a column or holds unknown statuses, or models that are in one table
        but not another.
    """
    rules = rules or VerdictRules()
    design = check_models(models)
    lat, op = check_latent(latent), check_operational(operational)
    check_same_models(design, op, "models", "operational")
    check_same_models(lat, op, "latent", "operational")
    joined = agreement(lat, op)
    joined["trained"] = joined["model"].map(design.set_index("model")["trained"]).astype(bool)
    undertrained = undertrained_models(design)
    joined["undertrained"] = joined["model"].isin(undertrained)
    kept_design = design[~design["model"].isin(undertrained)]
    kept = joined[~joined["undertrained"]]
    if kept_design.empty:
        n = len(undertrained)
        why = (f"every model of the study failed the fidelity gate ({n} undertrained): nothing is left to judge; "
               "train them longer or loosen analyses.fidelity")
        empty = pd.DataFrame()
        return OntologyComparison(agreement=joined, confusion=confusion(kept), attribution=empty, knob_means=empty,
                                  claims=with_controls(unjudged(why), controls), scores=empty, rules=rules)
    attributed = attribute(kept_design, model_scores(best_family(op[~op["model"].isin(undertrained)])), rules.level)
    verdicts = judge(kept, attributed, kept_design, rules)
    if undertrained:
        n = len(undertrained)
        verdicts["numbers"] = verdicts["numbers"] + (f"; {n} undertrained model{'s' if n > 1 else ''} left out "
                                                     "(fidelity gate)")
    return OntologyComparison(
        agreement=joined, confusion=confusion(kept[kept["trained"]]), attribution=attributed.slopes,
        knob_means=attributed.means, claims=with_controls(verdicts, controls), scores=attributed.scores,
        rules=rules)


def undertrained_models(models: pd.DataFrame) -> list[str]:
    """The models a ``fidelity`` column marks ``undertrained`` (they failed the fidelity gate), in table order."""
    if "fidelity" not in models.columns:
        return []
    return models.loc[models["fidelity"].astype(str) == "undertrained", "model"].astype(str).tolist()
