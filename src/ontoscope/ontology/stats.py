"""The intervals the comparison decides by: Wilson for a proportion, Student t for a mean and a slope.

- :func:`wilson_interval`: the score interval of a binomial proportion (Wilson 1927). It stays inside
  [0, 1] and covers close to its level for small ``n`` and for ``p`` near 0 or 1, where the Wald
  interval ``p ± z sqrt(p (1 - p) / n)`` collapses (Brown, Cai & DasGupta 2001).
- :func:`mean_interval`: the mean of independent replicates (one value per seed or per model) and its
  t interval, ``mean ± t_{n-1} s / sqrt(n)``.
- :func:`within_slope`: the least-squares slope of ``y`` on ``x`` with one intercept per group (the
  within, or fixed-effects, estimator: every group is centred on its own means, so only the variation
  of ``x`` inside a group, all else held fixed, moves the slope), and its t interval on
  ``n - G - 1`` degrees of freedom (Wooldridge 2010, ch. 10).

References
----------
Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference. JASA 22(158).
Brown, L. D., Cai, T. T., & DasGupta, A. (2001). Interval estimation for a binomial proportion.
Statistical Science 16(2).
Wooldridge, J. M. (2010). Econometric Analysis of Cross Section and Panel Data, 2nd ed. MIT Press.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ontoscope.errors import ConfigError

__all__ = ["Fit", "mean_interval", "wilson_interval", "within_slope"]


@dataclass(frozen=True)
class Fit:
    """An estimate with its interval.

    Attributes
    ----------
    estimate : float
        The mean or slope (NaN where there is nothing to estimate from).
    ci_low, ci_high : float
        The interval at the requested level (NaN where the degrees of freedom are fewer than 1).
    se : float
        Standard error of the estimate.
    df : int
        Degrees of freedom of the t quantile.
    n : int
        Observations used.
    """

    estimate: float
    ci_low: float
    ci_high: float
    se: float
    df: int
    n: int

    @property
    def has_interval(self) -> bool:
        """True when both ends of the interval are finite."""
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)


_NAN = float("nan")


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ConfigError(f"confidence level {level} must lie strictly between 0 and 1, e.g. 0.95")


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``k / n``.

    ``(k + z²/2 ± z sqrt(k (n - k) / n + z²/4)) / (n + z²)``, with ``z`` the normal quantile of
    ``(1 + level) / 2``; ``(nan, nan)`` for ``n = 0``.
    """
    _check_level(level)
    if n <= 0:
        return _NAN, _NAN
    if not 0 <= k <= n:
        raise ConfigError(f"a proportion needs 0 <= k <= n, got k={k}, n={n}")
    z = float(stats.norm.ppf((1 + level) / 2))
    centre = k + z * z / 2
    half = z * math.sqrt(k * (n - k) / n + z * z / 4)
    return max(0.0, (centre - half) / (n + z * z)), min(1.0, (centre + half) / (n + z * z))


def mean_interval(values: np.ndarray, level: float = 0.95) -> Fit:
    """Mean of the finite ``values`` ``[n]`` and its t interval (NaN interval for fewer than 2)."""
    _check_level(level)
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return Fit(_NAN, _NAN, _NAN, _NAN, 0, 0)
    mean = float(v.mean())
    if n < 2:
        return Fit(mean, _NAN, _NAN, _NAN, 0, n)
    se = float(v.std(ddof=1) / math.sqrt(n))
    t = float(stats.t.ppf((1 + level) / 2, n - 1))
    return Fit(mean, mean - t * se, mean + t * se, se, n - 1, n)


def within_slope(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, level: float = 0.95) -> Fit:
    """Slope of ``y`` on ``x`` with one intercept per group, and its t interval.

    Parameters
    ----------
    x, y : ndarray ``[n]``
        Pairs with a non-finite member are dropped.
    groups : ndarray ``[n]``, optional
        Group labels (default: one group). Groups in which ``x`` takes a single value carry no
        information on the slope and are dropped.
    level : float

    Returns
    -------
    Fit
        ``b = Σ x̃ ỹ / Σ x̃²`` with ``x̃, ỹ`` centred on their group means; ``se = sqrt(s² / Σ x̃²)``,
        ``s² = Σ (ỹ - b x̃)² / (n - G - 1)``. ``n`` counts the pairs in the groups kept.
    """
    _check_level(level)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    g = np.zeros(x.shape, dtype=np.int64) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, g = x[ok], y[ok], g[ok]
    if x.size == 0:
        return Fit(_NAN, _NAN, _NAN, _NAN, 0, 0)
    _, g = np.unique(g, return_inverse=True)
    count = np.bincount(g)
    xc = x - (np.bincount(g, x) / count)[g]
    varies = np.bincount(g, xc * xc) > 1e-12 * max(1.0, float(np.abs(x).max()) ** 2)
    keep = varies[g]
    x, y, g, xc = x[keep], y[keep], g[keep], xc[keep]
    if x.size == 0:
        return Fit(_NAN, _NAN, _NAN, _NAN, 0, 0)
    _, g = np.unique(g, return_inverse=True)
    yc = y - (np.bincount(g, y) / np.bincount(g))[g]
    sxx = float(xc @ xc)
    b = float(xc @ yc) / sxx
    n, df = int(x.size), int(x.size - g.max() - 2)
    if df < 1:
        return Fit(b, _NAN, _NAN, _NAN, max(df, 0), n)
    resid = yc - b * xc
    se = math.sqrt(float(resid @ resid) / df / sxx)
    t = float(stats.t.ppf((1 + level) / 2, df))
    return Fit(b, b - t * se, b + t * se, se, df, n)
