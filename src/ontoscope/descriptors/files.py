"""Measuring files, folders of files, and stimulus sets."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ontoscope.descriptors import measure
from ontoscope.errors import AudioError, OntoscopeError
from ontoscope.stimuli.audio_io import find_audio, read_audio
from ontoscope.stimuli.dataset import StimulusSet


def measure_path(
    path: str | os.PathLike, fmin: float = 50.0, fmax: float = 2000.0, progress: bool | None = None,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Measure a WAV/FLAC file, a folder of audio files, or a stimulus set.

    Returns
    -------
    table : DataFrame
        One row per clip. For a stimulus set the first column is ``clip``
        (joining its ``factors.parquet``); for files it is ``file`` (the path
        relative to ``path``), and files that could not be read keep a row of
        NaN with the problem in ``error``.
    bad : list of (name, reason)
        The files that could not be measured.
    """
    path = Path(path)
    if (path / "manifest.json").is_file():
        ds = StimulusSet.load(path)
        parts = []
        for idx, audio in ds.chunks(256):
            t = measure(audio, ds.sr, fmin=fmin, fmax=fmax, progress=progress)
            t.insert(0, "clip", ds.factors["clip"].to_numpy()[idx])
            parts.append(t)
        return pd.concat(parts, ignore_index=True), []
    if path.is_file():
        files, base = [path], path.parent
    elif path.is_dir():
        files, base = find_audio(path), path
        if not files:
            raise AudioError(f"{path}: no audio files (.wav, .flac, .ogg, .aif, .aiff) and no stimulus set here")
    else:
        raise AudioError(f"{path}: no such file or directory")
    groups: dict[tuple[int, int], list[tuple[str, np.ndarray]]] = defaultdict(list)
    bad: list[tuple[str, str]] = []
    for f in files:
        name = str(f.relative_to(base))
        try:
            audio, sr = read_audio(f)
        except AudioError as e:
            bad.append((name, str(e).split(": ", 1)[-1]))
            continue
        groups[(sr, audio.shape[0])].append((name, audio))
    parts = []
    for (sr, _), items in groups.items():
        try:
            t = measure(np.stack([a for _, a in items]), sr, fmin=fmin, fmax=min(fmax, sr / 2 * 0.9),
                        progress=progress)
        except OntoscopeError as e:
            bad.extend((name, str(e)) for name, _ in items)
            continue
        t.insert(0, "file", [n for n, _ in items])
        t.insert(1, "sr", sr)
        parts.append(t)
    if bad:
        parts.append(pd.DataFrame({"file": [n for n, _ in bad], "error": [w for _, w in bad]}))
    if len(bad) == len(files) and not [p for p in parts if "error" not in p]:
        raise AudioError(f"{path}: none of the {len(files)} audio files could be measured "
                         f"(first: {bad[0][0]}: {bad[0][1]})")
    table = pd.concat(parts, ignore_index=True)
    if "error" not in table:
        table["error"] = None
    order = {n: i for i, n in enumerate(str(f.relative_to(base)) for f in files)}
    table = table.sort_values("file", key=lambda s: s.map(order)).reset_index(drop=True)
    return table, bad
