"""The ontologies compared: does what the architecture allows predict what a trained model controls?

- :func:`compare` -> :class:`OntologyComparison`: every table below from a study's ``models``, ``latent``
  and ``operational`` tables; ``save`` / ``load`` as Parquet with a JSON manifest.
- :func:`agreement` / :func:`confusion` / :func:`agreement_summary`: predicted against measured status per
  (model, site, factor), over- and under-predictions, the agreement rate with its Wilson interval.
- :func:`attribution`: slopes of the ICV scores on each architecture, scale and training knob with the
  others held fixed, and the mean per knob value, with t intervals over seeds.
- :func:`claims`: the four claims of the design, each ``supported``, ``not supported`` or ``inconclusive``
  by a stated rule (:class:`VerdictRules`).
- :func:`best_family` / :func:`model_scores`: the intervention family that controls each pair; per-model scores.
- :func:`wilson_interval` / :func:`mean_interval` / :func:`within_slope`: the intervals.

See ``docs/comparison.md``.
"""

from ontoscope.ontology.agreement import agreement, agreement_summary, confusion
from ontoscope.ontology.attribution import Attribution, attribution
from ontoscope.ontology.claims import VerdictRules, claims
from ontoscope.ontology.comparison import OntologyComparison, compare
from ontoscope.ontology.stats import Fit, mean_interval, wilson_interval, within_slope
from ontoscope.ontology.tables import best_family, model_scores

__all__ = [
    "Attribution",
    "Fit",
    "OntologyComparison",
    "VerdictRules",
    "agreement",
    "agreement_summary",
    "attribution",
    "best_family",
    "claims",
    "compare",
    "confusion",
    "mean_interval",
    "model_scores",
    "wilson_interval",
    "within_slope",
]
