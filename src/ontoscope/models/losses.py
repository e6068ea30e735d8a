"""Training losses."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ontoscope.models.frontend import mel_filterbank


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


@functools.lru_cache(maxsize=32)
def _mel_bands(sr: int, n_fft: int) -> torch.Tensor:
    """The mel filters of one window of :func:`multi_scale_mel_loss`, ``[max(5, n_fft // 8), n_fft // 2 + 1]``."""
    return torch.from_numpy(mel_filterbank(sr, n_fft, max(5, n_fft // 8)))


def multi_scale_mel_loss(
    pred: torch.Tensor, target: torch.Tensor, sr: int, windows: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048),
    eps: float = 1e-5,
) -> torch.Tensor:
    """L1 between log mel magnitudes, averaged over window lengths (hop a quarter window).

    The multi-scale mel loss of Kumar et al. 2023 (DAC, "High-Fidelity Audio Compression with Improved
    RVQGAN", sec. 3.4), with ``window // 8`` mel bands per window (at least 5), so that the longest windows
    resolve the harmonics of low notes. ``pred``, ``target``: audio ``[B, samples]`` at ``sr`` Hz.
    """
    total = pred.new_zeros(())
    for n_fft in windows:
        fb = _mel_bands(sr, n_fft).to(pred.device, pred.dtype)
        p = torch.einsum("mf,bft->bmt", fb, stft_magnitude(pred, n_fft))
        t = torch.einsum("mf,bft->bmt", fb, stft_magnitude(target, n_fft))
        total = total + F.l1_loss(torch.log10(p.clamp_min(eps)), torch.log10(t.clamp_min(eps)))
    return total / len(windows)
