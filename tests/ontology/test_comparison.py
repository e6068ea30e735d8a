"""The ontology comparison on synthetic studies whose answers are known by construction."""

import ast
import math
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ontoscope.errors import ConfigError
from ontoscope.ontology import (
    OntologyComparison,
    VerdictRules,
    agreement,
    agreement_summary,
    attribution,
    best_family,
    claims,
    compare,
    confusion,
    mean_interval,
    wilson_interval,
    within_slope,
)
from ontoscope.ontology.claims import FAILED_CONTROLS, with_controls
from ontoscope.probing.icv import ICVThresholds
from ontoscope.probing.operational import OperationalOntology

SITES = ["encoder.down0", "bottleneck"]
STATIC = ["f0", "loudness"]
OSC = ["vibrato_depth"]


def _status(score: float) -> str:
    return "icv" if score >= 0.5 else "absent" if score < 0.05 else "entangled"


def study(strides=(2, 4, 8, 16), compressions=(1, 4), widths=(16,), seeds=(0, 1, 2), trained=(True,),
          static=lambda k: 0.8, oscillatory=lambda k: 0.1, predict=None, noise=0.02, pretrained=False, seed=0):
    """``models``, ``latent``, ``operational`` tables: every model has the sites ``SITES`` and the factors
    ``STATIC + OSC``; a factor's ICV score is ``static(knobs)`` or ``oscillatory(knobs)`` plus Gaussian noise,
    its status follows the score (icv from 0.5), and an oscillatory factor also has a temporal row 0.05 lower.
    ``predict(knobs, site, factor)`` gives the latent status (default: ``affords``)."""
    rng = np.random.default_rng(seed)
    models, latent, operational = [], [], []
    design = [dict(total_stride=s, compression=c, bottleneck=s / c, width=w, seed=sd, trained=t, family="conv_ae")
              for s, c, w, sd, t in product(strides, compressions, widths, seeds, trained)]
    if pretrained:
        design.append(dict(total_stride=np.nan, compression=np.nan, bottleneck=np.nan, width=np.nan, seed=np.nan,
                           trained=True, family="pretrained"))
    for k in design:
        name = ("crepe:tiny" if k["family"] == "pretrained" else
                f"conv_ae_s{k['total_stride']}_c{k['compression']}_w{k['width']}_t{int(k['trained'])}_{k['seed']}")
        models.append({"model": name, "family": k["family"], "total_stride": k["total_stride"],
                       "bottleneck": k["bottleneck"], "compression": k["compression"],
                       "antialias": np.nan if k["family"] == "pretrained" else False,
                       "width": k["width"], "depth": 1, "data_size": 512 if k["trained"] else 0,
                       "steps": 400 if k["trained"] else 0, "seed": k["seed"], "trained": k["trained"],
                       "ref": f"runs/{name}"})
        for i, site in enumerate(SITES):
            for f in STATIC + OSC:
                kind = "oscillatory" if f in OSC else "static"
                score = float(np.clip((oscillatory if f in OSC else static)(k) + noise * rng.standard_normal(), 0, 1))
                rows = [("static", score)] + ([("temporal", max(score - 0.05, 0.0))] if f in OSC else [])
                for intervention, s in rows:
                    operational.append({"model": name, "site": site, "site_index": i, "factor": f,
                                        "factor_kind": kind, "kind": intervention, "icv_score": s,
                                        "status": _status(s)})
                status = predict(k, site, f) if predict else "affords"
                latent.append({"model": name, "site": site, "factor": f, "kind": kind, "status": status,
                               "reason": "synthetic"})
    return pd.DataFrame(models), pd.DataFrame(latent), pd.DataFrame(operational)


def _pooled(slopes, knob, kind="all", score="mean"):
    r = slopes[(slopes["knob"] == knob) & (slopes["group"] == "pooled") & (slopes["factor_kind"] == kind)
               & (slopes["score"] == score)]
    assert len(r) == 1, (knob, kind, score)
    return r.iloc[0]


def _verdict(table, claim):
    return table.set_index("claim").loc[claim]


# ------------------------------------------------------------------ intervals
def test_wilson_interval_solves_the_score_equation():
    z = stats.norm.ppf(0.975)
    for k, n in [(8, 12), (0, 24), (24, 24), (3, 7)]:
        lo, hi = wilson_interval(k, n)
        p = k / n
        for b in (lo, hi):  # the bounds are the roots of (p - b)^2 = z^2 b (1 - b) / n
            assert (p - b) ** 2 == pytest.approx(z * z * b * (1 - b) / n, abs=1e-12)
        assert 0 <= lo <= p <= hi <= 1
    assert wilson_interval(0, 24)[0] == 0 and math.isnan(wilson_interval(0, 0)[0])


def test_within_slope_matches_ols_with_group_intercepts(rng):
    x = np.tile(np.arange(4.0), 6)
    g = np.repeat(np.arange(2), 12)
    y = 0.3 * g - 0.1 * x + 0.01 * rng.standard_normal(24)
    fit = within_slope(x, y, g)
    design = np.column_stack([x, g == 0, g == 1]).astype(float)
    beta, res, *_ = np.linalg.lstsq(design, y, rcond=None)
    se = math.sqrt(res[0] / (24 - 3) * np.linalg.inv(design.T @ design)[0, 0])
    assert fit.estimate == pytest.approx(beta[0]) and fit.se == pytest.approx(se) and fit.df == 21
    assert fit.ci_low < -0.1 < fit.ci_high
    assert math.isnan(within_slope([1.0, 1.0], [0.0, 1.0]).estimate)  # x does not vary
    m = mean_interval(np.array([1.0, 2.0, 3.0, np.nan]))
    assert m.estimate == 2 and m.n == 3 and m.ci_high - 2 == pytest.approx(stats.t.ppf(0.975, 2) / math.sqrt(3))


# ------------------------------------------------------------------ agreement
LATENT_OF = {("encoder.down0", "f0"): "affords", ("encoder.down0", "loudness"): "affords",
             ("encoder.down0", "vibrato_depth"): "rate-limited", ("bottleneck", "f0"): "alias-limited",
             ("bottleneck", "loudness"): "capacity-limited", ("bottleneck", "vibrato_depth"): "invariant"}
SCORE_OF = {("encoder.down0", "f0"): 0.9, ("encoder.down0", "loudness"): 0.3, ("encoder.down0", "vibrato_depth"): 0.02,
            ("bottleneck", "f0"): 0.7, ("bottleneck", "loudness"): 0.2, ("bottleneck", "vibrato_depth"): 0.01}


@pytest.fixture(scope="module")
def constructed():
    """Two models, each with one held affords/icv, one over-prediction, one under-prediction and three held limits;
    the modulation of vibrato at the first site scores higher than the additive one."""
    models, _, _ = study(strides=(8,), compressions=(4,), seeds=(0, 1))
    lat = [{"model": m, "site": s, "factor": f, "status": st}
           for m in models["model"] for (s, f), st in LATENT_OF.items()]
    op = []
    for m in models["model"]:
        for (s, f), sc in SCORE_OF.items():
            kind = "oscillatory" if f in OSC else "static"
            op.append({"model": m, "site": s, "factor": f, "factor_kind": kind, "family": "additive", "icv_score": sc,
                       "status": _status(sc)})
            if (s, f) == ("encoder.down0", "vibrato_depth"):
                op.append({"model": m, "site": s, "factor": f, "factor_kind": kind, "family": "modulation",
                           "icv_score": 0.3, "status": "entangled"})
    return models, pd.DataFrame(lat), pd.DataFrame(op)


def test_agreement_labels_and_confusion_are_as_constructed(constructed):
    _, lat, op = constructed
    table = agreement(lat, op)
    assert len(table) == 12
    one = table[table["model"] == table["model"].iloc[0]].set_index(["site", "factor"])
    assert one.loc[("encoder.down0", "vibrato_depth"), "intervention"] == "modulation"
    assert one.loc[("encoder.down0", "vibrato_depth"), "measured_status"] == "entangled"
    assert one.loc[("encoder.down0", "loudness"), "failure"] == "over-predicted"
    assert one.loc[("bottleneck", "f0"), "failure"] == "under-predicted"
    assert one["held"].sum() == 4 and one.loc[one["held"], "failure"].isna().all()
    assert set(one["prediction"]) == {"affords", "limited"} and set(one["outcome"]) == {"icv", "not icv"}
    conf = confusion(table).set_index("predicted_status")
    expected = {"affords": (2, 2, 0), "rate-limited": (0, 2, 0), "alias-limited": (2, 0, 0),
                "capacity-limited": (0, 2, 0), "invariant": (0, 0, 2)}
    for status, counts in expected.items():
        assert tuple(conf.loc[status, ["icv", "entangled", "absent"]]) == counts
    assert conf["n"].sum() == 12 and conf["held"].sum() == 8
    s = agreement_summary(table)
    assert (s["n"], s["held"], s["over_predicted"], s["under_predicted"]) == (12, 8, 2, 2)
    assert s["rate"] == pytest.approx(8 / 12) and (s["ci_low"], s["ci_high"]) == pytest.approx(wilson_interval(8, 12))
    assert s["majority"] == "not icv" and s["base_rate"] == pytest.approx(8 / 12)


def test_best_family_is_operational_best_per_model():
    """An icv row wins over a higher-scoring entangled one; a random-direction row is never picked; otherwise the
    higher score; the study's rule per model equals OperationalOntology.best."""
    t = pd.DataFrame({"site": ["a"] * 4 + ["b"] * 3, "site_index": [0] * 4 + [1] * 3,
                      "factor": ["f0", "f0", "vibrato_depth", "vibrato_depth", "f0", "vibrato_depth", "vibrato_depth"],
                      "factor_kind": ["static", "static", "oscillatory", "oscillatory", "static", "oscillatory",
                                      "oscillatory"],
                      "family": ["additive", "gain", "additive", "modulation", "additive", "additive", "modulation"],
                      "variant": ["pattern", "site", "random", "time_warp", "pattern", "pattern", "gain"],
                      "icv_score": [0.9, 0.7, 0.99, 0.2, 0.6, np.nan, 0.3],
                      "status": ["entangled", "icv", "icv", "entangled", "entangled", "absent", "entangled"]})
    op = OperationalOntology(t, pd.DataFrame(), pd.DataFrame(), {}, 16000, ICVThresholds())
    best = op.best().set_index(["site", "factor"])
    assert best.loc[("a", "f0"), "family"] == "gain"  # icv first
    assert best.loc[("a", "vibrato_depth"), "family"] == "modulation"  # never the random direction
    assert best.loc[("b", "vibrato_depth"), "family"] == "modulation"  # a score beats none
    both = pd.concat([t.assign(model="m2"), t.assign(model="m1")], ignore_index=True)
    for m in ("m1", "m2"):
        mine = best_family(both)
        mine = mine[mine["model"] == m].drop(columns="model").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, op.best())


# ------------------------------------------------------------------ attribution and claims
def test_stride_slope_is_recovered_and_claim_1_supported():
    models, latent, operational = study(static=lambda k: 1 - 0.1 * math.log2(k["total_stride"]),
                                        oscillatory=lambda k: 1 - 0.1 * math.log2(k["total_stride"]))
    att = attribution(models, operational)
    row = _pooled(att.slopes, "total_stride")
    assert row["ci_low"] < -0.1 < row["ci_high"] < 0 and row["slope"] == pytest.approx(-0.1, abs=0.01)
    assert (row["n_models"], row["n_seeds"], row["n_values"]) == (24, 3, 4)
    groups = att.slopes[(att.slopes["knob"] == "total_stride") & (att.slopes["factor_kind"] == "all")
                        & (att.slopes["score"] == "mean")]
    assert set(groups["group"]) == {"compression=1", "compression=4", "pooled"}
    assert (groups.loc[groups["group"] != "pooled", "n_models"] == 12).all()
    b = _pooled(att.slopes, "compression")
    assert b["ci_low"] < 0 < b["ci_high"]
    m = att.means[(att.means["knob"] == "total_stride") & (att.means["group"] == "pooled")
                  & (att.means["factor_kind"] == "all") & (att.means["score"] == "mean")].set_index("value")
    assert list(m.index) == [2, 4, 8, 16] and (m["n_models"] == 6).all()
    assert m.loc[4, "ci_low"] < 0.8 < m.loc[4, "ci_high"]
    verdict = _verdict(claims(models, latent, operational), 1)
    assert verdict["verdict"] == "supported" and verdict["ci_low"] < -0.1 < verdict["ci_high"]
    assert "total stride" in verdict["numbers"]


def test_compression_and_stride_are_told_apart():
    """Scores that fall with compression alone (bottleneck narrowing at each stride) give a compression slope of
    -0.1 per doubling and no stride slope: the two knobs are separated because each is held while the other
    varies (the bottleneck widens with the stride at a fixed compression)."""
    models, latent, operational = study(compressions=(1, 2, 4, 8),
                                        static=lambda k: 0.9 - 0.1 * math.log2(k["compression"]),
                                        oscillatory=lambda k: 0.9 - 0.1 * math.log2(k["compression"]))
    att = attribution(models, operational)
    c, s = _pooled(att.slopes, "compression"), _pooled(att.slopes, "total_stride")
    assert c["slope"] == pytest.approx(-0.1, abs=0.01) and c["ci_high"] < 0
    assert s["ci_low"] < 0 < s["ci_high"] and abs(s["slope"]) < 0.01
    verdict = _verdict(claims(models, latent, operational), 1)
    assert verdict["verdict"] == "supported" and "compression" in verdict["reason"]


def test_activation_is_a_knob_snake_minus_elu():
    models, latent, operational = study(strides=(8,), compressions=(4,))
    snake = models.assign(activation="snake", model=models["model"] + "_snake")
    ops = operational.assign(model=operational["model"] + "_snake",
                             icv_score=np.clip(operational["icv_score"] + 0.2, 0, 1))
    att = attribution(pd.concat([models.assign(activation="elu"), snake], ignore_index=True),
                      pd.concat([operational, ops], ignore_index=True))
    a = _pooled(att.slopes, "activation")
    assert 0.1 < a["slope"] < 0.21 and a["ci_low"] > 0  # snake minus elu (scores clipped at 1)


def test_undertrained_models_are_flagged_and_left_out_of_the_claims():
    """Scores fall with the stride only among models that fail the fidelity gate: with them left out, the
    stride slope is flat and claim 1 is not supported; their agreement rows stay, flagged."""
    models, latent, operational = study(strides=(2, 4, 8, 16), compressions=(4,),
                                        static=lambda k: 0.9 - (0.3 if k["total_stride"] >= 8 else 0.0),
                                        oscillatory=lambda k: 0.9 - (0.3 if k["total_stride"] >= 8 else 0.0),
                                        noise=0.005)
    bad = models["total_stride"] >= 8
    gated = models.assign(fidelity=np.where(bad, "undertrained", "passed"),
                          fidelity_reason=np.where(bad, "f0 80 cents > 25", ""))
    both, kept = compare(models, latent, operational), compare(gated, latent, operational)
    assert _pooled(both.attribution, "total_stride")["slope"] < -0.1
    s = _pooled(kept.attribution, "total_stride")
    assert abs(s["slope"]) < 0.02 and s["n_models"] == int((~bad).sum())
    one = kept.claims.set_index("claim").loc[1]
    assert one["verdict"] == "not supported" and f"{int(bad.sum())} undertrained models left out" in one["numbers"]
    assert set(kept.agreement.loc[kept.agreement["undertrained"], "model"]) == set(models.loc[bad, "model"])
    everyone = compare(models.assign(fidelity="undertrained"), latent, operational)
    assert (everyone.claims["verdict"] == "inconclusive").all()
    assert "every model of the study failed the fidelity gate" in everyone.claims["reason"].iloc[0]


def test_flat_design_does_not_support_claim_1():
    models, latent, operational = study(static=lambda k: 0.6, oscillatory=lambda k: 0.6)
    c = _verdict(claims(models, latent, operational), 1)
    assert c["verdict"] == "not supported" and "rules out a fall" in c["reason"]


def test_single_stride_and_compression_leave_claim_1_inconclusive():
    models, latent, operational = study(strides=(8,), compressions=(4,))
    c = _verdict(claims(models, latent, operational), 1)
    assert c["verdict"] == "inconclusive" and "neither total stride nor compression" in c["reason"]
    one_seed = study(seeds=(0,), static=lambda k: 1 - 0.1 * math.log2(k["total_stride"]))
    c = _verdict(claims(*one_seed), 1)
    assert c["verdict"] == "inconclusive" and "fewer than 2 seeds" in c["reason"]


def test_trained_minus_random_difference_and_pretrained_models():
    models, latent, operational = study(strides=(4, 16), compressions=(4,), trained=(True, False),
                                        static=lambda k: 0.7 if k["trained"] else 0.3,
                                        oscillatory=lambda k: 0.7 if k["trained"] else 0.3, pretrained=True)
    att = attribution(models, operational)
    row = _pooled(att.slopes, "trained")
    assert row["ci_low"] < 0.4 < row["ci_high"] and row["slope"] == pytest.approx(0.4, abs=0.02)
    assert row["n_models"] == 12
    assert _pooled(att.slopes, "total_stride")["n_models"] == 6  # trained conv_ae models only
    means = att.means[(att.means["knob"] == "trained") & (att.means["group"] == "pooled")
                      & (att.means["factor_kind"] == "all") & (att.means["score"] == "mean")].set_index("value")
    assert means.loc[1.0, "mean"] - means.loc[0.0, "mean"] == pytest.approx(row["slope"])
    comp = compare(models, latent, operational)
    assert "crepe:tiny" in set(comp.agreement.loc[comp.agreement["trained"], "model"])
    assert comp.confusion["n"].sum() == 7 * 6  # the trained models' pairs


def test_claim_2_static_against_oscillatory():
    models, latent, operational = study()
    c = _verdict(claims(models, latent, operational), 2)
    assert c["verdict"] == "supported" and c["estimate"] == pytest.approx(0.7, abs=0.02) and c["ci_low"] > 0
    assert "0 of 24" in c["numbers"]
    c = _verdict(claims(*study(static=lambda k: 0.6, oscillatory=lambda k: 0.6)), 2)
    assert c["verdict"] == "not supported"
    c = _verdict(claims(*study(strides=(8,), compressions=(4,), seeds=(0,))), 2)
    assert c["verdict"] == "inconclusive" and "two trained models" in c["reason"]


def test_claim_3_scale_knobs():
    flat = study(strides=(8,), compressions=(4,), widths=(16, 32, 64), noise=0.005)
    c = _verdict(claims(*flat), 3)
    assert c["verdict"] == "supported" and "width" in c["numbers"] and "depth not swept" in c["numbers"]
    lifted = study(strides=(8,), compressions=(4,), widths=(16, 32, 64), noise=0.005,
                   oscillatory=lambda k: 0.1 + 0.1 * math.log2(k["width"] / 16))
    c = _verdict(claims(*lifted), 3)
    assert c["verdict"] == "not supported" and c["estimate"] == pytest.approx(0.1, abs=0.01) and c["ci_low"] > 0
    c = _verdict(claims(*study()), 3)
    assert c["verdict"] == "inconclusive" and "no scale knob" in c["reason"]


def test_claim_4_prediction_against_the_base_rate():
    right = study(predict=lambda k, site, f: "rate-limited" if f in OSC else "affords")
    c = _verdict(claims(*right), 4)
    assert c["verdict"] == "supported" and c["estimate"] == 1.0
    # alternate the prediction whatever the outcome: agreement 1/2 against a base rate of 2/3
    flip = study(predict=lambda k, site, f: "affords" if (site == SITES[0]) == (f != "loudness") else "invariant")
    c = _verdict(claims(*flip), 4)
    assert c["verdict"] == "not supported" and c["estimate"] == pytest.approx(0.5)
    constant = _verdict(claims(*study()), 4)  # 'affords' everywhere, outcomes mixed
    assert constant["verdict"] == "not supported" and "for every pair" in constant["reason"]
    same = study(static=lambda k: 0.1)  # no outcome is an ICV
    assert _verdict(claims(*same), 4)["verdict"] == "inconclusive"


# ------------------------------------------------------------------ the comparison, errors
def test_compare_save_load_roundtrip(tmp_path):
    comp = compare(*study(static=lambda k: 1 - 0.1 * math.log2(k["total_stride"])))
    assert comp.verdicts()[1] == "supported"
    comp.save(tmp_path / "cmp")
    for name in ("comparison", "claims", "attribution", "confusion", "knob_means", "scores"):
        assert (tmp_path / "cmp" / f"{name}.parquet").exists()
    back = OntologyComparison.load(tmp_path / "cmp")
    for name in ("agreement", "confusion", "attribution", "knob_means", "claims", "scores"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(comp, name), check_dtype=False)
    assert back.rules == comp.rules
    with pytest.raises(ConfigError, match="no ontology comparison"):
        OntologyComparison.load(tmp_path / "nothing")


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_bad_tables_raise_one_line_config_errors():
    models, latent, operational = study(strides=(8,), compressions=(4,))
    cases = [
        ((models.drop(columns="bottleneck"), latent, operational), "lacks the columns \\['bottleneck'\\]"),
        ((models, latent.iloc[:0], operational), "latent table is empty"),
        ((models, latent, operational.drop(columns="factor_kind")), "lacks the columns \\['factor_kind'\\]"),
        ((models.iloc[1:], latent, operational), "in the operational table but not in the models table"),
        ((models, latent[latent["model"] != models["model"].iloc[0]], operational),
         "in the operational table but not in the latent table"),
        ((models, latent.assign(status="afford"), operational), "unknown status values \\['afford'\\]"),
        ((pd.concat([models, models.iloc[:1]]), latent, operational), "more than once"),
        ((models.assign(trained=np.nan), latent, operational), "missing trained"),
        ((models, latent.assign(site=latent["site"] + "_x"), operational), "shares no \\(site, factor\\)"),
        ((models.assign(total_stride=0), latent, operational), "must be positive"),
    ]
    for args, match in cases:
        with pytest.raises(ConfigError, match=match) as e:
            compare(*args)
        _one_line(e)
    with pytest.raises(ConfigError, match="level"):
        VerdictRules(level=1.5)


def test_ontology_imports_no_higher_layer():
    root = Path(__file__).resolve().parents[2] / "src" / "ontoscope" / "ontology"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith(("ontoscope.study", "ontoscope.report")) for n in names), path


def test_failed_controls_void_every_verdict_and_say_why():
    table = pd.DataFrame({"claim": [1, 2], "verdict": ["supported", "inconclusive"], "reason": ["a", "b"]})
    ok = pd.DataFrame({"family": ["gain"], "sensitivity": [1.0], "fpr": [0.0], "passed": [True]})
    assert with_controls(table, ok).equals(table) and with_controls(table, None).equals(table)
    bad = pd.DataFrame({"family": ["gain", "das"], "sensitivity": [1.0, 0.5], "fpr": [0.0, 0.1],
                        "passed": [True, False]})
    out = with_controls(table, bad)
    assert (out["verdict"] == FAILED_CONTROLS).all() and out["reason"].str.contains("das: sensitivity 0.50").all()
    assert "gain" not in out["reason"].iloc[0]

