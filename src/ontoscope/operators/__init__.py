"""Latent ontology: what a model's operators allow at every site, predicted from the architecture.

- :func:`analyze` runs every analysis on one model and returns a :class:`LatentOntology` (tables, the
  predicted status of every (site, factor) with its reason; ``save`` writes Parquet, figures, JSON).
- :func:`site_geometry`: stride, frame rate, receptive field (theoretical, empirical, effective), dims.
- :func:`conv_singular_values` / :func:`layer_spectra`: singular values of (strided, transposed) convs.
- :func:`alias_fraction` / :func:`layer_aliasing` / :func:`composed_alias`: energy folded by decimation.
- :func:`sine_sweep` / :func:`channel_bandwidths` / :func:`injectivity`: frequency behaviour at a site.
- :func:`modulation_limits`: can an oscillatory factor be a trajectory or a per-frame variable?
- :func:`welch_bound` / :func:`coherence_bound` / :func:`capacity_table`: interference of k directions in d dims.
- :func:`feature_jacobians` / :func:`jacobian_stats`: d(site) / d(factor) through the synthesizer.

See ``docs/latent_ontology.md``.
"""

from ontoscope.operators.aliasing import (
    alias_fraction,
    alias_fraction_exact,
    composed_alias,
    layer_aliasing,
    site_alias_summary,
)
from ontoscope.operators.capacity import capacity_table, coherence_bound, levenshtein_bound, welch_bound
from ontoscope.operators.frequency_response import (
    SweepResult,
    band_collapse,
    channel_bandwidths,
    injectivity,
    sine_sweep,
    sweep_frequencies,
)
from ontoscope.operators.jacobians import (
    JacobianResult,
    StimulusBatch,
    audio_tangents,
    feature_jacobians,
    jacobian_stats,
    principal_angles,
    stimulus_batch,
)
from ontoscope.operators.latent import STATUSES, LatentOntology, Thresholds, analyze, write_json
from ontoscope.operators.modulation_limits import modulation_limits, modulation_status, oscillatory_ranges
from ontoscope.operators.receptive_field import (
    LayerOp,
    TimeGeometry,
    compose,
    empirical_receptive_field,
    empirical_stride,
    module_ops,
    site_geometry,
    traced_ops,
)
from ontoscope.operators.spectra import conv_matrix, conv_singular_values, conv_transpose_matrix, layer_spectra

__all__ = [
    "STATUSES",
    "JacobianResult",
    "LatentOntology",
    "LayerOp",
    "StimulusBatch",
    "SweepResult",
    "Thresholds",
    "TimeGeometry",
    "alias_fraction",
    "alias_fraction_exact",
    "analyze",
    "audio_tangents",
    "band_collapse",
    "capacity_table",
    "channel_bandwidths",
    "coherence_bound",
    "compose",
    "composed_alias",
    "conv_matrix",
    "conv_singular_values",
    "conv_transpose_matrix",
    "empirical_receptive_field",
    "empirical_stride",
    "feature_jacobians",
    "injectivity",
    "jacobian_stats",
    "layer_aliasing",
    "layer_spectra",
    "levenshtein_bound",
    "modulation_limits",
    "modulation_status",
    "module_ops",
    "oscillatory_ranges",
    "principal_angles",
    "site_alias_summary",
    "site_geometry",
    "sine_sweep",
    "stimulus_batch",
    "sweep_frequencies",
    "traced_ops",
    "welch_bound",
    "write_json",
]
