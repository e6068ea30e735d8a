"""Resampling of model input.

Every model expects audio at its own ``sample_rate``; :func:`prepare` checks a
batch of audio and brings it there. The resampler is a windowed-sinc
polyphase filter run in torch on the whole batch (``julius.resample_frac``,
Défossez's port of the resampler of Smith & Gossett 1984 used by Demucs):
zero-phase, differentiable, on any device, with its pass band ending at
``rolloff`` times the lower Nyquist frequency. Where ``julius`` is not
installed, ``scipy.signal.resample_poly`` (a Kaiser-windowed polyphase FIR)
is used instead, which runs in numpy and carries no gradient.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from typing import Any

import numpy as np
import torch
from scipy.signal import resample_poly

from ontoscope.errors import AudioError, SampleRateError

__all__ = ["as_batch", "prepare", "resample"]


def _check_rate(sr: Any, what: str = "sample rate") -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise SampleRateError(f"{what} must be a positive integer in Hz, got {sr!r}")
    return int(sr)


def as_batch(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Audio ``[samples]`` or ``[batch, samples]`` as a float32 tensor ``[batch, samples]``.

    Raises :class:`~ontoscope.errors.AudioError` for empty, complex, non-numeric,
    multichannel-shaped or non-finite audio.
    """
    if not isinstance(audio, torch.Tensor):
        arr = np.asarray(audio)
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise AudioError(f"audio must be real numbers, got dtype {arr.dtype}")
        audio = torch.from_numpy(np.ascontiguousarray(arr))
    elif audio.is_complex() or audio.dtype == torch.bool:
        raise AudioError(f"audio must be real numbers, got dtype {audio.dtype}")
    if audio.ndim == 1:
        audio = audio.unsqueeze(0)
    if audio.ndim != 2:
        raise AudioError(f"audio must have shape [samples] or [batch, samples], got {tuple(audio.shape)}; "
                         "mix multichannel audio to mono first")
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise AudioError(f"audio is empty (shape {tuple(audio.shape)})")
    audio = audio.to(torch.float32)
    if not bool(torch.isfinite(audio).all()):
        raise AudioError("audio has NaN or infinite samples; clean or drop those clips first")
    return audio


def resample(audio: torch.Tensor, sr: int, target_sr: int, rolloff: float = 0.945, zeros: int = 24) -> torch.Tensor:
    """Resample ``audio`` ``[..., samples]`` from ``sr`` to ``target_sr`` Hz.

    Parameters
    ----------
    audio : Tensor ``[..., samples]``
        Any leading shape; resampled along the last axis.
    sr, target_sr : int
        Input and output rates in Hz.
    rolloff : float
        Pass-band edge as a fraction of the lower of the two Nyquist
        frequencies (content above it is attenuated, not aliased).
    zeros : int
        Zero crossings of the windowed sinc on each side (filter length).

    Returns
    -------
    Tensor ``[..., round(samples * target_sr / sr)]``, same dtype and device; the
    same tensor when the rates are equal.
    """
    sr, target_sr = _check_rate(sr), _check_rate(target_sr, "target sample rate")
    if sr == target_sr:
        return audio
    n_out = int(round(audio.shape[-1] * target_sr / sr))
    if importlib.util.find_spec("julius") is None:  # pragma: no cover - exercised only without julius
        return _resample_scipy(audio, sr, target_sr, n_out)
    g = math.gcd(sr, target_sr)
    resampler = _resampler(sr // g, target_sr // g, zeros, float(rolloff), str(audio.device))
    return resampler(audio.to(resampler.kernel.dtype), output_length=n_out).to(audio.dtype)


@functools.lru_cache(maxsize=16)
def _resampler(old: int, new: int, zeros: int, rolloff: float, device: str) -> torch.nn.Module:
    """A ``julius.ResampleFrac`` (its windowed-sinc kernels built once per rate pair and device)."""
    import julius  # noqa: PLC0415  # optional: julius (the adapters extra); scipy resamples without it

    return julius.ResampleFrac(old, new, zeros=zeros, rolloff=rolloff).to(device)


def _resample_scipy(audio: torch.Tensor, sr: int, target_sr: int, n_out: int) -> torch.Tensor:
    g = math.gcd(sr, target_sr)
    x = audio.detach().cpu().double().numpy()
    y = resample_poly(x, target_sr // g, sr // g, axis=-1)[..., :n_out]
    if y.shape[-1] < n_out:
        y = np.concatenate([y, np.zeros((*y.shape[:-1], n_out - y.shape[-1]))], axis=-1)
    return torch.from_numpy(np.ascontiguousarray(y)).to(dtype=audio.dtype, device=audio.device)


def prepare(audio: np.ndarray | torch.Tensor, sr: int, model: Any) -> torch.Tensor:
    """Audio ready for ``model``: checked, float32 ``[batch, samples]``, at ``model.sample_rate``.

    ``model`` is anything with a ``sample_rate`` attribute (every
    :class:`~ontoscope.models.protocol.AudioModel`). The result lies on the
    device of the model's parameters when it has any.
    """
    x = as_batch(audio)
    x = resample(x, _check_rate(sr), _check_rate(getattr(model, "sample_rate", None), "model sample rate"))
    params = getattr(model, "parameters", None)
    if callable(params):
        first = next(iter(params()), None)
        if first is not None:
            x = x.to(first.device)
    return x
