"""Descriptor speed: our batched torch descriptors against librosa, on the same clips.

Every row times ours and the reference on the same batch (best of 3 after a
warm-up, ``torch.set_num_threads(2)``) and says how well the two agree.
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import torch

from benchmarks.common import best_of
from ontoscope.descriptors.pitch import clip_f0, f0_track
from ontoscope.descriptors.spectral import spectral_features
from ontoscope.stimuli.factors import FactorSpace
from ontoscope.stimuli.synth import render

TITLE = "Descriptors (16 kHz, 1 s clips, every factor varied)"
NOTES = (
    "Spectral set: centroid, spread (bandwidth p=2), flatness, rolloff (0.85) and RMS, "
    "n_fft 2048, hop 512; librosa computes one STFT per feature, as its API does. "
    "f0: ours is the whole `f0_track` (SHS coarse pass, YIN with sub-sample refinement every "
    "5 ms, pitch-synchronous partial analysis that removes the beating bias); librosa.yin runs "
    "with the same range (50-2000 Hz), hop (80 samples) and a 642-sample frame (two periods "
    "of fmin). pyin (resolution 0.1 semitone, same range and hop) is timed on the first 8 "
    "clips. Agreement: spectral, the largest relative difference of any frame value; f0, the "
    "median over clips of |ours - reference| of the clip medians, in cents."
)


def _spectral_librosa(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    return {
        "centroid": librosa.feature.spectral_centroid(y=y, sr=sr)[:, 0],
        "spread": librosa.feature.spectral_bandwidth(y=y, sr=sr)[:, 0],
        "flatness": librosa.feature.spectral_flatness(y=y)[:, 0],
        "rolloff": librosa.feature.spectral_rolloff(y=y, sr=sr)[:, 0],
        "rms": librosa.feature.rms(y=y)[:, 0],
    }


def _cents(a: np.ndarray, b: np.ndarray) -> float:
    d = 1200 * np.log2(np.asarray(a, dtype=np.float64) / np.asarray(b, dtype=np.float64))
    return float(np.nanmedian(np.abs(d)))


def run(batch: int = 64) -> list[dict]:
    torch.set_num_threads(2)
    sr, seconds = 16000, 1.0
    table = FactorSpace.create().sample(batch, seed=0)
    audio = render(table, sr, seconds)
    y = audio.numpy()
    rows = []

    # spectral set
    ours_s = best_of(lambda: spectral_features(audio, sr))
    ref_s = best_of(lambda: _spectral_librosa(y, sr))
    ours = spectral_features(audio, sr)
    ref = _spectral_librosa(y, sr)
    worst = max(float(np.max(np.abs(ours[k].numpy() - v) / np.maximum(np.abs(v), 1e-12)))
                for k, v in ref.items())
    rows.append({"benchmark": f"spectral set, {batch} clips", "ours_s": ours_s, "reference_s": ref_s,
                 "speedup": ref_s / ours_s, "agreement": f"max rel. diff {worst:.1e}"})

    # f0 against librosa.yin
    kw = {"fmin": 50.0, "fmax": 2000.0, "sr": sr, "frame_length": 642, "hop_length": 80}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours_f = best_of(lambda: f0_track(audio, sr))
        ref_f = best_of(lambda: librosa.yin(y, **kw))
        yin_clip = np.median(librosa.yin(y, **kw), axis=-1)
    ours_clip = clip_f0(f0_track(audio, sr)).value.numpy()
    rows.append({"benchmark": f"f0 track vs librosa.yin, {batch} clips", "ours_s": ours_f,
                 "reference_s": ref_f, "speedup": ref_f / ours_f,
                 "agreement": f"median {_cents(ours_clip, yin_clip):.1f} cents "
                              f"(truth: ours {_cents(ours_clip, table['f0']):.2f}, "
                              f"yin {_cents(yin_clip, table['f0']):.1f})"})

    # f0 against librosa.pyin (slow: a subset)
    sub = 8
    ya, aa = y[:sub], audio[:sub]
    pkw = {"fmin": 50.0, "fmax": 2000.0, "sr": sr, "frame_length": 642, "hop_length": 80}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours_p = best_of(lambda: f0_track(aa, sr))
        ref_p = best_of(lambda: librosa.pyin(ya, **pkw), repeat=1)
        pyin_clip = np.nanmedian(librosa.pyin(ya, **pkw)[0], axis=-1)
    ours_sub = clip_f0(f0_track(aa, sr)).value.numpy()
    rows.append({"benchmark": f"f0 track vs librosa.pyin, {sub} clips", "ours_s": ours_p,
                 "reference_s": ref_p, "speedup": ref_p / ours_p,
                 "agreement": f"median {_cents(ours_sub, pyin_clip):.1f} cents "
                              f"(truth: ours {_cents(ours_sub, table['f0'][:sub]):.2f}, "
                              f"pyin {_cents(pyin_clip, table['f0'][:sub]):.1f})"})
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
