"""``conv_ae``: a SEANet / EnCodec-style waveform autoencoder with architecture knobs.

Encoder: an input conv (k=7), then per stride ``s_i`` a block of ``depth``
residual units (dilations 1, 3, 9, ...) followed by a strided conv (kernel
``2 s_i`` by default; optionally a windowed-sinc low-pass before it), channels
doubling per block, with ELU or Snake (Ziyin et al. 2020) nonlinearities
(``activation``); then a conv to ``bottleneck`` channels and an optional
residual vector quantizer. The decoder mirrors it with transposed convs.
(Tagliasacchi et al. 2020, SEANet; Défossez et al. 2022, EnCodec.)
"""

from __future__ import annotations

import torch
from torch import nn

from ontoscope.models.layers import Blur1d, Downsample1d, ResidualVQ, ResUnit1d, SameConv1d, Upsample1d, activation
from ontoscope.models.protocol import Site, StagedModel
from ontoscope.models.spec import ConvAESpec


def _dilations(depth: int) -> list[int]:
    return [3**i for i in range(depth)]


class ConvAE(StagedModel):
    """Waveform autoencoder built from a :class:`ConvAESpec`.

    Sites, in order: ``encoder.block0`` … ``encoder.block{n-1}`` (after each
    strided conv), ``bottleneck``, ``quantizer`` (with a quantizer),
    ``decoder.block0`` … ``decoder.block{n-1}``. Input audio is right-padded to a
    multiple of the total stride; the output has that padded length.
    """

    output = "audio"
    takes_audio = True  # preprocess only right-pads with zeros and adds a channel axis

    def __init__(self, spec: ConvAESpec) -> None:
        self.spec = spec
        self.sample_rate = spec.sample_rate
        chans = [min(spec.width * 2**i, spec.max_channels) for i in range(len(spec.strides) + 1)]
        act = spec.activation
        stages: list[tuple[Site, nn.Module]] = []
        cum = 1
        for i, s in enumerate(spec.strides):
            layers: list[nn.Module] = [SameConv1d(1, chans[0], 7)] if i == 0 else []
            layers += [ResUnit1d(chans[i], d, act=act) for d in _dilations(spec.depth)]
            layers.append(activation(act, chans[i]))
            if spec.antialias == "blur" and s > 1:
                layers.append(Blur1d(chans[i], s))
            layers.append(Downsample1d(chans[i], chans[i + 1], spec.kernel_for(s), s))
            cum *= s
            stages.append((Site(f"encoder.block{i}", "BCT", chans[i + 1], "encoder", stride=cum),
                           nn.Sequential(*layers)))
        last = chans[len(spec.strides)]
        stages.append((Site("bottleneck", "BCT", spec.bottleneck, "bottleneck", stride=cum),
                       nn.Sequential(activation(act, last), SameConv1d(last, spec.bottleneck, 3))))
        if spec.quantizer is not None:
            q = spec.quantizer
            rvq = ResidualVQ(spec.bottleneck, q.codebooks, q.size, q.commitment)
            stages.append((Site("quantizer", "BCT", spec.bottleneck, "quantizer", stride=cum),
                           rvq))
        n = len(spec.strides)
        for j, s in enumerate(reversed(spec.strides)):
            i = n - 1 - j
            layers = [SameConv1d(spec.bottleneck, chans[n], 7)] if j == 0 else []
            layers += [activation(act, chans[i + 1]), Upsample1d(chans[i + 1], chans[i], spec.kernel_for(s), s)]
            layers += [ResUnit1d(chans[i], d, act=act) for d in _dilations(spec.depth)]
            cum //= s
            stages.append((Site(f"decoder.block{j}", "BCT", chans[i], "decoder", stride=cum),
                           nn.Sequential(*layers)))
        super().__init__(stages, head=nn.Sequential(activation(act, chans[0]), SameConv1d(chans[0], 1, 7)))

    @property
    def quantizer(self) -> ResidualVQ | None:
        for m in self.stages:
            if isinstance(m, ResidualVQ):
                return m
        return None

    def preprocess(self, audio: torch.Tensor) -> torch.Tensor:
        r = self.spec.total_stride
        pad = (-audio.shape[-1]) % r
        return nn.functional.pad(audio, (0, pad)).unsqueeze(1)

    def postprocess(self, out: torch.Tensor) -> torch.Tensor:
        return out.squeeze(1)
