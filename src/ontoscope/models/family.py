"""Build a model of the family from its spec."""

from __future__ import annotations

import torch

from ontoscope.models.conv_ae import ConvAE
from ontoscope.models.protocol import StagedModel
from ontoscope.models.spec import ConvAESpec, SpecCNNSpec, TCNSpec
from ontoscope.models.spec_cnn import SpecCNN
from ontoscope.models.tcn import TCN


def build(spec: ConvAESpec | SpecCNNSpec | TCNSpec, seed: int = 0) -> StagedModel:
    """The ``nn.Module`` of a spec, with weights initialised from ``seed`` (same seed, same weights)."""
    cls = {"conv_ae": ConvAE, "spec_cnn": SpecCNN, "tcn": TCN}[spec.family]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(spec)
