"""Running a study: every stage once, in order, cached by content; the final tables and the report.

:func:`run_study` validates the config, then runs stimuli → pairs → controls → train →
latent → operational (per model) → comparison → report, skipping every stage whose output
is already in the run directory (:mod:`~ontoscope.study.cache`). Killing it at
any moment and running it again finishes the study without redoing what was
finished, with the same final tables. :func:`study_status` says what is done.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy
import pandas as pd
import torch
import yaml

from ontoscope import __version__
from ontoscope.artifacts import ensure_dir, save_json, save_table, write_atomic
from ontoscope.errors import ConfigError
from ontoscope.models.fidelity import fidelity_gate
from ontoscope.ontology import compare
from ontoscope.report import write_report
from ontoscope.study.cache import Stage, stage_key
from ontoscope.study.config import ModelPlan, StudyConfig, expand_models, load_config
from ontoscope.study.executors import run_on_ray
from ontoscope.study.stages import (
    controls_stage,
    latent_stage,
    operational_stage,
    pairs_stage,
    stimuli_stage,
    train_stage,
)
from ontoscope.study.storage import RunStore

__all__ = ["STAGES", "plan_stages", "run_study", "study_status"]

STAGES = ("stimuli", "pairs", "controls", "train", "latent", "operational", "comparison", "report")
FIDELITY_FILES = {"held_out": "fidelity.parquet", "all": "fidelity_all.parquet"}  # per gate.clips


def _versions() -> dict[str, str]:

    return {"ontoscope": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "pandas": pd.__version__, "python": platform.python_version()}


def plan_stages(cfg: StudyConfig, run: Path) -> dict[str, Any]:
    """Every stage of the study with its key, without running anything."""
    s = cfg.stimuli.model_dump(mode="json")
    stim = Stage(run, "stimuli", stage_key("stimuli", {k: v for k, v in s.items() if k != "pairs"}))
    pairs = None
    if cfg.stimuli.pairs and cfg.analyses.operational:
        pairs = Stage(run, "pairs", stage_key("pairs", s))
    controls = None
    if cfg.analyses.controls and cfg.analyses.operational:
        controls = Stage(run, "controls", stage_key("controls", {**cfg.analyses.controls.model_dump(mode="json"),
                                                                 "das_steps": cfg.analyses.operational.das_steps},
                                                    {"stimuli": stim.key, "pairs": pairs.key if pairs else ""}))
    lat_cfg = cfg.analyses.latent.model_dump(mode="json") if cfg.analyses.latent else None
    op_cfg = cfg.analyses.operational.model_dump(mode="json") if cfg.analyses.operational else None
    models = []
    for plan in expand_models(cfg):
        train = None
        if plan.kind == "family" and plan.trained:
            train = Stage(run, "train", stage_key("train", plan.key_data(), {"stimuli": stim.key}), plan.id)
        source = train.key if train else stage_key("model", plan.key_data())
        latent = Stage(run, "latent", stage_key("latent", lat_cfg, {"model": source}), plan.id) if lat_cfg else None
        op = None
        if op_cfg:
            inputs = {"model": source, "stimuli": stim.key, "pairs": pairs.key if pairs else ""}
            op = Stage(run, "operational", stage_key("operational", op_cfg, inputs), plan.id)
        models.append({"plan": plan, "train": train, "latent": latent, "operational": op})
    keys = [m[k].key for m in models for k in ("train", "latent", "operational") if m[k] is not None]
    keys += [controls.key] if controls else []
    gate = cfg.analyses.fidelity.model_dump(mode="json") if cfg.analyses.fidelity else None
    comparison = Stage(run, "comparison", stage_key("comparison", gate, {"stages": ",".join(keys)}))
    report = Stage(run, "report", stage_key("report", cfg.report.model_dump(mode="json"),
                                            {"comparison": comparison.key}))
    return {"stimuli": stim, "pairs": pairs, "controls": controls, "models": models, "comparison": comparison,
            "report": report}


def _log(console: Callable[[str], None] | None, text: str) -> None:
    if console is not None:
        console(text)


def run_study(config: str | os.PathLike | StudyConfig, out: str | os.PathLike, *,
              force: Sequence[str] = (), console: Callable[[str], None] | None = None,
              executor: str = "local", address: str | None = None, retries: int = 3) -> Path:
    """Run (or finish) the study of ``config`` in the run directory ``out``; returns the report's path.

    ``force`` names stages to recompute (``train``, ``latent``, ...); ``console`` receives one line per
    stage as it starts. ``executor="ray"`` runs each model's stages as a Ray task
    (:mod:`~ontoscope.study.executors`; ``address`` as for ``ray.init``, ``retries`` when a worker dies).
    """
    if isinstance(config, StudyConfig):
        cfg, text = config, ""
    else:
        cfg, text = load_config(config)
    unknown = sorted(set(force) - set(STAGES))
    if unknown:
        raise ConfigError(f"--force: unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
    store = RunStore(out)
    store.check_writable()
    store.pull()
    run = store.local
    if not text:
        text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    write_atomic(run / "config.yaml", lambda p: p.write_text(text))
    store.push(run / "config.yaml")
    plan = plan_stages(cfg, run)
    forced = set(force)

    def step(stage: Stage, work: Callable[[Path], dict[str, Any] | None]) -> Path:
        return _step(stage, work, forced, console, store)

    stim = step(plan["stimuli"], lambda d: stimuli_stage(cfg, d))
    pairs = step(plan["pairs"], lambda d: pairs_stage(cfg, d)) if plan["pairs"] else None
    controls = step(plan["controls"], lambda d: controls_stage(cfg, stim, pairs, d)) if plan["controls"] else None
    if executor == "local":
        records = [model_chain(cfg, m, stim, pairs, forced=forced, console=console, store=store)
                   for m in plan["models"]]
    elif executor == "ray":
        records = run_on_ray(cfg, plan["models"], stim, pairs, forced, console, chain=model_chain, address=address,
                             retries=retries, url=store.url)
        if store.url:
            store.pull()
    else:
        raise ConfigError(f"unknown executor {executor!r}; use local or ray")
    tables = _collect(records, cfg)
    if controls is not None:
        tables["controls"] = pd.read_parquet(controls / "controls.parquet")
        tables["control_rates"] = pd.read_parquet(controls / "control_rates.parquet")
    comp = step(plan["comparison"], lambda d: _compare(tables, d))
    _write_tables(run, tables, comp)
    _write_run_json(run, cfg, text, records, plan)
    store.push(run / "tables")
    store.push(run / "run.json")
    if not cfg.report.enabled:
        return run / "tables"
    step(plan["report"], lambda d: _report(run, d))
    store.push(run / "report")
    store.push(run / "report.html")
    return run / "report.html"


def _step(stage: Stage, work: Callable[[Path], dict[str, Any] | None], forced: set[str],
          console: Callable[[str], None] | None, store: RunStore | None) -> Path:
    done = stage.done and stage.name not in forced
    _log(console, f"{'done ' if done else 'run  '} {stage.name:<12} {stage.label}")
    path = stage.run_once(work, force=stage.name in forced)
    if store is not None and not done:
        store.push(path)
    return path


def model_chain(cfg: StudyConfig, m: dict[str, Any], stim: Path, pairs: Path | None, *, forced: set[str],
                console: Callable[[str], None] | None = None, store: RunStore | None = None) -> dict[str, Any]:
    """One model's stages, in order (train, latent, operational), each skipped when done; its record.

    With a ``store`` on a URL, every stage it finishes is uploaded there.
    """

    def step(stage: Stage, work: Callable[[Path], dict[str, Any] | None]) -> Path:
        return _step(stage, work, forced, console, store)

    p: ModelPlan = m["plan"]
    train_dir = step(m["train"], lambda d: train_stage(p, stim, d)) if m["train"] else None
    lat = step(m["latent"], lambda d: latent_stage(cfg, p, train_dir, d)) if m["latent"] else None
    op = (step(m["operational"], lambda d: operational_stage(cfg, p, train_dir, stim, pairs, d))
          if m["operational"] else None)
    return {"plan": p, "train": train_dir, "latent": lat, "operational": op,
            "stages": {k: m[k].key for k in ("train", "latent", "operational") if m[k] is not None}}


def _collect(records: list[dict[str, Any]], cfg: StudyConfig) -> dict[str, pd.DataFrame]:
    gate = cfg.analyses.fidelity
    clips = gate.clips if gate else "all"
    models, latent, operational, fidelity = [], [], [], []
    for r in records:
        p: ModelPlan = r["plan"]
        row = {"model": p.id, "ref": p.ref, "kind": p.kind, "seed": p.seed, **p.knobs,
               "fidelity": None, "fidelity_reason": ""}
        scored = r["train"] / FIDELITY_FILES[clips] if r["train"] is not None else None
        if scored is not None and scored.exists():
            table = pd.read_parquet(scored)
            fidelity.append(table.assign(model=p.id, clips=clips))
            if gate:
                passed, why = fidelity_gate(table, f0_cents=gate.f0_cents, loudness_db=gate.loudness_db)
                row.update(fidelity="passed" if passed else "undertrained", fidelity_reason=why)
        models.append(row)
        if r["latent"] is not None:
            t = pd.read_parquet(r["latent"] / "factors.parquet")
            latent.append(t.assign(model=p.id))
        if r["operational"] is not None:
            operational.append(pd.read_parquet(r["operational"] / "operational.parquet").assign(model=p.id))
    out = {"models": pd.DataFrame(models)}
    out["latent"] = pd.concat(latent, ignore_index=True) if latent else pd.DataFrame()
    out["operational"] = pd.concat(operational, ignore_index=True) if operational else pd.DataFrame()
    out["fidelity"] = pd.concat(fidelity, ignore_index=True) if fidelity else pd.DataFrame()
    for name in ("latent", "operational", "fidelity"):
        t = out[name]
        if len(t):
            out[name] = t[["model", *[c for c in t.columns if c != "model"]]]
    return out


def _compare(tables: dict[str, pd.DataFrame], out: Path) -> dict[str, Any]:
    if not len(tables["latent"]) or not len(tables["operational"]):
        return {"skipped": "the comparison needs both the latent and the operational analyses"}
    comp = compare(tables["models"], tables["latent"], tables["operational"], controls=tables.get("control_rates"))
    comp.save(out)
    return {}


def _write_tables(run: Path, tables: dict[str, pd.DataFrame], comp: Path) -> None:
    d = ensure_dir(run / "tables")
    for name, t in tables.items():
        if len(t):
            save_table(d / f"{name}.parquet", t)
    for f in sorted(comp.glob("*.parquet")):
        save_table(d / f.name, pd.read_parquet(f))


def _write_run_json(run: Path, cfg: StudyConfig, text: str, records: list[dict[str, Any]],
                    plan: dict[str, Any]) -> None:
    def rel(p: Path | None) -> str | None:
        return None if p is None else os.path.relpath(p, run)

    save_json(run / "run.json", {
        "name": cfg.name, "config": cfg.model_dump(mode="json"), "config_text": text, "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv,
        "stimuli_hash": plan["stimuli"].key, "pairs_hash": plan["pairs"].key if plan["pairs"] else None,
        "models": [{"model": r["plan"].id, "ref": r["plan"].ref, "latent_dir": rel(r["latent"]),
                    "operational_dir": rel(r["operational"]), "stage_hashes": r["stages"]} for r in records]})


def _report(run: Path, out: Path) -> dict[str, Any]:
    path = write_report(run)
    write_atomic(out / "report.txt", lambda p: p.write_text(str(path)))
    return {"report": str(path)}


def study_status(run: str | os.PathLike) -> pd.DataFrame:
    """What is done in a run directory: one row per stage instance (``stage, label, key, done``)."""
    run = Path(run)
    cfg_path = run / "config.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"{run} is not a study run directory (no config.yaml); start one with `ontoscope run`")
    cfg, _ = load_config(cfg_path)
    plan = plan_stages(cfg, run)
    rows = [plan["stimuli"], *([plan[k] for k in ("pairs", "controls") if plan[k]])]
    for m in plan["models"]:
        rows += [m[k] for k in ("train", "latent", "operational") if m[k] is not None]
    rows += [plan["comparison"], plan["report"]]
    return pd.DataFrame([{"stage": s.name, "label": s.label, "key": s.key, "done": s.done} for s in rows])
