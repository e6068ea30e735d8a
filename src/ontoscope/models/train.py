"""Training the model family: same recipe for every spec, seeded, resumable.

Autoencoders (``conv_ae``, ``tcn``) minimise a multi-resolution STFT loss plus
waveform L1 (plus the quantizer's codebook and commitment loss); the
``spec_cnn`` autoencoder an L1 loss on the log-spectrogram; the ``spec_cnn``
encoder a mean squared error on the normalised factor values. AdamW
(Loshchilov & Hutter 2019) with linear warm-up then cosine decay, gradient
clipping, a held-out split. Every batch is drawn from ``(seed, step)``, and the
optimizer state is checkpointed, so a resumed run gives exactly the weights of
an uninterrupted one on CPU.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ontoscope.errors import ConfigError
from ontoscope.models.checkpoint import (
    CheckpointError,
    load_tensors,
    read_card,
    save_checkpoint,
)
from ontoscope.models.family import build
from ontoscope.models.losses import multi_resolution_stft_loss, multi_scale_mel_loss
from ontoscope.models.protocol import StagedModel
from ontoscope.models.spec import spec_to_dict
from ontoscope.stimuli.dataset import StimulusSet
from ontoscope.stimuli.factors import get_factor


class TrainConfig(BaseModel):
    """Training recipe; every field is a knob a study may sweep."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(6000, ge=1, description="with 0.25 s crops the default passes the fidelity gate "
                       "up to total stride 256 (docs/training_recipe.md)")
    batch_size: int = Field(8, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup: int = Field(50, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    seed: int = 0
    data_size: int | None = Field(None, ge=1, description="training clips used (the data-scale knob)")
    eval_fraction: float = Field(0.1, gt=0, lt=1)
    eval_every: int = Field(500, ge=1)
    checkpoint_every: int = Field(500, ge=1)
    segment: float | None = Field(None, gt=0, description="seconds of each clip used per example (random crop)")
    stft_ffts: tuple[int, ...] = Field((256, 512, 1024), min_length=1,
                                       description="FFT sizes of the multi-resolution STFT loss (autoencoders)")
    mel_weight: float = Field(0.0, ge=0, description="weight of the multi-scale mel loss (autoencoders)")
    wave_weight: float = Field(1.0, ge=0, description="weight of the waveform L1 loss (autoencoders)")
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="bf16 autocast of the forward pass; auto: bf16 on CUDA, fp32 on CPU")


def parse_config(data: dict[str, Any] | None) -> TrainConfig:
    """Validate a training config dict with a one-line error naming the key."""
    try:
        return TrainConfig(**(data or {}))
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        raise ConfigError(f"training config: {loc}: {err['msg']}") from None


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda") from None


def _same_recipe(saved: dict[str, Any] | None, cfg: TrainConfig) -> bool:
    """Whether a checkpoint's recipe is ``cfg`` (fields added since it was written take their defaults)."""
    try:
        return saved is not None and parse_config(saved).model_dump(mode="json") == cfg.model_dump(mode="json")
    except ConfigError:
        return False


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``precision`` is ``auto`` or ``bf16``; nothing otherwise.

    On CPU ``auto`` means fp32, so CPU runs stay bit-reproducible at one thread; ``bf16`` on CPU autocasts
    there too (slower on most CPUs, for checking a GPU run's numerics). Losses are computed in fp32.
    """
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then cosine decay to 0."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def split(n: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out clip positions (a seeded permutation; ``data_size`` trims the training part)."""
    perm = np.random.default_rng([cfg.seed, 7]).permutation(n)
    n_eval = max(1, int(round(n * cfg.eval_fraction)))
    if n - n_eval < 1:
        raise ConfigError(f"{n} clips are too few to hold out {n_eval} for evaluation and train on the rest")
    train, held = np.sort(perm[n_eval:]), np.sort(perm[:n_eval])
    if cfg.data_size is not None:
        if cfg.data_size > len(train):
            raise ConfigError(f"data_size={cfg.data_size} exceeds the {len(train)} training clips of the set")
        train = np.sort(np.random.default_rng([cfg.seed, 11]).choice(train, cfg.data_size, replace=False))
    return train, held


def _targets(model: StagedModel, data: StimulusSet) -> torch.Tensor | None:
    """Normalised factor targets ``[n, k]`` for a supervised encoder (NaN where undefined)."""
    if model.output != "factors":
        return None
    cols = []
    for name in model.spec.factors:
        if name not in data.factors:
            raise ConfigError(f"the stimulus set has no factor column {name!r} to regress")
        cols.append(get_factor(name).normalize(data.factors[name].to_numpy(dtype=np.float64)))
    return torch.tensor(np.stack(cols, 1), dtype=torch.float32)


def loss_fn(model: StagedModel, audio: torch.Tensor, target: torch.Tensor | None, *,
            cfg: TrainConfig | None = None) -> torch.Tensor:
    """The family's training loss on a batch of audio ``[B, samples]`` under the recipe ``cfg``.

    The forward pass runs under whatever autocast surrounds the call; the loss itself is computed in fp32.
    """
    cfg = cfg or TrainConfig()
    out = model(audio)
    with torch.autocast(audio.device.type, enabled=False):
        if model.output == "audio":
            pred = out[..., :audio.shape[-1]].float()
            loss = multi_resolution_stft_loss(pred, audio, cfg.stft_ffts)
            if cfg.wave_weight > 0:
                loss = loss + cfg.wave_weight * F.l1_loss(pred, audio)
            if cfg.mel_weight > 0:
                loss = loss + cfg.mel_weight * multi_scale_mel_loss(pred, audio, model.spec.sample_rate)
            q = getattr(model, "quantizer", None)
            return loss + q.loss.float() if q is not None else loss
        if model.output == "spectrogram":
            return F.l1_loss(out.float(), model.target(audio))
        mask = torch.isfinite(target)
        return F.mse_loss(out.float()[mask], target[mask])


def optimizer_step(model: StagedModel, opt: torch.optim.Optimizer, audio: torch.Tensor, target: torch.Tensor | None,
                   *, cfg: TrainConfig) -> torch.Tensor:
    """One step of the recipe on a batch ``audio`` ``[B, samples]`` (and ``target`` ``[B, factors]`` for an
    encoder): the forward pass under :func:`autocast` of ``cfg.precision``, :func:`loss_fn` (in fp32), backward,
    gradient clipping to ``cfg.grad_clip`` and the optimizer's step. Returns the loss, detached."""
    with autocast(audio.device, cfg.precision):
        loss = loss_fn(model, audio, target, cfg=cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return loss.detach()


def _crop(audio: torch.Tensor, seconds: float | None, sr: int, rng: np.random.Generator) -> torch.Tensor:
    if seconds is None:
        return audio
    n = min(int(round(seconds * sr)), audio.shape[-1])
    starts = rng.integers(0, audio.shape[-1] - n + 1, size=audio.shape[0])
    return torch.stack([a[s:s + n] for a, s in zip(audio, starts, strict=True)])


def _optimizer_state(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    flat = {}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            flat[f"{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return flat


def _load_optimizer_state(opt: torch.optim.Optimizer, flat: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in flat.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def evaluate(model: StagedModel, audio: torch.Tensor, target: torch.Tensor | None, *, batch: int = 32,
             cfg: TrainConfig | None = None) -> float:
    """Mean loss over held-out clips."""
    cfg = cfg or TrainConfig()
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad(), autocast(audio.device, cfg.precision):
        for s in range(0, audio.shape[0], batch):
            a = audio[s:s + batch]
            t = target[s:s + batch] if target is not None else None
            total += float(loss_fn(model, a, t, cfg=cfg)) * a.shape[0]
            n += a.shape[0]
    model.train()
    return total / n


def train(
    spec: Any,
    data: StimulusSet | str | os.PathLike,
    out: str | os.PathLike,
    config: TrainConfig | dict | None = None,
    progress: bool | None = None,
    stop_after: int | None = None,
) -> tuple[StagedModel, dict[str, Any]]:
    """Train a model of the family on a stimulus set, checkpointing to ``out``.

    Parameters
    ----------
    spec : ArchSpec
        The architecture.
    data : StimulusSet or path
        Training audio (and factor targets for a supervised encoder).
    out : path
        Checkpoint directory. If it holds an unfinished run of the same spec,
        data and config, training resumes from it; a finished one is returned.
    config : TrainConfig or dict
        The recipe.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    stop_after : int, optional
        Stop (with a checkpoint) after this many steps of this call, as an
        interruption would; used to test resuming.

    Returns
    -------
    model, card
        The trained model (eval mode) and its checkpoint card.
    """
    cfg = config if isinstance(config, TrainConfig) else parse_config(config)
    ds = data if isinstance(data, StimulusSet) else StimulusSet.load(data)
    if ds.sr != spec.sample_rate:
        raise ConfigError(f"the stimulus set is at {ds.sr} Hz but the spec expects {spec.sample_rate} Hz; "
                          "render the set at the model's rate or change sample_rate in the spec")
    device = pick_device(cfg.device)
    out = Path(out)
    train_idx, eval_idx = split(len(ds), cfg)
    data_id = {"path": str(ds.root), "table_hash": ds.manifest["table_hash"], "n_train": int(len(train_idx)),
               "n_eval": int(len(eval_idx))}
    model = build(spec, seed=cfg.seed).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, history = 0, []
    if (out / "card.json").exists():
        card = read_card(out)
        same = (card["spec"] == spec_to_dict(spec) and _same_recipe(card.get("train"), cfg)
                and card.get("data", {}).get("table_hash") == data_id["table_hash"])
        if not same:
            raise CheckpointError(f"{out} holds a checkpoint of another spec, config or data set; choose another "
                                  "output directory")
        model.load_state_dict(load_tensors(out / "model.safetensors"))
        if card["step"] < cfg.steps:
            _load_optimizer_state(opt, load_tensors(out / "optimizer.safetensors"))
        step, history = int(card["step"]), list(card.get("history", []))
        if step >= cfg.steps:
            return model.eval(), card
    audio_train = ds.audio(train_idx).to(device)
    audio_eval = ds.audio(eval_idx).to(device)
    targets = _targets(model, ds)
    t_train = targets[train_idx].to(device) if targets is not None else None
    t_eval = targets[eval_idx].to(device) if targets is not None else None
    batch = min(cfg.batch_size, len(train_idx))

    def checkpoint(final: bool = False) -> dict[str, Any]:
        card = {"train": cfg.model_dump(mode="json"), "data": data_id, "step": step, "history": history,
                "seed": cfg.seed, "final": final,
                "eval_loss": next((h["eval_loss"] for h in reversed(history) if "eval_loss" in h), None)}
        save_checkpoint(out, model, card, _optimizer_state(opt))
        return read_card(out)

    if step == 0:
        history.append({"step": 0, "eval_loss": evaluate(model, audio_eval, t_eval, cfg=cfg)})
    model.train()
    start, t0, done_here = step, time.perf_counter(), 0
    show = progress if progress is not None else os.isatty(2)
    bar = Progress(TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(), disable=not show,
                   transient=True)
    with bar:
        task = bar.add_task("train", total=cfg.steps, completed=step, loss=float("nan"))
        while step < cfg.steps:
            rng = np.random.default_rng([cfg.seed, step])
            pick = rng.choice(len(train_idx), batch, replace=False)
            a = _crop(audio_train[pick], cfg.segment, ds.sr, rng)
            t = t_train[pick] if t_train is not None else None
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            loss = optimizer_step(model, opt, a, t, cfg=cfg)
            step += 1
            done_here += 1
            rec: dict[str, Any] = {"step": step, "loss": float(loss)}
            if step % cfg.eval_every == 0 or step == cfg.steps:
                rec["eval_loss"] = evaluate(model, audio_eval, t_eval, cfg=cfg)
            history.append(rec)
            bar.update(task, completed=step, loss=rec["loss"])
            if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                checkpoint()
            if stop_after is not None and done_here >= stop_after and step < cfg.steps:
                return model.eval(), checkpoint()
    card = checkpoint(final=True)
    elapsed = time.perf_counter() - t0
    card["throughput_audio_s_per_s"] = (step - start) * batch * audio_train.shape[-1] / ds.sr / max(elapsed, 1e-9)
    return model.eval(), card


def history_table(card: dict[str, Any]) -> pd.DataFrame:
    """A card's training history as a table (step, loss, eval_loss)."""
    return pd.DataFrame(card.get("history", []))
