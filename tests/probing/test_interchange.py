"""Interchange interventions on planted models: IIA known by construction."""

import numpy as np
import pytest

from ontoscope.errors import ConfigError
from ontoscope.models.planted import PlantedModel
from ontoscope.probing.interchange import interchange, interchange_accuracy, orthonormal_basis
from ontoscope.stimuli import FactorSpace
from ontoscope.stimuli.dataset import StimulusSet
from ontoscope.stimuli.pairs import counterfactual_pairs

SR = 16000
NAMES = ["f0", "loudness", "brightness", "odd_even"]


@pytest.fixture(scope="module")
def space():
    return FactorSpace.create(NAMES)


@pytest.fixture(scope="module")
def pairs(space, tmp_path_factory):
    table = counterfactual_pairs(space, 12, factors=["f0"], seed=1, min_change=0.2)
    return StimulusSet.render(tmp_path_factory.mktemp("pairs") / "set", table, SR, 0.5, progress=False)


def test_orthonormal_basis():
    q = orthonormal_basis(np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]))
    np.testing.assert_allclose(q.T @ q, np.eye(2), atol=1e-12)
    assert orthonormal_basis(np.array([[1.0, 2.0], [0.0, 0.0]])).shape == (2, 1)
    with pytest.raises(ConfigError, match="empty"):
        orthonormal_basis(np.zeros(3))
    # the tolerance is relative: a tiny vector (a near-silent model's pattern) still spans its direction
    tiny = orthonormal_basis(np.array([3e-13, 4e-13, 0.0]))
    assert np.allclose(tiny[:, 0] * np.sign(tiny[0, 0]), [0.6, 0.8, 0.0])
    assert orthonormal_basis(np.array([[1e-12, 2e-12], [0.0, 1e-25]])).shape == (2, 1)
    with pytest.raises(ConfigError, match="not finite"):
        orthonormal_basis(np.array([1.0, np.nan]))


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0])
def test_iia_of_an_axis_is_cos_squared(space, pairs, angle):
    """Swapping latent channel 0 of a pair that differs in f0 by Δ moves u_f0 by Δ cos² θ (and loudness by
    Δ cos θ sin θ): IIA = cos² θ. The plane of the pair (channels 0 and 1) holds f0 whole: IIA = 1."""
    model = PlantedModel(space, angle=angle, sample_rate=SR)
    e0 = np.eye(4)[:, :1]
    plane = np.eye(4)[:, :2]
    t = interchange_accuracy(model, pairs, "bottleneck", {"f0": e0}, space)
    c = np.cos(np.radians(angle))
    assert t["iia"].iloc[0] == pytest.approx(c**2, abs=0.03)
    full = interchange_accuracy(model, pairs, "bottleneck", {"f0": plane}, space).iloc[0]
    assert full["iia"] > 0.97 and full["drift"] < 0.01 and full["rank"] == 2 and full["pairs"] == 12


def test_interchange_bad_input(space, pairs):
    model = PlantedModel(space, sample_rate=SR)
    a = pairs.audio([0, 1])
    with pytest.raises(ConfigError, match="channels"):
        interchange(model, a, a, "bottleneck", np.eye(3))
    with pytest.raises(ConfigError, match="differ in shape"):
        interchange(model, a, a[:1], "bottleneck", np.eye(4))
    with pytest.raises(ConfigError, match="no pairs over"):
        interchange_accuracy(model, pairs, "bottleneck", {"loudness": np.eye(4)[:, :1]}, space)
