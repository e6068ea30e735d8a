"""The stages of a study, each a function of its config slice and its inputs' directories.

stimuli → pairs → train (per model) → latent (per model) → operational (per model) → comparison → report.
Each writes into the directory it is given (:class:`~ontoscope.study.cache.Stage`) and returns what
``stage.json`` records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ontoscope.artifacts import save_table
from ontoscope.descriptors.renders import render_stimuli
from ontoscope.models.checkpoint import load_checkpoint
from ontoscope.models.family import build
from ontoscope.models.fidelity import reconstruction_fidelity
from ontoscope.models.protocol import AudioModel
from ontoscope.models.registry import load_model
from ontoscope.models.spec import parse_spec
from ontoscope.models.train import parse_config, pick_device, split, train
from ontoscope.operators.latent import analyze
from ontoscope.probing.controls import control_rates, controls_passed, run_controls
from ontoscope.probing.figures import write_operational_figures
from ontoscope.probing.operational import operational_ontology
from ontoscope.stimuli.dataset import StimulusSet
from ontoscope.study.config import ModelPlan, StudyConfig

__all__ = ["choose_sites", "controls_stage", "latent_stage", "load_plan_model", "operational_stage", "pairs_stage",
           "stimuli_stage", "train_stage"]


def _render(cfg: StudyConfig, out: Path, pairs: bool) -> dict[str, Any]:
    n = _render_at(cfg, out / "set", cfg.stimuli.sample_rate, pairs=pairs).factors.shape[0]
    return {"clips": n}


def _render_at(cfg: StudyConfig, out: Path, sr: int, *, pairs: bool) -> StimulusSet:
    """The study's stimuli (or pairs) rendered into ``out`` at ``sr`` Hz: the same factor values as at the
    study's own rate (the draw depends on the seed alone), so a model at another rate hears the same sounds
    with their partials up to its own Nyquist, rather than resampled clips that keep the study's band limit."""
    s = cfg.stimuli
    return render_stimuli(out, cfg.stimuli.space(), s.pairs if pairs else s.n, sr, s.seconds,
                          s.seed + (1 if pairs else 0), source=s.source, bank=s.bank, programs=s.programs, pairs=pairs,
                          overwrite=True, progress=False)


def stimuli_stage(cfg: StudyConfig, out: Path) -> dict[str, Any]:
    """The study's stimulus set, under ``out/set``."""
    return _render(cfg, out, pairs=False)


def pairs_stage(cfg: StudyConfig, out: Path) -> dict[str, Any]:
    """Counterfactual pairs (``stimuli.pairs`` per factor), under ``out/set``."""
    return _render(cfg, out, pairs=True)


def train_stage(plan: ModelPlan, stimuli: Path, out: Path) -> dict[str, Any]:
    """Train a family model on the stimuli into ``out`` (resuming a checkpoint left there).

    An audio autoencoder's reconstruction fidelity is scored twice: on its held-out clips
    (``fidelity.parquet``) and on every clip of the study (``fidelity_all.parquet``), the clips its
    ontologies are measured on."""
    spec = parse_spec(plan.spec)
    ds = StimulusSet.load(stimuli / "set")
    model, card = train(spec, ds, out, plan.train, progress=False)
    record: dict[str, Any] = {"final_eval": card.get("final_eval"), "steps": plan.train.get("steps")}
    if model.output == "audio":
        held = split(len(ds), parse_config(plan.train))[1]
        for name, clips in (("fidelity", held), ("fidelity_all", np.arange(len(ds)))):
            table = reconstruction_fidelity(model, ds.audio(clips), ds.sr)
            save_table(out / f"{name}.parquet", table)
            record[name] = {f"{r.factor} ({r.unit})": round(float(r.median), 4) for r in table.itertuples()
                            if np.isfinite(r.median)}
    return record


def load_plan_model(plan: ModelPlan, train_dir: Path | None) -> AudioModel:
    """The model of a plan: its trained checkpoint, its initialisation, or the real model."""
    if plan.kind == "pretrained":
        return load_model(plan.ref, seed=plan.seed)
    if plan.trained and train_dir is not None:
        model, _ = load_checkpoint(train_dir)
        return model.eval()
    return build(parse_spec(plan.spec), seed=plan.seed).eval()


def latent_stage(cfg: StudyConfig, plan: ModelPlan, train_dir: Path | None, out: Path) -> dict[str, Any]:
    """The latent ontology of one model (``LatentOntology.save`` layout)."""
    lc = cfg.analyses.latent
    model = load_plan_model(plan, train_dir)
    init = None
    if plan.kind == "family":
        spec = parse_spec(plan.spec)

        def init(seed: int) -> AudioModel:
            return build(spec, seed=seed).eval()

    lat = analyze(model, factors=cfg.stimuli.space(), seeds=lc.seeds, ref=plan.id, init=init if plan.kind == "family"
                  else None, sweep_points=lc.sweep_points, sweep=lc.sweep, jacobians=lc.jacobians, seed=plan.seed,
                  progress=False)
    lat.save(out)
    return {"rows": len(lat.factors)}


def choose_sites(model: AudioModel, max_sites: int | None) -> list[str] | None:
    """At most ``max_sites`` of the model's sites, evenly spread in order, with its bottleneck (if any)."""
    sites = model.sites()
    if max_sites is None or len(sites) <= max_sites:
        return None
    keep = {int(round(i)) for i in np.linspace(0, len(sites) - 1, max_sites)}
    neck = [i for i, s in enumerate(sites) if s.role == "bottleneck"]
    if neck and neck[0] not in keep:
        keep.discard(min(keep, key=lambda i: abs(i - neck[0])))
        keep.add(neck[0])
    return [sites[i].name for i in sorted(keep)]


def operational_stage(cfg: StudyConfig, plan: ModelPlan, train_dir: Path | None, stimuli: Path,
                      pairs: Path | None, out: Path) -> dict[str, Any]:
    """The operational ontology of one model, with its figures (``OperationalOntology.save`` layout)."""
    oc = cfg.analyses.operational
    model = load_plan_model(plan, train_dir)
    if isinstance(model, torch.nn.Module):
        model = model.to(pick_device(oc.device))
    stim_set = StimulusSet.load(stimuli / "set")
    pair_set = StimulusSet.load(pairs / "set") if pairs is not None else None
    if int(model.sample_rate) != stim_set.sr:  # the same clips rendered at the model's rate, not resampled
        stim_set = _render_at(cfg, out / "stimuli", int(model.sample_rate), pairs=False)
        pair_set = _render_at(cfg, out / "pairs", int(model.sample_rate), pairs=True) if pairs is not None else None
    op = operational_ontology(model, stim_set, pairs=pair_set,
                              sites=oc.sites or choose_sites(model, oc.max_sites), families=oc.families,
                              doses=oc.doses, n_steer=oc.n_steer, das=oc.das, das_rank=oc.das_rank,
                              das_steps=oc.das_steps, erasure=oc.erasure, seed=plan.seed, progress=False)
    op.save(out)
    write_operational_figures(op.table, op.effects, out / "figures")
    return {"rows": len(op.table), "icv": int((op.best()["status"] == "icv").sum())}


def controls_stage(cfg: StudyConfig, stimuli: Path, pairs: Path | None, out: Path) -> dict[str, Any]:
    """The control models' operational rows (``controls.parquet``) and their rates per family
    (``control_rates.parquet``)."""
    cc, oc = cfg.analyses.controls, cfg.analyses.operational
    rows = run_controls(StimulusSet.load(stimuli / "set"),
                        pairs=StimulusSet.load(pairs / "set") if pairs is not None else None,
                        seeds=cc.seeds, n_steer=cc.n_steer, das_steps=oc.das_steps if oc else 40, progress=False)
    rates = control_rates(rows, min_sensitivity=cc.min_sensitivity, max_fpr=cc.max_fpr)
    save_table(out / "controls.parquet", rows)
    save_table(out / "control_rates.parquet", rates)
    return {"passed": controls_passed(rates),
            "rates": {r.family: {"sensitivity": round(float(r.sensitivity), 3) if r.positives else None,
                                 "fpr": round(float(r.fpr), 3) if r.negatives else None}
                      for r in rates.itertuples()}}
