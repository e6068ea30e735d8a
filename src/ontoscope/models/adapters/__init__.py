"""Real pretrained and published models behind the :class:`~ontoscope.models.protocol.AudioModel` protocol.

* :mod:`~ontoscope.models.adapters.crepe`: CREPE tiny / full (Kim et al. 2018), published weights.
* :mod:`~ontoscope.models.adapters.pesto`: PESTO (Riou et al. 2023), published weights.
* :mod:`~ontoscope.models.adapters.hf`: EnCodec, DAC, Mimi, wav2vec 2.0, HuBERT, Whisper, AST from ``transformers``.

Submodules are imported on first use, so that ``transformers`` is only needed for ``hf``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_crepe", "load_hf", "load_pesto"]

_WHERE = {"load_crepe": "crepe", "load_pesto": "pesto", "load_hf": "hf"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
