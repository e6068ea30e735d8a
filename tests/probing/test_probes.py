"""Probes: ridge CV against scikit-learn, control tasks, bootstrap intervals, the factor table."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import KFold

from ontoscope.errors import ConfigError
from ontoscope.probing.probes import (
    bootstrap_ci,
    control_targets,
    kfold_indices,
    probe_factors,
    r2_score,
    ridge_cv,
    split_indices,
)

ALPHAS = np.logspace(-3, 3, 13)


@pytest.fixture
def data(rng):
    n, d, k = 120, 15, 4
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))  # correlated features
    w = rng.standard_normal((d, k)) * np.array([1.0, 0.3, 0.0, 2.0])
    y = x @ w + rng.standard_normal((n, k)) * np.array([0.5, 2.0, 1.0, 0.1]) + 3.0
    return x, y


def test_ridge_cv_equals_sklearn_per_target(data):
    x, y = data
    folds = list(KFold(5, shuffle=True, random_state=1).split(x))
    res = ridge_cv(x, y, ALPHAS, folds=folds)
    for j in range(y.shape[1]):
        ref = RidgeCV(alphas=ALPHAS, cv=folds, fit_intercept=True).fit(x, y[:, j])
        assert res.alpha[j] == ref.alpha_
        assert res.cv_r2[j] == pytest.approx(ref.best_score_, abs=1e-6)
        np.testing.assert_allclose(res.coef[:, j], ref.coef_, rtol=1e-6, atol=1e-8)
        assert res.intercept[j] == pytest.approx(ref.intercept_, rel=1e-6)
    # the targets really differ in their penalty (a noise-only target wants the largest)
    assert len(set(res.alpha)) > 1 and res.alpha[2] == ALPHAS.max()


def test_ridge_cv_path_equals_a_ridge_per_fold_and_penalty(data):
    x, y = data
    folds = kfold_indices(len(x), 4, seed=3)
    res = ridge_cv(torch.as_tensor(x), torch.as_tensor(y), ALPHAS, folds=folds)
    f, a = 2, 5
    tr, te = folds[f]
    pred = Ridge(alpha=ALPHAS[a]).fit(x[tr], y[tr]).predict(x[te])
    from sklearn.metrics import r2_score as sk_r2

    np.testing.assert_allclose(res.fold_r2[f, a], sk_r2(y[te], pred, multioutput="raw_values"), atol=1e-9)
    np.testing.assert_allclose(res.r2_path, res.fold_r2.mean(0))
    np.testing.assert_allclose(res.predict(x), x @ res.coef + res.intercept)


def test_ridge_cv_wide_features_and_one_target(rng):
    x = rng.standard_normal((40, 200))
    y = x[:, 0] * 2 + 0.01 * rng.standard_normal(40)
    folds = list(KFold(5).split(x))
    res = ridge_cv(x, y, ALPHAS, folds=folds)
    ref = RidgeCV(alphas=ALPHAS, cv=folds).fit(x, y)
    assert res.alpha[0] == ref.alpha_ and res.cv_r2[0] == pytest.approx(ref.best_score_, abs=1e-6)


def test_ridge_cv_through_the_gram_matrix_equals_sklearn_on_wide_rank_deficient_features(rng):
    """More features than rows, of rank 12 (the Gram route, its null directions dropped): the same penalties, path,
    weights and intercepts as scikit-learn's RidgeCV per target."""
    x = rng.standard_normal((60, 12)) @ rng.standard_normal((12, 500)) + 5.0
    y = x[:, :3] @ rng.standard_normal((3, 3)) + rng.standard_normal((60, 3)) * np.array([0.1, 1.0, 5.0])
    folds = list(KFold(5, shuffle=True, random_state=0).split(x))
    res = ridge_cv(x, y, ALPHAS, folds=folds)
    for j in range(3):
        ref = RidgeCV(alphas=ALPHAS, cv=folds).fit(x, y[:, j])
        assert res.alpha[j] == ref.alpha_ and res.cv_r2[j] == pytest.approx(ref.best_score_, abs=1e-6)
        np.testing.assert_allclose(res.coef[:, j], ref.coef_, rtol=1e-5, atol=1e-8)
        assert res.intercept[j] == pytest.approx(ref.intercept_, rel=1e-6, abs=1e-8)


def test_r2_score_matches_sklearn_conventions():
    from sklearn.metrics import r2_score as sk_r2

    y = np.array([[1.0, 2.0], [2.0, 2.0], [4.0, 2.0]])
    p = np.array([[1.5, 2.0], [2.0, 2.0], [3.0, 2.1]])
    ours = r2_score(torch.as_tensor(y), torch.as_tensor(p)).numpy()
    np.testing.assert_allclose(ours, sk_r2(y, p, multioutput="raw_values"))
    exact = r2_score(torch.as_tensor(y), torch.as_tensor(y)).numpy()
    np.testing.assert_allclose(exact, [1.0, 1.0])


def test_folds_and_splits_respect_groups():
    groups = np.repeat(np.arange(10), 7)  # 10 clips of 7 frames
    for train, test in kfold_indices(len(groups), 5, seed=0, groups=groups):
        assert not set(groups[train]) & set(groups[test])
        assert len(train) + len(test) == len(groups)
    train, test = split_indices(len(groups), 0.2, seed=1, groups=groups)
    assert not set(groups[train]) & set(groups[test]) and len(set(groups[test])) == 2
    a = kfold_indices(50, 5, seed=4)
    b = kfold_indices(50, 5, seed=4)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    assert sorted(np.concatenate([t for _, t in a]).tolist()) == list(range(50))


def test_control_task_is_a_scrambled_function_of_the_factor(rng):
    y = rng.uniform(0, 1, 500)
    c = control_targets(y, bins=10, seed=0)[:, 0]
    assert len(np.unique(c)) == 10
    # a deterministic, piecewise-constant function of the factor: 10 runs when sorted by the factor
    runs = np.count_nonzero(np.diff(c[np.argsort(y)])) + 1
    assert runs == 10
    assert abs(np.corrcoef(c, y)[0, 1]) < 0.9  # no longer ordered with the factor
    assert not np.array_equal(c, control_targets(y, bins=10, seed=1)[:, 0])


def test_bootstrap_interval_covers_the_r2_and_narrows_with_n(rng):
    def interval(n):
        y = rng.standard_normal(n)
        p = y + 0.5 * rng.standard_normal(n)
        lo, hi = bootstrap_ci(y[:, None], p[:, None], n_boot=500, seed=0)
        r2 = r2_score(torch.as_tensor(y[:, None]), torch.as_tensor(p[:, None])).item()
        return lo[0], hi[0], r2

    lo, hi, r2 = interval(100)
    assert lo < r2 < hi and 0.5 < r2 < 0.95
    lo2, hi2, _ = interval(2000)
    assert hi2 - lo2 < 0.5 * (hi - lo)


def test_probe_factors_linear_readout_control_and_nonlinear(rng):
    n = 400
    f = pd.DataFrame({"a": rng.uniform(-1, 1, n), "b": rng.uniform(-1, 1, n), "c": rng.uniform(-1, 1, n)})
    mix = rng.standard_normal((2, 6))
    x = np.column_stack([f[["a", "b"]].to_numpy() @ mix, np.sin(3 * f["c"].to_numpy()) ** 2])
    x = x + 0.01 * rng.standard_normal(x.shape)
    t = probe_factors(x, f, probes=("ridge", "mlp"), n_boot=200, seed=0).set_index(["factor", "probe"])
    assert t.loc[("a", "ridge"), "test_r2"] > 0.99 and t.loc[("b", "ridge"), "test_r2"] > 0.99
    # a linear readout is selective: its control task (a scrambled function) is not linearly decodable
    assert t.loc[("a", "ridge"), "selectivity"] > 0.8
    assert t.loc[("a", "ridge"), "r2_low"] <= t.loc[("a", "ridge"), "test_r2"] <= t.loc[("a", "ridge"), "r2_high"]
    # c enters only through sin(3c)^2, which is even: no linear probe (nor any probe) recovers its sign
    assert t.loc[("c", "ridge"), "test_r2"] < 0.2


def test_probe_factors_mlp_recovers_a_monotone_nonlinearity(rng):
    n = 600
    f = pd.DataFrame({"a": rng.uniform(-1, 1, n)})
    x = np.column_stack([np.exp(3 * f["a"]), rng.standard_normal(n)])
    t = probe_factors(x, f, n_boot=100, seed=0).set_index("probe")
    assert t.loc["mlp", "test_r2"] > 0.97
    assert t.loc["ridge", "test_r2"] < t.loc["mlp", "test_r2"] - 0.05


def test_probe_factors_drops_undefined_rows_and_handles_categories(rng):
    n = 200
    y = rng.uniform(0, 1, n)
    f = pd.DataFrame({"rate": np.where(np.arange(n) % 4 == 0, np.nan, y),
                      "kind": np.where(y > 0.5, "high", "low")})
    x = np.column_stack([y, rng.standard_normal(n)])
    t = probe_factors(x, f, probes=("ridge",), n_boot=50).set_index("factor")
    assert t.loc["rate", "n_train"] + t.loc["rate", "n_test"] == 150
    assert t.loc["kind", "probe"] == "logistic" and t.loc["kind", "test_r2"] > 0.9


@pytest.mark.parametrize(
    ("call", "text"),
    [
        (lambda: ridge_cv(np.ones(5), np.ones(5)), "2-D array"),
        (lambda: ridge_cv(np.ones((5, 2)), np.ones(4)), "rows"),
        (lambda: ridge_cv(np.full((5, 2), np.nan), np.ones(5)), "NaN"),
        (lambda: ridge_cv(np.ones((10, 2)), np.ones(10), alphas=[-1.0]), "alphas"),
        (lambda: ridge_cv(np.ones((10, 2)), np.ones(10), folds=1), "folds"),
        (lambda: kfold_indices(3, 5), "at least 5"),
        (lambda: probe_factors(np.ones((10, 2)), pd.DataFrame({"a": np.ones(9)})), "rows"),
        (lambda: probe_factors(np.ones((10, 2)), pd.DataFrame({"a": np.ones(10)}), probes=("svm",)), "unknown probe"),
    ],
)
def test_bad_input(call, text):
    with pytest.raises(ConfigError, match=text):
        call()
