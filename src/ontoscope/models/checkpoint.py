"""Checkpoints: safetensors weights plus a JSON card. Nothing is ever unpickled.

A checkpoint directory holds ``model.safetensors``, ``optimizer.safetensors``
(for resuming) and ``card.json`` (spec, training config, data hash, step,
losses, versions). The card is written last, so a directory with a card is a
complete checkpoint.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ontoscope import __version__
from ontoscope.artifacts import save_json, write_atomic
from ontoscope.errors import ConfigError, OntoscopeError
from ontoscope.models.family import build
from ontoscope.models.protocol import StagedModel
from ontoscope.models.spec import parse_spec, spec_to_dict

FORMAT = "ontoscope.checkpoint/1"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")


class CheckpointError(OntoscopeError):
    """A checkpoint that is missing, incomplete, pickled, or from another spec."""


def versions() -> dict[str, str]:
    """Versions recorded on every card."""
    return {"ontoscope": __version__, "torch": torch.__version__, "python": platform.python_version()}


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> Path:
    """Write tensors as safetensors, atomically."""
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return write_atomic(path, lambda p: save_file(flat, str(p)))


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file; pickles and corrupt files are refused with a clear error."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES or _looks_pickled(path):
        raise CheckpointError(f"{path} is a pickled file; ontoscope never unpickles (it can run code): "
                              "convert it to safetensors")
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such weights file") from None
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def _looks_pickled(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head[:1] == b"\x80" or head[:2] == b"PK"  # pickle protocol 2+ / torch.save zip


def save_checkpoint(out: str | os.PathLike, model: StagedModel, card: dict[str, Any],
                    optimizer: dict[str, torch.Tensor] | None = None) -> Path:
    """Write weights (and optimizer state), then the card."""
    out = Path(out)
    save_tensors(out / "model.safetensors", model.state_dict())
    if optimizer is not None:
        save_tensors(out / "optimizer.safetensors", optimizer)
    full = {"format": FORMAT, "spec": spec_to_dict(model.spec), "versions": versions(), **card}
    save_json(out / "card.json", full)
    return out


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card of a checkpoint directory."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES or _looks_pickled(path):
            raise CheckpointError(f"{path} is a pickled file; ontoscope never unpickles (it can run code): "
                                  "convert it to safetensors")
        raise CheckpointError(f"{path} is a file; a checkpoint is a directory holding card.json and "
                              "model.safetensors")
    card_path = path / "card.json"
    if not card_path.is_file():
        raise CheckpointError(f"{path} is not a complete checkpoint (no card.json); train again or resume "
                              "with `ontoscope train`")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{card_path}: not valid JSON ({e})") from None
    if card.get("format") != FORMAT:
        raise CheckpointError(f"{card_path}: unknown checkpoint format {card.get('format')!r}")
    return card


def load_checkpoint(path: str | os.PathLike, spec: Any = None) -> tuple[StagedModel, dict[str, Any]]:
    """Model and card of a checkpoint directory.

    Parameters
    ----------
    path : path
        The checkpoint directory.
    spec : ArchSpec, optional
        If given, the checkpoint must have been trained with this spec.
    """
    card = read_card(path)
    saved = parse_spec(card["spec"], f"{path}/card.json")
    if spec is not None and spec_to_dict(spec) != spec_to_dict(saved):
        raise CheckpointError(f"{path} was trained with another spec ({_spec_diff(saved, spec)}); "
                              "load it without a spec or pass the one it was trained with")
    model = build(saved)
    state = load_tensors(Path(path) / "model.safetensors")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{path}: the weights do not fit the card's spec ({first})") from None
    model.eval()
    return model, card


def _spec_diff(a: Any, b: Any) -> str:
    da, db = spec_to_dict(a), spec_to_dict(b)
    keys = [k for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)]
    return ", ".join(f"{k}: {da.get(k)} vs {db.get(k)}" for k in keys[:3])


def is_checkpoint(path: str | os.PathLike) -> bool:
    """True for a directory holding a checkpoint card."""
    return (Path(path) / "card.json").is_file()


__all__ = ["CheckpointError", "ConfigError", "load_checkpoint", "read_card", "save_checkpoint"]
