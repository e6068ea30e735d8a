"""One string names a model: ``load_model("crepe:tiny")``, ``load_model("hf:mimi")``, ``load_model("runs/ae1")``.

References
----------
* ``crepe:tiny``, ``crepe:full`` - CREPE with its published weights (Kim et al. 2018).
* ``pesto`` - PESTO with its published ``mir-1k_g7`` weights (Riou et al. 2023).
* ``fcpe``, ``basic-pitch``, ``silero-vad``, ``resemblyzer`` - trained networks whose weights ship inside
  their PyPI packages (FCPE, Basic Pitch, Silero VAD, Resemblyzer), rebuilt as native torch modules.
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
from ontoscope.models.adapters import basic_pitch, fcpe, resemblyzer, silero_vad
from ontoscope.models.adapters.crepe import crepe_weights, load_crepe
from ontoscope.models.adapters.hf import HF_REFERENCES, load_hf
from ontoscope.models.adapters.pesto import load_pesto, pesto_checkpoint
from ontoscope.models.checkpoint import load_checkpoint
from ontoscope.models.family import build
from ontoscope.models.planted import PlantedModel
from ontoscope.models.protocol import AudioModel
from ontoscope.models.spec import load_spec
from ontoscope.stimuli.factors import FactorSpace

__all__ = ["check_model", "list_models", "load_model", "register"]

Resolver = Callable[..., "AudioModel | None"]


def _crepe(ref: str, seed: int, **options: Any) -> AudioModel | None:
    if not ref.startswith("crepe:"):
        return None
    capacity = ref.split(":", 1)[1]
    if capacity not in ("tiny", "full"):
        raise ConfigError(f"unknown CREPE model {ref!r}; use crepe:tiny or crepe:full")
    return load_crepe(capacity, **options)


def _pesto(ref: str, seed: int, **options: Any) -> AudioModel | None:
    if ref != "pesto":
        return None
    return load_pesto(**options)


# Trained networks whose weights ship in their PyPI packages: reference -> (loader, the function that finds the
# weights without importing the package: a one-line error naming the install when they are missing).
_PACKAGED: dict[str, tuple[Callable[..., Any], Callable[[], Any]]] = {
    "fcpe": (fcpe.load_fcpe, fcpe.fcpe_checkpoint),
    "basic-pitch": (basic_pitch.load_basic_pitch, basic_pitch.basic_pitch_onnx),
    "silero-vad": (silero_vad.load_silero_vad, silero_vad.silero_vad_data),
    "resemblyzer": (resemblyzer.load_resemblyzer, resemblyzer.resemblyzer_weights),
}


def _packaged(ref: str, seed: int, **options: Any) -> AudioModel | None:
    return _PACKAGED[ref][0](**options) if ref in _PACKAGED else None


def _hf(ref: str, seed: int, **options: Any) -> AudioModel | None:
    if not ref.startswith("hf:"):
        return None
    return load_hf(ref[3:], seed=seed, **options)


def _family_checkpoint(ref: str, seed: int, **options: Any) -> AudioModel | None:
    path = Path(ref).expanduser()
    if not (path.is_dir() and (path / "card.json").is_file()):
        return None
    return load_checkpoint(path, **options)[0]


def _family_spec(ref: str, seed: int, **options: Any) -> AudioModel | None:
    path = Path(ref).expanduser()
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        return None
    return build(load_spec(path), seed=seed, **options).eval()


def _planted_args(ref: str) -> dict[str, Any]:
    """The options of a ``planted:`` reference, validated (one-line :class:`ConfigError` otherwise)."""
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
    return {"names": args["factors"].split("+") if "factors" in args else None,
            "omit": args["omit"].split("+") if args.get("omit") else [],
            "angle": angle, "sr": sr, "nonlinearity": args.get("nonlinearity", "none")}


def _is_planted(ref: str) -> bool:
    return ref == "planted" or ref.startswith("planted:")


def _planted(ref: str, seed: int, **options: Any) -> AudioModel | None:
    if not _is_planted(ref):
        return None
    a = _planted_args(ref)
    return PlantedModel(FactorSpace.create(a["names"]), angle=a["angle"], nonlinearity=a["nonlinearity"],
                        omit=a["omit"], sample_rate=a["sr"], seed=seed, **options)


_BUILTIN_RESOLVERS: dict[str, Resolver] = {
    "crepe": _crepe,
    "pesto": _pesto,
    "packaged": _packaged,
    "hf": _hf,
    "planted": _planted,
    "checkpoint": _family_checkpoint,
    "spec": _family_spec,
}
_RESOLVERS: list[tuple[str, Resolver]] = list(_BUILTIN_RESOLVERS.items())


def _check_builtin(name: str, ref: str) -> bool:
    """Whether the built-in resolver ``name`` owns ``ref``; a one-line ConfigError if it does but cannot build it."""
    path = Path(ref).expanduser()
    if name == "crepe":
        if not ref.startswith("crepe:"):
            return False
        crepe_weights(ref.split(":", 1)[1])
    elif name == "pesto":
        if ref != "pesto":
            return False
        pesto_checkpoint()
    elif name == "packaged":
        if ref not in _PACKAGED:
            return False
        _PACKAGED[ref][1]()
    elif name == "hf":
        if not ref.startswith("hf:"):
            return False
        name_or_path = ref[3:]
        if name_or_path not in HF_REFERENCES and not (Path(name_or_path).expanduser() / "config.json").is_file():
            raise ConfigError(f"unknown Hugging Face reference {ref!r}: not one of "
                              f"{', '.join('hf:' + n for n in HF_REFERENCES)} and not a directory with config.json")
    elif name == "planted":
        if not _is_planted(ref):
            return False
        _planted_args(ref)
    elif name == "checkpoint":
        return path.is_dir() and (path / "card.json").is_file()
    elif name == "spec":
        if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
            return False
        load_spec(path)
    return True


def check_model(ref: str) -> None:
    """Raise a one-line :class:`ConfigError` unless :func:`load_model` can build ``ref``.

    Built-in references are checked without building the model (the name is known, the package holding the
    weights is installed, the path exists); a reference only a :func:`register`-ed resolver owns is built once.
    Study configs call this for every model before any stage runs.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(f"a model reference must be a non-empty string, got {ref!r}")
    ref = ref.strip()
    for name, resolver in _RESOLVERS:
        if _BUILTIN_RESOLVERS.get(name) is resolver:
            if _check_builtin(name, ref):
                return
        elif resolver(ref, 0) is not None:
            return
    known = ", ".join(name for name, _ in list_models())
    raise ConfigError(f"unknown model reference {ref!r}; known references: {known}")


def register(name: str, resolver: Resolver, first: bool = False) -> None:
    """Add (or replace) a resolver ``(ref, seed, **options) -> AudioModel | None`` under ``name``."""
    global _RESOLVERS
    rest = [(n, r) for n, r in _RESOLVERS if n != name]
    _RESOLVERS = [(name, resolver), *rest] if first else [*rest, (name, resolver)]


def list_models() -> list[tuple[str, str]]:
    """Every reference :func:`load_model` knows, with a one-line description."""
    out = [
        ("crepe:tiny", "CREPE tiny pitch estimator, published weights (Kim et al. 2018); 16 kHz, 10 ms frames"),
        ("crepe:full", "CREPE full pitch estimator, published weights (Kim et al. 2018); 16 kHz, 10 ms frames"),
        ("pesto", "PESTO pitch estimator, published mir-1k_g7 weights (Riou et al. 2023); 16 kHz, 10 ms frames"),
    ]
    out += [
        ("fcpe", "FCPE pitch estimator, packaged weights fcpe_c_v001 (torchfcpe); 16 kHz mel, 10 ms frames"),
        ("basic-pitch", "Basic Pitch note/contour transcriber, packaged ICASSP 2022 weights (Bittner et al. 2022); "
                        "22.05 kHz, 256-sample hop"),
        ("silero-vad", "Silero VAD speech detector, packaged v6 weights; 16 kHz, 32 ms frames, conv + LSTM"),
        ("resemblyzer", "Resemblyzer speaker encoder, packaged weights (GE2E, Wan et al. 2018); 16 kHz, "
                        "3-layer LSTM, 256-d embedding"),
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
