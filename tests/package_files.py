"""The adapters' tests run each package's own inference as the oracle, loading its source files one by one:
its ``__init__`` would import what is not installed (torchaudio, tensorflow, webrtcvad)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest


def stand_in_package(monkeypatch: pytest.MonkeyPatch, name: str, root: Path) -> types.ModuleType:
    """An empty package ``name`` whose submodules are looked up in ``root``, in ``sys.modules`` for the test."""
    pkg = types.ModuleType(name)
    pkg.__path__ = [str(root)]
    monkeypatch.setitem(sys.modules, name, pkg)
    return pkg


def load_file(monkeypatch: pytest.MonkeyPatch, name: str, file: Path) -> types.ModuleType:
    """Execute ``file`` as the module ``name`` (registered in ``sys.modules`` for the test) and return it."""
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module
