"""One model of the paper grid trained and analysed on a GPU, against the same machine's CPU.

The model is ``configs/paper.yaml``'s ``arch`` block at total stride 256 (strides 4, 4, 4, 4), compression 16,
ELU, no antialias (width 16, depth 1), with that config's recipe (batch 32, lr 1e-3, 500 warm-up steps, 1 s
clips at 16 kHz). Rows, each with the speed-up over the CPU reference measured in the same run:

* ``train step``: one real training step (forward under autocast, multi-scale STFT loss in fp32, backward,
  clipping, AdamW), median of ``STEP_REPEATS`` after two warm-ups, on the CPU (fp32, every core), on CUDA in
  fp32 and on CUDA under bf16 autocast (the recipe's ``precision: auto`` there).
* ``train run``: :func:`~ontoscope.models.train.train` for ``TRAIN_STEPS`` steps on CUDA (bf16) on ``N_TRAIN``
  synthetic clips, evaluations and checkpoints included; the held-out fidelity reached (f0 cents, loudness
  dB, medians) says what that many steps buy. Its CPU time is the step row's CPU time times the steps.
* ``operational``: :func:`~ontoscope.probing.operational.operational_ontology` of the trained model (DAS,
  erasure, every family) over ``N_OPERATIONAL`` clips, ``PAIRS`` pairs per factor and ``N_STEER`` steered
  clips at its bottleneck (:func:`~ontoscope.study.stages.choose_sites` with ``SITES`` = 1), on CUDA and on the
  CPU (both fp32; the CPU run stops after ``ONTOSCOPE_BENCH_CPU_LIMIT_S`` seconds, default 90, and then gives
  a lower bound of the speed-up). The descriptors that read every steered output run on the CPU on both;
  ``same_status`` is the share of (site, factor, family) rows whose status
  the two devices agree on, and ``max_efficacy_diff`` the largest difference of efficacy between them.

Runs only where CUDA is present (``available``); ``python benchmarks/run.py gpu`` on a GPU machine rewrites
only this section of ``docs/benchmarks.md``. ``ONTOSCOPE_BENCH_SMALL=1`` shrinks every size to check the
benchmark itself on a CPU.
"""

from __future__ import annotations

import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ontoscope.descriptors.renders import render_stimuli
from ontoscope.models.family import build
from ontoscope.models.fidelity import reconstruction_fidelity
from ontoscope.models.spec import parse_spec
from ontoscope.models.train import optimizer_step, parse_config, split, train
from ontoscope.probing.operational import operational_ontology
from ontoscope.stimuli import FactorSpace
from ontoscope.study.stages import choose_sites

SMALL = os.environ.get("ONTOSCOPE_BENCH_SMALL") == "1"
SPEC = {"family": "conv_ae", "strides": [4, 4, 4, 4], "compression": 16, "width": 16, "depth": 1,
        "activation": "elu", "antialias": "none"}
RECIPE = {"batch_size": 32, "lr": 0.001, "warmup": 500}
FACTORS = ["f0", "loudness", "brightness"] if SMALL else [
    "f0", "loudness", "brightness", "odd_even", "noise", "vibrato_rate", "vibrato_depth", "tremolo_rate",
    "tremolo_depth", "beat_rate", "beat_depth"]
STEP_REPEATS = 1 if SMALL else 20
TRAIN_STEPS = 4 if SMALL else 2000
N_TRAIN = 64 if SMALL else 512
N_OPERATIONAL = 24 if SMALL else 128
PAIRS = 2 if SMALL else 4
N_STEER = 2 if SMALL else 8
SITES = 1
FIDELITY_CLIPS = 64
CPU_OPERATIONAL_LIMIT_S = int(os.environ.get("ONTOSCOPE_BENCH_CPU_LIMIT_S", "90"))

TITLE = "One paper-grid model on a GPU (training and the operational stage, against the CPU)"
NOTES = (f"conv_ae strides 4,4,4,4, compression 16, width 16, depth 1 (configs/paper.yaml's arch), batch 32 of 1 s "
         f"clips at 16 kHz. `train step`: median of {STEP_REPEATS} steps after 2 warm-ups. `train run`: "
         f"{TRAIN_STEPS} steps of `train` on {N_TRAIN} synthetic clips ({len(FACTORS)} factors), evaluations and "
         f"checkpoints included; fidelity on {FIDELITY_CLIPS} of its held-out clips. `operational`: every family, "
         f"DAS and erasure at the bottleneck, n_steer {N_STEER}, over {N_OPERATIONAL} clips and {PAIRS} pairs per "
         "factor, fp32 on both devices, the descriptors on the CPU in both; `same_status` "
         "is the share of (site, factor, family) rows with the same status on both. `speedup` is CPU seconds over "
         "these seconds, the CPU being the same machine's, every core. Written by `python benchmarks/run.py gpu` "
         "on a machine with CUDA (`scripts/device_check.sh` runs it with the rest of the GPU checks).")


def available() -> bool:
    """Whether this benchmark can run here (it needs CUDA, except in its small CPU check)."""
    return torch.cuda.is_available() or SMALL


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_seconds(device: torch.device, precision: str) -> float:
    """Median seconds of one training step of :data:`SPEC` under :data:`RECIPE` on ``device``."""
    cfg = parse_config({**RECIPE, "precision": precision})
    model = build(parse_spec(SPEC), seed=0).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    audio = (0.1 * torch.randn(cfg.batch_size, 16000, generator=torch.Generator().manual_seed(0))).to(device)

    def one() -> None:
        optimizer_step(model, opt, audio, None, cfg=cfg)

    t0 = time.perf_counter()
    for _ in range(2):
        one()
    times = []
    for _ in range(STEP_REPEATS):
        _sync(device)
        t = time.perf_counter()
        one()
        _sync(device)
        times.append(time.perf_counter() - t)
    _log(f"{STEP_REPEATS} steps on {device} ({precision})", t0)
    return statistics.median(times)


def _log(what: str, t0: float) -> None:
    print(f"  {what}: {time.perf_counter() - t0:.1f} s", flush=True)


class _OutOfTime(Exception):
    pass


def _operational(model: torch.nn.Module, stim, pairs, device: torch.device, limit_s: int | None = None
                 ) -> tuple[float, object | None]:
    """Seconds of the operational ontology on ``device`` and its result; None for the result when it ran past
    ``limit_s`` (then the seconds are the limit: a lower bound)."""
    def out_of_time(*_: object) -> None:
        raise _OutOfTime

    model = model.to(device)
    _sync(device)
    t = time.perf_counter()
    if limit_s is not None:
        signal.signal(signal.SIGALRM, out_of_time)
        signal.alarm(limit_s)
    try:
        op = operational_ontology(model, stim, pairs=pairs, sites=choose_sites(model, SITES), n_steer=N_STEER,
                                  das=True, erasure=True, seed=0, progress=False)
    except _OutOfTime:
        _log(f"operational on {device} stopped at its limit", t)
        return float(limit_s), None
    finally:
        if limit_s is not None:
            signal.alarm(0)
    _sync(device)
    _log(f"operational on {device}", t)
    return time.perf_counter() - t, op


def run() -> list[dict]:
    gpu = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cpu = torch.device("cpu")
    name = torch.cuda.get_device_name(gpu) if gpu.type == "cuda" else "CPU (small check)"
    threads = torch.get_num_threads()
    rows: list[dict] = []

    def add(row: dict) -> None:
        rows.append(row)
        print("  row: " + ", ".join(f"{k}={v}" for k, v in row.items()), flush=True)

    cpu_step = step_seconds(cpu, "fp32")
    audio_per_step = RECIPE["batch_size"] * 1.0
    add({"stage": "train step", "device": f"CPU, {threads} threads", "precision": "fp32", "seconds": cpu_step,
                 "audio_s_per_s": audio_per_step / cpu_step, "speedup": 1.0})
    for precision in ("fp32", "bf16"):
        s = step_seconds(gpu, precision)
        add({"stage": "train step", "device": name, "precision": precision, "seconds": s,
                     "audio_s_per_s": audio_per_step / s, "speedup": cpu_step / s})

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        space = FactorSpace.create(FACTORS)
        t0 = time.perf_counter()
        data = render_stimuli(tmp / "train", space, N_TRAIN, 16000, 1.0, 0, progress=False)
        _log(f"rendered {N_TRAIN} clips", t0)
        cfg = parse_config({**RECIPE, "steps": TRAIN_STEPS, "device": gpu.type, "eval_every": 500,
                            "checkpoint_every": 1000})
        _sync(gpu)
        t = time.perf_counter()
        model, card = train(parse_spec(SPEC), data, tmp / "model", cfg, progress=False)
        _sync(gpu)
        seconds = time.perf_counter() - t
        _log(f"trained {TRAIN_STEPS} steps", t)
        t0 = time.perf_counter()
        held = data.audio(split(len(data), cfg)[1][:FIDELITY_CLIPS])
        fid = reconstruction_fidelity(model, held.to(gpu), 16000).set_index("factor")
        add({"stage": f"train run ({TRAIN_STEPS} steps)", "device": name,
             "precision": "bf16" if gpu.type == "cuda" else "fp32",
                     "seconds": seconds, "audio_s_per_s": TRAIN_STEPS * audio_per_step / seconds,
                     "speedup": cpu_step * TRAIN_STEPS / seconds,
                     "f0_cents": float(fid.loc["f0", "median"]), "loudness_db": float(fid.loc["loudness", "median"])})
        _log("fidelity", t0)
        t0 = time.perf_counter()

        stim = render_stimuli(tmp / "stim", space, N_OPERATIONAL, 16000, 1.0, 1, progress=False)
        pairs = render_stimuli(tmp / "pairs", space, PAIRS, 16000, 1.0, 2, pairs=True, progress=False)
        _log("rendered the operational clips and pairs", t0)
        gpu_s, op_gpu = _operational(model, stim, pairs, gpu)
        add({"stage": "operational", "device": name, "precision": "fp32", "seconds": gpu_s,
             "rows": len(op_gpu.table)})
        cpu_s, op_cpu = _operational(model, stim, pairs, cpu, limit_s=CPU_OPERATIONAL_LIMIT_S)
        if op_cpu is None:
            add({"stage": "operational", "device": f"CPU, {threads} threads", "precision": "fp32",
                 "seconds": f"> {cpu_s:.0f} (stopped)", "speedup": 1.0})
            rows[-2]["speedup"] = f"> {cpu_s / gpu_s:.1f}"
            return rows
        keys = ["site", "factor", "family", "variant"]
        both = op_gpu.table.merge(op_cpu.table, on=keys, suffixes=("_gpu", "_cpu"))
        rows[-1].update(speedup=cpu_s / gpu_s, same_status=float((both["status_gpu"] == both["status_cpu"]).mean()),
                        max_efficacy_diff=float((both["efficacy_gpu"] - both["efficacy_cpu"]).abs().max()))
        add({"stage": "operational", "device": f"CPU, {threads} threads", "precision": "fp32", "seconds": cpu_s,
             "speedup": 1.0, "rows": len(op_cpu.table)})
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
