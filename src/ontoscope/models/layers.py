"""Building blocks of the model family: strided and transposed convs with exact lengths, residual units,
an anti-aliasing low-pass, and a residual vector quantizer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Downsample1d(nn.Module):
    """Strided conv whose output has exactly ``L / stride`` frames for ``L`` divisible by ``stride``.

    Padding is split ``(k - s) // 2`` left and the rest right, so frame ``j``
    is centred on input samples ``j * s ... j * s + s``.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride)
        total = max(kernel - stride, 0)
        self.pad = (total // 2, total - total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad))


class Upsample1d(nn.Module):
    """Transposed conv that maps ``L`` frames to exactly ``L * stride`` samples (the adjoint geometry of
    :class:`Downsample1d`)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose1d(c_in, c_out, kernel, stride=stride)
        total = max(kernel - stride, 0)
        self.crop = (total // 2, total - total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y[..., self.crop[0]: y.shape[-1] - self.crop[1]]


class SameConv1d(nn.Conv1d):
    """Stride-1 conv with 'same' output length (any kernel, any dilation)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1) -> None:
        super().__init__(c_in, c_out, kernel, dilation=dilation)
        total = dilation * (kernel - 1)
        self._pad = (total // 2, total - total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self._pad))


class Snake1d(nn.Module):
    """Snake activation ``x + sin^2(a x) / a`` with ``a`` learnt per channel (Ziyin, Hartwig & Ueda 2020,
    "Neural networks fail to learn periodic functions and how to fix it", NeurIPS), as DAC and BigVGAN use it:
    a periodic inductive bias. Input ``[B, C, T]``; ``a`` starts at 1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha
        return x + torch.sin(a * x).pow(2) / (a + 1e-9)


def activation(kind: str, channels: int) -> nn.Module:
    """The family's nonlinearity: ``elu`` or ``snake`` (:class:`Snake1d` over ``channels``)."""
    if kind == "elu":
        return nn.ELU()
    if kind == "snake":
        return Snake1d(channels)
    raise ValueError(f"unknown activation {kind!r}; use elu or snake")


class ResUnit1d(nn.Module):
    """SEANet residual unit: activation, dilated conv (k=3), activation, 1x1 conv, plus the input."""

    def __init__(self, channels: int, dilation: int, kernel: int = 3, act: str = "elu") -> None:
        super().__init__()
        hidden = max(channels // 2, 1)
        self.block = nn.Sequential(activation(act, channels), SameConv1d(channels, hidden, kernel, dilation),
                                   activation(act, hidden), nn.Conv1d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def lowpass_kernel(stride: int, taps_per_stride: int = 4) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass with cutoff at ``0.5 / stride`` cycles per sample (the band that
    survives decimation by ``stride``), ``taps_per_stride * stride + 1`` taps, unit DC gain."""
    n = taps_per_stride * stride + 1
    t = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    h = torch.sinc(t / stride) * torch.kaiser_window(n, periodic=False, beta=8.0, dtype=torch.float64)
    return (h / h.sum()).to(torch.float32)


class Blur1d(nn.Module):
    """Fixed depthwise low-pass before a decimation (BlurPool, Zhang 2019, with a windowed sinc)."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        k = lowpass_kernel(stride)
        self.register_buffer("kernel", k.expand(channels, 1, -1).clone(), persistent=False)
        self.channels = channels
        self.pad = (k.numel() // 2, k.numel() // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(F.pad(x, self.pad, mode="reflect" if x.shape[-1] > self.pad[0] else "constant"),
                        self.kernel, groups=self.channels)


class ResidualVQ(nn.Module):
    """Residual vector quantizer (Zeghidour et al. 2021, SoundStream) with a straight-through estimator.

    Input and output ``[B, D, T]``. After each forward, ``self.loss`` holds the
    codebook + commitment loss (van den Oord et al. 2017) and ``self.codes`` the
    code indices ``[B, codebooks, T]``.
    """

    def __init__(self, dim: int, codebooks: int, size: int, commitment: float = 0.25) -> None:
        super().__init__()
        self.codebooks = nn.Parameter(torch.randn(codebooks, size, dim) / math.sqrt(dim))
        self.commitment = commitment
        self.loss = torch.zeros(())
        self.codes: torch.Tensor | None = None

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantized ``[B, D, T]`` (no straight-through) and codes ``[B, codebooks, T]``."""
        flat = z.transpose(1, 2).reshape(-1, z.shape[1])
        residual, out, codes = flat, torch.zeros_like(flat), []
        for book in self.codebooks:
            idx = torch.cdist(residual, book).argmin(dim=1)
            chosen = book[idx]
            out = out + chosen
            residual = residual - chosen
            codes.append(idx)
        q = out.reshape(z.shape[0], z.shape[2], z.shape[1]).transpose(1, 2)
        return q, torch.stack(codes, 1).reshape(z.shape[0], z.shape[2], -1).transpose(1, 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        q, self.codes = self.quantize(z)
        self.loss = F.mse_loss(q, z.detach()) + self.commitment * F.mse_loss(z, q.detach())
        return z + (q - z).detach()
