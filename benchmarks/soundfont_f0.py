"""f0 on recorded instruments: how often ``measure`` and ``librosa.pyin`` read a SoundFont note off its key.

Every second key from 110 to 880 Hz (the canon's f0 range) of 22 sustained General MIDI programs of the bank
(strings, brass, reeds, flutes, choir; the organs and the accordion are left out, their registers sound octaves
or beat around the key), 1 s at velocity 100, each without and with a 6 Hz, 60-cent vibrato. A note is a
gross error when it is read more than 0.3 octave from the key's equal-tempered frequency (an octave, or an
octave and a fifth); the cents columns are over the other notes and include the bank's own tuning of each
sample (up to about 70 cents). Prints the Markdown table of ``docs/descriptors.md``. Usage:
``python benchmarks/soundfont_f0.py [--no-pyin]`` (about 3 minutes with pyin). Needs fluidsynth and a General MIDI
bank (``make soundfont``) and the ``dev`` extra (librosa).
"""

from __future__ import annotations

import sys
from pathlib import Path

import librosa
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ontoscope.descriptors import measure  # noqa: E402
from ontoscope.stimuli.soundfont import key_frequency, open_soundfont  # noqa: E402

SR = 16000
PROGRAMS = (40, 41, 42, 43, 48, 52, 56, 57, 58, 60, 61, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74)
GROSS_OCTAVES = 0.3


def render_notes(programs: tuple[int, ...] = PROGRAMS) -> tuple[pd.DataFrame, np.ndarray]:
    """The notes (``program, name, key, f0, vibrato`` table) and their audio ``[B, N]``."""
    sf = open_soundfont(None, SR)
    rows, clips = [], []
    for p in programs:
        lo, hi = sf.key_range(p)
        for key in range(lo, hi + 1, 2):
            f0 = float(key_frequency(key))
            if not 105.0 <= f0 <= 900.0:
                continue
            for depth in (0.0, 60.0):
                clips.append(sf.render_note(p, key, 100, 1.0, vibrato_rate=6.0 if depth else 0.0,
                                            vibrato_depth=depth))
                rows.append({"program": p, "name": sf.preset_name(p), "key": key, "f0": f0, "vibrato": depth})
    return pd.DataFrame(rows), np.stack(clips).astype(np.float32)


def pyin_f0(audio: np.ndarray) -> np.ndarray:
    """Median of the voiced frames of ``librosa.pyin`` (50-2000 Hz, 64 ms frames) per clip, Hz."""
    out = []
    for x in audio:
        f0, voiced, _ = librosa.pyin(x.astype(np.float64), fmin=50, fmax=2000, sr=SR, frame_length=1024)
        out.append(np.nanmedian(np.where(voiced, f0, np.nan)) if voiced.any() else np.nan)
    return np.asarray(out)


def summary(notes: pd.DataFrame, estimates: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per estimator: notes, gross errors (and which programs), median and 95th percentile of the rest (cents)."""
    out = []
    for name, est in estimates.items():
        cents = 1200 * np.log2(est / notes["f0"].to_numpy())
        gross = ~(np.abs(cents) < 1200 * GROSS_OCTAVES)
        by = notes[gross].groupby("name").size().sort_values(ascending=False)
        ok = np.abs(cents[~gross])
        out.append({"estimator": name, "notes": len(notes), "gross errors": int(gross.sum()),
                    "where": ", ".join(f"{k} {v}" for k, v in by.items()) or "–",
                    "median cents (others)": round(float(np.median(ok)), 2),
                    "p95 cents (others)": round(float(np.percentile(ok, 95)), 1)})
    return pd.DataFrame(out)


def main(argv: list[str]) -> None:
    notes, audio = render_notes()
    estimates = {"ontoscope measure": measure(audio, SR)["f0"].to_numpy()}
    if "--no-pyin" not in argv:
        estimates["librosa.pyin"] = pyin_f0(audio)
    table = summary(notes, estimates)
    print(f"{len(notes)} notes of {notes['program'].nunique()} programs at {SR} Hz\n")
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in row) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
