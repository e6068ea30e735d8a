"""Interventions: steering and interchange throughput against the plain forward pass plus descriptors; DAS time."""

from __future__ import annotations

import tempfile

import numpy as np
import torch

from benchmarks.common import best_of
from ontoscope.descriptors import measure
from ontoscope.models.controls import PlaceControl
from ontoscope.models.family import build
from ontoscope.models.planted import PlantedModel
from ontoscope.models.spec import parse_spec
from ontoscope.probing.alignment import fit_alignment
from ontoscope.probing.interchange import interchange_accuracy
from ontoscope.probing.interventions import (
    Additive,
    Gain,
    Interchange,
    Modulation,
    PlaceShift,
    TimeWarp,
    place_axis,
    run_interventions,
)
from ontoscope.probing.steering import effect_matrix
from ontoscope.stimuli import FactorSpace
from ontoscope.stimuli.dataset import StimulusSet
from ontoscope.stimuli.pairs import counterfactual_pairs

TITLE = "Interventions (steering, interchange, DAS)"
NOTES = (
    "An intervention is one edited forward pass from a site plus the descriptors on its output. Families: each "
    "family of `ontoscope.probing.interventions` through `run_interventions` with the descriptors as `consume`, "
    "32 clips of 1 s x 8 doses (interchange: 32 pairs x 8 subspaces) at the bottleneck of the same `conv_ae` "
    "(place shift: at the salience of the place control, whose floor is its own forward pass; time-warp also at "
    "the first encoder block, 8000 frames per second, where the windowed-sinc resampling costs most); `of floor` "
    "is the reference time over ours (goal at least 0.8). Steering: "
    "`effect_matrix` on 32 clips of 1 s x 5 magnitudes x 4 directions at the bottleneck of a `conv_ae` "
    "(width 8, strides 2,4,4,8); interchange: `interchange_accuracy` on 32 pairs per factor x 4 factors at the "
    "same site. Reference: the plain forward pass of the same number of clips plus `measure` on the outputs, "
    "the floor any intervention pays; the ratio is ours over it (1 = no overhead). DAS: `fit_alignment`, "
    "rank 1, on 16 pairs of 0.5 s of the planted model's latent, 60 Adam steps from a biased start, per "
    "(site, factor), encoding of the pairs included."
)

NAMES = ["f0", "loudness", "brightness", "odd_even"]


def _plain(model, audio: torch.Tensor, repeats: int) -> None:
    with torch.no_grad():
        for _ in range(repeats):
            measure(model(audio), model.sample_rate)


def _families(model, audio: torch.Tensor, space: FactorSpace, rng: np.random.Generator) -> list[dict]:
    """Every family through the one runner, re-measured, against the plain forward pass plus descriptors."""
    doses = [-1.0, -0.5, -0.2, -0.1, 0.1, 0.2, 0.5, 1.0]
    fr = model.sample_rate / model.site("bottleneck").stride
    v = rng.standard_normal(16)
    fams = {"additive": [Additive(v, m) for m in doses], "gain": [Gain(m) for m in doses],
            "time_warp": [TimeWarp(m / 4) for m in doses],
            "modulation (gain)": [Modulation("gain", abs(m), 5.0, fr) for m in doses],
            "interchange": [Interchange(np.linalg.qr(rng.standard_normal((16, 2)))[0]) for _ in doses]}

    def consume(y: torch.Tensor) -> object:
        return measure(y, model.sample_rate)

    rows = []
    t_ref = best_of(lambda: _plain(model, audio, len(doses)), repeat=1)
    source = audio.roll(1, 0)
    for name, ivs in fams.items():
        def ours(ivs=ivs, name=name):
            with torch.no_grad():
                acts = model.encode(audio, "bottleneck")
                src = model.encode(source, "bottleneck") if name == "interchange" else None
            run_interventions(model, acts, "bottleneck", ivs, source=src, consume=consume)
        t = best_of(ours, repeat=1)
        n = len(audio) * len(ivs)
        rows.append({"benchmark": f"{name}, {n} interventions (conv_ae bottleneck)", "ours_s": t,
                     "reference_s": t_ref, "ratio": t / t_ref, "per_s": n / t, "of floor": t_ref / t})
    # the band-limited warp at a waveform-rate site, where its trajectory is longest
    site = "encoder.block0"
    rate = model.sample_rate / model.site(site).stride

    def warp_early():
        with torch.no_grad():
            acts = model.encode(audio, site)
        run_interventions(model, acts, site, fams["time_warp"], consume=consume)

    t = best_of(warp_early, repeat=1)
    n = len(audio) * len(doses)
    rows.append({"benchmark": f"time_warp, {n} interventions (conv_ae {site}, {rate:.0f} frames/s)", "ours_s": t,
                 "reference_s": t_ref, "ratio": t / t_ref, "per_s": n / t, "of floor": t_ref / t})
    place = PlaceControl(space)
    axis = place_axis(place.sites()[0])
    steps = [-16, -8, -4, -2, 2, 4, 8, 16]

    def place_ours():
        acts = place.encode(audio, "encoder.salience")
        run_interventions(place, acts, "encoder.salience", [PlaceShift(k, axis) for k in steps], consume=consume)

    def place_ref():
        for _ in steps:
            measure(place(audio), place.sample_rate)

    t, t_ref = best_of(place_ours, repeat=1), best_of(place_ref, repeat=1)
    n = len(audio) * len(steps)
    rows.append({"benchmark": f"place_shift, {n} interventions (place control)", "ours_s": t, "reference_s": t_ref,
                 "ratio": t / t_ref, "per_s": n / t, "of floor": t_ref / t})
    return rows


def run() -> list[dict]:
    torch.set_num_threads(2)
    space = FactorSpace.create(NAMES)
    model = build(parse_spec(dict(family="conv_ae", width=8, strides=[2, 4, 4, 8], bottleneck=16))).eval()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        ds = StimulusSet.synthesize(f"{d}/set", space, 32, 16000, 1.0, seed=0, progress=False)
        audio = ds.audio()
        rng = np.random.default_rng(0)
        rows += _families(model, audio, space, rng)
        dirs = {n: rng.standard_normal(16) for n in NAMES}
        mags = (-1.0, -0.5, 0.0, 0.5, 1.0)
        n_int = len(audio) * len(mags) * len(dirs)
        t_ref = best_of(lambda: _plain(model, audio, len(mags) * len(dirs)), repeat=1)
        t_ours = best_of(lambda: effect_matrix(model, audio, "bottleneck", dirs, space=space, magnitudes=mags),
                         repeat=1)
        rows.append({"benchmark": f"steering, {n_int} interventions (conv_ae bottleneck)", "ours_s": t_ours,
                     "reference_s": t_ref, "ratio": t_ours / t_ref, "per_s": n_int / t_ours})
        pairs = StimulusSet.render(f"{d}/pairs", counterfactual_pairs(space, 32, seed=1, min_change=0.2), 16000,
                                   1.0, progress=False)
        bases = {n: np.linalg.qr(rng.standard_normal((16, 2)))[0] for n in NAMES}
        n_pairs = 32 * len(NAMES)
        t_ref = best_of(lambda: _plain(model, pairs.audio(np.arange(n_pairs)), 1), repeat=1)
        t_ours = best_of(lambda: interchange_accuracy(model, pairs, "bottleneck", bases, space), repeat=1)
        rows.append({"benchmark": f"interchange, {n_pairs} pairs (conv_ae bottleneck)", "ours_s": t_ours,
                     "reference_s": t_ref, "ratio": t_ours / t_ref, "per_s": n_pairs / t_ours})
        small = StimulusSet.render(f"{d}/small", counterfactual_pairs(space, 16, factors=["loudness"], seed=2,
                                                                      min_change=0.2), 16000, 0.5, progress=False)
        planted = PlantedModel(space)
        start = np.cos(np.radians(40)) * np.eye(4)[:, 1] + np.sin(np.radians(40)) * np.eye(4)[:, 0]
        al = fit_alignment(planted, small, "bottleneck", "loudness", init=start, restarts=0, steps=60, lr=0.02)
        angle = float(np.degrees(np.arccos(min(1.0, abs(al.basis[1, 0])))))
        rows.append({"benchmark": "DAS fit, one (site, factor), planted latent", "ours_s": al.seconds,
                     "reference_s": float("nan"), "ratio": float("nan"), "per_s": float("nan"),
                     "agreement": f"angle to the planted channel 40° -> {angle:.1f}°"})
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
