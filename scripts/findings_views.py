"""Decodability by view for some models of a finished study run (docs/findings.md, section 2).

    python scripts/findings_views.py runs/findings_arch --where "bottleneck == 16 and antialias == 'none'"

For each chosen model, ridge probes on the sites the study's operational analysis used, in the three views of
``ontoscope.probing.views`` (frames, pooled, modulation), over the study's own stimuli. Writes
``RUN/views/<model>/probes.parquet`` (resuming: a model whose table exists is skipped). The question it answers:
where a factor is not a controllable direction, is it still readable, and in which view?
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from rich.console import Console

from ontoscope.probing.cli import probe_command
from ontoscope.study.config import expand_models, load_config
from ontoscope.study.stages import choose_sites, load_plan_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--where", default=None, help="pandas query on the run's models table")
    ap.add_argument("--seed", type=int, default=0, help="only models of this seed")
    args = ap.parse_args()
    run = args.run
    cfg, _ = load_config(run / "config.yaml")
    meta = json.loads((run / "run.json").read_text())
    models = pd.read_parquet(run / "tables" / "models.parquet")
    chosen = models[models["seed"] == args.seed]
    if args.where:
        chosen = chosen.query(args.where)
    stimuli = next((run / "stages" / "stimuli").glob(f"{meta['stimuli_hash']}/set"))
    plans = {p.id: p for p in expand_models(cfg)}
    keys = {m["model"]: m["stage_hashes"] for m in meta["models"]}
    console = Console(quiet=True)
    for model_id in chosen["model"]:
        out = run / "views" / model_id
        if (out / "probes.parquet").exists():
            continue
        plan = plans[model_id]
        train_dir = run / "stages" / "train" / keys[model_id]["train"] if "train" in keys[model_id] else None
        ref = str(train_dir) if train_dir is not None else plan.ref
        sites = choose_sites(load_plan_model(plan, train_dir), cfg.analyses.operational.max_sites)
        print(f"views of {model_id}: {', '.join(sites)}", flush=True)
        probe_command(ref, stimuli, out, sites=sites, probes=("ridge",), seed=plan.seed, console=console)


if __name__ == "__main__":
    main()
