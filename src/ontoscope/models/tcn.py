"""``tcn``: the control family with no temporal downsampling.

Dilated residual convs at stride 1 (Bai et al. 2018, "An empirical evaluation of
generic convolutional and recurrent networks"; van den Oord et al. 2016,
WaveNet's dilation schedule 1, 2, 4, ...), optionally after one small fixed
decimation so long inputs fit in memory, as an autoencoder.
"""

from __future__ import annotations

import torch
from torch import nn

from ontoscope.models.layers import Downsample1d, ResUnit1d, SameConv1d, Upsample1d
from ontoscope.models.protocol import Site, StagedModel
from ontoscope.models.spec import TCNSpec


class TCN(StagedModel):
    """Autoencoder at a constant frame rate built from a :class:`TCNSpec`.

    Sites: ``encoder.block0`` … ``encoder.block{depth-1}`` (dilation ``2**i``),
    ``bottleneck``, ``decoder.block0`` … ``decoder.block{depth-1}``.
    """

    output = "audio"
    takes_audio = True  # preprocess only right-pads with zeros and adds a channel axis

    def __init__(self, spec: TCNSpec) -> None:
        self.spec = spec
        self.sample_rate = spec.sample_rate
        r, w = spec.decimation, spec.width
        stages: list[tuple[Site, nn.Module]] = []
        for i in range(spec.depth):
            layers: list[nn.Module] = []
            if i == 0:
                layers.append(SameConv1d(1, w, 7) if r == 1 else Downsample1d(1, w, 2 * r, r))
            layers.append(ResUnit1d(w, 2**i, spec.kernel))
            stages.append((Site(f"encoder.block{i}", "BCT", w, "encoder", stride=r), nn.Sequential(*layers)))
        stages.append((Site("bottleneck", "BCT", spec.bottleneck, "bottleneck", stride=r),
                       nn.Sequential(nn.ELU(), SameConv1d(w, spec.bottleneck, 3))))
        for i in range(spec.depth):
            layers = [SameConv1d(spec.bottleneck, w, 3)] if i == 0 else []
            layers.append(ResUnit1d(w, 2 ** (spec.depth - 1 - i), spec.kernel))
            stages.append((Site(f"decoder.block{i}", "BCT", w, "decoder", stride=r), nn.Sequential(*layers)))
        head: nn.Module = SameConv1d(w, 1, 7) if r == 1 else Upsample1d(w, 1, 2 * r, r)
        super().__init__(stages, head=nn.Sequential(nn.ELU(), head))

    def preprocess(self, audio: torch.Tensor) -> torch.Tensor:
        pad = (-audio.shape[-1]) % self.spec.decimation
        return nn.functional.pad(audio, (0, pad)).unsqueeze(1)

    def postprocess(self, out: torch.Tensor) -> torch.Tensor:
        return out.squeeze(1)
