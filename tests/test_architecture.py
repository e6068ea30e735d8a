"""The architecture contract: the package's layering, checked by import-linter over the real import graph.

The contracts live in pyproject.toml (``[tool.importlinter]``, docs/architecture.md); ``make test`` runs
``lint-imports`` before pytest, and this test runs it too, so an upward import, a new top-level module without a
layer, the report importing torch or an import cycle between sibling modules fails the suite.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter's own TOML reader
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["cli", "study", "report", "ontology", "operators | probing", "models", "descriptors", "stimuli",
          "claims | artifacts | progress", "errors"]


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["root_package"] == "ontoscope" and config["include_external_packages"] is True
    return {c["id"]: c for c in config["contracts"]}


def test_the_contracts_are_the_documented_ones():
    contracts = _contracts()
    layers = contracts["layers"]
    assert layers["type"] == "layers" and layers["containers"] == ["ontoscope"] and layers["exhaustive"] is True
    assert layers["layers"] == LAYERS
    torch_ban = contracts["report-torch"]
    assert torch_ban["type"] == "forbidden"
    assert torch_ban["source_modules"] == ["ontoscope.report"] and torch_ban["forbidden_modules"] == ["torch"]
    acyclic = contracts["acyclic"]
    assert acyclic["type"] == "acyclic_siblings" and acyclic["ancestors"] == ["ontoscope"]
    assert "depth" not in acyclic  # import-linter's default depth (10) reaches every subpackage


def test_every_contract_is_kept():
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.is_file():
        pytest.fail(f"{exe} is missing: install the dev extra (pip install -e '.[dev]'), which has import-linter")
    r = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    names = [c["name"] for c in _contracts().values()]
    kept = " ".join(out.split())  # long names are wrapped
    for name in names:
        assert f"{name} KEPT" in kept, out
    assert f"Contracts: {len(names)} kept, 0 broken." in out, out


# -- the seams the contract asked for keep their behaviour ------------------------------------------


def test_model_device_is_the_protocols():
    from ontoscope.models.protocol import model_device

    class Bare:
        pass

    assert model_device(Bare()) == torch.device("cpu")
    assert model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    only_buffer = torch.nn.Module()
    only_buffer.register_buffer("b", torch.zeros(1, device="meta"))
    assert model_device(only_buffer) == torch.device("meta")
    both = torch.nn.Linear(2, 2)
    both.register_buffer("b", torch.zeros(1, device="meta"))
    assert model_device(both) == torch.device("cpu")  # the first parameter wins over a buffer


def test_measure_takes_an_f0_tracker_from_the_caller():
    from ontoscope.descriptors import measure
    from ontoscope.errors import ConfigError

    sr = 16000
    t = np.arange(sr // 2) / sr
    audio = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)[None]
    calls = []

    def tracker(x: torch.Tensor, rate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        calls.append((tuple(x.shape), rate))
        frames = 50
        f0 = torch.full((x.shape[0], frames), 230.0)
        f0[:, 0] = 5000.0  # outside [fmin, fmax]: unvoiced
        return f0, torch.ones_like(f0), torch.arange(frames, dtype=torch.float64) * 0.01

    m = measure(audio, sr, f0_method=tracker)
    assert calls == [((1, sr // 2), sr)]
    assert m["f0"].iloc[0] == pytest.approx(230.0) and m["voiced"].iloc[0] == pytest.approx(49 / 50)
    with pytest.raises(ConfigError, match="pesto_f0_track"):
        measure(audio, sr, f0_method="pesto")
