"""Disentanglement and identifiability metrics: DCI, MIG, SAP, modularity, explicitness, MCC.

Every metric compares a representation ``codes [n, d]`` (float; one column per
code, e.g. the channels of a site or the directions of a probe) with the
ground-truth ``factors [n, k]`` that generated the inputs (discrete integers or
continuous values), and returns a number in ``[0, 1]`` where higher is better:

- :func:`dci`: disentanglement, completeness and informativeness from an
  importance matrix ``R [d, k]`` of gradient-boosted trees (Eastwood & Williams 2018);
- :func:`mig`: mutual information gap (Chen et al. 2018);
- :func:`sap`: separated attribute predictability (Kumar et al. 2018);
- :func:`modularity_explicitness`: modularity and explicitness (Ridgeway & Mozer 2018);
- :func:`mcc`: mean correlation coefficient after optimal one-to-one matching of
  codes to factors (Hungarian matching on ``|Pearson|``, or ``|Spearman|``;
  Khemakhem et al. 2020);
- :func:`disentanglement`: all of them at once, one flat dict.

``mode="reference"`` reproduces the estimators and defaults of
``disentanglement_lib`` (Locatello et al. 2019) run on a fixed data set
(its ``*_on_fixed_data`` functions): rows are split in order, the first
``ceil(0.8 n)`` for training and the rest for testing; MIG uses all rows and
modularity the training rows; codes are discretised by a 20-bin histogram.
``mode="fast"`` changes only what is slow: DCI's trees (20 boosting stages of
learning rate 0.5 instead of 100 of 0.1) and SAP's linear SVMs (the primal
solver instead of the dual one). See ``docs/metrics.md`` for the formulas, the
differences and the numbers measured on cases with known answers.

**Factors.** A column is *discrete* when all its values are integers and it
takes at most :data:`MAX_DISCRETE_LEVELS` distinct values; otherwise it is
*continuous* (override with ``discrete=``). Where a metric needs discrete
factors (DCI, MIG, modularity, explicitness) a continuous factor is discretised
like the codes, by a 20-bin histogram over all rows. SAP scores a continuous
factor by its squared correlation with each code (disentanglement_lib's
``continuous_factors=True`` branch) and a discrete one by classification
accuracy; MCC uses the raw values.

References
----------
Chen, R. T. Q., Li, X., Grosse, R., & Duvenaud, D. (2018). Isolating sources of
disentanglement in variational autoencoders. NeurIPS.

Eastwood, C., & Williams, C. K. I. (2018). A framework for the quantitative
evaluation of disentangled representations. ICLR.

Khemakhem, I., Kingma, D. P., Monti, R. P., & Hyvärinen, A. (2020). Variational
autoencoders and nonlinear ICA: a unifying framework. AISTATS.

Kumar, A., Sattigeri, P., & Balakrishnan, A. (2018). Variational inference of
disentangled latent concepts from unlabeled observations. ICLR.

Locatello, F., Bauer, S., Lucic, M., Rätsch, G., Gelly, S., Schölkopf, B., &
Bachem, O. (2019). Challenging common assumptions in the unsupervised learning
of disentangled representations. ICML.

Ridgeway, K., & Mozer, M. C. (2018). Learning deep disentangled embeddings with
the F-statistic loss. NeurIPS.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import scipy.stats
from scipy.optimize import linear_sum_assignment
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

from ontoscope.errors import ConfigError

Mode = Literal["reference", "fast"]

#: The accepted values of ``mode``.
MODES: tuple[str, ...] = ("reference", "fast")
#: Histogram bins used to discretise codes (and continuous factors).
N_BINS = 20
#: Share of rows (the first ones) used for training where a metric fits a model.
TRAIN_FRACTION = 0.8
#: Fewest rows accepted.
MIN_ROWS = 10
#: An integer-valued factor with more distinct values than this is treated as continuous.
MAX_DISCRETE_LEVELS = 64
#: Gradient boosting settings of DCI's fast mode (the reference uses scikit-learn's defaults: 100 and 0.1).
FAST_GBT: dict[str, Any] = {"n_estimators": 20, "learning_rate": 0.5}
#: Keys of the dict :func:`disentanglement` returns, in order.
KEYS: tuple[str, ...] = ("dci_disentanglement", "dci_completeness", "dci_informativeness", "mig", "sap",
                         "modularity", "explicitness", "mcc")


# ---------------------------------------------------------------- input checks


def _as_2d(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy array, torch tensor or nested sequence) as a finite float64 ``[n, m]`` array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name} must be a numeric array [n, columns]; could not convert it ({e})") from None
    if a.ndim != 2:
        raise ConfigError(f"{name} must be a 2-D array [n, columns]; got shape {a.shape}. "
                          f"Pass a single column as {name}[:, None].")
    if a.shape[1] == 0:
        raise ConfigError(f"{name} has no columns (shape {a.shape}); pass at least one column.")
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise ConfigError(f"{name} contain NaN or infinite values in {int(bad.sum())} rows "
                          f"(first: row {int(np.argmax(bad))}); drop or impute those rows first.")
    return a


def _check_inputs(codes: Any, factors: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``codes [n, d]`` and ``factors [n, k]`` as float64 arrays."""
    z = _as_2d(codes, "codes")
    y = _as_2d(factors, "factors")
    if z.shape[0] != y.shape[0]:
        raise ConfigError(f"codes has {z.shape[0]} rows but factors has {y.shape[0]}; "
                          "pass one row per sample in both.")
    if z.shape[0] < MIN_ROWS:
        raise ConfigError(f"need at least {MIN_ROWS} rows to split them into training and test rows; "
                          f"got {z.shape[0]}. Pass more samples.")
    const = np.flatnonzero(np.ptp(y, axis=0) == 0)
    if const.size:
        raise ConfigError(f"factor {int(const[0])} is constant; drop it (it carries nothing to measure).")
    return z, y


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; use 'reference' or 'fast'.")


def n_train(n: int) -> int:
    """Number of training rows out of ``n``: ``ceil(0.8 n)``, the first ones, as disentanglement_lib splits."""
    return int(np.ceil(n * TRAIN_FRACTION))


def discrete_mask(factors: Any, discrete: bool | Sequence[bool] | None = None) -> np.ndarray:
    """Which factor columns are treated as discrete.

    Parameters
    ----------
    factors : np.ndarray or torch.Tensor [shape=(n, k)]
        Factor values.
    discrete : bool, sequence of k bools, or None
        ``None`` (default): a column is discrete when all its values are integers and it takes at most
        :data:`MAX_DISCRETE_LEVELS` distinct values. A bool applies to every column.

    Returns
    -------
    mask : np.ndarray [shape=(k,), dtype=bool]
    """
    y = _as_2d(factors, "factors")
    k = y.shape[1]
    if discrete is None:
        integral = np.all(y == np.round(y), axis=0)
        levels = np.array([np.unique(y[:, j]).size for j in range(k)])
        return integral & (levels <= MAX_DISCRETE_LEVELS)
    if isinstance(discrete, bool | np.bool_):
        return np.full(k, bool(discrete))
    mask = np.asarray(discrete, dtype=bool).ravel()
    if mask.size != k:
        raise ConfigError(f"discrete has {mask.size} entries but factors has {k} columns; give one per factor.")
    return mask


# ------------------------------------------------------- discretisation, information


def histogram_discretize(x: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Discretise every column into ``n_bins`` equal-width bins over its own range.

    As disentanglement_lib's ``_histogram_discretize``: ``np.digitize(x, edges[:-1])`` with the edges of
    ``np.histogram(x, n_bins)``, so the labels run from 1 to ``n_bins`` (the maximum falls in the last bin).

    Parameters
    ----------
    x : np.ndarray [shape=(n, m)]
    n_bins : int > 0

    Returns
    -------
    labels : np.ndarray [shape=(n, m), dtype=int64]
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.shape, dtype=np.int64)
    for j in range(x.shape[1]):
        edges = np.histogram(x[:, j], n_bins)[1]
        out[:, j] = np.digitize(x[:, j], edges[:-1])
    return out


def factor_labels(factors: np.ndarray, mask: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Integer class labels of every factor: discrete columns as they are (re-indexed ``0..m-1``, order kept),
    continuous ones by a ``n_bins`` histogram over all rows.

    Parameters
    ----------
    factors : np.ndarray [shape=(n, k)]
    mask : np.ndarray [shape=(k,), dtype=bool]
        Discrete columns (:func:`discrete_mask`).
    n_bins : int > 0

    Returns
    -------
    labels : np.ndarray [shape=(n, k), dtype=int64]
    """
    out = np.empty(factors.shape, dtype=np.int64)
    for j in range(factors.shape[1]):
        if mask[j]:
            out[:, j] = np.unique(factors[:, j], return_inverse=True)[1].ravel()
        else:
            out[:, j] = histogram_discretize(factors[:, j:j + 1], n_bins)[:, 0]
    return out


def _dense(labels: np.ndarray) -> tuple[np.ndarray, int]:
    inv = np.unique(labels, return_inverse=True)[1].ravel()
    return inv, int(inv.max()) + 1


def mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information of two label vectors, in nats, from their contingency table.

    ``I(a; b) = sum_ij p_ij log(p_ij / (p_i p_j))``; equals ``sklearn.metrics.mutual_info_score(a, b)``.

    Parameters
    ----------
    a, b : np.ndarray [shape=(n,)]
        Labels (any integers).

    Returns
    -------
    mi : float >= 0
    """
    ia, na = _dense(np.asarray(a))
    ib, nb = _dense(np.asarray(b))
    p = np.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb) / ia.size
    pa, pb = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    mi = np.sum(p[nz] * (np.log(p[nz]) - np.log(np.outer(pa, pb)[nz])))
    return max(float(mi), 0.0)


def mutual_info_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mutual information (nats) of every column of ``a [n, p]`` with every column of ``b [n, q]``: ``[p, q]``."""
    return np.array([[mutual_info(a[:, i], b[:, j]) for j in range(b.shape[1])] for i in range(a.shape[1])])


def discrete_entropy(labels: np.ndarray) -> np.ndarray:
    """Entropy (nats) of every column of ``labels [n, k]``: ``[k]``."""
    return np.array([mutual_info(labels[:, j], labels[:, j]) for j in range(labels.shape[1])])


# ------------------------------------------------------------------------- DCI


def _gbt(mode: str, seed: int) -> Any:
    kw = FAST_GBT if mode == "fast" else {}
    return GradientBoostingClassifier(random_state=seed, **kw)


def _check_train_labels(labels_train: np.ndarray) -> None:
    for j in range(labels_train.shape[1]):
        if np.unique(labels_train[:, j]).size < 2:
            raise ConfigError(f"factor {j} takes a single value in the first {TRAIN_FRACTION:.0%} of rows "
                              "(the training rows); shuffle the rows before calling.")


def dci_importance(codes: np.ndarray, labels: np.ndarray, mode: str = "reference",
                   seed: int = 0) -> tuple[np.ndarray, float, float]:
    """Importance matrix of gradient-boosted trees and their accuracies (DCI's estimator).

    One ``GradientBoostingClassifier`` per factor is fitted on the training rows to predict the factor's
    labels from all codes; column ``j`` of the importance matrix is its (normalised, impurity-based)
    ``feature_importances_``.

    Parameters
    ----------
    codes : np.ndarray [shape=(n, d)]
    labels : np.ndarray [shape=(n, k)]
        Factor labels (:func:`factor_labels`).
    mode : {"reference", "fast"}
        ``"reference"``: scikit-learn's defaults (100 stages, learning rate 0.1, depth 3), as
        disentanglement_lib. ``"fast"``: :data:`FAST_GBT` (20 stages, learning rate 0.5).
    seed : int
        ``random_state`` of the trees.

    Returns
    -------
    importance : np.ndarray [shape=(d, k)]
        Columns sum to 1 (or 0 where no tree split).
    train_accuracy, test_accuracy : float
        Mean over factors of the classification accuracy on the training and the test rows.
    """
    m = n_train(codes.shape[0])
    _check_train_labels(labels[:m])
    importance = np.zeros((codes.shape[1], labels.shape[1]))
    acc_train, acc_test = [], []
    for j in range(labels.shape[1]):
        model = _gbt(mode, seed).fit(codes[:m], labels[:m, j])
        importance[:, j] = np.abs(model.feature_importances_)
        acc_train.append(np.mean(model.predict(codes[:m]) == labels[:m, j]))
        acc_test.append(np.mean(model.predict(codes[m:]) == labels[m:, j]))
    return importance, float(np.mean(acc_train)), float(np.mean(acc_test))


def _one_minus_entropy(p: np.ndarray) -> np.ndarray:
    """``1 - H(column) / log(rows)`` of every column of ``p`` (normalised to sum 1), plus 1e-11 as the reference.

    With one row (``log 1 = 0``) a column scores 1 if it has any mass, else 0.
    """
    if p.shape[0] == 1:
        return (p[0] > 0).astype(np.float64)
    return 1.0 - scipy.stats.entropy(p + 1e-11, base=p.shape[0])


def dci_from_importance(importance: np.ndarray) -> tuple[float, float]:
    """Disentanglement and completeness of an importance matrix (Eastwood & Williams 2018).

    With ``P_ij = R_ij / sum_j R_ij`` (code ``i``'s importance over factors) and ``Q_ij = R_ij / sum_i R_ij``,

    - disentanglement ``D = sum_i rho_i (1 - H_k(P_i.))``, ``rho_i = sum_j R_ij / sum_ij R_ij``;
    - completeness ``C = sum_j rho_j (1 - H_d(Q_.j))``, ``rho_j = sum_i R_ij / sum_ij R_ij``;

    ``H_b`` is the entropy in base ``b`` (so each term is in ``[0, 1]``). An all-zero matrix weighs every
    code and factor equally (as disentanglement_lib). With one factor (one code) ``H_1`` is undefined and
    every code (factor) with any importance counts as 1.

    Parameters
    ----------
    importance : np.ndarray [shape=(d, k)], non-negative

    Returns
    -------
    disentanglement, completeness : float
    """
    r = np.asarray(importance, dtype=np.float64)
    per_code = _one_minus_entropy(r.T)
    per_factor = _one_minus_entropy(r)
    w = np.ones_like(r) if r.sum() == 0 else r
    d = float(np.sum(per_code * w.sum(axis=1) / w.sum()))
    c = float(np.sum(per_factor * w.sum(axis=0) / w.sum()))
    return d, c


def _dci(z: np.ndarray, labels: np.ndarray, mode: str, seed: int) -> dict[str, float]:
    importance, acc_train, acc_test = dci_importance(z, labels, mode, seed)
    d, c = dci_from_importance(importance)
    return {"disentanglement": d, "completeness": c, "informativeness": acc_test,
            "informativeness_train": acc_train}


def dci(codes: Any, factors: Any, mode: Mode = "reference", seed: int = 0,
        discrete: bool | Sequence[bool] | None = None) -> dict[str, float]:
    """DCI: disentanglement, completeness and informativeness (Eastwood & Williams 2018).

    Gradient-boosted trees predict each factor from all codes (:func:`dci_importance`, trained on the first
    80 % of rows); their importances form ``R [d, k]``, scored by :func:`dci_from_importance`.
    Informativeness is the trees' mean classification accuracy on the last 20 % of rows (higher is better;
    disentanglement_lib's ``informativeness_test``).

    Parameters
    ----------
    codes : np.ndarray or torch.Tensor [shape=(n, d)]
    factors : np.ndarray or torch.Tensor [shape=(n, k)]
        Discrete factors are classes as they are; continuous ones are discretised into 20 histogram bins.
    mode : {"reference", "fast"}
    seed : int
    discrete : bool, sequence of bool, or None
        Which factors are discrete (:func:`discrete_mask`).

    Returns
    -------
    scores : dict
        ``disentanglement``, ``completeness``, ``informativeness`` (test accuracy) and
        ``informativeness_train``, each in ``[0, 1]``.
    """
    _check_mode(mode)
    z, y = _check_inputs(codes, factors)
    return _dci(z, factor_labels(y, discrete_mask(y, discrete)), mode, seed)


# ------------------------------------------------------------------------- MIG


def _mig(z: np.ndarray, labels: np.ndarray) -> float:
    mi = mutual_info_matrix(histogram_discretize(z), labels)
    top = np.sort(mi, axis=0)[::-1]
    second = top[1] if top.shape[0] > 1 else np.zeros(top.shape[1])
    return float(np.mean((top[0] - second) / discrete_entropy(labels)))


def mig(codes: Any, factors: Any, discrete: bool | Sequence[bool] | None = None) -> float:
    """Mutual information gap (Chen et al. 2018), on all rows.

    ``MIG = (1/k) sum_j (I(z_(1); y_j) - I(z_(2); y_j)) / H(y_j)``, where ``z_(1)`` and ``z_(2)`` are the
    codes with the largest and second-largest mutual information with factor ``y_j``. Codes are discretised
    by a 20-bin histogram (:func:`histogram_discretize`) and the mutual information is the plug-in estimate
    of the contingency table, as disentanglement_lib's ``discrete_mig``. With a single code the second
    term is 0.

    Parameters
    ----------
    codes : np.ndarray or torch.Tensor [shape=(n, d)]
    factors : np.ndarray or torch.Tensor [shape=(n, k)]
        Continuous factors are discretised into 20 histogram bins.
    discrete : bool, sequence of bool, or None
        Which factors are discrete (:func:`discrete_mask`).

    Returns
    -------
    mig : float in [0, 1]
    """
    z, y = _check_inputs(codes, factors)
    return _mig(z, factor_labels(y, discrete_mask(y, discrete)))


# ------------------------------------------------------------------------- SAP


def sap_score_matrix(codes: np.ndarray, factors: np.ndarray, labels: np.ndarray, mask: np.ndarray,
                     mode: str = "reference", seed: int = 0) -> np.ndarray:
    """SAP's score of every (code, factor) pair, ``[d, k]``.

    A continuous factor scores the squared Pearson correlation of the code with the factor on the training
    rows (0 for a code of variance below 1e-12). A discrete factor scores the test accuracy of a one-feature
    linear SVM (``LinearSVC(C=0.01, class_weight="balanced")``, one-vs-rest) trained on the training rows,
    solved in the dual (``"reference"``, the solver disentanglement_lib ran with) or the primal (``"fast"``).

    Parameters
    ----------
    codes : np.ndarray [shape=(n, d)]
    factors : np.ndarray [shape=(n, k)]
        Raw factor values (for the continuous ones).
    labels : np.ndarray [shape=(n, k)]
        Factor labels (:func:`factor_labels`, for the discrete ones).
    mask : np.ndarray [shape=(k,), dtype=bool]
        Discrete factors.
    mode : {"reference", "fast"}
    seed : int
        ``random_state`` of the SVMs.

    Returns
    -------
    scores : np.ndarray [shape=(d, k)]
    """
    m = n_train(codes.shape[0])
    scores = np.zeros((codes.shape[1], factors.shape[1]))
    for j in range(factors.shape[1]):
        if not mask[j]:
            scores[:, j] = _squared_correlation(codes[:m], factors[:m, j])
            continue
        _check_train_labels(labels[:m, j:j + 1])
        for i in range(codes.shape[1]):
            svm = LinearSVC(C=0.01, class_weight="balanced", dual=mode == "reference", random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                svm.fit(codes[:m, i:i + 1], labels[:m, j])
            scores[i, j] = np.mean(svm.predict(codes[m:, i:i + 1]) == labels[m:, j])
    return scores


def _squared_correlation(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``cov(z_i, y)² / (var z_i var y)`` for every column of ``z`` (0 where ``var z_i <= 1e-12``)."""
    zc, yc = z - z.mean(axis=0), y - y.mean()
    cov = zc.T @ yc / (z.shape[0] - 1)
    var_z = np.sum(zc**2, axis=0) / (z.shape[0] - 1)
    var_y = np.sum(yc**2) / (z.shape[0] - 1)
    ok = var_z > 1e-12
    return np.where(ok, cov**2 / np.where(ok, var_z, 1.0) / var_y, 0.0)


def _sap(z: np.ndarray, y: np.ndarray, labels: np.ndarray, mask: np.ndarray, mode: str, seed: int) -> float:
    s = np.sort(sap_score_matrix(z, y, labels, mask, mode, seed), axis=0)
    second = s[-2] if s.shape[0] > 1 else np.zeros(s.shape[1])
    return float(np.mean(s[-1] - second))


def sap(codes: Any, factors: Any, mode: Mode = "reference", seed: int = 0,
        discrete: bool | Sequence[bool] | None = None) -> float:
    """Separated attribute predictability (Kumar et al. 2018).

    ``SAP = (1/k) sum_j (S_(1)j - S_(2)j)``: for every factor, the gap between the best and the second-best
    single code at predicting it, with the scores ``S [d, k]`` of :func:`sap_score_matrix` (R² for a
    continuous factor, linear-SVM test accuracy for a discrete one). With a single code the second score
    is 0.

    Parameters
    ----------
    codes : np.ndarray or torch.Tensor [shape=(n, d)]
    factors : np.ndarray or torch.Tensor [shape=(n, k)]
    mode : {"reference", "fast"}
    seed : int
    discrete : bool, sequence of bool, or None
        Which factors are discrete (:func:`discrete_mask`).

    Returns
    -------
    sap : float in [0, 1]
    """
    _check_mode(mode)
    z, y = _check_inputs(codes, factors)
    mask = discrete_mask(y, discrete)
    return _sap(z, y, factor_labels(y, mask), mask, mode, seed)


# ---------------------------------------------------- modularity, explicitness


def modularity_from_mi(mi: np.ndarray) -> float:
    """Modularity of a mutual information matrix ``[d, k]`` (Ridgeway & Mozer 2018).

    For code ``i`` with ``theta_i = max_j I_ij²``: ``delta_i = (sum_j I_ij² - theta_i) / (theta_i (k - 1))``
    and the code's modularity is ``1 - delta_i`` (0 for a code with no information). The result is the
    mean over codes. With one factor, ``delta_i = 0``.

    Parameters
    ----------
    mi : np.ndarray [shape=(d, k)]

    Returns
    -------
    modularity : float in [0, 1]
    """
    sq = np.square(np.asarray(mi, dtype=np.float64))
    theta = sq.max(axis=1)
    k = sq.shape[1]
    ok = theta > 0
    delta = np.zeros_like(theta)
    if k > 1:
        delta[ok] = (sq.sum(axis=1)[ok] - theta[ok]) / (theta[ok] * (k - 1))
    return float(np.mean(np.where(ok, 1.0 - delta, 0.0)))


def explicitness_auc(codes_train: np.ndarray, labels_train: np.ndarray, codes_test: np.ndarray,
                     labels_test: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Explicitness of one factor: ROC-AUC of a one-vs-rest logistic regression on all codes.

    ``LogisticRegression(solver="liblinear")`` (C = 1, L2) one-vs-rest, the default disentanglement_lib ran
    with, fitted on standardised training codes; the AUC is the mean over classes of each class's
    one-vs-rest AUC (sklearn's macro average), over the classes that the classifier knows and that have
    both positives and negatives in the rows scored.

    Parameters
    ----------
    codes_train, codes_test : np.ndarray [shape=(n_train, d)], [shape=(n_test, d)]
        Already standardised.
    labels_train, labels_test : np.ndarray [shape=(n_train,)], [shape=(n_test,)]
    seed : int

    Returns
    -------
    auc_train, auc_test : float
        NaN where no class can be scored.
    """
    clf = OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=seed))
    clf.fit(codes_train, labels_train)
    return (_macro_auc(labels_train, clf.predict_proba(codes_train), clf.classes_),
            _macro_auc(labels_test, clf.predict_proba(codes_test), clf.classes_))


def _macro_auc(labels: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    aucs = []
    for c, cls in enumerate(classes):
        pos = labels == cls
        if 0 < pos.sum() < pos.size:
            aucs.append(roc_auc_score(pos, proba[:, c]))
    return float(np.mean(aucs)) if aucs else float("nan")


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def _modularity_explicitness(z: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, float]:
    m = n_train(z.shape[0])
    _check_train_labels(labels[:m])
    modularity = modularity_from_mi(mutual_info_matrix(histogram_discretize(z[:m]), labels[:m]))
    ztr, zte = _standardise(z[:m], z[m:])
    aucs = np.array([explicitness_auc(ztr, labels[:m, j], zte, labels[m:, j], seed)
                     for j in range(labels.shape[1])])
    return {"modularity": modularity, "explicitness": float(np.mean(aucs[:, 1])),
            "explicitness_train": float(np.mean(aucs[:, 0]))}


def modularity_explicitness(codes: Any, factors: Any, seed: int = 0,
                            discrete: bool | Sequence[bool] | None = None) -> dict[str, float]:
    """Modularity and explicitness (Ridgeway & Mozer 2018).

    Modularity (:func:`modularity_from_mi`) uses the mutual information between the 20-bin histogram of
    each code and each factor, on the first 80 % of rows. Explicitness (:func:`explicitness_auc`) is the
    mean over factors of a logistic regression's one-vs-rest ROC-AUC, trained on the first 80 % of rows
    (codes standardised by their training mean and standard deviation) and scored on the last 20 %.
    Both are computed the same way in every mode.

    Parameters
    ----------
    codes : np.ndarray or torch.Tensor [shape=(n, d)]
    factors : np.ndarray or torch.Tensor [shape=(n, k)]
        Continuous factors are discretised into 20 histogram bins.
    seed : int
    discrete : bool, sequence of bool, or None
        Which factors are discrete (:func:`discrete_mask`).

    Returns
    -------
    scores : dict
        ``modularity``, ``explicitness`` (test AUC) and ``explicitness_train``, each in ``[0, 1]``
        (an AUC of 0.5 is chance).
    """
    z, y = _check_inputs(codes, factors)
    return _modularity_explicitness(z, factor_labels(y, discrete_mask(y, discrete)), seed)


# ------------------------------------------------------------------------- MCC


def correlation_matrix(codes: np.ndarray, factors: np.ndarray, method: str = "pearson") -> np.ndarray:
    """Correlation of every code with every factor, ``[d, k]`` (0 where a column is constant).

    Parameters
    ----------
    codes : np.ndarray [shape=(n, d)]
    factors : np.ndarray [shape=(n, k)]
    method : {"pearson", "spearman"}
        Spearman is Pearson on the ranks (ties get their mean rank).

    Returns
    -------
    corr : np.ndarray [shape=(d, k)], values in [-1, 1]
    """
    if method not in ("pearson", "spearman"):
        raise ConfigError(f"unknown correlation method {method!r}; use 'pearson' or 'spearman'.")
    if method == "spearman":
        codes = scipy.stats.rankdata(codes, axis=0)
        factors = scipy.stats.rankdata(factors, axis=0)
    a, b = _unit_columns(codes), _unit_columns(factors)
    return np.clip(a.T @ b, -1.0, 1.0)


def _unit_columns(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=0)
    norm = np.linalg.norm(xc, axis=0)
    return xc / np.where(norm > 0, norm, 1.0)


def mcc(codes: Any, factors: Any, method: str = "pearson") -> float:
    """Mean correlation coefficient after optimal matching (as in Khemakhem et al. 2020), on all rows.

    The absolute correlations ``|rho_ij|`` of every code with every factor (:func:`correlation_matrix`) are
    matched one-to-one by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``, maximising the
    sum), and ``MCC = (1/k) sum_j |rho_(pi(j)) j|`` over the matched pairs. With fewer codes than factors,
    the factors left unmatched count 0; with more codes, the extra codes are ignored.

    Parameters
    ----------
    codes : np.ndarray or torch.Tensor [shape=(n, d)]
    factors : np.ndarray or torch.Tensor [shape=(n, k)]
        Raw values (discrete or continuous).
    method : {"pearson", "spearman"}
        ``"pearson"`` (default) measures recovery up to an affine map per code, ``"spearman"`` up to a
        monotone one.

    Returns
    -------
    mcc : float in [0, 1]
    """
    z, y = _check_inputs(codes, factors)
    return _mcc(z, y, method)


def _mcc(z: np.ndarray, y: np.ndarray, method: str = "pearson") -> float:
    corr = np.abs(correlation_matrix(z, y, method))
    rows, cols = linear_sum_assignment(corr, maximize=True)
    return float(corr[rows, cols].sum() / y.shape[1])


# ----------------------------------------------------------------- everything


def disentanglement(codes: Any, factors: Any, mode: Mode = "reference", seed: int = 0,
                    discrete: bool | Sequence[bool] | None = None) -> dict[str, float]:
    """Every disentanglement and identifiability metric of ``codes`` against ``factors``.

    Parameters
    ----------
    codes : np.ndarray or torch.Tensor [shape=(n, d)]
        The representation, float, one row per sample (at least 10 rows, no NaN).
    factors : np.ndarray or torch.Tensor [shape=(n, k)]
        Ground-truth factors, discrete integers or continuous values (:func:`discrete_mask`); rows in
        random order (the first 80 % train the estimators, the last 20 % test them).
    mode : {"reference", "fast"}
        ``"reference"`` reproduces disentanglement_lib's estimators and defaults on fixed data; ``"fast"``
        uses smaller boosted trees for DCI and the primal SVM solver for SAP (see ``docs/metrics.md``).
    seed : int
        Seeds every estimator: the same seed gives the same numbers.
    discrete : bool, sequence of bool, or None
        Which factors are discrete; ``None`` decides from the values.

    Returns
    -------
    scores : dict[str, float]
        ``dci_disentanglement``, ``dci_completeness``, ``dci_informativeness`` (:func:`dci`), ``mig``
        (:func:`mig`), ``sap`` (:func:`sap`), ``modularity``, ``explicitness``
        (:func:`modularity_explicitness`), ``mcc`` (:func:`mcc`, Pearson), each in ``[0, 1]``.

    Raises
    ------
    ontoscope.errors.ConfigError
        Arrays that are not 2-D, have different numbers of rows, fewer than 10 rows, NaN or infinite
        values, a constant factor, a factor with a single value in the training rows, or an unknown mode.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> factors = rng.integers(0, 4, size=(400, 2))
    >>> scores = disentanglement(factors + 0.1 * rng.standard_normal((400, 2)), factors, mode="fast")
    >>> round(scores["mcc"], 2)
    1.0
    """
    _check_mode(mode)
    z, y = _check_inputs(codes, factors)
    mask = discrete_mask(y, discrete)
    labels = factor_labels(y, mask)
    d = _dci(z, labels, mode, seed)
    me = _modularity_explicitness(z, labels, seed)
    return {
        "dci_disentanglement": d["disentanglement"],
        "dci_completeness": d["completeness"],
        "dci_informativeness": d["informativeness"],
        "mig": _mig(z, labels),
        "sap": _sap(z, y, labels, mask, mode, seed),
        "modularity": me["modularity"],
        "explicitness": me["explicitness"],
        "mcc": _mcc(z, y),
    }
