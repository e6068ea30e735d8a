"""Models: the family with architecture knobs, training, real pretrained models, one protocol for all.

- :class:`AudioModel` / :class:`Site`: the protocol every model meets (``sites``, ``encode``, ``resume``, ``decode``).
- :func:`parse_spec` / :func:`load_spec` / :func:`build`: the family (``conv_ae``, ``spec_cnn``, ``tcn``).
- :func:`train`: the training recipe; :func:`load_checkpoint` reads its safetensors checkpoints.
- :func:`load_model`: any model by reference (``crepe:tiny``, ``pesto``, ``hf:encodec-24khz``, a checkpoint
  directory, a spec YAML); :func:`wrap` turns any ``nn.Module`` into an :class:`AudioModel`.
"""

from ontoscope.models.checkpoint import load_checkpoint
from ontoscope.models.family import build
from ontoscope.models.protocol import AudioModel, Site, SiteError, StagedModel
from ontoscope.models.registry import list_models, load_model
from ontoscope.models.spec import ConvAESpec, SpecCNNSpec, TCNSpec, load_spec, parse_spec
from ontoscope.models.train import TrainConfig, train
from ontoscope.models.wrap import wrap

__all__ = [
    "AudioModel",
    "ConvAESpec",
    "Site",
    "SiteError",
    "SpecCNNSpec",
    "StagedModel",
    "TCNSpec",
    "TrainConfig",
    "build",
    "list_models",
    "load_checkpoint",
    "load_model",
    "load_spec",
    "parse_spec",
    "train",
    "wrap",
]
