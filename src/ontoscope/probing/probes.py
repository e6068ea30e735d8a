"""Probes: how well a site's activations decode each factor.

The workhorse is :func:`ridge_cv`, ridge regression with a cross-validated
penalty computed the efficient way: one thin SVD of each fold's centred
training matrix serves every penalty and every target at once (the ridge
solution is ``V diag(s / (s² + α)) Uᵀ Y``), so a grid of penalties over many
factors costs one decomposition per fold. It reproduces scikit-learn's
``RidgeCV(alphas, cv=folds, fit_intercept=True)`` run on each target
separately (the penalty of the best mean fold R², the first on ties), to
rounding.

Around it:

- :func:`logistic_cv`: a multinomial logistic probe for categorical targets,
  its inverse penalty chosen by mean fold accuracy (scikit-learn's
  ``LogisticRegression``);
- :func:`mlp_probe`: a small multilayer perceptron (one hidden layer of tanh
  units; scikit-learn's ``MLPRegressor``), the nonlinear control;
- :func:`control_targets`: Hewitt & Liang's (2019) control task for a
  continuous factor: the factor's quantile bins mapped to a seeded random
  permutation of the bin centres, a target that only memorisation can fit.
  *Selectivity* is the probe's test R² on the factor less its R² on the control;
- :func:`bootstrap_ci`: percentile bootstrap confidence interval of a test score;
- :func:`probe_factors`: everything above for one feature matrix and a factor
  table, one row per (factor, probe).

References
----------
Hoerl, A. E., & Kennard, R. W. (1970). Ridge regression: biased estimation for
nonorthogonal problems. Technometrics, 12(1), 55-67.
Hewitt, J., & Liang, P. (2019). Designing and interpreting probes with control
tasks. EMNLP.
Alain, G., & Bengio, Y. (2017). Understanding intermediate layers using linear
classifier probes. ICLR workshop.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPRegressor

from ontoscope.errors import ConfigError

__all__ = [
    "DEFAULT_ALPHAS",
    "RidgeCVResult",
    "bootstrap_ci",
    "control_targets",
    "kfold_indices",
    "logistic_cv",
    "mlp_probe",
    "probe_factors",
    "r2_score",
    "ridge_cv",
    "split_indices",
]

#: Default penalty grid of :func:`ridge_cv` (features are standardised by :func:`probe_factors`).
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 5, 17))

Folds = int | Sequence[tuple[np.ndarray, np.ndarray]]


def _as_matrix(a: np.ndarray | torch.Tensor, name: str, allow_1d: bool = False) -> torch.Tensor:
    """``a`` as a finite float64 tensor ``[n, d]`` (``[n]`` kept 1-D where ``allow_1d``)."""
    t = a.detach() if isinstance(a, torch.Tensor) else torch.from_numpy(np.array(a, dtype=np.float64))
    if not (t.ndim == 2 or (allow_1d and t.ndim == 1)):
        raise ConfigError(f"{name} must be a 2-D array [n, features], got shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise ConfigError(f"{name} has NaN or infinite values; drop or impute those rows first")
    return t


def kfold_indices(n: int, folds: int, seed: int = 0, groups: np.ndarray | None = None
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled K-fold (train, test) index pairs; with ``groups``, rows of a group stay in one fold.

    Parameters
    ----------
    n : int
        Number of rows.
    folds : int
        Number of folds, at least 2 and at most the number of rows (or groups).
    seed : int
        Seed of the shuffle.
    groups : array ``[n]``, optional
        Group label per row (e.g. the clip of each frame): a group is never split.
    """
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ConfigError(f"folds must be an integer of at least 2, got {folds!r}")
    rng = np.random.default_rng(seed)
    if groups is None:
        units = np.arange(n)
        labels = units
    else:
        labels = np.asarray(groups)
        if labels.shape != (n,):
            raise ConfigError(f"groups must have one label per row ({n}), got shape {labels.shape}")
        units = np.unique(labels)
    if folds > len(units):
        raise ConfigError(f"{folds} folds need at least {folds} {'groups' if groups is not None else 'rows'}, "
                          f"got {len(units)}")
    order = rng.permutation(units)
    out = []
    for part in np.array_split(order, folds):
        test = np.flatnonzero(np.isin(labels, part))
        train = np.setdiff1d(np.arange(n), test)
        out.append((train, test))
    return out


def split_indices(n: int, test_fraction: float = 0.2, seed: int = 0, groups: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A seeded (train, test) split of ``n`` rows; with ``groups`` a group lies wholly on one side."""
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    labels = np.arange(n) if groups is None else np.asarray(groups)
    units = np.unique(labels)
    n_test = max(1, int(round(test_fraction * len(units))))
    if n_test >= len(units):
        raise ConfigError(f"cannot hold out {test_fraction:.0%} of {len(units)} clips and keep some to train on")
    test_units = rng.choice(units, size=n_test, replace=False)
    test = np.flatnonzero(np.isin(labels, test_units))
    return np.setdiff1d(np.arange(n), test), test


def r2_score(y: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination per target, as scikit-learn's ``r2_score(multioutput="raw_values")``.

    ``y`` ``[n, k]``, ``pred`` ``[..., n, k]`` → ``[..., k]``. A constant target
    scores 1 when predicted exactly and 0 otherwise (scikit-learn's ``force_finite``).
    """
    ss_res = ((y - pred) ** 2).sum(-2)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    r2 = 1 - ss_res / torch.where(ss_tot > 0, ss_tot, torch.ones_like(ss_tot))
    exact = torch.where(ss_res == 0, torch.ones_like(r2), torch.zeros_like(r2))
    return torch.where(ss_tot > 0, r2, exact)


@dataclass(frozen=True)
class RidgeCVResult:
    """A ridge probe with its cross-validated penalty, per target.

    Attributes
    ----------
    alphas : ndarray ``[A]``
        The penalty grid.
    alpha : ndarray ``[k]``
        Chosen penalty per target (best mean fold R², first on ties).
    cv_r2 : ndarray ``[k]``
        Mean fold R² at the chosen penalty.
    r2_path : ndarray ``[A, k]``
        Mean fold R² for every penalty.
    fold_r2 : ndarray ``[F, A, k]``
        R² of every fold, penalty and target.
    coef : ndarray ``[d, k]``
        Weights refitted on all rows at each target's penalty.
    intercept : ndarray ``[k]``
    """

    alphas: np.ndarray
    alpha: np.ndarray
    cv_r2: np.ndarray
    r2_path: np.ndarray
    fold_r2: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def predict(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Predictions ``[n, k]`` for features ``x`` ``[n, d]``."""
        xm = _as_matrix(x, "X").cpu().numpy()
        return xm @ self.coef + self.intercept


def _ridge_basis(x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The thin SVD ``X_c = U S Vᵀ`` of the centred rows as ``V [d, r]``, ``S [r]`` and ``Uᵀ Y_c [r, k]``, plus the
    centring means of x and y: the ridge weights for a penalty ``α`` are ``V diag(S / (S² + α)) Uᵀ Y_c``.

    With more features than rows (``d > n``), ``U`` and ``S`` come from the eigendecomposition of the ``n × n`` Gram
    matrix ``X_c X_cᵀ`` and ``V = X_cᵀ U S⁻¹``: the same factors for a fraction of a wide SVD's cost (directions
    with ``S² ≤ n · ε · S²_max`` are dropped, below float64's resolution of the Gram matrix).
    """
    mx, my = x.mean(0), y.mean(0)
    xc = x - mx
    n, d = xc.shape
    if d > n:
        evals, u = torch.linalg.eigh(xc @ xc.T)
        keep = evals > evals.max().clamp_min(0) * n * torch.finfo(evals.dtype).eps
        u, s = u[:, keep], evals[keep].sqrt()
        v = (xc.T @ u) / s
    else:
        u, s, vt = torch.linalg.svd(xc, full_matrices=False)
        v = vt.T
    return v, s, u.T @ (y - my), mx, my


def ridge_cv(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
    folds: Folds = 5,
    seed: int = 0,
) -> RidgeCVResult:
    """Ridge regression of every target on ``X``, the penalty chosen per target by cross-validation.

    Parameters
    ----------
    X : array or tensor ``[n, d]``
        Features (numpy or torch; computed in float64 on the tensor's device).
    Y : array or tensor ``[n, k]`` or ``[n]``
        Targets.
    alphas : sequence of float
        Penalties ``α`` of ``||Y - X W - b||² + α ||W||²`` (the intercept ``b`` is not penalised).
    folds : int or list of (train, test) index arrays
        A number of shuffled folds (seeded by ``seed``), or explicit pairs as
        scikit-learn's ``cv`` accepts them.
    seed : int
        Seed of the fold shuffle.

    Returns
    -------
    RidgeCVResult
        ``alpha`` and ``cv_r2`` per target, the whole R² path, and the weights
        refitted on all rows at each target's penalty.

    Notes
    -----
    Per fold, one thin SVD ``X_c = U S Vᵀ`` of the centred training rows gives
    the predictions for every penalty at once (through the Gram matrix when
    there are more features than rows); the test R² of all penalties and
    targets is one batched product. Equal to scikit-learn's ``RidgeCV`` with the
    same folds, fitted to each target on its own (which, for several targets
    and explicit folds, picks one penalty for all).
    """
    x = _as_matrix(X, "X")
    y = _as_matrix(Y, "Y", allow_1d=True).to(x.device)
    if y.ndim == 1:
        y = y[:, None]
    n = x.shape[0]
    if y.shape[0] != n:
        raise ConfigError(f"X has {n} rows but Y has {y.shape[0]}; give one target row per feature row")
    a = np.asarray(alphas, dtype=np.float64).reshape(-1)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ConfigError("alphas must be a non-empty list of finite penalties >= 0")
    splits = kfold_indices(n, folds, seed) if isinstance(folds, (int, np.integer)) else list(folds)
    if not splits:
        raise ConfigError("folds is an empty list; give a fold count or (train, test) index pairs")
    al = torch.as_tensor(a, dtype=torch.float64, device=x.device)
    fold_r2 = []
    for train, test in splits:
        tr = torch.as_tensor(np.asarray(train), device=x.device, dtype=torch.long)
        te = torch.as_tensor(np.asarray(test), device=x.device, dtype=torch.long)
        if tr.numel() < 2 or te.numel() < 1:
            raise ConfigError("every fold needs at least 2 training rows and 1 test row")
        v, sv, uty, mx, my = _ridge_basis(x[tr], y[tr])
        shrink = sv / (sv**2 + al[:, None])  # [A, r]
        pred = torch.einsum("nr,ar,rk->ank", (x[te] - mx) @ v, shrink, uty) + my
        fold_r2.append(r2_score(y[te], pred))
    fr = torch.stack(fold_r2)  # [F, A, k]
    path = fr.mean(0)
    best = torch.argmax(path, dim=0)  # first maximum: the smallest index on ties
    v, sv, uty, mx, my = _ridge_basis(x, y)
    shrink = sv / (sv**2 + al[best][:, None])  # [k, r]: each target's own penalty
    coef = v @ (shrink.T * uty)  # [d, k]
    cols = torch.arange(y.shape[1], device=x.device)
    intercept = my - mx @ coef
    return RidgeCVResult(alphas=a, alpha=a[best.cpu().numpy()], cv_r2=path[best, cols].cpu().numpy(),
                         r2_path=path.cpu().numpy(), fold_r2=fr.cpu().numpy(), coef=coef.cpu().numpy(),
                         intercept=intercept.cpu().numpy())


def logistic_cv(
    X: np.ndarray, y: np.ndarray, Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0), folds: Folds = 5,
    seed: int = 0,
) -> tuple[object, float, float]:
    """Multinomial logistic probe for a categorical target, ``C`` chosen by mean fold accuracy.

    Returns ``(fitted LogisticRegression, chosen C, mean fold accuracy)``.
    """
    x = _as_matrix(X, "X").cpu().numpy()
    labels = np.asarray(y)
    splits = kfold_indices(len(x), folds, seed) if isinstance(folds, (int, np.integer)) else list(folds)
    scores = []
    for c in Cs:
        acc = []
        for train, test in splits:
            m = LogisticRegression(C=c, max_iter=2000).fit(x[train], labels[train])
            acc.append(float((m.predict(x[test]) == labels[test]).mean()))
        scores.append(np.mean(acc))
    best = int(np.argmax(scores))
    return LogisticRegression(C=Cs[best], max_iter=2000).fit(x, labels), float(Cs[best]), float(scores[best])


def mlp_probe(X: np.ndarray, Y: np.ndarray, hidden: int = 64, seed: int = 0, max_iter: int = 300) -> object:
    """A one-hidden-layer perceptron regressor (tanh units, L2 penalty 1e-4), fitted; scikit-learn's ``MLPRegressor``.

    The nonlinear control: where it decodes a factor a linear probe cannot, the
    factor is present but not linearly readable. Below 2,000 rows it is fitted
    by L-BFGS (full batch: exact and reproducible on small sets), above by Adam
    with early stopping on 10 % of the rows.
    """

    x = _as_matrix(X, "X").cpu().numpy()
    y = _as_matrix(Y, "Y", allow_1d=True).cpu().numpy().reshape(len(x), -1)
    small = len(x) < 2000
    model = MLPRegressor(hidden_layer_sizes=(hidden,), activation="tanh", alpha=1e-4,
                         solver="lbfgs" if small else "adam", max_iter=max_iter, early_stopping=not small,
                         n_iter_no_change=20, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y if y.shape[1] > 1 else y[:, 0])
    return model


def control_targets(y: np.ndarray, bins: int = 10, seed: int = 0) -> np.ndarray:
    """Hewitt & Liang's control task for continuous targets.

    Each column of ``y`` ``[n, k]`` is cut into ``bins`` quantile bins, and every
    bin is given the centre of another bin, by a seeded random permutation. The
    control is a deterministic function of the factor, with the factor's values
    but no order: a probe fits it only by memorising bins, so the gap between the
    factor's score and the control's (*selectivity*) says how much of the score
    the probe's own capacity explains.
    """
    ym = np.asarray(y, dtype=np.float64)
    if ym.ndim == 1:
        ym = ym[:, None]
    rng = np.random.default_rng(seed)
    out = np.empty_like(ym)
    for j in range(ym.shape[1]):
        col = ym[:, j]
        edges = np.unique(np.quantile(col, np.linspace(0, 1, bins + 1)))
        idx = np.clip(np.searchsorted(edges, col, side="right") - 1, 0, len(edges) - 2)
        centres = np.array([col[idx == b].mean() if np.any(idx == b) else 0.0 for b in range(len(edges) - 1)])
        perm = rng.permutation(len(centres))
        while len(centres) > 1 and np.all(perm == np.arange(len(centres))):
            perm = rng.permutation(len(centres))
        out[:, j] = centres[perm][idx]
    return out


def bootstrap_ci(y: np.ndarray, pred: np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the test R² per target (rows resampled with replacement).

    ``y``, ``pred`` ``[n, k]`` → ``(low [k], high [k])``.
    """
    yt = torch.as_tensor(np.asarray(y, dtype=np.float64))
    pt = torch.as_tensor(np.asarray(pred, dtype=np.float64))
    if yt.ndim == 1:
        yt, pt = yt[:, None], pt[:, None]
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, yt.shape[0], (n_boot, yt.shape[0]), generator=g)
    yb, pb = yt[idx], pt[idx]  # [B, n, k]
    ss_res = ((yb - pb) ** 2).sum(1)
    ss_tot = ((yb - yb.mean(1, keepdim=True)) ** 2).sum(1)
    r2 = torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp_min(1e-300), torch.zeros_like(ss_res))
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = torch.quantile(r2, q, dim=0)
    return lo.numpy(), hi.numpy()


def _standardise(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Columns centred on the training rows and divided by one scale for the whole matrix (the root mean square
    of the columns' spreads). One scale, not one per column, keeps the ridge penalty meaningful in any units
    without magnifying a nearly constant column (a unit that fires on one training clip, one bin of a place code)
    into a feature that explodes on held-out rows."""
    mu = x[train].mean(0)
    sd = x[train].std(0)
    scale = float(np.sqrt(np.mean(sd**2))) if sd.size else 0.0
    return (x - mu) / (scale if scale > 0 else 1.0)


def probe_factors(
    X: np.ndarray | torch.Tensor,
    factors: pd.DataFrame,
    *,
    probes: Sequence[str] = ("ridge", "mlp"),
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    folds: int = 5,
    test_fraction: float = 0.2,
    groups: np.ndarray | None = None,
    control: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Probe every column of ``factors`` from ``X``: one row per (factor, probe).

    Features are centred on the training rows and scaled by one factor (:func:`_standardise`). A seeded split holds out
    ``test_fraction`` of the rows (of the groups, with ``groups``); the ridge
    penalty is cross-validated on the rest (:func:`ridge_cv`, folds grouped the
    same way); each probe is scored on the held-out rows.

    Parameters
    ----------
    X : array ``[n, d]``
    factors : DataFrame ``[n, k]``
        Targets on their normalised scale (numeric columns are probed by
        regression; ``object``/``category`` columns by :func:`logistic_cv`).
    probes : sequence of {"ridge", "mlp"}
        Probes for the numeric columns.
    groups : array ``[n]``, optional
        Group label per row (the clip of each frame): splits never cut a group.
    control : bool
        Add the control task and ``selectivity`` (ridge probe only).

    Returns
    -------
    DataFrame
        ``factor, probe, n_train, n_test, alpha, cv_r2, test_r2, r2_low, r2_high`` (95 % bootstrap
        interval), ``control_r2``, ``selectivity``; for categorical columns ``probe = "logistic"``
        and the scores are accuracies.
    """
    x = _as_matrix(X, "X").cpu().numpy()
    if len(factors) != len(x):
        raise ConfigError(f"X has {len(x)} rows but the factor table has {len(factors)}")
    unknown = set(probes) - {"ridge", "mlp"}
    if unknown:
        raise ConfigError(f"unknown probe(s) {sorted(unknown)}; use ridge and/or mlp")
    train, test = split_indices(len(x), test_fraction, seed, groups)
    x = _standardise(x, train)
    cv = [(train[a], train[b]) for a, b in kfold_indices(len(train), folds, seed,
                                                          None if groups is None else np.asarray(groups)[train])]
    numeric = [c for c in factors.columns if pd.api.types.is_numeric_dtype(factors[c])]
    categorical = [c for c in factors.columns if c not in numeric]
    rows: list[dict] = []
    if numeric:
        y = factors[numeric].to_numpy(dtype=np.float64)
        keep = np.isfinite(y)
        for j, name in enumerate(numeric):  # rows where a factor is undefined (a rate at depth 0) are dropped
            ok = keep[:, j]
            tr, te = train[ok[train]], test[ok[test]]
            if len(tr) < folds + 1 or len(te) < 2:
                continue
            pos = {r: i for i, r in enumerate(tr)}
            cvj = [(np.array([pos[r] for r in a if r in pos]), np.array([pos[r] for r in b if r in pos]))
                   for a, b in cv]
            cvj = [(a, b) for a, b in cvj if len(a) >= 2 and len(b) >= 1]
            rows.extend(_regression_rows(x, y[:, j], name, tr, te, cvj, probes, alphas, control, n_boot, seed))
    for name in categorical:
        labels = factors[name].astype(str).to_numpy()
        model, c, cv_acc = logistic_cv(x[train], labels[train], folds=[(a, b) for a, b in kfold_indices(
            len(train), folds, seed)], seed=seed)
        acc = float((model.predict(x[test]) == labels[test]).mean())
        rows.append({"factor": name, "probe": "logistic", "n_train": len(train), "n_test": len(test), "alpha": 1 / c,
                     "cv_r2": cv_acc, "test_r2": acc})
    return pd.DataFrame(rows)


def _regression_rows(x: np.ndarray, y: np.ndarray, name: str, tr: np.ndarray, te: np.ndarray, cv: list,
                     probes: Sequence[str], alphas: Sequence[float], control: bool, n_boot: int, seed: int
                     ) -> list[dict]:
    out = []
    base = {"factor": name, "n_train": len(tr), "n_test": len(te)}
    if "ridge" in probes:
        targets = y[:, None].copy()
        if control:  # the control of the rows where the factor is defined
            ok = np.isfinite(y)
            ctl = np.full_like(y, np.nan)
            ctl[ok] = control_targets(y[ok], seed=seed)[:, 0]
            targets = np.column_stack([y, ctl])
        res = ridge_cv(x[tr], targets[tr], alphas, folds=cv, seed=seed)
        pred = res.predict(x[te])
        test_r2 = r2_score(torch.as_tensor(targets[te]), torch.as_tensor(pred)).numpy()
        lo, hi = bootstrap_ci(targets[te, :1], pred[:, :1], n_boot=n_boot, seed=seed)
        row = {**base, "probe": "ridge", "alpha": float(res.alpha[0]), "cv_r2": float(res.cv_r2[0]),
               "test_r2": float(test_r2[0]), "r2_low": float(lo[0]), "r2_high": float(hi[0])}
        if control:
            row["control_r2"] = float(test_r2[1])
            row["selectivity"] = float(test_r2[0] - test_r2[1])
        out.append(row)
    if "mlp" in probes:
        model = mlp_probe(x[tr], y[tr], seed=seed)
        pred = np.asarray(model.predict(x[te]), dtype=np.float64)[:, None]
        test_r2 = r2_score(torch.as_tensor(y[te, None]), torch.as_tensor(pred)).numpy()
        lo, hi = bootstrap_ci(y[te, None], pred, n_boot=n_boot, seed=seed)
        out.append({**base, "probe": "mlp", "test_r2": float(test_r2[0]), "r2_low": float(lo[0]),
                    "r2_high": float(hi[0])})
    return out
