"""The operational ontology on planted models: statuses, scores and subspaces known by construction."""

import numpy as np
import pandas as pd
import pytest
import torch

from ontoscope.errors import ConfigError
from ontoscope.models.planted import PlantedModel
from ontoscope.probing.alignment import fit_alignment, principal_angles
from ontoscope.probing.icv import ICVThresholds, icv_scores
from ontoscope.probing.operational import OperationalOntology, operational_ontology
from ontoscope.probing.steering import mean_difference_directions
from ontoscope.stimuli import FactorSpace
from ontoscope.stimuli.dataset import StimulusSet
from ontoscope.stimuli.pairs import counterfactual_pairs

SR = 16000
NAMES = ["f0", "loudness", "brightness", "odd_even"]
SITE = "planted.latent"


@pytest.fixture(scope="module")
def space():
    return FactorSpace.create(NAMES)


@pytest.fixture(scope="module")
def sets(space, tmp_path_factory):
    root = tmp_path_factory.mktemp("operational")
    ds = StimulusSet.render(root / "stimuli", space.sample(64, seed=0), SR, 0.5, progress=False)
    pairs = StimulusSet.render(root / "pairs", counterfactual_pairs(space, 6, seed=1, min_change=0.2), SR, 0.5,
                               progress=False)
    return ds, pairs


def _run(space, sets, **planted):
    ds, pairs = sets
    return operational_ontology(PlantedModel(space, sample_rate=SR, **planted), ds, pairs=pairs, sites=[SITE],
                                n_steer=8, progress=False)


def _predicted_specificity(model, base, vector, intended):
    """Specificity of steering along ``vector`` computed from the planted decoder itself (no synthesis, no
    descriptors): each factor's least-squares slope over the magnitudes, with each clip's own offset."""
    z = model.encode(base, SITE)
    d = torch.as_tensor(vector, dtype=torch.float32)[None, :, None]
    mags = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    slopes = {}
    for n in NAMES:
        v = np.array([model.space[n].normalize(model.factor_values(z + m * d, SITE)[n].numpy()) for m in mags])
        v = v - v.mean(0)
        slopes[n] = abs(float((mags[:, None] * v).sum() / (mags**2).sum() / v.shape[1]))
    return slopes[intended] / sum(slopes.values())


@pytest.fixture(scope="module")
def linear(space, sets):
    """The planted model at angle 0, linear, with odd/even left out."""
    return _run(space, sets, angle=0.0, omit=["odd_even"])


def test_unrotated_factors_are_icvs_and_a_left_out_factor_is_absent(linear):
    t = linear.table.set_index("factor")
    for name in ["f0", "loudness", "brightness"]:
        row = t.loc[name]
        assert row["status"] == "icv", row
        assert row["decodability"] > 0.97 and row["specificity"] > 0.97 and row["iia"] > 0.95
        assert row["consistency"] == 1.0 and row["efficacy"] > 0.7 and row["icv_score"] > 0.9
        assert row["erasure_drop"] > 0.9 and row["erasure_collateral"] < 0.1
    gone = t.loc["odd_even"]
    assert gone["status"] == "absent" and gone["decodability"] < 0.1 and gone["efficacy"] < 0.05
    assert list(linear.status().columns) == [SITE] and linear.status().loc["odd_even", SITE] == "absent"


def test_cubic_entanglement_lowers_specificity_and_iia_as_planted(space, sets, linear):
    """A linear rotation is undone by the probe's direction (the factor is still one variable, spread over two
    channels); through the cube no fixed direction moves one factor of a rotated pair alone. Specificity, IIA and
    the score fall from the linear model to the cubic one at 45°, and the measured specificity (synthesizer +
    descriptors) matches the one the planted decoder predicts for the same directions and clips."""
    ds, pairs = sets
    model = PlantedModel(space, sample_rate=SR, angle=45.0, nonlinearity="cubic")
    bent = operational_ontology(model, ds, pairs=pairs, sites=[SITE], n_steer=8, progress=False)
    tb, tl = bent.table.set_index("factor"), linear.table.set_index("factor")
    encoded = ["f0", "loudness", "brightness"]
    assert (tb.loc[encoded, "specificity"] < tl.loc[encoded, "specificity"] - 0.1).all()
    assert (tb.loc[encoded, "iia"] < tl.loc[encoded, "iia"] - 0.05).all()
    assert (tb.loc[encoded, "icv_score"] < tl.loc[encoded, "icv_score"]).all()
    base = ds.audio(bent.steer_clips)
    for name in NAMES:
        predicted = _predicted_specificity(model, base, bent.directions[(SITE, name)], name)
        assert tb.loc[name, "specificity"] == pytest.approx(predicted, abs=0.1), name


def test_das_finds_the_planted_subspace_where_the_mean_difference_is_biased(space, tmp_path):
    """Loudness correlated with f0 in the data tilts the mean-difference direction of loudness towards f0's
    channel; the interchange objective does not see the correlation (a pair differs in loudness alone), so DAS
    started from that biased direction turns to the planted channel."""
    rng = np.random.default_rng(0)
    table = space.sample(96, seed=3)
    uf = space["f0"].normalize(table["f0"].to_numpy())
    table["loudness"] = space["loudness"].denormalize(np.clip(0.8 * uf + 0.2 * rng.random(len(table)), 0, 1))
    ds = StimulusSet.render(tmp_path / "corr", table, SR, 0.5, progress=False)
    pairs = StimulusSet.render(tmp_path / "pairs", counterfactual_pairs(space, 12, factors=["loudness"], seed=2,
                                                                       min_change=0.2), SR, 0.5, progress=False)
    model = PlantedModel(space, sample_rate=SR)
    x = model.encode(ds.audio(np.arange(len(ds))), SITE).mean(-1).double().numpy()
    biased = mean_difference_directions(x, pd.DataFrame({"loudness": table["loudness"]}))["loudness"]
    planted = np.eye(4)[:, 1]
    before = principal_angles(biased, planted)[0]
    al = fit_alignment(model, pairs, SITE, "loudness", init=biased, restarts=0, steps=60, lr=0.02)
    after = principal_angles(al.basis, planted)[0]
    assert before > 25 and after < 8, (before, after)
    assert al.loss[-1] < al.loss[0] / 3


def test_an_encoder_only_model_is_read_by_probes_on_its_output(space, sets):
    """A model whose output is its latent (no audio): steering is measured by ridge readouts of the output."""

    class Embedding(PlantedModel):
        output = "embedding"

        def resume(self, acts, site, n_samples=None):
            return self.mix(self.unmix(acts)) if site == SITE else self.mix(acts)

    ds, _ = sets
    op = operational_ontology(Embedding(space, sample_rate=SR), ds, sites=[SITE], n_steer=8, progress=False)
    t = op.table.set_index("factor")
    assert (t["status"] == "icv").all() and (t["specificity"] > 0.95).all() and t["iia"].isna().all()
    assert not op.examples


def test_icv_score_is_the_geometric_mean_and_the_status_follows_the_thresholds():
    t = pd.DataFrame({"decodability": [0.9, 0.9, 0.05, 0.9], "efficacy": [0.8, 2.0, 0.01, 0.8],
                      "specificity": [0.9, 0.3, 0.2, 0.9], "consistency": [1.0, 1.0, 0.5, 1.0],
                      "iia": [0.9, np.nan, np.nan, 0.2]})
    s = icv_scores(t)
    assert s["icv_score"].iloc[0] == pytest.approx((0.9 * 0.8 * 0.9 * 1.0 * 0.9) ** (1 / 5))
    assert s["icv_score"].iloc[1] == pytest.approx((0.9 * 1.0 * 0.3 * 1.0) ** (1 / 4))  # efficacy clipped at 1
    assert list(s["status"]) == ["icv", "entangled", "absent", "entangled"]
    assert icv_scores(t, ICVThresholds(iia=0.1))["status"].iloc[3] == "icv"
    with pytest.raises(ConfigError, match="must lie in"):
        ICVThresholds(specificity=1.5)
    with pytest.raises(ConfigError, match="lacks the measures"):
        icv_scores(t.drop(columns="efficacy"))


def test_save_and_load_round_trip(linear, tmp_path):
    op = linear
    out = op.save(tmp_path / "op")
    back = OperationalOntology.load(out)
    pd.testing.assert_frame_equal(back.table, op.table)
    assert (out / "examples" / SITE / "f0_steered.wav").exists()
    with pytest.raises(ConfigError, match="no operational ontology"):
        OperationalOntology.load(tmp_path)


def test_bad_input(space, sets):
    ds, _ = sets
    model = PlantedModel(space, sample_rate=SR)
    with pytest.raises(ConfigError, match="not varied"):
        operational_ontology(model, ds, factors=["vibrato_rate"], progress=False)
    with pytest.raises(ConfigError, match="expects 22050 Hz"):
        operational_ontology(PlantedModel(space, sample_rate=22050), ds, progress=False)
