"""Synthesis speed: ours against a one-sine-per-partial numpy reference, at equal output."""

from __future__ import annotations

import functools

import numpy as np
import torch

from benchmarks.common import best_of
from ontoscope.stimuli.factors import FactorSpace
from ontoscope.stimuli.reference import synthesize_reference
from ontoscope.stimuli.synth import Nuisance, render, synthesize

TITLE = "Synthesis (16 kHz, 1 s clips, up to 64 partials, every factor varied)"


def run() -> list[dict]:
    torch.set_num_threads(2)
    sr, seconds = 16000, 1.0
    n = int(sr * seconds)
    rows = []
    for label, names, batch in [
        ("harmonic (wavetable)", None, 16),
        ("inharmonic (additive)", ["f0", "loudness", "brightness", "inharmonicity", "vibrato_depth",
                                   "vibrato_rate", "beat_depth", "beat_rate"], 16),
    ]:
        table = FactorSpace.create(names, ranges={"f0": (110, 220)}).sample(batch, seed=0)
        nui = Nuisance.from_seeds(table["seed"].to_numpy(), n)
        values = {c: table[c].to_numpy() for c in table.columns}
        ours_fn = functools.partial(synthesize, values, nui, sr)
        args = (nui.partial_phase.double().numpy(), nui.vibrato_phase.numpy(), nui.tremolo_phase.numpy(),
                nui.noise.double().numpy(), sr)
        ref_fn = functools.partial(synthesize_reference, values, *args)
        with torch.no_grad():
            ours = best_of(ours_fn)
            diff = float(np.abs(ours_fn().numpy() - ref_fn()).max())
        ref = best_of(ref_fn, repeat=1)
        audio = batch * seconds
        rows.append({"benchmark": f"synthesize, {label}, {batch} clips", "ours_s": ours, "reference_s": ref,
                     "speedup": ref / ours, "x_real_time": audio / ours, "agreement": f"max |diff| {diff:.1e}"})
    table = FactorSpace.create().sample(256, seed=1)
    t = best_of(lambda: render(table, sr, seconds), repeat=2)
    rows.append({"benchmark": "render 256 clips from a table (nuisances drawn per seed)", "ours_s": t,
                 "reference_s": float("nan"), "speedup": float("nan"), "x_real_time": 256 * seconds / t,
                 "agreement": ""})
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
