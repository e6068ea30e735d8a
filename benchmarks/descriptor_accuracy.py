"""Descriptor accuracy: the round trip through the synthesizer and the agreement with reference libraries.

Prints the Markdown tables of ``docs/descriptors.md``. Usage:
``python benchmarks/descriptor_accuracy.py [N]`` (N clips per round trip, default 512).
Needs the ``dev`` extra (librosa, essentia).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ontoscope.descriptors import measure  # noqa: E402
from ontoscope.descriptors.accuracy import round_trip_errors  # noqa: E402
from ontoscope.descriptors.pitch import f0_track  # noqa: E402
from ontoscope.descriptors.spectral import spectral_features  # noqa: E402
from ontoscope.stimuli import FactorSpace, render  # noqa: E402

SR = 16000
STATIC = ["f0", "loudness", "brightness", "odd_even", "inharmonicity", "noise", "attack"]


def _markdown(df: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return "–" if v != v else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def round_trip(names: list[str] | None, n: int, seed: int) -> pd.DataFrame:
    table = FactorSpace.create(names).sample(n, seed=seed)
    measured = measure(render(table, sr=SR, seconds=1.0), SR)
    measured.insert(0, "clip", table["clip"].to_numpy())
    acc = round_trip_errors(table, measured)
    return acc[acc["n"] > 0].drop(columns=["where"])


def references(seed: int = 5) -> pd.DataFrame:
    import essentia
    import essentia.standard as es
    import librosa

    essentia.log.infoActive = False
    essentia.log.warningActive = False
    rows = []
    table = FactorSpace.create().sample(32, seed=seed)
    x = render(table, sr=SR, seconds=1.0)
    ours = spectral_features(x, SR, n_fft=2048, hop=512)
    y = x.numpy()
    ref = {"centroid": librosa.feature.spectral_centroid(y=y, sr=SR)[:, 0],
           "flatness": librosa.feature.spectral_flatness(y=y)[:, 0],
           "rolloff": librosa.feature.spectral_rolloff(y=y, sr=SR)[:, 0],
           "rms": librosa.feature.rms(y=y)[:, 0]}
    for k, r in ref.items():
        o = ours[k].numpy()
        keep = np.abs(r) > 1e-6 * np.abs(r).max()
        rel = np.abs(o[keep] - r[keep]) / np.abs(r[keep])
        rows.append({"descriptor": k, "reference": f"librosa.feature ({k})", "clips": len(y),
                     "agreement": f"largest frame rel. diff {rel.max():.1e}", "required": "≤ 1 %"})
    # f0 against pyin on harmonic stimuli without beating or vibrato
    h = FactorSpace.create(["f0", "loudness", "brightness", "odd_even", "noise", "attack", "tremolo_rate",
                            "tremolo_depth"]).sample(24, seed=seed)
    xh = render(h, sr=SR, seconds=1.0)
    ours_f0 = measure(xh, SR)["f0"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_f0 = np.array([np.nanmedian(librosa.pyin(xh[i].numpy(), fmin=f / 2 ** 0.5, fmax=f * 2 ** 0.5, sr=SR,
                                                     frame_length=1024, hop_length=320, resolution=0.02)[0])
                           for i, f in enumerate(h["f0"])])
    cents = np.abs(1200 * np.log2(ours_f0 / ref_f0))
    truth = np.abs(1200 * np.log2(ref_f0 / h["f0"].to_numpy()))
    rows.append({"descriptor": "f0", "reference": "librosa.pyin (resolution 0.02 semitone)", "clips": len(h),
                 "agreement": f"median {np.median(cents):.2f} cents (pyin vs truth: {np.median(truth):.2f})",
                 "required": "≤ 10 cents median"})
    # inharmonicity: essentia.Inharmonicity on HarmonicPeaks, trend
    t = FactorSpace.create(["inharmonicity"], fixed={"f0": 220.0}).sample(16, seed=seed)
    xi = render(t, sr=SR, seconds=1.0).numpy()
    window = es.Windowing(type="blackmanharris92", size=4096)
    spectrum = es.Spectrum(size=4096)
    peaks = es.SpectralPeaks(sampleRate=SR, maxPeaks=200, minFrequency=20, maxFrequency=SR / 2 - 1,
                             magnitudeThreshold=0, orderBy="frequency")
    harmonic = es.HarmonicPeaks(maxHarmonics=64, tolerance=0.2)
    inh = es.Inharmonicity()

    def frames(clip: np.ndarray) -> list[float]:
        out = []
        for s in range(2048, len(clip) - 4096, 2048):
            f, m = peaks(spectrum(window(clip[s:s + 4096].astype(np.float32))))
            keep = f > 0
            out.append(inh(*harmonic(f[keep], m[keep], 220.0)))
        return out

    ref_i = [np.median(frames(c)) for c in xi]
    ours_i = measure(xi, SR)["inharmonicity"].to_numpy()
    rows.append({"descriptor": "inharmonicity", "reference": "essentia Inharmonicity (its own definition)",
                 "clips": len(xi), "agreement": f"Spearman {spearmanr(ours_i, ref_i)[0]:.3f}",
                 "required": "same trend"})
    # attack: essentia LogAttackTime on its Envelope, trend
    a = FactorSpace.create(["f0", "loudness", "brightness", "odd_even", "noise", "attack"],
                           ranges={"noise": (10.0, 40.0)}).sample(40, seed=seed)
    xa = render(a, sr=SR, seconds=1.0)
    ours_a = measure(xa, SR)["attack"].to_numpy()
    env = es.Envelope(sampleRate=SR, attackTime=1.0, releaseTime=50.0)
    lat = es.LogAttackTime(sampleRate=SR, startAttackThreshold=0.1, stopAttackThreshold=0.9)
    ref_a = np.array([10 ** lat(env(c.astype(np.float32)))[0] for c in xa.numpy()])
    rows.append({"descriptor": "attack", "reference": "essentia LogAttackTime (10-90 %)", "clips": len(xa),
                 "agreement": f"Spearman {spearmanr(ours_a, ref_a)[0]:.3f}; median ratio "
                              f"{np.median(ours_a / ref_a):.2f}", "required": "same trend"})
    # vibrato rate: essentia Vibrato on our f0 tracks
    v = FactorSpace.create(["f0", "loudness", "vibrato_rate", "vibrato_depth"],
                           ranges={"vibrato_depth": (30.0, 100.0)}).sample(48, seed=seed)
    xv = render(v, sr=SR, seconds=1.0)
    track = f0_track(xv, SR)
    f0, times = track.value, track.times
    algo = es.Vibrato(sampleRate=1.0 / float(times[1] - times[0]), minFrequency=2.5, maxFrequency=10.0,
                      minExtend=40.0, maxExtend=250.0)
    theirs = []
    for track in f0.numpy():
        freq, _ = algo(np.nan_to_num(track, nan=0.0).astype(np.float32))
        theirs.append(np.median(freq[freq > 0]) if (freq > 0).any() else np.nan)
    theirs = np.asarray(theirs)
    ours_v = measure(xv, SR)["vibrato_rate"].to_numpy()
    both = np.isfinite(theirs) & np.isfinite(ours_v)
    rows.append({"descriptor": "vibrato_rate", "reference": "essentia Vibrato on the same f0 track",
                 "clips": int(both.sum()),
                 "agreement": f"median |diff| {np.median(np.abs(theirs - ours_v)[both]):.3f} Hz "
                              f"(essentia vs truth {np.median(np.abs(theirs - v['vibrato_rate'])[both]):.3f} Hz)",
                 "required": "same value"})
    return pd.DataFrame(rows)


def main(argv: list[str]) -> None:
    torch.set_num_threads(2)
    n = int(argv[0]) if argv else 512
    print(f"### Every factor but inharmonicity varied ({n} clips, seed 0)\n")
    print(_markdown(round_trip(None, n, 0)))
    print(f"\n### Static factors with inharmonicity ({n} clips, seed 1)\n")
    print(_markdown(round_trip(STATIC, n, 1)))
    print("\n### Reference libraries\n")
    print(_markdown(references()))


if __name__ == "__main__":
    main(sys.argv[1:])
