"""LEACE erasure on planted models: what is erased, what survives, what the output loses."""

import numpy as np
import pytest
import torch

from ontoscope.descriptors import measure
from ontoscope.errors import ConfigError
from ontoscope.models.planted import PlantedModel
from ontoscope.probing.erasure import erase_and_resume, erasure_decodability, fit_eraser
from ontoscope.stimuli import FactorSpace
from ontoscope.stimuli.dataset import StimulusSet

SR = 16000
NAMES = ["f0", "loudness", "brightness", "odd_even"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    space = FactorSpace.create(NAMES)
    ds = StimulusSet.synthesize(tmp_path_factory.mktemp("erase") / "set", space, 120, SR, 0.5, seed=4,
                                progress=False)
    targets = ds.factors[NAMES].apply(lambda col: space[col.name].normalize(col.to_numpy()))
    return space, ds, targets


@pytest.mark.parametrize("angle", [0.0, 45.0])
def test_erasing_a_factor_removes_it_and_only_it(data, angle):
    """The planted mixing is orthogonal, so erasing f0's readout direction leaves the others' intact."""
    space, ds, targets = data
    model = PlantedModel(space, angle=angle, sample_rate=SR)
    z = model.encode(ds.audio(), "bottleneck").mean(-1).numpy()
    t = erasure_decodability(z, targets, erase=["f0"]).set_index("factor")
    assert t.loc["f0", "r2_before"] > 0.99 and t.loc["f0", "r2_after"] < 0.05
    for other in ("loudness", "brightness", "odd_even"):
        assert t.loc[other, "r2_after"] > 0.98, (other, t.loc[other, "r2_after"])


def test_the_output_loses_the_erased_factor(data):
    space, ds, targets = data
    model = PlantedModel(space, angle=30.0, sample_rate=SR)
    audio = ds.audio()
    z = model.encode(audio, "bottleneck")
    eraser = fit_eraser(z.mean(-1), torch.tensor(targets["f0"].to_numpy(copy=True)))
    out = measure(erase_and_resume(model, audio[:20], "bottleneck", eraser), SR)
    f0 = space["f0"].normalize(out["f0"].to_numpy())
    loud = space["loudness"].normalize(out["loudness"].to_numpy())
    # f0 no longer follows the input (LEACE leaves no covariance with it; what varies is what the other factors'
    # sample correlations carried), and varies far less; loudness still follows the input
    assert abs(np.corrcoef(f0, targets["f0"][:20])[0, 1]) < 0.3
    assert np.std(f0) < 0.3 * np.std(targets["f0"][:20])
    assert np.corrcoef(loud, targets["loudness"][:20])[0, 1] > 0.99


def test_erasure_bad_input(data):
    space, ds, targets = data
    with pytest.raises(ConfigError, match="same n"):
        fit_eraser(np.ones((5, 2)), np.ones(4))
    with pytest.raises(ConfigError, match="finite"):
        fit_eraser(np.ones((5, 2)), np.array([1.0, np.nan, 0, 0, 0]))
    with pytest.raises(ConfigError, match="cannot erase"):
        erasure_decodability(np.random.default_rng(0).standard_normal((40, 4)), targets.iloc[:40], erase=["noise"])
