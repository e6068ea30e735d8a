"""Input validation shared by every descriptor."""

from __future__ import annotations

import numpy as np
import torch

from ontoscope.errors import AudioError, SampleRateError


def as_audio_batch(audio: np.ndarray | torch.Tensor, sr: int, min_samples: int = 1) -> torch.Tensor:
    """Validate audio and return it as a float32 tensor of shape ``[batch, samples]``.

    Parameters
    ----------
    audio : array or tensor, ``[samples]`` or ``[batch, samples]``
        Mono audio, float, in [-1, 1] full scale.
    sr : int
        Sample rate in Hz.
    min_samples : int
        Shortest clip accepted.

    Raises
    ------
    AudioError
        Empty audio, wrong shape, NaN or infinite samples, non-numeric data.
    SampleRateError
        A sample rate that is not a positive integer.
    """
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise SampleRateError(f"sample rate must be a positive integer in Hz, got {sr!r}")
    if not isinstance(audio, torch.Tensor):
        arr = np.asarray(audio)
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise AudioError(f"audio must be real numbers, got dtype {arr.dtype}")
        audio = torch.from_numpy(np.ascontiguousarray(arr))
    elif audio.is_complex() or not (audio.is_floating_point() or audio.dtype in (
        torch.int16, torch.int32, torch.int64, torch.uint8, torch.int8)):
        raise AudioError(f"audio must be real numbers, got dtype {audio.dtype}")
    if audio.ndim == 1:
        audio = audio.unsqueeze(0)
    if audio.ndim != 2:
        raise AudioError(
            f"audio must have shape [samples] or [batch, samples], got {tuple(audio.shape)}; "
            "mix multichannel audio to mono first"
        )
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise AudioError(f"audio is empty (shape {tuple(audio.shape)})")
    if audio.shape[1] < min_samples:
        raise AudioError(
            f"clips of {audio.shape[1]} samples are too short; at least {min_samples} are needed "
            f"({min_samples / sr * 1000:.0f} ms at {sr} Hz)"
        )
    audio = audio.to(torch.float32)
    bad = ~torch.isfinite(audio)
    if bad.any():
        rows = torch.nonzero(bad.any(dim=1)).flatten().tolist()
        raise AudioError(
            f"audio has NaN or infinite samples (clips {rows[:5]}{'...' if len(rows) > 5 else ''}); "
            "clean or drop them first"
        )
    return audio
