"""Reading and writing audio files (soundfile), with clear errors for bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from ontoscope.artifacts import write_atomic
from ontoscope.errors import AudioError

#: File extensions read as audio.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aif", ".aiff")


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32.

    Returns
    -------
    audio : ndarray ``[samples]`` float32
        Channels are averaged.
    sr : int
        Sample rate in Hz.

    Raises
    ------
    AudioError
        Missing, unreadable, truncated or empty files, NaN or infinite samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioError(f"{path}: cannot read audio ({e}); is it a complete WAV/FLAC/OGG/AIFF file?") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no samples")
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: NaN or infinite samples")
    return np.ascontiguousarray(audio), int(sr)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int) -> Path:
    """Write mono audio ``[samples]`` as a 32-bit float WAV (or FLAC by extension), atomically."""
    audio = np.asarray(audio, dtype=np.float32)
    suffix = Path(path).suffix.lower()
    fmt, subtype = ("FLAC", "PCM_24") if suffix == ".flac" else ("WAV", "FLOAT")
    return write_atomic(path, lambda p: sf.write(p, audio, sr, format=fmt, subtype=subtype))


def find_audio(folder: str | os.PathLike) -> list[Path]:
    """Audio files below ``folder`` (recursively), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
