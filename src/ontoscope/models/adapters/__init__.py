"""Real pretrained and published models behind the :class:`~ontoscope.models.protocol.AudioModel` protocol.

* :mod:`~ontoscope.models.adapters.crepe`: CREPE tiny / full (Kim et al. 2018), published weights.
* :mod:`~ontoscope.models.adapters.pesto`: PESTO (Riou et al. 2023), published weights.
* :mod:`~ontoscope.models.adapters.hf`: EnCodec, DAC, Mimi, wav2vec 2.0, HuBERT, Whisper, AST from ``transformers``.

The adapters import the packages they need (``transformers``, ``omegaconf``) only when a model is built, so
that a package is only needed for the models that use it.
"""

from __future__ import annotations

from ontoscope.models.adapters.crepe import load_crepe
from ontoscope.models.adapters.hf import load_hf
from ontoscope.models.adapters.pesto import load_pesto

__all__ = ["load_crepe", "load_hf", "load_pesto"]
