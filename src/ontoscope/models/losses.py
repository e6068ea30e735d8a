"""Training losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def stft_magnitude(x: torch.Tensor, n_fft: int) -> torch.Tensor:
    """``|STFT|`` with a Hann window and hop ``n_fft // 4``, ``[B, n_fft // 2 + 1, frames]``."""
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    return torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True).abs()


def multi_resolution_stft_loss(
    pred: torch.Tensor, target: torch.Tensor, ffts: tuple[int, ...] = (256, 512, 1024), eps: float = 1e-3,
) -> torch.Tensor:
    """Spectral convergence plus log-magnitude L1, averaged over STFT resolutions.

    Yamamoto et al. 2020 (Parallel WaveGAN), eq. 4-6. ``pred``, ``target``: audio ``[B, samples]``.
    """
    total = pred.new_zeros(())
    for n_fft in ffts:
        p, t = stft_magnitude(pred, n_fft), stft_magnitude(target, n_fft)
        sc = torch.linalg.vector_norm(t - p, dim=(1, 2)) / (torch.linalg.vector_norm(t, dim=(1, 2)) + eps)
        total = total + sc.mean() + F.l1_loss(torch.log(p + eps), torch.log(t + eps))
    return total / len(ffts)
