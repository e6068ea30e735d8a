"""A plain numpy implementation of the signal model, one sine per partial.

It is the usual cumulative-phase additive synthesizer, written for clarity, not
speed: tests check :func:`ontoscope.stimuli.synth.synthesize` against it and the
synthesis benchmark measures the speed ratio. Same signal model
(``docs/synthesis.md``), same nuisances, float64 throughout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ontoscope.stimuli.factors import CANON, FADE_SECONDS


def synthesize_reference(
    values: Mapping[str, np.ndarray], partial_phase: np.ndarray, vibrato_phase: np.ndarray,
    tremolo_phase: np.ndarray, noise: np.ndarray, sr: int,
) -> np.ndarray:
    """Render ``[B, N]`` clips; arguments as in :class:`ontoscope.stimuli.synth.Nuisance`."""
    batch, n = noise.shape
    n_partials = partial_phase.shape[1]
    t = np.arange(n) / sr
    out = np.zeros((batch, n))
    for b in range(batch):
        v = {}
        for name, f in CANON.items():
            x = float(np.asarray(values.get(name, f.default), dtype=np.float64).reshape(-1)[b]
                      if np.ndim(values.get(name, f.default)) else values.get(name, f.default))
            v[name] = f.default if math.isnan(x) else x
        f_t = v["f0"] * 2.0 ** (v["vibrato_depth"] / 1200 * np.sin(
            2 * np.pi * v["vibrato_rate"] * t + vibrato_phase[b]))
        top0 = v["f0"] * 2.0 ** (v["vibrato_depth"] / 1200)
        beat = v["beat_rate"] if v["beat_depth"] > 0 else 0.0
        h = np.zeros(n)
        for k in range(1, n_partials + 1):
            s_k = math.sqrt(1 + v["inharmonicity"] * k * k)
            if k * s_k * top0 + beat >= sr / 2:
                continue
            sigma = 1.0 if k % 2 else -1.0
            a = 10.0 ** ((v["brightness"] * math.log2(k) + sigma * v["odd_even"] / 2) / 20)
            freq = k * s_k * f_t
            phase = 2 * np.pi * (np.cumsum(freq) - freq[0]) / sr + partial_phase[b, k - 1]
            h += a * np.sin(phase)
            h += a * v["beat_depth"] * np.sin(phase + 2 * np.pi * v["beat_rate"] * t)
        ramp = np.minimum(0.8 * t / v["attack"], 1.0)
        trem = 1 + v["tremolo_depth"] * np.sin(2 * np.pi * v["tremolo_rate"] * t + tremolo_phase[b])
        fade = np.minimum((n - np.arange(n)) / (sr * FADE_SECONDS), 1.0)
        env = ramp * trem * fade
        eh, en = env * h, env * noise[b]
        gain = math.sqrt((eh ** 2).sum() / ((en ** 2).sum() * 10.0 ** (v["noise"] / 10)))
        s = eh + gain * en
        out[b] = s * 10.0 ** (v["loudness"] / 20) / math.sqrt((s ** 2).mean())
    return out
