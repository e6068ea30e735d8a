"""Planted models and the probing instrument on them: answers known by construction."""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment

from ontoscope.descriptors import measure
from ontoscope.errors import ConfigError
from ontoscope.models.planted import PlantedModel, mixing_matrix
from ontoscope.probing.capture import capture
from ontoscope.probing.probes import probe_factors
from ontoscope.stimuli import FactorSpace
from ontoscope.stimuli.dataset import StimulusSet

SR = 16000
NAMES = ["f0", "loudness", "brightness", "odd_even", "noise"]


@pytest.fixture(scope="module")
def space():
    return FactorSpace.create(NAMES, ranges={"noise": (20.0, 40.0)})  # the descriptors are exact here


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory, space):
    return StimulusSet.synthesize(tmp_path_factory.mktemp("planted") / "set", space, 160, SR, 0.5, seed=3,
                                  progress=False)


@pytest.fixture(scope="module")
def truth(stimuli, space):
    return pd.DataFrame({n: 2 * space[n].normalize(stimuli.factors[n].to_numpy()) - 1 for n in NAMES})


def _pooled_means(model, stimuli, tmp):
    cap = capture(model, stimuli, tmp, sites=["bottleneck"], views=("pooled",), chunk=64, progress=False)
    x, clips = cap.features("bottleneck", "pooled")
    assert np.array_equal(clips, stimuli.factors["clip"].to_numpy())
    return x[:, : len(model.encoded)]  # the means (the stds are 0: factors are held over frames)


def test_mixing_is_a_pairwise_rotation():
    m = mixing_matrix(5, 30.0).numpy()
    np.testing.assert_allclose(m @ m.T, np.eye(5), atol=1e-12)
    assert m[0, 0] == pytest.approx(np.cos(np.pi / 6)) and m[0, 1] == pytest.approx(0.5)
    assert m[4, 4] == 1.0 and np.count_nonzero(m[4]) == 1


def test_probes_recover_the_planted_readout_at_angle_zero(space, stimuli, truth, tmp_path):
    model = PlantedModel(space, angle=0.0, omit=["noise"], sample_rate=SR)
    x = _pooled_means(model, stimuli, tmp_path / "cap")
    t = probe_factors(x, truth, probes=("ridge",), n_boot=200).set_index("factor")
    for n in ("f0", "loudness", "brightness", "odd_even"):
        assert t.loc[n, "test_r2"] > 0.99, (n, t.loc[n, "test_r2"])
    # the omitted factor is decodable only through its correlation with the others (independent here: none)
    assert t.loc["noise", "test_r2"] < 0.1


@pytest.mark.parametrize("angle", [15.0, 30.0, 60.0])
def test_correlations_follow_the_angle(space, stimuli, truth, tmp_path, angle):
    """Each paired channel correlates cos θ with its own factor and sin θ with its partner; the matched mean
    correlation is max(cos θ, sin θ)."""
    model = PlantedModel(space, angle=angle, omit=["noise"], sample_rate=SR)
    z = _pooled_means(model, stimuli, tmp_path / "cap")
    u = truth[model.encoded].to_numpy()
    c = np.corrcoef(z.T, u.T)[:4, 4:]
    # sampled factors are not exactly uncorrelated: predict from their own sample covariance
    cov = np.cov(u.T)
    m = mixing_matrix(4, angle).numpy()
    expected = (m @ cov) / np.sqrt(np.outer(np.diag(m @ cov @ m.T), np.diag(cov)))
    np.testing.assert_allclose(c, expected, atol=0.02)
    rows, cols = linear_sum_assignment(-np.abs(c))
    mcc = np.abs(c[rows, cols]).mean()
    theta = np.radians(angle)
    assert mcc == pytest.approx(max(np.cos(theta), np.sin(theta)), abs=0.03)
    # a rotation is invertible: linear probes still read every factor
    t = probe_factors(z, truth[model.encoded], probes=("ridge",), n_boot=50, control=False)
    assert (t["test_r2"] > 0.99).all()


@pytest.mark.slow
def test_a_nonlinear_latent_needs_the_mlp_probe(space, stimuli, truth, tmp_path):
    model = PlantedModel(space, angle=0.0, nonlinearity="cubic", omit=["noise"], sample_rate=SR)
    z = _pooled_means(model, stimuli, tmp_path / "cap")
    # probe one channel's factor from that channel alone: linear R² is corr(u, u³)² = 21/25 for uniform u
    t = probe_factors(z[:, :1], truth[["f0"]], probes=("ridge", "mlp"), n_boot=50, control=False,
                      test_fraction=0.25).set_index("probe")
    assert t.loc["ridge", "test_r2"] == pytest.approx(21 / 25, abs=0.06)
    assert t.loc["mlp", "test_r2"] > 0.95


def test_the_decoder_is_the_synthesizer(space, stimuli):
    model = PlantedModel(space, angle=30.0, omit=["noise"], sample_rate=SR)
    audio = stimuli.audio(np.arange(6))
    z = model.encode(audio, "bottleneck")
    assert z.shape == (6, 4, 25)  # 0.5 s at 50 frames per second
    out = model.resume(z, "bottleneck")
    m = measure(out, SR)
    np.testing.assert_allclose(m["f0"], stimuli.factors["f0"][:6], rtol=2e-3)
    np.testing.assert_allclose(m["loudness"], stimuli.factors["loudness"][:6], atol=0.05)
    # steering the f0 channel of the un-mixed latent moves f0, and only f0, by the planted amount
    u = model.encode(audio, "encoder.factors")
    u[:, 0] += 0.2
    shifted = measure(model.resume(u, "encoder.factors"), SR)
    f = space["f0"]
    before = f.normalize(stimuli.factors["f0"][:6].to_numpy())
    expected = f.denormalize(np.minimum(before + 0.1, 1.0))  # the decoder keeps factors in their range
    np.testing.assert_allclose(shifted["f0"], expected, rtol=2e-3)
    assert (before + 0.1 > 1).sum() == 1  # one clip is pushed against the top of the range
    np.testing.assert_allclose(shifted["loudness"], m["loudness"], atol=0.05)


def test_bad_planted_specs(space):
    with pytest.raises(ConfigError, match="nonlinearity"):
        PlantedModel(space, nonlinearity="tanh")
    with pytest.raises(ConfigError, match="cannot omit"):
        PlantedModel(space, omit=["vibrato_rate"])
    with pytest.raises(ConfigError, match="at least one"):
        PlantedModel(FactorSpace.create(["f0"]), omit=["f0"])


@pytest.mark.slow
def test_disentanglement_falls_with_the_angle(space, stimuli, tmp_path):
    """On 160 clips the tree importances of DCI are noisy (D is about 0.7 for a pure latent), but the order holds."""
    from ontoscope.probing.capture import Capture
    from ontoscope.probing.decodability import factor_targets, site_metrics

    targets = factor_targets(stimuli.factors, space)[["f0", "loudness", "brightness", "odd_even"]]
    scores = {}
    for angle in (0.0, 20.0, 45.0):
        model = PlantedModel(space, angle=angle, omit=["noise"], sample_rate=SR)
        _pooled_means(model, stimuli, tmp_path / f"cap{angle}")
        m = site_metrics(Capture(tmp_path / f"cap{angle}"), targets, sites=["bottleneck"]).iloc[0]
        scores[angle] = m
    for key in ("dci_disentanglement", "mig", "mcc"):
        a, b, c = (scores[x][key] for x in (0.0, 20.0, 45.0))
        assert a > b > c, (key, a, b, c)
    assert scores[0.0]["mcc"] > 0.99 and scores[45.0]["mcc"] == pytest.approx(np.cos(np.pi / 4), abs=0.05)
    assert scores[0.0]["dci_disentanglement"] > 0.6 and scores[45.0]["dci_disentanglement"] < 0.4
