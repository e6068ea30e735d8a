"""FCPE pitch estimator ("FCPE: A Fast Context-based Pitch Estimation Model", arXiv:2509.15140, 2025;
code at github.com/CNChTu/FCPE), with the ``fcpe_c_v001`` weights bundled in the ``torchfcpe`` package.

What is computed, frame by frame (16 kHz, 10 ms hop, no temporal downsampling):

1. A log-mel spectrogram: a 1024-sample Hann-windowed STFT every 160
   samples (the clip padded by 432 samples on the left and 432 on the right,
   reflected, or zeros for clips of 432 samples or fewer; no centring), the
   magnitude ``sqrt(re^2 + im^2 + 1e-9)``, 128 Slaney mel filters from 0 to
   8 kHz, then ``ln(max(mel, 1e-5))``. Frame ``t`` reads samples
   ``[160 t - 432, 160 t + 592)``, so it is centred on sample ``160 t + 80``.
   The STFT gives ``N // 160`` frames and FCPE repeats the last one to make
   ``T = 1 + N // 160``.
2. An input stack: a convolution over 3 frames (128 -> 512 channels), group
   normalisation (4 groups of 128 channels, each normalised over its channels
   *and all frames of the clip*), leaky ReLU (slope 0.01), a second
   convolution over 3 frames (512 -> 512).
3. Six residual "conformer" convolution blocks (the bundled checkpoint is
   ``conv_only``: its self-attention is switched off, so no attention runs):
   ``x + W2 silu(dwconv31(glu(W1 layernorm(x))))``, with a layer norm over
   the 512 channels of each frame, a 1x1 convolution to 2048 channels, a
   gated linear unit (back to 1024), a depthwise convolution over 31 frames
   (zero-padded by 15 on both sides), SiLU and a 1x1 convolution to 512.
4. A layer norm, a weight-normalised linear layer to 360 pitch bins and a
   sigmoid: the salience of 360 pitches from 32.70 Hz to 1975.5 Hz,
   evenly spaced in cents (about 19.78 cents apart, ``1200 log2(f / 10 Hz)``
   from 2051.15 to 9151.29 cents).

Context
-------
The convolutions alone would give bounded receptive fields (frame ``t``
after ``encoder.layerK`` reads ``1664 + 4800 K`` samples), but the group
normalisation in the input stack divides every frame by a mean and variance
taken over the whole clip, so from ``encoder.conv2`` on each frame depends, through
those two statistics per group, on every sample of the input: those sites have
``receptive_field`` None and ``global_context`` True, and carry their
convolutional receptive field in ``notes["conv_receptive_field"]``.

Sites (all ``BCT`` with ``stride`` = hop = 160 samples, 100 frames/s at 16 kHz)
-----------------------------------------------------------------------------
* ``encoder.mel``: ``[B, 128, T]``, the natural-log mel spectrogram; receptive field
  1024 samples (one STFT window).
* ``encoder.conv1``: ``[B, 512, T]``, the first input convolution; receptive field
  1344 samples (3 frames).
* ``encoder.conv2``: ``[B, 512, T]``, after group norm, leaky ReLU and the second
  convolution; global context (convolutional receptive field 1664 samples).
* ``encoder.layer1`` ... ``encoder.layer6``: ``[B, 512, T]``, the residual stream after each
  convolution block; global context (convolutional receptive field
  ``1664 + 4800 K`` samples: 6464 ... 30464 samples, 0.4 to 1.9 s).
* ``head``: ``[B, 360, T]``, the sigmoid salience of the 360 pitch bins;
  ``notes["place"]`` declares the channel axis as pitch, about 19.78 cents a
  step.

``resume`` returns ``[B, 2, T]``: channel 0 the f0 in Hz from FCPE's
``local_argmax`` decoder (the salience-weighted mean, in cents, of the nine
bins centred on the most salient one, indices clamped to the table), channel
1 the confidence (the largest salience, in [0, 1]). Unvoiced frames are not
masked: ``torchfcpe``'s inference sets f0 to 0 where the confidence is at or
below its threshold (0.006 by default; ``notes["threshold"]`` of ``head``).

The network is rebuilt here, since importing ``torchfcpe`` pulls in
torchaudio; the weights come from ``torchfcpe/assets/fcpe_c_v001.pt`` in the
installed package (``pip install --no-deps torchfcpe==0.0.4``), read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ontoscope.errors import ConfigError
from ontoscope.models.adapters._common import check_clips, freeze, package_file
from ontoscope.models.frontend import hz_to_mel, mel_to_hz
from ontoscope.models.protocol import Site, StagedModel

__all__ = ["FcpeModel", "fcpe_checkpoint", "fcpe_mel_filters", "load_fcpe"]

SAMPLE_RATE = 16000
_INSTALL = "pip install --no-deps torchfcpe==0.0.4"


def fcpe_checkpoint(name: str = "fcpe_c_v001") -> Path:
    """Path of a checkpoint shipped inside the installed ``torchfcpe`` package (found without importing it)."""
    return package_file("torchfcpe", f"assets/{name}.pt", what="FCPE weights", install=_INSTALL)


def fcpe_mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney mel filters ``[n_mels, n_fft // 2 + 1]`` float32, rounded as ``librosa.filters.mel`` rounds them
    (the triangles, then the area normalisation, each stored in float32), which FCPE's mel front end uses."""
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


class _LogMel(nn.Module):
    """Audio ``[B, N]`` -> FCPE's log-mel spectrogram ``[B, n_mels, 1 + N // hop]``."""

    def __init__(self, sr: int, n_fft: int, win: int, hop: int, n_mels: int, fmin: float, fmax: float,
                 clip: float = 1e-5) -> None:
        super().__init__()
        self.n_fft, self.win, self.hop, self.clip = n_fft, win, hop, clip
        self.register_buffer("window", torch.hann_window(win), persistent=False)
        self.register_buffer("filters", torch.from_numpy(fcpe_mel_filters(sr, n_fft, n_mels, fmin, fmax)),
                             persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        n = audio.shape[-1]
        left = (self.win - self.hop) // 2
        right = max((self.win - self.hop + 1) // 2, self.win - n - left)
        mode = "reflect" if right < n else "constant"
        x = F.pad(audio.unsqueeze(1), (left, right), mode=mode).squeeze(1)
        spec = torch.stft(x, self.n_fft, hop_length=self.hop, win_length=self.win, window=self.window,
                          center=False, normalized=False, onesided=True, return_complex=True)
        mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
        mel = torch.log(torch.clamp(torch.matmul(self.filters, mag), min=self.clip))
        frames = n // self.hop + 1
        if frames > mel.shape[-1]:
            mel = torch.cat([mel, mel[..., -1:]], dim=-1)
        return mel[..., :frames]


class _ChannelNorm(nn.LayerNorm):
    """Layer norm over the channels of each frame of ``[B, C, T]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class _ConvBlock(nn.Module):
    """FCPE's conformer convolution module with its residual: ``x + W2 silu(dw(glu(W1 norm(x))))`` on ``[B, C, T]``."""

    def __init__(self, dim: int, expansion: int = 2, kernel: int = 31) -> None:
        super().__init__()
        inner = dim * expansion
        self.norm = _ChannelNorm(dim)
        self.expand = nn.Conv1d(dim, inner * 2, 1)
        self.depthwise = nn.Conv1d(inner, inner, kernel, padding=kernel // 2, groups=inner)
        self.project = nn.Conv1d(inner, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.glu(self.expand(self.norm(x)), dim=1)
        return x + self.project(F.silu(self.depthwise(y)))


class _Head(nn.Module):
    """Layer norm, linear layer to the pitch bins, sigmoid: ``[B, C, T]`` -> ``[B, bins, T]``."""

    def __init__(self, dim: int, bins: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(self.norm(x.transpose(1, 2)))).transpose(1, 2)


class FcpeModel(StagedModel):
    """FCPE as an :class:`AudioModel`; see the module docstring for sites and outputs.

    Built from a ``torchfcpe`` checkpoint's ``config_dict`` (its ``mel`` and
    ``model`` sections); use :func:`load_fcpe` for the bundled one. Only
    convolution-only checkpoints without harmonic embeddings (as the bundled
    ``fcpe_c_v001``) are supported.
    """

    sample_rate = SAMPLE_RATE
    output = "pitch"

    def __init__(self, config: dict) -> None:
        mel, net = dict(config["mel"]), dict(config["model"])
        if net.get("type") != "CFNaiveMelPE" or not net.get("conv_only", False) or net.get("use_harmonic_emb"):
            raise ConfigError("only convolution-only FCPE checkpoints (CFNaiveMelPE, conv_only, no harmonic "
                              "embedding) are supported")
        if int(mel.get("sr", SAMPLE_RATE)) != SAMPLE_RATE or str(mel.get("type", "default")).lower() not in (
                "none", "default"):
            raise ConfigError("only FCPE checkpoints with a 16 kHz mel front end are supported")
        hop, win, n_fft = int(mel["hop_size"]), int(mel["win_size"]), int(mel["n_fft"])
        n_mels, dim, bins = int(mel["num_mels"]), int(net["hidden_dims"]), int(net["out_dims"])
        f0_min, f0_max = float(net["f0_min"]), float(net["f0_max"])
        kernel = 31
        step = 1200.0 * math.log2(f0_max / f0_min) / (bins - 1)

        def site(name: str, channels: int, rf: int, role: str = "encoder", **notes: object) -> Site:
            bounded = name in ("mel", "conv1")
            return Site(name if role == "head" else f"{role}.{name}", "BCT", channels, role=role, stride=hop,
                        receptive_field=rf if bounded else None,
                        global_context=not bounded, notes={"hop": hop, "conv_receptive_field": rf, **notes})

        rf = win
        stages: list[tuple[Site, nn.Module]] = [
            (site("mel", n_mels, rf, units="ln mel magnitude", frame_centre_offset=hop // 2), nn.Identity())]
        rf += 2 * hop
        stages.append((site("conv1", dim, rf), nn.Conv1d(n_mels, dim, 3, padding=1)))
        rf += 2 * hop
        stages.append((site("conv2", dim, rf, global_by="group norm over all frames"),
                       nn.Sequential(nn.GroupNorm(4, dim), nn.LeakyReLU(), nn.Conv1d(dim, dim, 3, padding=1))))
        for i in range(int(net["n_layers"])):
            rf += (kernel - 1) * hop
            stages.append((site(f"layer{i + 1}", dim, rf), _ConvBlock(dim, kernel=kernel)))
        head = site("head", bins, rf, role="head",
                    units=f"sigmoid salience of {bins} pitch bins, {step:.2f} cents apart from {f0_min} Hz",
                    place={"dim": "channels", "start": 0, "stop": bins, "cents_per_step": step},
                    f0_min_hz=f0_min, f0_max_hz=f0_max, threshold=0.006)
        stages.append((head, _Head(dim, bins)))
        super().__init__(stages)
        self.mel = _LogMel(SAMPLE_RATE, n_fft, win, hop, n_mels, float(mel.get("fmin", 0)),
                           float(mel.get("fmax", SAMPLE_RATE / 2)))
        self.hop = hop
        self.register_buffer("cent_table", torch.linspace(1200.0 * math.log2(f0_min / 10.0),
                                                          1200.0 * math.log2(f0_max / 10.0), bins))

    def preprocess(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, N]`` at 16 kHz -> log-mel ``[B, 128, 1 + N // 160]``."""
        check_clips(audio, min_samples=self.hop, who="FCPE", sample_rate=SAMPLE_RATE)  # one hop
        return self.mel(audio)

    def postprocess(self, out: torch.Tensor) -> torch.Tensor:
        """Salience ``[B, 360, T]`` -> ``[B, 2, T]``: f0 in Hz (local argmax decoder) and the confidence."""
        y = out.transpose(1, 2)  # [B, T, bins], the layout FCPE's decoder sums in
        peak, centre = y.max(dim=-1, keepdim=True)
        idx = (centre + torch.arange(-4, 5, device=out.device)).clamp(0, y.shape[-1] - 1)
        w = y.gather(-1, idx)
        cents = self.cent_table.to(out.dtype)[idx]
        mean = (cents * w).sum(-1, keepdim=True) / w.sum(-1, keepdim=True).clamp_min(1e-30)
        return torch.cat([10.0 * 2.0 ** (mean / 1200.0), peak], dim=-1).transpose(1, 2)

    def load_fcpe_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load the ``model`` state dict of a ``torchfcpe`` checkpoint (weight-normalised output layer folded)."""
        n_layers = sum(1 for s in self._sites if s.name.startswith("encoder.layer"))
        head = 3 + n_layers
        mine = {"cent_table": state["cent_table"]}
        for key in ("weight", "bias"):
            mine[f"stages.1.{key}"] = state[f"input_stack.0.{key}"]
            mine[f"stages.2.0.{key}"] = state[f"input_stack.1.{key}"]
            mine[f"stages.2.2.{key}"] = state[f"input_stack.3.{key}"]
            for i in range(n_layers):
                src, dst = f"net.encoder_layers.{i}.conformer.net", f"stages.{3 + i}"
                mine[f"{dst}.norm.{key}"] = state[f"{src}.0.{key}"]
                mine[f"{dst}.expand.{key}"] = state[f"{src}.2.{key}"]
                mine[f"{dst}.depthwise.{key}"] = state[f"{src}.4.conv.{key}"]
                mine[f"{dst}.project.{key}"] = state[f"{src}.6.{key}"]
            mine[f"stages.{head}.norm.{key}"] = state[f"norm.{key}"]
        if "output_proj.weight_v" in state:
            v, g = state["output_proj.weight_v"], state["output_proj.weight_g"]
        else:
            v = state["output_proj.parametrizations.weight.original1"]
            g = state["output_proj.parametrizations.weight.original0"]
        mine[f"stages.{head}.linear.weight"] = torch._weight_norm(v, g, 0)  # as weight_norm computes it
        mine[f"stages.{head}.linear.bias"] = state["output_proj.bias"]
        self.load_state_dict(mine, strict=True)


def load_fcpe(*, checkpoint: str | Path | None = None) -> FcpeModel:
    """FCPE with the weights bundled in ``torchfcpe`` (``fcpe_c_v001``, or a checkpoint path), frozen, in eval mode."""
    path = fcpe_checkpoint() if checkpoint is None else Path(checkpoint)
    if not path.is_file():
        raise ConfigError(f"no FCPE checkpoint at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = FcpeModel(ckpt["config_dict"])
    model.load_fcpe_state(ckpt["model"])
    return freeze(model)
