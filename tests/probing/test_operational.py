"""The operational ontology on models whose answer is known by construction: planted, trained controllers,
the waveform itself and a place code."""

import numpy as np
import pandas as pd
import pytest
import torch

from ontoscope.descriptors import measure
from ontoscope.errors import ConfigError
from ontoscope.models.controls import ControllerModel, PlaceControl, SupervisedControl, WaveformControl
from ontoscope.models.planted import PlantedModel
from ontoscope.probing.alignment import fit_alignment, principal_angles
from ontoscope.probing.icv import ICVThresholds, icv_scores
from ontoscope.probing.operational import OperationalOntology, operational_ontology, pattern_directions
from ontoscope.probing.steering import mean_difference_directions
from ontoscope.stimuli import FactorSpace
from ontoscope.stimuli.dataset import StimulusSet, set_space
from ontoscope.stimuli.pairs import counterfactual_pairs

SR = 16000
NAMES = ["f0", "loudness", "brightness", "odd_even"]
SITE = "bottleneck"
#: Two dose levels per family keep the measurement (the descriptors on every edited clip) affordable.
DOSES = {"additive": [0.3, 1.7], "gain": [0.25, 1.0], "time_warp": [0.08, 0.3]}


@pytest.fixture(scope="module")
def space():
    return FactorSpace.create(NAMES)


@pytest.fixture(scope="module")
def sets(space, tmp_path_factory):
    root = tmp_path_factory.mktemp("operational")
    ds = StimulusSet.render(root / "stimuli", space.sample(48, seed=0), SR, 0.5, progress=False)
    pairs = StimulusSet.render(root / "pairs", counterfactual_pairs(space, 6, seed=1, min_change=0.2), SR, 0.5,
                               progress=False)
    return ds, pairs


@pytest.fixture(scope="module")
def linear(space, sets):
    """The planted model at angle 0, linear, with odd/even left out: additive, interchange and DAS."""
    ds, pairs = sets
    return operational_ontology(PlantedModel(space, sample_rate=SR, omit=["odd_even"]), ds, pairs=pairs, sites=[SITE],
                                families=["additive", "interchange", "das"], n_steer=6, doses=DOSES,
                                progress=False)


def test_pattern_directions_recover_a_planted_mixing_with_the_other_factors_held():
    rng = np.random.default_rng(0)
    y = pd.DataFrame(rng.random((400, 2)), columns=["a", "b"])
    y["b"] = 0.7 * y["a"] + 0.3 * y["b"]  # correlated factors
    mix = np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    p = pattern_directions(y.to_numpy() @ mix, y)
    np.testing.assert_allclose(p["a"], mix[0] * y["a"].std(ddof=0), atol=1e-9)
    np.testing.assert_allclose(p["b"], mix[1] * y["b"].std(ddof=0), atol=1e-9)


@pytest.mark.slow
def test_unrotated_factors_are_icvs_in_every_family_and_a_left_out_factor_is_absent(linear):
    t = linear.table.set_index(["factor", "family"])
    assert sorted(set(linear.table.loc[linear.table["family"] == "das", "variant"])) == ["rank1", "rank2"]
    for name in ["f0", "loudness", "brightness"]:
        for fam in ("additive", "interchange", "das"):  # DAS at ranks 1 and 2 (the default)
            rows = t.loc[[(name, fam)]]
            assert (rows["status"] == "icv").all(), (name, fam, rows)
            assert (rows["decodability"] > 0.97).all() and (rows["specificity"] > 0.9).all()
            assert (rows["consistency"] == 1.0).all()
        assert t.loc[(name, "interchange"), "iia"] > 0.9 and t.loc[(name, "interchange"), "iia_random"] < 0.6
        assert t.loc[(name, "additive"), "erasure_drop"] > 0.9
    for fam in ("additive", "interchange", "das"):
        assert (t.loc[[("odd_even", fam)], "status"] == "absent").all()
    assert list(linear.status().columns) == [SITE] and linear.status().loc["odd_even", SITE] == "absent"
    assert (linear.table["role"] == "bottleneck").all()
    for table in (linear.effects, linear.probes):  # every result table carries the site's role
        assert (table["role"] == "bottleneck").all() and table.columns.get_loc("role") > table.columns.get_loc("site")


@pytest.mark.slow
def test_cubic_entanglement_lowers_specificity_as_planted(space, sets, linear):
    """Through the cube at 45°, no fixed direction moves one factor of a rotated pair alone."""
    ds, pairs = sets
    bent = operational_ontology(PlantedModel(space, sample_rate=SR, angle=45.0, nonlinearity="cubic"), ds,
                                pairs=pairs, sites=[SITE], families=["additive"], n_steer=6, doses=DOSES,
                                progress=False)
    tb = bent.table.set_index("factor")
    tl = linear.table[linear.table["family"] == "additive"].set_index("factor")
    encoded = ["f0", "loudness", "brightness"]
    assert (tb.loc[encoded, "specificity"] < tl.loc[encoded, "specificity"] - 0.1).all()
    assert (tb.loc[encoded, "icv_score"] < tl.loc[encoded, "icv_score"]).all()


@pytest.mark.slow
def test_a_trained_controller_holds_every_encoded_factor_and_gain_or_warp_control_nothing(space, sets):
    """Positive and negative cells of the trained control: the omitted factor is no ICV; the hidden trajectory is
    constant over frames, so gain and time-warp do nothing; a random direction is not a control."""
    ds, pairs = sets
    model = ControllerModel(space, omit=["odd_even"], sample_rate=SR, seed=1)
    assert model.fit_error < 0.05
    op = operational_ontology(model, ds, pairs=pairs, families=["additive", "gain", "time_warp", "interchange"],
                              n_steer=6, doses=DOSES, random_directions=True, progress=False)
    t = op.table
    pos = t[(t["variant"] == "pattern") & (t["factor"] != "odd_even")]
    assert (pos["status"] == "icv").all(), pos
    neg = t[(t["family"].isin(["gain", "time_warp"])) | (t["factor"] == "odd_even")]
    assert not (neg["status"] == "icv").any(), neg[neg["status"] == "icv"]
    # a random direction moves several factors at once: less specific than the factor's own pattern
    random = t[(t["variant"] == "random") & (t["factor"] != "odd_even")].set_index(["site", "factor"])
    assert (random["specificity"] < pos.set_index(["site", "factor"]).loc[random.index, "specificity"]).mean() >= 0.8
    assert (op.best()["variant"] != "random").all()


@pytest.mark.slow
def test_a_conv_encoder_trained_with_a_factor_head_controls_what_the_head_reads_and_nothing_else(space, sets):
    """The supervised control: its head reads f0 and loudness off the conv bottleneck (checked on the synthesizer's
    own held-out clips and on the test clips, read back by the descriptors), and the instrument finds exactly those
    ICVs there; brightness and odd/even, never read, are none."""
    ds, pairs = sets
    model = SupervisedControl(space, omit=["brightness", "odd_even"], sample_rate=SR, seed=0)
    assert set(model.fit_r2) == {"f0", "loudness"} and min(model.fit_r2.values()) > 0.8
    with torch.no_grad():
        out = measure(model(ds.audio(np.arange(len(ds)))), SR)
    for name in model.fit_r2:  # the output follows the input through the head
        assert np.corrcoef(out[name], ds.factors[name])[0, 1] > 0.9, name
    for name in ("brightness", "odd_even"):  # rendered at their mid values whatever the input
        assert out[name].std() < 0.05 * ds.factors[name].std(), name
    op = operational_ontology(model, ds, pairs=pairs, sites=[SITE], families=["additive", "interchange", "das"],
                              n_steer=6, doses=DOSES, das_rank=1, random_directions=True, progress=False)
    t = op.table
    read = t["factor"].isin(["f0", "loudness"])
    pos = t[(t["variant"] != "random") & read]
    assert len(pos) == 6 and (pos["status"] == "icv").all(), pos
    assert not (t[(t["variant"] == "random") | ~read]["status"] == "icv").any()
    with pytest.raises(ConfigError, match="needs a varied static factor"):
        SupervisedControl(FactorSpace.create(["vibrato_depth"]), steps=0)


@pytest.mark.slow
def test_gain_and_time_warp_control_loudness_and_pitch_at_the_waveform(space, sets):
    ds, _ = sets
    op = operational_ontology(WaveformControl(sample_rate=SR), ds, families=["gain", "time_warp", "additive"],
                              n_steer=6, doses=DOSES, progress=False)
    t = op.table.set_index(["factor", "family"])
    # the largest gain here is a ratio of 2: +6 dB against the set's loudness spread of about 9 dB
    assert t.loc[("loudness", "gain"), "status"] == "icv" and t.loc[("loudness", "gain"), "efficacy"] > 0.5
    assert t.loc[("loudness", "gain"), "specificity"] > 0.9
    assert t.loc[("f0", "time_warp"), "status"] == "icv" and t.loc[("f0", "time_warp"), "view"] == "timing"
    assert t.loc[("f0", "gain"), "status"] != "icv" and t.loc[("loudness", "time_warp"), "status"] != "icv"
    assert not (op.table[op.table["family"] == "additive"]["status"] == "icv").any()
    leveled = operational_ontology(WaveformControl(sample_rate=SR, level_db=-20.0), ds, families=["gain"],
                                   n_steer=6, doses=DOSES, progress=False)
    assert not (leveled.table["status"] == "icv").any()  # the decoder reads the site apart from its norm


@pytest.mark.slow
def test_a_place_shift_moves_a_place_code_by_its_steps_and_does_nothing_useful_when_shuffled(space, sets):
    ds, _ = sets
    model = PlaceControl(space, sample_rate=SR)
    op = operational_ontology(model, ds, families=["place_shift"], doses={"place_shift": [4, 16]}, n_steer=6,
                              progress=False)
    row = op.table.set_index("factor").loc["f0"]
    assert row["status"] == "icv" and row["consistency"] == 1.0
    curve = op.effects[(op.effects["intended"] == "f0") & (op.effects["measured"] == "f0")].set_index("dose")
    # 16 steps of 20 cents on the normalised log axis of the set's f0 range
    f0 = set_space(ds)["f0"]
    per_step = 20 / (1200 * np.log2(f0.high / f0.low))
    assert curve.loc[16.0, "odd"] == pytest.approx(16 * per_step, rel=0.01)
    shuffled = operational_ontology(PlaceControl(space, shuffled=True, sample_rate=SR), ds, families=["place_shift"],
                                    n_steer=6, progress=False)
    assert shuffled.table.set_index("factor").loc["f0", "status"] != "icv"


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
    assert before > 25 and after < 10, (before, after)
    assert al.loss[-1] < al.loss[0] / 3


@pytest.mark.slow
def test_an_encoder_only_model_is_read_by_probes_on_its_output(space, sets):
    """A model whose output is its latent (no audio): steering and interchange are measured by ridge readouts of
    the output, against the model's own output on the source."""

    class Embedding(PlantedModel):
        output = "embedding"

        def resume(self, acts, site, n_samples=None):
            return self.mix(self.unmix(acts)) if site == SITE else self.mix(acts)

    ds, pairs = sets
    op = operational_ontology(Embedding(space, sample_rate=SR), ds, pairs=pairs, sites=[SITE],
                              families=["additive", "interchange"], n_steer=6, doses=DOSES, progress=False)
    t = op.table.set_index(["factor", "family"])
    for name in NAMES:
        assert t.loc[(name, "additive"), "status"] == "icv" and t.loc[(name, "additive"), "specificity"] > 0.9
        assert t.loc[(name, "interchange"), "iia"] > 0.9
    assert not op.examples


def test_icv_score_is_the_geometric_mean_and_the_status_follows_the_thresholds():
    t = pd.DataFrame({"decodability": [0.9, 0.9, 0.05, 0.9, 0.9], "efficacy": [0.8, 2.0, 0.01, 0.9, 0.9],
                      "specificity": [0.9, 0.3, 0.2, 0.9, 0.9], "consistency": [1.0, 1.0, 0.5, 1.0, 1.0],
                      "family": ["additive", "gain", "additive", "das", "das"],
                      "iia_random": [np.nan] * 3 + [0.1, 0.8]})
    s = icv_scores(t)
    assert s["icv_score"].iloc[0] == pytest.approx((0.9 * 0.8 * 0.9 * 1.0) ** (1 / 4))
    assert s["icv_score"].iloc[1] == pytest.approx((0.9 * 1.0 * 0.3 * 1.0) ** (1 / 4))  # efficacy clipped at 1
    # the last DAS row is no better than a random subspace
    assert list(s["status"]) == ["icv", "entangled", "absent", "icv", "entangled"]
    assert icv_scores(t, ICVThresholds(iia_margin=0.0))["status"].iloc[4] == "icv"
    with pytest.raises(ConfigError, match="must lie in"):
        ICVThresholds(specificity=1.5)
    with pytest.raises(ConfigError, match="lacks the measures"):
        icv_scores(t.drop(columns="efficacy"))


@pytest.mark.slow
def test_save_and_load_round_trip(linear, tmp_path):
    op = linear
    out = op.save(tmp_path / "op")
    back = OperationalOntology.load(out)
    pd.testing.assert_frame_equal(back.table, op.table)
    pd.testing.assert_frame_equal(back.probes, op.probes)
    assert (out / "examples" / SITE / "f0_steered.wav").exists()
    with pytest.raises(ConfigError, match="no operational ontology"):
        OperationalOntology.load(tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    ({"factors": ["vibrato_rate"]}, "not varied"),
    ({"families": ["steer"]}, "unknown intervention family 'steer'"),
    ({"doses": {"gain": []}}, "gain doses are empty"),
    ({"doses": {"time_warp": [0.1, float("nan")]}}, "must be finite"),
    ({"doses": {"interchange": [1.0]}}, "only additive, gain, time_warp, place_shift take dose levels"),
    ({"families": ["place_shift"]}, "declares no ordered axis"),
    ({"das_rank": 4}, "DAS rank 4 is not below the width"),
    ({"das_rank": [1, 4]}, "DAS rank 4 is not below the width"),
    ({"das_rank": 0}, "das_rank must be a positive integer"),
])
def test_bad_input_is_refused_before_any_work(space, sets, kwargs, message):
    ds, pairs = sets
    model = PlantedModel(space, sample_rate=SR)
    with pytest.raises(ConfigError, match=message):
        operational_ontology(model, ds, pairs=pairs, progress=False, **kwargs)


@pytest.mark.slow
def test_a_model_at_another_rate_reads_the_stimuli_resampled(space, sets):
    """The planted model at 22 050 Hz on the 16 kHz sets: the clips are resampled on read (no refusal). Loudness
    stays an ICV and odd/even absent; the band limit of the 16 kHz clips (no partial above 7.6 kHz) is what the
    model measures, so brightness, read as a spectral slope up to 11 kHz, no longer follows the set's values."""
    ds, pairs = sets
    op = operational_ontology(PlantedModel(space, sample_rate=22050, omit=["odd_even"]), ds, pairs=pairs,
                              sites=[SITE], families=["additive", "interchange"], n_steer=6, doses=DOSES,
                              progress=False)
    t = op.table.set_index(["factor", "family"])
    assert t.loc[("loudness", "additive"), "status"] == "icv" and t.loc[("loudness", "interchange"), "iia"] > 0.9
    assert t.loc[("odd_even", "additive"), "status"] == "absent"
    assert t.loc[("brightness", "additive"), "decodability"] < 0.5


def test_the_controller_is_differentiable_for_das(space):
    model = ControllerModel(space, sample_rate=SR, steps=10)
    acts = torch.zeros(1, 32, 4, requires_grad=True)
    model.resume(acts, "bottleneck", 1600).sum().backward()
    assert acts.grad is not None and torch.isfinite(acts.grad).all()


@pytest.mark.slow
def test_an_output_driven_out_of_its_domain_reads_nan_not_an_error(space, sets):
    """An edit of a softmax site (PESTO's head) can leave a "distribution" whose decoded pitch is infinite (the
    local weights sum to zero or less). The readout of such a clip is NaN; the other clips are read as before."""
    from ontoscope.models.registry import load_model
    from ontoscope.probing.operational import _make_readout

    ds, _ = sets
    pesto = load_model("pesto")
    readout = _make_readout(pesto, ds, space, np.arange(len(ds)), 16, 0)
    with torch.no_grad():
        out = pesto(ds.audio([0, 1]))
    broken = out.clone()
    broken[1, 0, 5] = float("inf")
    before, after = readout(out), readout(broken)
    assert before.notna().any(axis=None) and after.loc[1].isna().all()
    pd.testing.assert_series_equal(after.loc[0], before.loc[0])


def test_iia_specificity_counts_departures_from_both_own_outputs_not_the_models_own_crosstalk():
    from ontoscope.probing.operational import _iia

    rng = np.random.default_rng(0)
    b = rng.random((10, 3))
    s = b.copy()
    s[:, 0] += 0.3  # the pair differs in factor 0 ...
    s[:, 2] += 0.1  # ... and the model reads factor 2 move with it
    exact = _iia(s.copy(), b, s, 0)  # the interchange reproduces the source's output (crosstalk after the site)
    assert exact["iia"] == pytest.approx(1.0) and exact["specificity"] == pytest.approx(1.0)
    only = b.copy()
    only[:, 0] = s[:, 0]  # factor 0 swapped, factor 2 kept at the base's (crosstalk before the site): no leakage
    got = _iia(only, b, s, 0)
    assert got["iia"] == pytest.approx(1.0) and got["specificity"] == pytest.approx(1.0)
    leaky = only.copy()
    leaky[:, 1] += 0.1  # a factor both own outputs agree on, moved: leakage 0.1
    leaky[:, 2] = b[:, 2] + 0.25  # past the source's value: 0.15 from the nearer own output
    got = _iia(leaky, b, s, 0)
    assert got["specificity"] == pytest.approx(0.3 / (0.3 + 0.1 + 0.15))
