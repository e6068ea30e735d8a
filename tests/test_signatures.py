"""Style rule: data arguments positional, the rest keyword-only.

No public function or method of ``ontoscope`` takes more than six positional-or-keyword parameters
(``self`` and ``cls`` not counted); the rest go after a bare ``*``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import ontoscope

MAX_POSITIONAL = 6


def _modules():
    yield ontoscope
    for info in pkgutil.walk_packages(ontoscope.__path__, prefix=f"{ontoscope.__name__}."):
        try:
            yield importlib.import_module(info.name)
        except ImportError:  # an optional dependency (ray, fluidsynth, transformers, ...) is missing
            continue


def _n_positional(func) -> int | None:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):  # no signature to read (a builtin)
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in sig.parameters.values() if p.kind in kinds and p.name not in ("self", "cls"))


def _public_callables(module):
    """``(qualname, function)`` of the public functions and methods defined in ``module``."""
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield obj.__qualname__, obj
        elif inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                elif isinstance(member, property):
                    continue
                if inspect.isfunction(member):
                    yield f"{obj.__qualname__}.{attr}", member


def test_public_functions_keep_at_most_six_positional_parameters():
    seen, offenders = 0, []
    for module in _modules():
        for qualname, func in _public_callables(module):
            n = _n_positional(func)
            if n is None:
                continue
            seen += 1
            if n > MAX_POSITIONAL:
                offenders.append(f"{module.__name__}.{qualname} ({n})")
    assert seen > 100, f"only {seen} public functions found; is the package walk broken?"
    assert not offenders, (
        f"{len(offenders)} public function(s) with more than {MAX_POSITIONAL} positional parameters "
        "(data arguments positional, the rest keyword-only: add a bare `*`):\n" + "\n".join(sorted(offenders))
    )
