"""scripts/band_energy.py: a sine's energy lands in the band that holds its frequency."""

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[1] / "scripts" / "band_energy.py"


@pytest.fixture(scope="module")
def band_energy():
    spec = importlib.util.spec_from_file_location("band_energy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.band_energy


@pytest.mark.parametrize(("hz", "band"), [(110.0, 0), (700.0, 2), (1500.0, 3), (5000.0, 5)])
def test_a_sine_lands_in_its_band(band_energy, hz, band):
    sr = 16000
    t = torch.arange(sr) / sr
    x = torch.stack([0.5 * torch.sin(2 * torch.pi * hz * t), 0.05 * torch.sin(2 * torch.pi * hz * t)])
    e = band_energy(x, sr)
    assert e.shape == (2, 6)
    share = e / e.sum(1, keepdim=True)
    assert torch.all(share[:, band] > 0.99)
    # energy is power: a tenth of the amplitude is a hundredth of the energy
    assert torch.allclose(e[1].sum() / e[0].sum(), torch.tensor(0.01), rtol=1e-4)


def test_the_last_band_holds_nyquist(band_energy):
    x = torch.cos(torch.pi * torch.arange(16000.0)).unsqueeze(0)  # (-1)^n: all its energy at 8000 Hz
    e = band_energy(x, 16000)
    assert e[0, 5] / e.sum() > 0.99
