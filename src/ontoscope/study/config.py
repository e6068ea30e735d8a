"""Study configs: YAML validated by pydantic, expanded into the list of models a study runs.

A config names the stimulus set, the models (family specs with grids over their
knobs and seeds, or references to real models), the analyses and the report's
options (``docs/studies.md``). :func:`load_config` validates the whole file,
including every grid point's architecture, before any work starts; a bad config
fails with one line that names the file, the key and what is allowed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ontoscope.errors import ConfigError
from ontoscope.models.registry import check_model
from ontoscope.models.spec import parse_spec, spec_to_dict
from ontoscope.models.train import parse_config as parse_train
from ontoscope.probing.interventions import FAMILIES
from ontoscope.probing.operational import DEFAULT_DOSES
from ontoscope.probing.response import check_doses
from ontoscope.stimuli.factors import FactorSpace

__all__ = ["AnalysesConfig", "ControlsConfig", "ModelPlan", "StudyConfig", "expand_models", "load_config",
           "parse_config"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StimuliConfig(_Strict):
    """The stimulus set every model of the study is trained on and analysed with."""

    source: Literal["synth", "soundfont"] = "synth"
    factors: list[str] | None = Field(None, description="varied factors (default: the canon's default space)")
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    sample_rate: int = Field(16000, ge=4000, le=96000)
    seconds: float = Field(1.0, gt=0, le=30)
    n: int = Field(256, ge=16, le=1_000_000)
    pairs: int = Field(16, ge=0, le=10_000, description="counterfactual pairs per factor (0: no IIA)")
    seed: int = 0
    bank: str | None = None
    programs: list[int] | None = None

    def space(self) -> FactorSpace:
        """The factor space these stimuli vary (validated: a bad factor or range raises)."""
        return FactorSpace.create(self.factors, ranges={k: tuple(v) for k, v in self.ranges.items()})

    @model_validator(mode="after")
    def _soundfont(self) -> StimuliConfig:
        if self.source == "soundfont" and not self.bank:
            raise ValueError("a soundfont source needs bank: PATH (a General MIDI .sf2)")
        return self


class FamilyModels(_Strict):
    """Models of ontoscope's family: a fixed ``arch``, a ``grid`` over its knobs, a training recipe, seeds."""

    family: Literal["conv_ae", "tcn", "spec_cnn"]
    arch: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    trained: bool = True
    name: str | None = None

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for k, vals in v.items():
            if not vals:
                raise ValueError(f"grid.{k} is empty; give at least one value")
        return v


class PretrainedModel(_Strict):
    """A real model by reference (``crepe:tiny``, ``pesto``, ``hf:NAME``; see ``ontoscope models``)."""

    ref: str
    name: str | None = None
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)


class LatentConfig(_Strict):
    seeds: int = Field(2, ge=0, le=32, description="at most this many random initialisations for the Jacobian "
                       "statistics (more run only while a decision is near its threshold)")
    sweep_points: int = Field(96, ge=8)
    sweep: Literal["needed", "all"] = Field("needed", description="sites swept with sines: those a status can "
                                            "depend on, or all")
    jacobians: bool = True


class OperationalConfig(_Strict):
    n_steer: int = Field(8, ge=2, description="held-out clips steered per (site, family)")
    families: list[str] | None = Field(None, description="intervention families (default: all that apply)")
    doses: dict[str, list[float]] | None = Field(None, description="dose levels per steering family")
    das: bool = True
    das_rank: int | list[int] | None = Field(None, description="DAS ranks (default 1 and 2, each below the "
                                             "site's width)")
    das_steps: int = Field(40, ge=4)
    erasure: bool = True
    sites: list[str] | None = None
    max_sites: int | None = Field(None, ge=1, description="at most this many sites, evenly spread, the "
                                  "bottleneck always among them")
    device: str = Field("auto", description="where the model runs: auto (CUDA when present), cpu, cuda or cuda:N; "
                        "in fp32, since effects are differences of outputs that bf16 rounding would swamp")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "cuda") and not (v.startswith("cuda:") and v[5:].isdigit()):
            raise ValueError(f"unknown device {v!r}; use auto, cpu, cuda or cuda:N")
        return v

    @field_validator("das_rank")
    @classmethod
    def _das_rank(cls, v: int | list[int] | None) -> list[int] | None:
        ranks = [v] if isinstance(v, int) else v
        if ranks is not None and (not ranks or any(r < 1 or r > 16 for r in ranks)):
            raise ValueError(f"DAS ranks must be between 1 and 16, got {v}")
        return ranks

    @field_validator("families")
    @classmethod
    def _families(cls, v: list[str] | None) -> list[str] | None:
        bad = [f for f in v or [] if f not in FAMILIES]
        if bad:
            raise ValueError(f"unknown intervention family {bad[0]!r}; use any of {', '.join(FAMILIES)}")
        if v is not None and not v:
            raise ValueError("give at least one family (or leave families out for all)")
        return v

    @field_validator("doses")
    @classmethod
    def _doses(cls, v: dict[str, list[float]] | None) -> dict[str, list[float]] | None:
        for fam, levels in (v or {}).items():
            if fam not in DEFAULT_DOSES:
                raise ValueError(f"doses for {fam!r}: only {', '.join(DEFAULT_DOSES)} take dose levels")
            try:
                check_doses(levels, what=f"{fam} doses", integer=fam == "place_shift")
            except ConfigError as e:
                raise ValueError(str(e)) from None
        return v


class ControlsConfig(_Strict):
    """The control models every study runs first (:mod:`ontoscope.probing.controls`)."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1,
                             description="training seeds of the trained controls")
    n_steer: int = Field(8, ge=2)
    min_sensitivity: float = Field(0.95, ge=0, le=1)
    max_fpr: float = Field(0.05, ge=0, le=1)


class FidelityConfig(_Strict):
    """The fidelity gate: a trained autoencoder whose reconstruction misses a threshold is
    ``undertrained`` and left out of the claims (:func:`ontoscope.models.fidelity.fidelity_gate`).

    ``clips: all`` scores it on every clip of the study, the clips the ontologies are measured on;
    ``held_out`` on the training split's held-out clips only (10 % of the set: a median over so few clips
    moves with how many high notes the seeded split happens to draw, ``docs/studies.md``)."""

    f0_cents: float = Field(25.0, gt=0, description="largest median f0 error, cents")
    loudness_db: float = Field(1.5, gt=0, description="largest median loudness error, dB")
    clips: Literal["all", "held_out"] = Field("all", description="the clips the gate is scored on")


class AnalysesConfig(_Strict):
    """Which analyses run (``false`` skips one)."""

    latent: LatentConfig | Literal[False] = Field(default_factory=LatentConfig)
    operational: OperationalConfig | Literal[False] = Field(default_factory=OperationalConfig)
    controls: ControlsConfig | Literal[False] = Field(default_factory=ControlsConfig)
    fidelity: FidelityConfig | Literal[False] = Field(default_factory=FidelityConfig)


class ReportConfig(_Strict):
    examples: int = Field(3, ge=0, le=50, description="steering examples per model")
    enabled: bool = True


class StudyConfig(_Strict):
    """A whole study."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    stimuli: StimuliConfig = Field(default_factory=StimuliConfig)
    models: list[FamilyModels | PretrainedModel] = Field(..., min_length=1)
    analyses: AnalysesConfig = Field(default_factory=AnalysesConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)


class ModelPlan(BaseModel):
    """One model of an expanded study: its id, how to get it, and its knobs."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Literal["family", "pretrained"]
    ref: str
    spec: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    seed: int = 0
    trained: bool = True
    knobs: dict[str, Any] = Field(default_factory=dict)

    def key_data(self) -> dict[str, Any]:
        """What the model's stages depend on (everything but its display id)."""
        return {"kind": self.kind, "ref": self.ref, "spec": self.spec, "train": self.train, "seed": self.seed,
                "trained": self.trained}


def _format_error(source: str, e: ValidationError) -> str:
    err = e.errors()[0]
    # pydantic names the union member it tried (``FamilyModels``, ``OperationalConfig``, ``literal[False]``)
    loc = ".".join(str(p) for p in err["loc"] if not (str(p)[:1].isupper() or "[" in str(p)))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key; check the spelling against docs/studies.md"
    elif err["type"] == "missing":
        msg = "required key is missing"
    return f"{source}: {loc or 'config'}: {msg}"


def parse_config(data: Any, source: str = "config") -> StudyConfig:
    """Validate a config mapping (and every model it expands to); one-line :class:`ConfigError` otherwise."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a study config is a mapping of keys (name, stimuli, models, ...)")
    models = data.get("models")
    if isinstance(models, list):  # pick the model kind by its keys, for a clear error on either
        for i, m in enumerate(models):
            if isinstance(m, dict) and "ref" in m and "family" in m:
                raise ConfigError(f"{source}: models.{i}: give either family (a family grid) or ref (a real "
                                  "model), not both")
    try:
        cfg = StudyConfig(**data)
    except ValidationError as e:
        raise ConfigError(_format_error(source, e)) from None
    except TypeError as e:
        raise ConfigError(f"{source}: {e}") from None
    try:
        cfg.stimuli.space()
    except Exception as e:  # noqa: BLE001 - any factor error is the user's, in one line
        raise ConfigError(f"{source}: stimuli: {e}") from None
    expand_models(cfg, source)
    return cfg


def load_config(path: str | os.PathLike) -> tuple[StudyConfig, str]:
    """Read and validate a study YAML; returns the config and its text."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file; see configs/demo.yaml for an example")
    text = p.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}; check the indentation and colons") from None
    return parse_config(data, str(p)), text


def _short_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def expand_models(cfg: StudyConfig, source: str = "config") -> list[ModelPlan]:
    """Every model of the study, grid points times seeds, each architecture validated."""
    plans: list[ModelPlan] = []
    for i, entry in enumerate(cfg.models):
        if isinstance(entry, PretrainedModel):
            try:
                check_model(entry.ref)
            except ConfigError as e:
                raise ConfigError(f"{source}: models.{i}.ref: {e}") from None
            for seed in entry.seeds:
                name = entry.name or entry.ref.replace(":", "_").replace("/", "_")
                knobs = {k: None for k in ("total_stride", "bottleneck", "compression", "antialias", "activation",
                                           "bitrate", "width", "depth", "data_size", "steps")}
                plans.append(ModelPlan(id=f"{name}_seed{seed}", kind="pretrained", ref=entry.ref, seed=seed,
                                       knobs={**knobs, "family": "pretrained", "trained": True}))
            continue
        keys = list(entry.grid)
        for values in itertools.product(*(entry.grid[k] for k in keys)):
            arch = {"family": entry.family, "sample_rate": cfg.stimuli.sample_rate, **entry.arch,
                    **dict(zip(keys, values, strict=True))}
            try:
                spec = parse_spec(arch, source=f"{source}: models.{i}")
            except ConfigError:
                raise
            except Exception as e:  # noqa: BLE001
                raise ConfigError(f"{source}: models.{i}: {e}") from None
            sd = spec_to_dict(spec)
            for seed in entry.seeds:
                try:
                    train = parse_train({**entry.train, "seed": seed}).model_dump(mode="json")
                except ConfigError as e:
                    raise ConfigError(f"{source}: models.{i}.train.{str(e).removeprefix('training config: ')}"
                                      ) from None
                knobs = _knobs(spec, sd, train, entry.trained)
                label = "_".join(f"{k}{_label(v)}" for k, v in zip(keys, values, strict=True))
                name = entry.name or entry.family
                pid = f"{name}{'_' + label if label else ''}_seed{seed}"
                plans.append(ModelPlan(id=pid, kind="family", ref=entry.family, spec=sd, train=train, seed=seed,
                                       trained=entry.trained, knobs=knobs))
    ids = [p.id for p in plans]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        raise ConfigError(f"{source}: models: two entries give the same model {dup[0]!r}; give each a distinct name")
    return plans


def _label(v: Any) -> str:
    if isinstance(v, list):
        return "x".join(str(x) for x in v)
    return str(v)


def _knobs(spec: Any, sd: dict[str, Any], train: dict[str, Any], trained: bool) -> dict[str, Any]:
    return {"family": sd["family"], "total_stride": int(spec.total_stride), "bottleneck": sd.get("bottleneck"),
            "compression": float(spec.compression), "antialias": sd.get("antialias"),
            "activation": sd.get("activation", "elu"), "bitrate": spec.bitrate, "width": sd.get("width"),
            "depth": sd.get("depth"), "data_size": train.get("data_size"), "steps": train.get("steps"),
            "trained": trained}
