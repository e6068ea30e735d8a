"""``spec_cnn``: a spectrogram CNN, as an autoencoder or as a supervised factor regressor.

Front end: STFT log-magnitude or log-mel; then blocks of 3x3 convs each followed
by max pooling over (frequency, time); a 1x1 conv to ``bottleneck`` channels.
As an autoencoder, a mirrored decoder (transposed convs) predicts the
log-spectrogram and audio comes back by Griffin-Lim; as an encoder, a head
averages over frequency and time and regresses the normalised factor values
(the "CNN that decomposes audio into timbral features" setting).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ontoscope.models.frontend import LOG_FLOOR, Spectrogram
from ontoscope.models.protocol import Site, StagedModel
from ontoscope.models.spec import SpecCNNSpec


def _convs(c_in: int, c_out: int, depth: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for d in range(depth):
        layers += [nn.Conv2d(c_in if d == 0 else c_out, c_out, 3, padding=1), nn.ELU()]
    return layers


class _Crop(nn.Module):
    def __init__(self, bins: int) -> None:
        super().__init__()
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : self.bins, :]


class _Regressor(nn.Module):
    def __init__(self, channels: int, k: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(2, 3)))


class SpecCNN(StagedModel):
    """Spectrogram CNN built from a :class:`SpecCNNSpec`.

    Sites (all ``BCFT``): ``encoder.block0`` … (after each pooling),
    ``bottleneck``, and in autoencoder mode ``decoder.block0`` …. Output: the
    log-spectrogram ``[B, F, frames]`` (autoencoder; ``decode`` gives audio by
    Griffin-Lim) or normalised factors ``[B, k]`` (encoder).
    """

    def __init__(self, spec: SpecCNNSpec) -> None:
        self.spec = spec
        self.sample_rate = spec.sample_rate
        self.output = "spectrogram" if spec.mode == "autoencoder" else "factors"
        front = Spectrogram(spec.sample_rate, spec.n_fft, spec.hop, spec.frontend, spec.n_mels)
        bins = front.bins
        n = len(spec.pool)
        chans = [min(spec.width * 2**i, spec.max_channels) for i in range(n)]
        stages: list[tuple[Site, nn.Module]] = []
        f_sizes, t_stride, c_in = [bins], spec.hop, 1
        for i, (pf, pt) in enumerate(spec.pool):
            t_stride *= pt
            f_sizes.append(math.ceil(f_sizes[-1] / pf))
            block = nn.Sequential(*_convs(c_in, chans[i], spec.depth), nn.MaxPool2d((pf, pt), ceil_mode=True))
            stages.append((Site(f"encoder.block{i}", "BCFT", chans[i], "encoder", stride=t_stride,
                                freq_bins=f_sizes[-1]), block))
            c_in = chans[i]
        stages.append((Site("bottleneck", "BCFT", spec.bottleneck, "bottleneck", stride=t_stride,
                            freq_bins=f_sizes[-1]), nn.Conv2d(c_in, spec.bottleneck, 1)))
        if spec.mode == "autoencoder":
            c_in, f_dec = spec.bottleneck, f_sizes[-1]
            for j, (pf, pt) in enumerate(reversed(spec.pool)):
                i = n - 1 - j
                t_stride //= pt
                f_dec *= pf
                c_out = chans[i - 1] if i > 0 else spec.width
                block = nn.Sequential(nn.ConvTranspose2d(c_in, c_out, (pf, pt), stride=(pf, pt)), nn.ELU(),
                                      *_convs(c_out, c_out, spec.depth))
                stages.append((Site(f"decoder.block{j}", "BCFT", c_out, "decoder", stride=t_stride,
                                    freq_bins=f_dec), block))
                c_in = c_out
            head: nn.Module = nn.Sequential(nn.Conv2d(c_in, 1, 3, padding=1), _Crop(bins))
        else:
            head = _Regressor(spec.bottleneck, len(spec.factors))
        super().__init__(stages, head=head)
        self.frontend = front
        self.bins = bins
        self.time_pool = math.prod(pt for _, pt in spec.pool)

    def preprocess(self, audio: torch.Tensor) -> torch.Tensor:
        logspec = self.frontend(audio)
        pad = (-logspec.shape[-1]) % self.time_pool
        return nn.functional.pad(logspec, (0, pad), value=math.log(LOG_FLOOR))

    def postprocess(self, out: torch.Tensor) -> torch.Tensor:
        return out.squeeze(1) if self.output == "spectrogram" else out

    def target(self, audio: torch.Tensor) -> torch.Tensor:
        """The log-spectrogram ``[B, F, frames]`` an autoencoder is trained to reproduce."""
        return self.preprocess(audio).squeeze(1)

    def decode(self, acts: torch.Tensor, site: str, n_iter: int = 32) -> torch.Tensor | None:
        """Audio from activations at ``site``: predicted log-spectrogram, then Griffin-Lim."""
        if self.output != "spectrogram":
            return None
        logspec = self.resume(acts, site)
        return self.frontend.griffin_lim(self.frontend.to_magnitude(logspec), n_iter=n_iter)
