"""ontoscope: what a neural audio model's architecture allows it to represent.

The package separates the *latent ontology* of a model (what its operators allow,
predicted from the architecture) from its *operational ontology* (what actually
stabilises under training, measured by probing and intervening).
"""

from __future__ import annotations

__version__ = "0.3.0"

from ontoscope.errors import OntoscopeError  # noqa: E402

__all__ = ["OntoscopeError", "__version__"]
