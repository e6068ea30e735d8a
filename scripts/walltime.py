"""Estimate the wall time of a study config on this machine, from measured times.

    python scripts/walltime.py configs/paper.yaml [--device auto|cpu|cuda] [--n 128] [--steps 5] \
        [--skip-pretrained] [--skip-analyses] [--out DIR] [--page docs/walltime.md]

Method. Nothing runs at the study's full size; every time below is measured on this machine and scaled.

* Stimuli: the config's stimulus set is rendered with the study's own stage functions at ``--n`` clips
  (the counterfactual pairs reduced in the same proportion, at least 2 per factor), timed, and scaled
  linearly to the config's ``stimuli.n`` (and ``stimuli.pairs``).
* Training: the trained family models are grouped by what a training step costs (architecture, batch size,
  crop ``segment``, the loss's fields, precision and device). For each group one model is built and
  ``--steps`` optimizer steps of the real training step are timed after 2 untimed warm-up steps: forward
  under ``autocast(device, precision)``, ``loss_fn``, backward, gradient clipping, AdamW, on a random batch
  of the config's batch size and clip length (or crop). A model's training time is the median step's
  seconds times its ``steps``. A model whose recipe asks for CUDA on a machine without it is timed on the CPU (said so).
* Analyses: for one representative model per family kind (its untrained initialisation) and for each
  pretrained model, the latent and operational stages run against the reduced stimuli. The latent analysis
  does not depend on the stimulus count and is taken as measured; the operational time is scaled by
  ``stimuli.n / --n``, an upper bound that assumes its cost (encoding, probing, steering) is linear in the
  number of clips. Every family model costs its kind's representative's analysis time.

Not included: the controls stage, the held-out evaluations during training (every ``eval_every`` steps),
the fidelity scoring after training, the comparison and the report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ontoscope.descriptors.renders import render_stimuli  # noqa: F401 - imported here so its import is not timed
from ontoscope.errors import ConfigError
from ontoscope.models.family import build
from ontoscope.models.spec import parse_spec
from ontoscope.models.train import TrainConfig, optimizer_step, pick_device
from ontoscope.models.train import parse_config as parse_train
from ontoscope.study.config import ModelPlan, StudyConfig, expand_models, load_config, parse_config
from ontoscope.study.stages import latent_stage, operational_stage, pairs_stage, stimuli_stage

WARMUP_STEPS = 2
FAMILY_KINDS = ("conv_ae", "tcn", "spec_cnn")


@dataclass
class Row:
    """One line of the estimate: a group of models and what it costs."""

    group: str
    models: int
    step_s: float | None = None
    train_s: float = 0.0
    analysis_s: float | None = None
    note: str = ""


@dataclass
class Stimuli:
    """The reduced stimuli and their full-size time estimate."""

    stim: Path
    pairs: Path | None
    seconds: float
    scale: float


# ---------------------------------------------------------------- arguments and config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Estimate the wall time of a study config on this machine.")
    ap.add_argument("config", help="study config (YAML)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                    help="auto: each recipe's own device (CUDA when present); cpu or cuda: every model there")
    ap.add_argument("--n", type=int, default=128, help="clips of the reduced stimulus set (default 128)")
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per group (default 5)")
    ap.add_argument("--skip-pretrained", action="store_true",
                    help="leave the pretrained models out (validated without them: their packages need not be here)")
    ap.add_argument("--skip-analyses", action="store_true", help="time only stimuli and training")
    ap.add_argument("--out", type=Path, default=None, help="scratch directory (default: a temporary one)")
    ap.add_argument("--page", type=Path, default=None, help="write the estimate as a markdown section here")
    args = ap.parse_args(argv)
    if args.n < 2 or args.steps < 1:
        raise ConfigError("--n must be at least 2 and --steps at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here; use auto or cpu")
    return args


def family_config(path: str | Path) -> StudyConfig:
    """The config at ``path`` without its pretrained models, validated without them (so the estimate runs on a
    machine that lacks their packages)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    data = yaml.safe_load(p.read_text())
    if isinstance(data, dict) and isinstance(data.get("models"), list):
        data["models"] = [m for m in data["models"] if not (isinstance(m, dict) and "ref" in m)]
    return parse_config(data, str(p))


def reduced_config(cfg: StudyConfig, n: int) -> tuple[StudyConfig, float]:
    """The config with ``n`` clips (pairs in proportion, at least 2) and the clip scale factor to full size."""
    s = cfg.stimuli
    n = min(n, s.n)
    pairs = min(s.pairs, max(2, round(s.pairs * n / s.n))) if s.pairs else 0
    small = cfg.model_copy(update={"stimuli": s.model_copy(update={"n": n, "pairs": pairs})})
    return small, s.n / n


def with_operational_device(cfg: StudyConfig, device: str) -> StudyConfig:
    """The config with its operational analysis on ``device`` (when it runs)."""
    oc = cfg.analyses.operational
    if not oc or oc.device == device:
        return cfg
    analyses = cfg.analyses.model_copy(update={"operational": oc.model_copy(update={"device": device})})
    return cfg.model_copy(update={"analyses": analyses})


def resolve_device(requested: str, recipe: str) -> tuple[torch.device, str]:
    """Where a model runs (``--device`` over the recipe's own), and a note when CUDA was asked for but absent."""
    name = recipe if requested == "auto" else requested
    device = pick_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu"), f"{name} asked for, none here: timed on the CPU"
    return device, ""


def device_name(devices: set[torch.device]) -> str:
    """The devices the measurements ran on, in words."""
    names = []
    for d in sorted(devices, key=str):
        if d.type == "cuda":
            names.append(f"{torch.cuda.get_device_name(d)} ({d})")
        else:
            names.append(f"CPU, {torch.get_num_threads()} threads")
    return " + ".join(names) or f"CPU, {torch.get_num_threads()} threads"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- stimuli


def time_stimuli(full: StudyConfig, small: StudyConfig, scale: float, out: Path) -> Stimuli:
    """Render the reduced stimuli (and pairs) with the study's stages; their time scaled to full size."""
    t0 = time.perf_counter()
    stimuli_stage(small, out / "stimuli")
    seconds = (time.perf_counter() - t0) * scale
    pairs = None
    if full.stimuli.pairs and full.analyses.operational:
        t0 = time.perf_counter()
        pairs_stage(small, out / "pairs")
        seconds += (time.perf_counter() - t0) * full.stimuli.pairs / small.stimuli.pairs
        pairs = out / "pairs"
    return Stimuli(out / "stimuli", pairs, seconds, scale)


# ---------------------------------------------------------------- training


def step_key(plan: ModelPlan) -> str:
    """What one training step of a plan costs depends on (its architecture and these recipe fields)."""
    t = plan.train or {}
    fields = ("batch_size", "segment", "stft_ffts", "mel_weight", "precision", "device")
    return json.dumps({"spec": plan.spec, **{k: t.get(k) for k in fields}}, sort_keys=True, default=str)


def base_id(plan: ModelPlan) -> str:
    return plan.id.rsplit("_seed", 1)[0]


def group_label(plans: list[ModelPlan]) -> str:
    names = list(dict.fromkeys(base_id(p) for p in plans))
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} alike)"


def training_groups(plans: list[ModelPlan]) -> list[list[ModelPlan]]:
    """The trained family plans grouped by :func:`step_key`, in config order."""
    groups: dict[str, list[ModelPlan]] = {}
    for p in plans:
        if p.kind == "family" and p.trained:
            groups.setdefault(step_key(p), []).append(p)
    return list(groups.values())


def random_batch(model: Any, cfg: TrainConfig, seconds: float, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A batch of noise of the recipe's batch size and clip (or crop) length, with targets for an encoder."""
    sr = int(model.spec.sample_rate)
    samples = round(seconds * sr)
    if cfg.segment is not None:
        samples = min(samples, round(cfg.segment * sr))
    g = torch.Generator().manual_seed(0)
    audio = (0.1 * torch.randn(cfg.batch_size, samples, generator=g)).to(device)
    if model.output != "factors":
        return audio, None
    return audio, torch.rand(cfg.batch_size, len(model.spec.factors), generator=g).to(device)


def seconds_per_step(plan: ModelPlan, seconds: float, requested: str, steps: int) -> tuple[float, torch.device, str]:
    """Median seconds of one real training step of ``plan`` (after warm-up), the device, and a note."""
    cfg = parse_train(plan.train)
    device, note = resolve_device(requested, cfg.device)
    model = build(parse_spec(plan.spec), seed=plan.seed).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    audio, target = random_batch(model, cfg, seconds, device)

    def one_step() -> None:
        optimizer_step(model, opt, audio, target, cfg=cfg)

    for _ in range(WARMUP_STEPS):
        one_step()
    times = []
    for _ in range(steps):
        sync(device)
        t0 = time.perf_counter()
        one_step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), device, note


# ---------------------------------------------------------------- analyses


def representatives(plans: list[ModelPlan], skip_pretrained: bool) -> dict[str, ModelPlan]:
    """One plan per family kind (the first of the config) and each pretrained ref (its first seed)."""
    reps: dict[str, ModelPlan] = {}
    for p in plans:
        if p.kind == "family" and p.ref in FAMILY_KINDS:
            reps.setdefault(p.ref, p)
        elif p.kind == "pretrained" and not skip_pretrained:
            reps.setdefault(p.ref, p)
    return reps


def time_analyses(cfg: StudyConfig, plan: ModelPlan, stim: Stimuli, out: Path) -> tuple[float, float]:
    """Measured seconds of the latent and of the operational stage of one model (untrained or pretrained)."""
    latent = operational = 0.0
    if cfg.analyses.latent:
        t0 = time.perf_counter()
        latent_stage(cfg, plan, None, out / "latent" / plan.id)
        latent = time.perf_counter() - t0
    if cfg.analyses.operational:
        t0 = time.perf_counter()
        operational_stage(cfg, plan, None, stim.stim, stim.pairs, out / "operational" / plan.id)
        operational = time.perf_counter() - t0
    return latent, operational


def analysis_times(cfg: StudyConfig, reps: dict[str, ModelPlan], stim: Stimuli, out: Path, log: Any,
                   notes: list[str]) -> dict[str, float | str]:
    """Seconds per model of each representative's analyses (operational scaled to full size), or why they
    could not run; a breakdown of each goes to ``notes``."""
    times: dict[str, float | str] = {}
    for key, plan in reps.items():
        log(f"analyses   {key} ({plan.id})")
        try:
            latent, operational = time_analyses(cfg, plan, stim, out)
        except Exception as e:  # noqa: BLE001 - a model that cannot load (missing weights) is reported, not fatal
            times[key] = f"not measured: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            notes.append(f"{key} analyses {times[key]}")
            continue
        times[key] = latent + operational * stim.scale
        notes.append(f"{key} analyses on {plan.id}{' (untrained)' if plan.kind == 'family' else ''}: latent "
                     f"{latent:.0f} s, operational {operational:.0f} s measured x {stim.scale:g} = "
                     f"{times[key] / 60:.1f} min per model")
    return times


# ---------------------------------------------------------------- the estimate


def analysis_cost(times: dict[str, float | str] | None, key: str, count: int) -> tuple[float | None, str]:
    if times is None or key not in times:
        return None, ""
    t = times[key]
    return (None, "analyses not measured (see the notes)") if isinstance(t, str) else (t * count, "")


def training_rows(cfg: StudyConfig, plans: list[ModelPlan], args: argparse.Namespace, times: dict | None,
                  devices: set[torch.device], notes: list[str], log: Any) -> list[Row]:
    rows = []
    for group in training_groups(plans):
        first = group[0]
        per_step, device, note = seconds_per_step(first, cfg.stimuli.seconds, args.device, args.steps)
        log(f"training   {group_label(group)} ({len(group)} models): {per_step:.3f} s/step on {device}")
        devices.add(device)
        if note and f"training: {note}" not in notes:
            notes.append(f"training: {note}")
        train_s = sum(per_step * int(p.train["steps"]) for p in group)
        ana, why = analysis_cost(times, first.ref, len(group))
        where = f"timed on {device.type} (recipe: {first.train.get('device')})" if note else ""
        note = "; ".join(x for x in (where, why) if x)
        rows.append(Row(group_label(group), len(group), per_step, train_s, ana, note))
    return rows


def untrained_rows(plans: list[ModelPlan], times: dict | None) -> list[Row]:
    rows = []
    for kind in FAMILY_KINDS:
        group = [p for p in plans if p.kind == "family" and not p.trained and p.ref == kind]
        if group:
            ana, why = analysis_cost(times, kind, len(group))
            rows.append(Row(f"{kind} untrained", len(group), None, 0.0, ana, why))
    return rows


def pretrained_rows(plans: list[ModelPlan], times: dict | None) -> list[Row]:
    refs: dict[str, int] = {}
    for p in plans:
        if p.kind == "pretrained":
            refs[p.ref] = refs.get(p.ref, 0) + 1
    rows = []
    for ref, count in refs.items():
        ana, why = analysis_cost(times, ref, count)
        rows.append(Row(f"{ref} (pretrained)", count, None, 0.0, ana, why))
    return rows


@dataclass
class Estimate:
    """The rows of the estimate, the stimuli's seconds, the devices in words and notes."""

    rows: list[Row]
    stimuli_s: float
    device: str
    notes: list[str]

    def total_hours(self) -> float:
        return (self.stimuli_s + sum(r.train_s + (r.analysis_s or 0.0) for r in self.rows)) / 3600


def analysis_config(cfg: StudyConfig, requested: str, notes: list[str]) -> StudyConfig:
    """The config with its operational analysis on the device it will use here."""
    if requested != "auto":
        return with_operational_device(cfg, requested)
    if not cfg.analyses.operational:
        return cfg
    device, note = resolve_device("auto", cfg.analyses.operational.device)
    notes += [f"operational analysis: {note}"] if note else []
    return with_operational_device(cfg, str(device))


def estimate(cfg: StudyConfig, args: argparse.Namespace, out: Path, log: Any) -> Estimate:
    """Measure everything and scale it to the config's size."""
    plans = expand_models(cfg)
    if args.skip_pretrained:
        plans = [p for p in plans if p.kind != "pretrained"]
    notes: list[str] = []
    cfg = analysis_config(cfg, args.device, notes)
    small, scale = reduced_config(cfg, args.n)
    log(f"stimuli    {small.stimuli.n} clips, {small.stimuli.pairs} pairs per factor")
    stim = time_stimuli(cfg, small, scale, out)
    notes.append(f"stimuli: rendered {small.stimuli.n} clips and {small.stimuli.pairs} pairs per factor, scaled "
                 f"linearly to {cfg.stimuli.n} and {cfg.stimuli.pairs}")
    times = None
    if not args.skip_analyses and (cfg.analyses.latent or cfg.analyses.operational):
        times = analysis_times(small, representatives(plans, args.skip_pretrained), stim, out, log, notes)
    devices: set[torch.device] = set()
    rows = training_rows(cfg, plans, args, times, devices, notes, log)
    rows += untrained_rows(plans, times) + pretrained_rows(plans, times)
    if times is not None and cfg.analyses.operational:
        devices.add(pick_device(cfg.analyses.operational.device))
    return Estimate(rows, stim.seconds, device_name(devices), notes)


def cpu_busy(seconds: float = 0.5) -> float | None:
    """The fraction of the machine's CPU time used over ``seconds`` (Linux ``/proc/stat``; None elsewhere),
    sampled while this process is idle, so it is what other jobs take."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def load_note(busy: list[float | None]) -> list[str]:
    """A warning when other jobs shared the CPU (the times then overstate an idle machine's)."""
    seen = [b for b in busy if b is not None]
    if not seen or max(seen) < 0.25:
        return []
    return [f"other jobs used up to {max(seen):.0%} of the CPU ({os.cpu_count()} cores) around the measurement; "
            "CPU times then overstate an idle machine's and vary from run to run"]


# ---------------------------------------------------------------- output


def _fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _minutes(x: float | None) -> str:
    return _fmt(None if x is None else x / 60)


def table_lines(est: Estimate) -> list[list[str]]:
    """Header, the stimuli, one line per group, and the total (minutes; the total also in hours)."""
    rows = est.rows
    train = sum(r.train_s for r in rows)
    analyses = [r.analysis_s for r in rows if r.analysis_s is not None]
    lines = [["group", "models", "s/step", "train min", "analysis min", "note"],
             ["stimuli and pairs", "", "—", _minutes(est.stimuli_s), "—", "rendering, outside the models"]]
    lines += [[r.group, str(r.models), _fmt(r.step_s, 3), _minutes(r.train_s), _minutes(r.analysis_s), r.note]
              for r in rows]
    lines.append(["total", str(sum(r.models for r in rows)), "", _minutes(train + est.stimuli_s),
                  _minutes(sum(analyses) if analyses else None), f"{est.total_hours():.2f} h"])
    return lines


def plain_table(est: Estimate) -> str:
    lines = table_lines(est)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    out = []
    for line in lines:
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=False))]
        out.append("  ".join(cells) + ("  " + line[-1] if line[-1] else ""))
    return "\n".join(out)


def markdown_table(est: Estimate) -> str:
    lines = table_lines(est)
    out = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines[1:]]
    return "\n".join(out)


def method_text(cfg: StudyConfig, est: Estimate, args: argparse.Namespace) -> str:
    n = min(args.n, cfg.stimuli.n)
    analyses = ("The analyses were not timed. " if args.skip_analyses else
                "The latent and operational stages ran once per family kind, on an untrained initialisation, "
                "and once per pretrained model, against the reduced set; every family model costs its kind's "
                "representative's time. The latent analysis does not depend on the clip count; the operational "
                f"time is scaled by {cfg.stimuli.n}/{n}, an upper bound that assumes its cost (encoding, probing, "
                "steering) is linear in the number of clips. ")
    return (f"Measured on {est.device}. The stimuli were rendered at {n} clips with the study's stage functions "
            f"and scaled linearly to {cfg.stimuli.n}. Trained family models are grouped by what a step costs "
            "(architecture, batch size, crop, loss fields, precision, device); one model per group ran "
            f"{args.steps} timed steps of the real training step (after {WARMUP_STEPS} warm-up steps) on a random "
            "batch, and a model's training time is the median step's seconds times its steps. " + analyses
            + "Not included: the controls stage, held-out evaluations during training, fidelity scoring, the "
            "comparison and the report.")


def page_text(cfg: StudyConfig, est: Estimate, args: argparse.Namespace) -> str:
    parts = [f"## Wall-time estimate of {cfg.name}", "", method_text(cfg, est, args), "", markdown_table(est), "",
             f"**Total: {est.total_hours():.2f} h** on {est.device}."]
    parts += ["", *[f"- {n}" for n in est.notes]] if est.notes else []
    return "\n".join(parts) + "\n"


def run(args: argparse.Namespace) -> int:
    cfg = family_config(args.config) if args.skip_pretrained else load_config(args.config)[0]

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    busy = [cpu_busy()]
    with tempfile.TemporaryDirectory(prefix="walltime_") as tmp:
        est = estimate(cfg, args, args.out or Path(tmp), log)
    est.notes += load_note([*busy, cpu_busy()])
    print(f"Wall-time estimate of {cfg.name} on {est.device}")
    print(plain_table(est))
    print(f"total: {est.total_hours():.2f} h")
    for n in est.notes:
        print(f"note: {n}")
    if args.page is not None:
        args.page.parent.mkdir(parents=True, exist_ok=True)
        args.page.write_text(page_text(cfg, est, args))
        print(f"wrote {args.page}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
