"""One string names a model: ``load_model("crepe:tiny")``, ``load_model("hf:mimi")``, ``load_model("runs/ae1")``.

References
----------
* ``crepe:tiny``, ``crepe:full`` - CREPE with its published weights (Kim et al. 2018).
* ``pesto`` - PESTO with its published ``mir-1k_g7`` weights (Riou et al. 2023).
* ``hf:NAME`` - a published ``transformers`` architecture with seeded random
  weights (see :mod:`ontoscope.models.adapters.hf`); ``hf:PATH`` - a local
  ``save_pretrained`` directory.
* ``DIR`` - a checkpoint of the ontoscope model family (a directory with ``card.json``).
* ``SPEC.yaml`` - an architecture spec of the family, built with seeded random weights.
* ``planted:angle=30,nonlinearity=cubic,omit=noise`` - a planted model whose latent is known
  by construction (:mod:`ontoscope.models.planted`), over the canon's default factor space.

Each form is handled by a *resolver*, tried in order: a function
``(ref, seed, **options) -> AudioModel | None`` that returns None for
references it does not own. :func:`register` adds one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ontoscope.errors import ConfigError
from ontoscope.models.protocol import AudioModel

__all__ = ["list_models", "load_model", "register"]

Resolver = Callable[..., "AudioModel | None"]


def _crepe(ref: str, seed: int, **options: Any) -> AudioModel | None:
    if not ref.startswith("crepe:"):
        return None
    capacity = ref.split(":", 1)[1]
    if capacity not in ("tiny", "full"):
        raise ConfigError(f"unknown CREPE model {ref!r}; use crepe:tiny or crepe:full")
    from ontoscope.models.adapters.crepe import load_crepe

    return load_crepe(capacity, **options)


def _pesto(ref: str, seed: int, **options: Any) -> AudioModel | None:
    if ref != "pesto":
        return None
    from ontoscope.models.adapters.pesto import load_pesto

    return load_pesto(**options)


def _hf(ref: str, seed: int, **options: Any) -> AudioModel | None:
    if not ref.startswith("hf:"):
        return None
    from ontoscope.models.adapters.hf import load_hf

    return load_hf(ref[3:], seed=seed, **options)


def _family_checkpoint(ref: str, seed: int, **options: Any) -> AudioModel | None:
    path = Path(ref).expanduser()
    if not (path.is_dir() and (path / "card.json").is_file()):
        return None
    from ontoscope.models.checkpoint import load_checkpoint

    return load_checkpoint(path, **options)[0]


def _family_spec(ref: str, seed: int, **options: Any) -> AudioModel | None:
    path = Path(ref).expanduser()
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        return None
    from ontoscope.models.family import build
    from ontoscope.models.spec import load_spec

    return build(load_spec(path), seed=seed, **options).eval()


def _planted(ref: str, seed: int, **options: Any) -> AudioModel | None:
    if ref != "planted" and not ref.startswith("planted:"):
        return None
    from ontoscope.models.planted import PlantedModel
    from ontoscope.stimuli.factors import FactorSpace

    args: dict[str, str] = {}
    for item in filter(None, ref.partition(":")[2].split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in ("angle", "nonlinearity", "omit", "factors", "sr"):
            raise ConfigError(f"bad planted option {item!r}; use planted:angle=30,nonlinearity=cubic,"
                              "omit=noise+attack,factors=f0+loudness+noise,sr=16000")
        args[key] = value
    try:
        angle, sr = float(args.get("angle", 0.0)), int(args.get("sr", 16000))
    except ValueError:
        raise ConfigError(f"planted angle and sr must be numbers, got {ref!r}") from None
    names = args["factors"].split("+") if "factors" in args else None
    omit = args["omit"].split("+") if args.get("omit") else []
    return PlantedModel(FactorSpace.create(names), angle=angle, nonlinearity=args.get("nonlinearity", "none"),
                        omit=omit, sample_rate=sr, seed=seed, **options)


_RESOLVERS: list[tuple[str, Resolver]] = [
    ("crepe", _crepe),
    ("pesto", _pesto),
    ("hf", _hf),
    ("planted", _planted),
    ("checkpoint", _family_checkpoint),
    ("spec", _family_spec),
]


def register(name: str, resolver: Resolver, first: bool = False) -> None:
    """Add (or replace) a resolver ``(ref, seed, **options) -> AudioModel | None`` under ``name``."""
    global _RESOLVERS
    rest = [(n, r) for n, r in _RESOLVERS if n != name]
    _RESOLVERS = [(name, resolver), *rest] if first else [*rest, (name, resolver)]


def list_models() -> list[tuple[str, str]]:
    """Every reference :func:`load_model` knows, with a one-line description."""
    from ontoscope.models.adapters.hf import HF_REFERENCES

    out = [
        ("crepe:tiny", "CREPE tiny pitch estimator, published weights (Kim et al. 2018); 16 kHz, 10 ms frames"),
        ("crepe:full", "CREPE full pitch estimator, published weights (Kim et al. 2018); 16 kHz, 10 ms frames"),
        ("pesto", "PESTO pitch estimator, published mir-1k_g7 weights (Riou et al. 2023); 16 kHz, 10 ms frames"),
    ]
    out += [(f"hf:{name}", f"{ref.description}; random weights") for name, ref in HF_REFERENCES.items()]
    out += [
        ("planted:angle=A,...", "a planted model: measured factors rotated pairwise by A degrees, the synthesizer as "
                                "decoder (options nonlinearity=cubic, omit=a+b, factors=a+b, sr)"),
        ("hf:PATH", "a transformers model directory (config.json + weights), loaded offline"),
        ("DIR", "a checkpoint of the ontoscope model family (directory with card.json)"),
        ("SPEC.yaml", "an architecture spec of the ontoscope model family, seeded random weights"),
    ]
    return out


def load_model(ref: str, seed: int = 0, **options: Any) -> AudioModel:
    """The model named by ``ref`` (see the module docstring), ready for analysis (eval mode).

    ``seed`` sets random weights where there are any (``hf:NAME``, specs);
    ``options`` go to the adapter (e.g. ``hop`` for CREPE/PESTO, ``bandwidth``
    for EnCodec).

    Raises
    ------
    ConfigError
        An unknown reference; the message lists the known ones.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(f"a model reference must be a non-empty string, got {ref!r}")
    ref = ref.strip()
    for _, resolver in _RESOLVERS:
        model = resolver(ref, seed, **options)
        if model is not None:
            return model
    known = ", ".join(name for name, _ in list_models())
    raise ConfigError(f"unknown model reference {ref!r}; known references: {known}")
