"""Steering on planted models: effects and specificity known by construction."""

import numpy as np
import pytest
import torch

from ontoscope.descriptors import measure
from ontoscope.errors import ConfigError
from ontoscope.models.planted import PlantedModel
from ontoscope.probing.steering import effect_matrix, mean_difference_directions, probe_directions, steer
from ontoscope.stimuli import FactorSpace, render

SR = 16000
NAMES = ["f0", "loudness", "brightness", "odd_even"]


@pytest.fixture(scope="module")
def space():
    return FactorSpace.create(NAMES)


@pytest.fixture(scope="module")
def base(space):
    # clips away from the edges of every range, so that steps of 0.1 in u stay inside it
    table = FactorSpace.create(NAMES, ranges={"f0": (160.0, 600.0), "loudness": (-35.0, -15.0),
                                              "brightness": (-11.0, -4.0), "odd_even": (-7.0, 7.0)}
                               ).sample(4, seed=5)
    return render(table, sr=SR, seconds=0.5)


def _axis(k, i):
    d = np.zeros(k)
    d[i] = 1.0
    return d


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0])
def test_axis_steering_leaks_as_the_rotation_predicts(space, base, angle):
    """Steering latent channel 0 moves u_f0 by m cos θ and u_loudness by m sin θ: specificity cos θ / (cos θ + sin θ);
    on the normalised [0, 1] scale the slope of f0 is cos θ / 2."""
    model = PlantedModel(space, angle=angle, sample_rate=SR)
    e = effect_matrix(model, base, "bottleneck", {"f0": _axis(4, 0)}, space=space, magnitudes=(-0.1, 0.0, 0.1))
    e = e.set_index("measured")
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    assert e.loc["f0", "slope"] == pytest.approx(c / 2, abs=0.02)
    assert e.loc["loudness", "slope"] == pytest.approx(s / 2, abs=0.02)
    assert abs(e.loc["brightness", "slope"]) < 0.02 and abs(e.loc["odd_even", "slope"]) < 0.02
    assert e["specificity"].iloc[0] == pytest.approx(c / (c + s), abs=0.03)
    assert e["consistency"].iloc[0] == 1.0  # every clip moves the same way


def test_probe_directions_undo_the_rotation(space, base, tmp_path):
    """A rotation is invertible: the probe's readout direction steers one factor alone, where the axis does not."""
    from ontoscope.stimuli.dataset import StimulusSet

    model = PlantedModel(space, angle=45.0, sample_rate=SR)
    ds = StimulusSet.synthesize(tmp_path / "set", space, 80, SR, 0.5, seed=2, progress=False)
    z = model.encode(ds.audio(), "bottleneck").mean(-1).numpy()
    targets = ds.factors[NAMES].apply(lambda col: space[col.name].normalize(col.to_numpy()))
    dirs = probe_directions(z, targets)
    e = effect_matrix(model, base, "bottleneck", {"f0": dirs["f0"]}, space=space, magnitudes=(-0.1, 0.0, 0.1))
    assert e["specificity"].iloc[0] > 0.95
    diff = mean_difference_directions(z, targets)["f0"]
    assert np.dot(diff, dirs["f0"]) > 0.9  # both find the same direction, up to the sampling of the quartiles


def test_steer_shapes_and_bad_input(space, base):
    model = PlantedModel(space, sample_rate=SR)
    out = steer(model, base, "bottleneck", _axis(4, 1), [0.0, 0.1])
    assert out.shape == (2, 4, base.shape[1])
    with pytest.raises(ConfigError, match="4 channels"):
        steer(model, base, "bottleneck", np.ones(3), [0.0])
    with pytest.raises(ConfigError, match="two different magnitudes"):
        effect_matrix(model, base, "bottleneck", {"f0": _axis(4, 0)}, space=space, magnitudes=(0.1,))

    class Pitch:
        output = "pitch"

    with pytest.raises(ConfigError, match="scored on the audio"):  # a model without audio needs a readout
        effect_matrix(Pitch(), base, "x", {"f0": np.ones(1)}, space=space)


class EnvelopeModel:
    """A model whose site is the clip's RMS envelope every 10 ms and whose output is a fixed 220 Hz tone with that
    envelope: a trajectory added at the site becomes a tremolo of known rate and depth."""

    sample_rate, output, hop = SR, "audio", 160

    def sites(self):
        from ontoscope.models.protocol import Site

        return [Site("envelope", "BCT", 1, stride=self.hop)]

    def encode(self, audio, upto):

        t = audio.shape[-1] // self.hop
        frames = audio[:, : t * self.hop].reshape(audio.shape[0], t, self.hop)
        return frames.pow(2).mean(-1).sqrt()[:, None, :]

    def resume(self, acts, site):
        n = acts.shape[-1] * self.hop
        env = torch.nn.functional.interpolate(acts, size=n, mode="linear", align_corners=False)[:, 0]
        t = torch.arange(n) / SR
        return env * np.sqrt(2) * torch.sin(2 * np.pi * 220.0 * t)


def test_a_temporal_intervention_drives_a_tremolo_a_static_one_cannot():
    model = EnvelopeModel()
    base = render(FactorSpace.create(["f0"], fixed={"loudness": -20.0}).sample(3, seed=1), sr=SR, seconds=1.0)
    space = FactorSpace.create(["loudness", "tremolo_rate", "tremolo_depth"])
    d = np.ones(1)
    out = steer(model, base, "envelope", d, [0.04], rate_hz=6.0)[0]
    m = measure(out, SR)
    np.testing.assert_allclose(m["tremolo_rate"], 6.0, atol=0.1)
    np.testing.assert_allclose(m["tremolo_depth"], 0.4, atol=0.05)  # 0.04 on an envelope of 0.1
    e = effect_matrix(model, base, "envelope", {"tremolo_depth": d}, space=space, magnitudes=(0.0, 0.02, 0.04),
                      rate_hz=6.0).set_index("measured")
    assert e.loc["tremolo_depth", "slope"] == pytest.approx(10.0, rel=0.15) and (e["kind"] == "temporal").all()
    static = effect_matrix(model, base, "envelope", {"tremolo_depth": d}, space=space, magnitudes=(0.0, 0.02, 0.04))
    static = static.set_index("measured")
    assert abs(static.loc["tremolo_depth", "slope"]) < 1.0 and static.loc["loudness", "slope"] > 1.0
    with pytest.raises(ConfigError, match="frame Nyquist|Nyquist"):
        steer(model, base, "envelope", d, [0.01], rate_hz=60.0)
