"""Spectrogram front ends and their inverse: STFT magnitude, log-mel, Griffin-Lim."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

LOG_FLOOR = 1e-5


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), as librosa's default ``htk=False``."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Slaney-normalised triangular mel filters ``[n_mels, n_fft // 2 + 1]`` (Slaney 1998, Auditory Toolbox;
    equal to ``librosa.filters.mel`` with its defaults)."""
    fmax = sr / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


class Spectrogram(nn.Module):
    """Audio ``[B, samples]`` to log-magnitude ``[B, 1, F, frames]``: ``log(|STFT| + 1e-5)`` or
    ``log(mel power + 1e-5)``; Hann window, centred frames, ``frames = 1 + samples // hop``."""

    def __init__(self, sr: int, n_fft: int, hop: int, kind: str = "stft", n_mels: int = 64) -> None:
        super().__init__()
        self.n_fft, self.hop, self.kind = n_fft, hop, kind
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        fb = torch.from_numpy(mel_filterbank(sr, n_fft, n_mels)) if kind == "logmel" else torch.zeros(0)
        self.register_buffer("mel", fb, persistent=False)

    @property
    def bins(self) -> int:
        return self.mel.shape[0] if self.kind == "logmel" else self.n_fft // 2 + 1

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """``|STFT|`` ``[B, n_fft // 2 + 1, frames]``."""
        spec = torch.stft(audio, self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant",
                            return_complex=True)
        return spec.abs()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        mag = self.magnitude(audio)
        if self.kind == "logmel":
            mag = torch.einsum("mf,bft->bmt", self.mel, mag.pow(2))
        return torch.log(mag + LOG_FLOOR).unsqueeze(1)

    def to_magnitude(self, logspec: torch.Tensor) -> torch.Tensor:
        """Invert the log (and, for log-mel, the filterbank by least squares): ``[B, F, T]`` to ``|STFT|``."""
        mag = torch.exp(logspec).sub(LOG_FLOOR).clamp_min(0)
        if self.kind == "logmel":
            power = torch.einsum("fm,bmt->bft", torch.linalg.pinv(self.mel), mag)
            mag = power.clamp_min(0).sqrt()
        return mag

    def griffin_lim(self, magnitude: torch.Tensor, n_iter: int = 32, length: int | None = None,
                    seed: int = 0) -> torch.Tensor:
        """Audio from an STFT magnitude ``[B, F, T]`` by Griffin & Lim (1984) with momentum 0.99
        (Perraudin et al. 2013)."""
        g = torch.Generator(device="cpu").manual_seed(seed)
        phase = torch.rand(magnitude.shape, generator=g).to(magnitude.device) * 2 * torch.pi
        spec = magnitude * torch.exp(1j * phase)
        prev = torch.zeros_like(spec)
        audio = None
        for _ in range(n_iter):
            audio = torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True, length=length)
            rebuilt = torch.stft(audio, self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant",
                            return_complex=True)
            accel = rebuilt + 0.99 * (rebuilt - prev)
            prev = rebuilt
            spec = magnitude * torch.exp(1j * torch.angle(accel))
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True, length=length)
