"""Capacity: how many factors a site's frame can hold as separate directions, and the interference it forces.

``k`` factors held as unit directions in a ``d``-dimensional frame (``d`` =
channels x frequency bins) cannot all be orthogonal once ``k > d``. The least
possible largest coherence (absolute cosine) between ``k`` unit vectors in
``R^d`` is bounded below by

* the Welch bound (Welch 1974, "Lower bounds on the maximum cross correlation
  of signals", IEEE Trans. Inf. Theory): ``sqrt((k - d) / (d (k - 1)))`` for
  ``k > d``, 0 for ``k <= d``;
* the Levenshtein bound for real vectors (Levenshtein 1983; see Strohmer &
  Heath 2003, "Grassmannian frames with applications to coding and
  communication"), tighter for ``k > d (d + 1) / 2``:
  ``sqrt((3k - d^2 - 2d) / ((d + 2)(k - d)))``.

:func:`coherence_bound` takes the larger where both apply. The bound says
what any code must suffer; whether a given network reaches it is for the
Jacobian cosines (:mod:`ontoscope.operators.jacobians`) to show.
"""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["capacity_table", "coherence_bound", "levenshtein_bound", "welch_bound"]


def welch_bound(k: int, d: int) -> float:
    """Welch's lower bound on the largest |cosine| among ``k`` unit vectors in ``d`` dimensions."""
    if d < 1 or k < 1:
        raise ValueError(f"need k >= 1 vectors and d >= 1 dimensions, got k={k}, d={d}")
    if k <= d:
        return 0.0
    return math.sqrt((k - d) / (d * (k - 1)))


def levenshtein_bound(k: int, d: int) -> float:
    """Levenshtein's bound for real unit vectors, valid for ``k > d (d + 1) / 2``; NaN where it does not apply."""
    if d < 1 or k < 1:
        raise ValueError(f"need k >= 1 vectors and d >= 1 dimensions, got k={k}, d={d}")
    if k <= d * (d + 1) / 2:
        return float("nan")
    return math.sqrt((3 * k - d * d - 2 * d) / ((d + 2) * (k - d)))


def coherence_bound(k: int, d: int) -> float:
    """The tighter of the Welch and Levenshtein bounds (the least achievable largest |cosine|)."""
    w = welch_bound(k, d)
    lev = levenshtein_bound(k, d)
    return max(w, lev) if lev == lev else w


def capacity_table(sites: pd.DataFrame, n_factors: int) -> pd.DataFrame:
    """Factors against dims per frame at every site.

    Parameters
    ----------
    sites : DataFrame
        Geometry table (``site, dims_per_frame``, optionally ``model, dims_per_second, frame_rate_hz``).
    n_factors : int
        Number of factors that should be separate directions.

    Returns
    -------
    DataFrame: ``model, site, n_factors, dims_per_frame, factors_per_dim, welch_bound, levenshtein_bound,
    coherence_bound, over_capacity`` (``n_factors > dims_per_frame``).
    """
    rows = []
    for _, s in sites.iterrows():
        d = int(s["dims_per_frame"])
        rows.append({"model": s.get("model", ""), "site": s["site"], "n_factors": int(n_factors),
                     "dims_per_frame": d, "factors_per_dim": n_factors / d,
                     "welch_bound": welch_bound(n_factors, d), "levenshtein_bound": levenshtein_bound(n_factors, d),
                     "coherence_bound": coherence_bound(n_factors, d), "over_capacity": n_factors > d})
    return pd.DataFrame(rows, columns=["model", "site", "n_factors", "dims_per_frame", "factors_per_dim",
                                       "welch_bound", "levenshtein_bound", "coherence_bound", "over_capacity"])
