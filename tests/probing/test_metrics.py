"""Disentanglement metrics on cases whose answers are known, against oracles and disentanglement_lib's recipe."""

import itertools
import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from ontoscope.errors import ConfigError
from ontoscope.probing import metrics
from ontoscope.probing.metrics import (
    KEYS,
    dci,
    dci_from_importance,
    discrete_mask,
    disentanglement,
    factor_labels,
    histogram_discretize,
    mcc,
    mig,
    modularity_explicitness,
    modularity_from_mi,
    mutual_info,
    sap,
)


def _grid(levels=(4, 4), reps=5):
    """Full factorial grid of the levels, repeated: the first 80 % of rows (4 of 5 copies) is a grid too, so
    factors are exactly independent on all rows and on the training rows."""
    g = np.array(list(itertools.product(*[range(m) for m in levels])), dtype=np.float64)
    return np.tile(g, (reps, 1))


def _random_factors(n=500, k=3, levels=4, seed=0):
    return np.random.default_rng(seed).integers(0, levels, size=(n, k)).astype(np.float64)


def _rotation(y, seed=0):
    ys = (y - y.mean(0)) / y.std(0)
    q = np.linalg.qr(np.random.default_rng(seed).standard_normal((y.shape[1],) * 2))[0]
    return ys @ q


# ------------------------------------------------------------ information


def test_mutual_info_of_a_2x2_table_by_hand():
    # contingency [[3, 1], [1, 3]] / 8, uniform marginals:
    # I = 2 (3/8) log((3/8) / (1/4)) + 2 (1/8) log((1/8) / (1/4)) = (3/4) log 1.5 - (1/4) log 2
    a = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    b = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    assert mutual_info(a, b) == pytest.approx(0.75 * math.log(1.5) - 0.25 * math.log(2), abs=1e-14)
    assert mutual_info(a, a) == pytest.approx(math.log(2), abs=1e-14)  # H of a fair coin
    assert mutual_info(a, np.array([0, 1] * 4)) == 0.0  # independent by construction


def test_mutual_info_matches_sklearn(rng):
    for _ in range(5):
        a = rng.choice([-3, 7, 100], size=300)  # labels need not be 0..m-1
        b = (a > 0) * rng.integers(0, 5, size=300) + rng.integers(0, 2, size=300)
        assert mutual_info(a, b) == pytest.approx(mutual_info_score(a, b), abs=1e-12)
        assert mutual_info(a, b) == pytest.approx(mutual_info(b, a), abs=1e-12)


def test_histogram_discretize_is_numpys_20_bin_histogram(rng):
    x = rng.standard_normal((200, 3)) * [1.0, 10.0, 0.01]
    out = histogram_discretize(x)
    for j in range(3):
        edges = np.histogram(x[:, j], 20)[1]
        np.testing.assert_array_equal(out[:, j], np.digitize(x[:, j], edges[:-1]))
        assert out[:, j].min() == 1 and out[:, j].max() == 20  # the maximum falls in the last bin
    assert np.unique(histogram_discretize(np.full((12, 1), 3.0))).size == 1  # a constant code: one bin


# ----------------------------------------------------------- DCI and modularity formulas


def test_dci_from_importance_known_matrices():
    diag = np.diag(5.0 * np.ones(5))
    assert dci_from_importance(diag) == pytest.approx((1.0, 1.0))
    # one code for two factors: D falls to 1 - log 2 / log 10, C stays 1
    assert dci_from_importance(np.hstack([diag, diag])) == pytest.approx((1 - math.log(2) / math.log(10), 1.0))
    # one factor in two codes: C falls to 1 - log 2 / log 10, D stays 1
    assert dci_from_importance(np.vstack([diag, diag])) == pytest.approx((1.0, 1 - math.log(2) / math.log(10)))
    assert dci_from_importance(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) == pytest.approx((1.0, 1.0))
    assert dci_from_importance(np.zeros((4, 4))) == pytest.approx((0.0, 0.0), abs=1e-7)
    uniform = np.ones((3, 3))
    assert dci_from_importance(uniform) == pytest.approx((0.0, 0.0), abs=1e-9)
    # a single factor: every code that matters is devoted to it (log 1 would divide by 0)
    assert dci_from_importance(np.array([[0.5], [0.5]])) == pytest.approx((1.0, 0.0), abs=1e-9)


def test_modularity_from_mi_known_matrices():
    diag = np.diag(5.0 * np.ones(5))
    assert modularity_from_mi(diag) == pytest.approx(1.0)
    assert modularity_from_mi(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) == pytest.approx(2 / 3)
    assert modularity_from_mi(np.hstack([diag, diag])) == pytest.approx(1 - 1 / 9)  # delta = 1 / (k - 1)
    assert modularity_from_mi(np.vstack([diag, diag])) == pytest.approx(1.0)
    assert modularity_from_mi(np.zeros((3, 3))) == 0.0
    assert modularity_from_mi(np.array([[2.0], [0.0]])) == pytest.approx(0.5)  # one factor


# ----------------------------------------------------------- known-answer cases


def test_identity_codes_on_a_grid_score_exactly_one():
    y = _grid()
    z = y.copy()
    assert mig(z, y) == pytest.approx(1.0, abs=1e-12)
    assert mcc(z, y) == pytest.approx(1.0, abs=1e-12)
    assert sap(z, y, discrete=False) == pytest.approx(1.0, abs=1e-12)  # R² 1 on the diagonal, 0 off it
    me = modularity_explicitness(z, y)
    assert me["modularity"] == pytest.approx(1.0, abs=1e-12)
    assert me["explicitness"] > 0.95
    d = dci(z, y)
    assert d["disentanglement"] > 0.99 and d["completeness"] > 0.99
    assert d["informativeness"] == 1.0


def test_duplicated_factors_on_a_grid():
    y = _grid()
    z = np.hstack([y, y])
    assert mig(z, y) == pytest.approx(0.0, abs=1e-12)  # two codes tie on every factor
    assert sap(z, y, discrete=False) == pytest.approx(0.0, abs=1e-12)
    assert mcc(z, y) == pytest.approx(1.0, abs=1e-12)
    assert modularity_explicitness(z, y)["modularity"] == pytest.approx(1.0, abs=1e-12)


def test_duplicated_factors_lower_completeness_only():
    y = _random_factors()
    d = dci(np.hstack([y, y]), y)
    assert d["disentanglement"] > 0.98
    # each factor split evenly between its two copies: C = 1 - log 2 / log 6 = 0.613
    assert d["completeness"] == pytest.approx(1 - math.log(2) / math.log(6), abs=0.06)


def test_merged_factors_lower_disentanglement_and_modularity():
    y = _random_factors(levels=4)
    z = np.stack([4 * y[:, 0] + y[:, 1], y[:, 2]], axis=1)  # factors 0 and 1 share code 0, losslessly
    s = disentanglement(z, y)
    # code 0 splits its importance between two of three factors, code 1 holds one:
    # D = (2 (1 - log 2 / log 3) + 1) / 3 = 0.579
    assert s["dci_disentanglement"] == pytest.approx((2 * (1 - math.log(2) / math.log(3)) + 1) / 3, abs=0.02)
    assert s["dci_completeness"] > 0.98
    assert s["dci_informativeness"] > 0.98
    assert s["modularity"] < 0.9
    assert s["mcc"] < 0.75  # factor 1 is only weakly correlated with the merged code


def test_a_random_rotation_lowers_the_scores():
    y = _random_factors()
    ident = disentanglement(y, y, mode="fast")
    rot = disentanglement(_rotation(y), y, mode="fast")
    for key in ("dci_disentanglement", "dci_completeness", "mig", "sap", "modularity"):
        assert rot[key] < ident[key] - 0.1, key
    assert rot["mcc"] < ident["mcc"] - 0.02
    assert rot["dci_informativeness"] > 0.95  # the information is all there, only mixed
    assert rot["explicitness"] > 0.95


def test_a_hadamard_rotation_halves_mcc_exactly():
    y = _grid(levels=(3, 3, 3, 3))  # exactly uncorrelated factors
    ys = (y - y.mean(0)) / y.std(0)
    z = ys @ scipy.linalg.hadamard(4) / 2  # orthogonal; every code correlates ±1/2 with every factor
    assert mcc(z, y) == pytest.approx(0.5, abs=1e-12)
    assert mcc(ys, y) == pytest.approx(1.0, abs=1e-12)
    assert dci(z, y, mode="fast")["disentanglement"] < 0.3


def test_pure_noise_codes_score_near_zero_or_chance(rng):
    y = _random_factors(levels=4)
    s = disentanglement(rng.standard_normal((500, 3)), y, mode="fast")
    for key in ("dci_disentanglement", "dci_completeness", "mig", "sap"):
        assert s[key] < 0.05, key
    assert s["mcc"] < 0.15
    assert s["explicitness"] == pytest.approx(0.5, abs=0.06)  # AUC of chance
    assert s["dci_informativeness"] == pytest.approx(0.25, abs=0.1)  # accuracy of chance, 4 classes


# ----------------------------------------------------------- reference recipe


def _reference_recipe(z, y, seed):
    """disentanglement_lib's ``*_on_fixed_data`` steps for discrete factors, written out with scikit-learn."""
    n, d = z.shape
    k = y.shape[1]
    m = int(np.ceil(0.8 * n))

    def disc(x):
        return np.stack([np.digitize(c, np.histogram(c, 20)[1][:-1]) for c in x.T], axis=1)

    def mi(a, b):
        return np.array([[mutual_info_score(b[:, j], a[:, i]) for j in range(k)] for i in range(d)])

    out = {}
    s = np.sort(mi(disc(z), y), axis=0)[::-1]
    out["mig"] = np.mean((s[0] - s[1]) / np.array([mutual_info_score(c, c) for c in y.T]))

    r = np.zeros((d, k))
    acc = []
    for j in range(k):
        gbt = GradientBoostingClassifier(random_state=seed).fit(z[:m], y[:m, j])
        r[:, j] = gbt.feature_importances_
        acc.append(np.mean(gbt.predict(z[m:]) == y[m:, j]))
    out["dci_disentanglement"] = np.sum((1 - scipy.stats.entropy(r.T + 1e-11, base=k)) * r.sum(1) / r.sum())
    out["dci_completeness"] = np.sum((1 - scipy.stats.entropy(r + 1e-11, base=d)) * r.sum(0) / r.sum())
    out["dci_informativeness"] = np.mean(acc)

    sc = np.zeros((d, k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i, j in itertools.product(range(d), range(k)):
            svm = LinearSVC(C=0.01, class_weight="balanced", dual=True, random_state=seed)
            sc[i, j] = np.mean(svm.fit(z[:m, [i]], y[:m, j]).predict(z[m:, [i]]) == y[m:, j])
    sc = np.sort(sc, axis=0)
    out["sap"] = np.mean(sc[-1] - sc[-2])

    sq = mi(disc(z[:m]), y[:m]) ** 2
    theta = sq.max(axis=1)
    out["modularity"] = np.mean(1 - (sq.sum(axis=1) - theta) / (theta * (k - 1)))

    mean, std = z[:m].mean(0), z[:m].std(0)
    ztr, zte = (z[:m] - mean) / std, (z[m:] - mean) / std
    aucs = []
    for j in range(k):  # liblinear one-vs-rest, by hand: one binary problem per class, sigmoids normalised
        classes = np.unique(y[:m, j])
        p = np.stack([LogisticRegression(solver="liblinear", random_state=seed).fit(ztr, y[:m, j] == c)
                      .predict_proba(zte)[:, 1] for c in classes], axis=1)
        p /= p.sum(axis=1, keepdims=True)
        aucs.append(roc_auc_score(MultiLabelBinarizer().fit_transform(y[m:, j:j + 1]), p))
    out["explicitness"] = np.mean(aucs)
    return out


def test_reference_mode_follows_disentanglement_libs_recipe(rng):
    n = 200
    y = rng.choice([2.0, 5.0, 9.0], size=(n, 2))  # three classes, not numbered 0..2
    z = np.column_stack([y[:, 0] + 0.5 * rng.standard_normal(n), y[:, 1] - 0.3 * y[:, 0],
                         rng.standard_normal(n)])
    assert all(np.unique(y[160:, j]).size == 3 for j in range(2))  # every class in the test rows
    ours = disentanglement(z, y, mode="reference", seed=3)
    want = _reference_recipe(z, y, seed=3)
    for key, value in want.items():
        assert ours[key] == pytest.approx(value, abs=1e-10), key


def test_fast_mode_is_close_to_reference():
    y = _random_factors(n=400, k=2, levels=3, seed=1)
    rng = np.random.default_rng(1)
    z = np.column_stack([_rotation(y, seed=1) + 0.3 * rng.standard_normal((400, 2)), rng.standard_normal(400)])
    ref = disentanglement(z, y, mode="reference")
    fast = disentanglement(z, y, mode="fast")
    for key in KEYS:
        assert fast[key] == pytest.approx(ref[key], abs=0.05), key
    assert fast["mig"] == ref["mig"] and fast["mcc"] == ref["mcc"]  # identical computations in both modes


def test_estimator_settings_of_each_mode(monkeypatch):
    seen = []

    class SVC(LinearSVC):
        def fit(self, x, y):
            seen.append(("svm", self.dual, self.C, self.class_weight))
            return super().fit(x, y)

    class GBT(GradientBoostingClassifier):
        def fit(self, x, y):
            seen.append(("gbt", self.n_estimators, self.learning_rate, self.max_depth))
            return super().fit(x, y)

    monkeypatch.setattr(metrics, "LinearSVC", SVC)
    monkeypatch.setattr(metrics, "GradientBoostingClassifier", GBT)
    y = _random_factors(n=60, k=1, levels=2)
    z = y + 0.1
    sap(z, y, mode="reference")
    dci(z, y, mode="reference")
    assert seen == [("svm", True, 0.01, "balanced"), ("gbt", 100, 0.1, 3)]
    seen.clear()
    sap(z, y, mode="fast")
    dci(z, y, mode="fast")
    assert seen == [("svm", False, 0.01, "balanced"), ("gbt", 20, 0.5, 3)]


def test_explicitness_and_mcc_ignore_the_scale_of_the_codes(rng):
    y = _random_factors(n=300, k=2, levels=3)
    z = np.column_stack([y[:, 0] + rng.standard_normal(300), y[:, 1] + y[:, 0], rng.standard_normal(300)])
    scaled = z * [1e3, 1e-3, 50.0] + [7.0, -2.0, 0.0]
    a, b = modularity_explicitness(z, y), modularity_explicitness(scaled, y)
    assert a["explicitness"] == pytest.approx(b["explicitness"], abs=1e-9)
    assert a["explicitness_train"] == pytest.approx(b["explicitness_train"], abs=1e-9)
    assert mcc(z, y) == pytest.approx(mcc(scaled, y), abs=1e-12)


# ----------------------------------------------------------- MCC


def test_mcc_matches_brute_force_and_linear_sum_assignment(rng):
    z = rng.standard_normal((300, 4))
    y = z @ rng.standard_normal((4, 4)) + rng.standard_normal((300, 4))
    corr = np.abs(np.corrcoef(z.T, y.T)[:4, 4:])
    brute = max(np.mean(corr[list(p), range(4)]) for p in itertools.permutations(range(4)))
    rows, cols = linear_sum_assignment(-corr)
    assert mcc(z, y) == pytest.approx(brute, abs=1e-12)
    assert mcc(z, y) == pytest.approx(corr[rows, cols].mean(), abs=1e-12)
    spear = np.abs(scipy.stats.spearmanr(z, y).statistic[:4, 4:])
    rows, cols = linear_sum_assignment(-spear)
    assert mcc(z, y, method="spearman") == pytest.approx(spear[rows, cols].mean(), abs=1e-12)


def test_mcc_invariances_and_missing_codes(rng):
    y = rng.standard_normal((200, 3))
    assert mcc(-3.0 * y[:, [2, 0, 1]] + 5.0, y) == pytest.approx(1.0, abs=1e-12)  # permutation, sign, scale
    assert mcc(np.exp(y), y, method="spearman") == pytest.approx(1.0, abs=1e-12)  # monotone map
    assert mcc(np.exp(y), y) < 0.9
    assert mcc(y[:, :2], y) == pytest.approx(2 / 3, abs=1e-12)  # the unmatched factor counts 0
    assert mcc(np.column_stack([y, np.ones(200)]), y) == pytest.approx(1.0, abs=1e-12)  # a constant code


# ----------------------------------------------------------- factors, inputs, determinism


def test_discrete_mask_and_continuous_factors(rng):
    n = 2000
    y = np.column_stack([rng.uniform(0, 1, n), rng.uniform(0, 1, n)])
    integers = np.column_stack([rng.integers(0, 5, n), rng.integers(0, 100, n)])
    np.testing.assert_array_equal(discrete_mask(y), [False, False])
    np.testing.assert_array_equal(discrete_mask(integers), [True, False])  # 100 levels: continuous
    np.testing.assert_array_equal(discrete_mask(y, discrete=[True, False]), [True, False])
    labels = factor_labels(y, np.array([False, False]))
    np.testing.assert_array_equal(labels, histogram_discretize(y))
    # a continuous factor is measured as its 20-bin histogram would be
    assert mig(y, y) == pytest.approx(mig(y, labels), abs=1e-12)
    assert mig(y, y) > 0.9
    assert sap(y, y) > 0.99  # R² against continuous factors
    assert sap(y, y) == pytest.approx(sap(y, y, discrete=False), abs=1e-12)


def test_torch_input_and_seed_determinism():
    y = _random_factors(n=300, k=2, levels=3, seed=2)
    z = _rotation(y, seed=2) + np.random.default_rng(2).standard_normal((300, 2))
    a = disentanglement(z, y, mode="fast", seed=4)
    b = disentanglement(torch.from_numpy(z), torch.from_numpy(y).long(), mode="fast", seed=4)
    assert list(a) == list(KEYS)
    assert a == b
    assert all(0.0 <= v <= 1.0 for v in a.values())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda z, y: disentanglement(z[:, 0], y), "2-D"),
        (lambda z, y: disentanglement(z, y[:, 0]), "2-D"),
        (lambda z, y: disentanglement(z[:-1], y), "rows but factors has"),
        (lambda z, y: disentanglement(np.where(np.arange(40)[:, None] == 7, np.nan, z), y), "NaN"),
        (lambda z, y: disentanglement(z[:9], y[:9]), "at least 10 rows"),
        (lambda z, y: disentanglement(z, y, mode="slow"), "unknown mode"),
        (lambda z, y: dci(z, y, mode="exact"), "unknown mode"),
        (lambda z, y: mig(z, np.column_stack([y, np.ones(40)])), "factor 2 is constant"),
        (lambda z, y: dci(z, np.column_stack([y, np.arange(40) >= 35])), "shuffle the rows"),
        (lambda z, y: mig(z, y, discrete=[True]), "one per factor"),
        (lambda z, y: mcc(z, y, method="kendall"), "unknown correlation method"),
        (lambda z, y: mig(z, np.array([["a", "b"]] * 40)), "numeric"),
        (lambda z, y: mig(np.zeros((40, 0)), y), "no columns"),
    ],
)
def test_bad_input_raises_one_line_config_error(call, match):
    y = _random_factors(n=40, k=2, levels=3)
    z = y + 0.1
    with pytest.raises(ConfigError, match=match) as info:
        call(z, y)
    assert "\n" not in str(info.value)


def test_module_constants_are_the_reference_defaults():
    assert metrics.N_BINS == 20 and metrics.TRAIN_FRACTION == 0.8
    assert [metrics.n_train(n) for n in (10, 11, 999, 1000)] == [8, 9, 800, 800]  # ceil(0.8 n)
