"""How long the family's models train before they pass the fidelity gate, per total stride and compression.

    python scripts/training_recipe.py --strides 64 256 1024 --compressions 4 16 --max-steps 8000 \
        --out runs/recipe --page docs/training_recipe.md

Every model (conv_ae, width 8, depth 0, the findings configs' recipe: batch 8, lr 3e-3, 0.25 s crops) trains
on the same synthetic set in chunks of ``--every`` steps; after each chunk its reconstruction (of every clip,
or of the held-out ones with ``--scored held_out``) is scored (``reconstruction_fidelity``) and gated (f0 <=
25 cents, loudness <= 1.5 dB median). A model stops at the first chunk that passes, or at ``--max-steps`` (the
learning-rate schedule is that of ``--max-steps`` steps throughout). The table gives, per model, the steps and
minutes to pass (or the errors it still had) on the recipe's device (``--recipe '{"device": "cuda"}'`` on a
GPU machine; bf16 autocast there), and is written as markdown to ``--page``, the device named.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ontoscope.models.fidelity import fidelity_gate, reconstruction_fidelity
from ontoscope.models.spec import parse_spec
from ontoscope.models.train import parse_config, pick_device, split, train
from ontoscope.stimuli import FactorSpace
from ontoscope.stimuli.dataset import StimulusSet

FACTORS = ["f0", "loudness", "brightness", "vibrato_rate", "vibrato_depth", "tremolo_rate", "tremolo_depth"]
ARCH = {"width": 8, "depth": 0}
RECIPE = {"batch_size": 8, "lr": 0.003, "warmup": 50, "segment": 0.25, "eval_every": 500}


def _strides(total: int) -> list[int]:
    """Four blocks whose product is ``total`` (a power of two), the larger strides last."""
    e = int(round(math.log2(total)))
    if 2 ** e != total or e < 4:
        raise SystemExit(f"total stride {total} must be a power of two of at least 16")
    per = [e // 4 + (1 if i >= 4 - e % 4 else 0) for i in range(4)]
    return [2 ** p for p in per]


def measure(total: int, compression: int, data: StimulusSet, out: Path, *, arch: dict, recipe: dict, max_steps: int,
            every: int, f0_cents: float, loudness_db: float, score_clips: int | None = None,
            scored: str = "all") -> dict:
    spec = parse_spec({"family": "conv_ae", **arch, "strides": _strides(total), "compression": compression})
    cfg = parse_config({**recipe, "steps": max_steps, "checkpoint_every": every})
    which = np.arange(len(data)) if scored == "all" else split(len(data), cfg)[1]
    scored_audio = data.audio(which[:score_clips])
    row = {"total_stride": total, "compression": compression, "bottleneck": spec.bottleneck}
    seconds, steps = 0.0, 0
    while steps < max_steps:
        t0 = time.perf_counter()
        model, card = train(spec, data, out / f"s{total}_c{compression}", cfg, progress=False, stop_after=every)
        seconds += time.perf_counter() - t0
        steps = int(card["step"])
        table = reconstruction_fidelity(model, scored_audio, data.sr).set_index("factor")
        passed, why = fidelity_gate(table.reset_index(), f0_cents=f0_cents, loudness_db=loudness_db)
        row.update(steps=steps, minutes=round(seconds / 60, 2), f0_cents=round(float(table.loc["f0", "median"]), 1),
                   loudness_db=round(float(table.loc["loudness", "median"]), 2), passed=passed)
        print(f"stride {total} compression {compression}: {steps} steps, {seconds / 60:.1f} min, "
              f"f0 {row['f0_cents']} cents, loudness {row['loudness_db']} dB{'' if passed else ' (' + why + ')'}",
              flush=True)
        if passed:
            break
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strides", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--compressions", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--max-steps", type=int, default=8000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of each synthetic clip")
    ap.add_argument("--factors", nargs="+", default=FACTORS, help="the factors the clips vary")
    ap.add_argument("--ranges", type=json.loads, default={},
                    help='JSON of factor ranges to override, e.g. \'{"f0": [110, 440]}\'')
    ap.add_argument("--f0-cents", type=float, default=25.0)
    ap.add_argument("--loudness-db", type=float, default=1.5)
    ap.add_argument("--scored", choices=["all", "held_out"], default="all",
                    help="the clips the gate is scored on: every clip (a study's default) or the held-out ones")
    ap.add_argument("--score-clips", type=int, default=None,
                    help="score the gate on the first N of those clips (default: all of them)")
    ap.add_argument("--out", type=Path, default=Path("runs/recipe"))
    ap.add_argument("--page", type=Path, default=None)
    ap.add_argument("--recipe", type=json.loads, default={}, help="JSON of training-config fields to override")
    ap.add_argument("--arch", type=json.loads, default={}, help="JSON of conv_ae spec fields to override")
    args = ap.parse_args()
    recipe, arch = {**RECIPE, **args.recipe}, {**ARCH, **args.arch}
    space = FactorSpace.create(args.factors, ranges={k: tuple(v) for k, v in args.ranges.items()})
    data = StimulusSet.synthesize(args.out / "set", space, args.clips, 16000, args.seconds, seed=0, progress=False) \
        if not (args.out / "set" / "manifest.json").exists() else StimulusSet.load(args.out / "set")
    rows = [measure(s, c, data, args.out, arch=arch, recipe=recipe, max_steps=args.max_steps, every=args.every,
                    f0_cents=args.f0_cents, loudness_db=args.loudness_db, score_clips=args.score_clips,
                    scored=args.scored)
            for s in args.strides for c in args.compressions]
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.page is not None:
        device = pick_device(parse_config(recipe).device)
        bf16 = parse_config(recipe).precision in ("auto", "bf16")
        where = (f"{torch.cuda.get_device_name(device)}, {'bf16 autocast' if bf16 else 'fp32'}"
                 if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads")
        which = "all" if args.scored == "all" else "the held-out"
        scored = which if args.score_clips is None else f"the first {args.score_clips} of {which}"
        lines = ["# Training to the fidelity gate", "",
                 f"*Generated by `scripts/training_recipe.py` on {where}; do not edit by hand.*", "",
                 f"conv_ae {', '.join(f'{k} {v}' for k, v in arch.items())}; the recipe "
                 f"{', '.join(f'{k} {v}' for k, v in recipe.items())},"
                 f" {args.clips} synthetic clips of {args.seconds:g} s ({', '.join(args.factors)}"
                 f"{''.join(f'; {k} {v[0]:g} to {v[1]:g}' for k, v in args.ranges.items())});"
                 f" scored every {args.every} steps on "
                 f"{scored} clips; gate: f0 <= {args.f0_cents:g} cents and "
                 f"loudness <= {args.loudness_db:g} dB "
                 f"(medians); at most {args.max_steps} steps.", "",
                 "| total stride | compression | bottleneck | steps | minutes | f0 (cents) | loudness (dB) "
                 "| passed |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['total_stride']} | {r['compression']} | {r['bottleneck']} | {r['steps']} | "
                         f"{r['minutes']} | {r['f0_cents']} | {r['loudness_db']} | {'yes' if r['passed'] else 'no'} |")
        args.page.write_text("\n".join(lines) + "\n")
        print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
