"""Dose–response of an intervention: what every factor of the output does as the dose grows.

An intervention family is run at signed doses ``±d₁ < … < ±d_K`` (one sign for
a modulation) and at 0 on the same base clips; the output of each is measured
(every factor on its normalised scale, [0, 1]). Per dose level ``d_k`` and
measured factor ``j``, with ``Δ_j(c, ±d)`` the change of clip ``c`` against its
own dose-0 output and bars the mean over clips:

- the *odd* part ``(Δ̄_j(+d) − Δ̄_j(−d)) / 2``: what follows the sign of the knob
  (a control variable moves this way);
- the *even* part ``(Δ̄_j(+d) + Δ̄_j(−d)) / 2``: what moves whatever the sign
  (a saturating or symmetric effect);
- the *response* ``R_j(d)``: the odd part for signed families, ``Δ̄_j(+d)`` for
  one-sign ones.

For the intended factor ``i``, at each level:

- ``efficacy = |R_i| / σ_i``, with ``σ_i`` the factor's standard deviation in the
  stimuli (1: the intervention moves it as much as the data vary it);
- ``specificity = |R_i| / (|R_i| + Σ_{j≠i} |R_j − E_j|)``, with ``E_j`` the change
  the family is *expected* to cause in ``j`` (a time-warp scales every rate with
  the pitch: that is its nature, not leakage), averaged over the same clips as
  ``R_j`` (a rate warped past its estimator's range is undefined, and its clip
  leaves both means);
- ``consistency``: the share of (clip, level) whose own response has the sign of
  ``R_i(d_k)``, over ``d_k`` and every smaller level whose mean response is at least a
  quarter of ``|R_i(d_k)|`` (of either sign): an edit must move every clip the same
  way wherever its effect is visible, so that an effect of random sign cannot pass
  by chance at one level (levels below the readout's resolution are not counted).

The level kept is the one whose geometric mean of ``min(efficacy, 1)``,
``specificity`` and ``max(2·consistency − 1, 0)`` is highest (the smaller dose on
a tie). The summary also gives the local slope near 0 (``R_i(d₁) / d₁ / σ_i``),
the largest change reached (``max_k |R_i(d_k)| / σ_i``) and the odd and even
parts at the kept level, so that efficacy no longer depends on one window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ontoscope.errors import ConfigError

__all__ = ["DoseResponse", "check_doses", "dose_response"]


def check_doses(doses: Sequence[float], *, what: str = "doses", integer: bool = False) -> np.ndarray:
    """Positive dose levels as a sorted array; a one-line error when empty, non-finite or not positive."""
    d = np.asarray(list(doses), dtype=np.float64)
    if d.size == 0:
        raise ConfigError(f"the {what} are empty; give at least one positive dose")
    if not np.isfinite(d).all():
        raise ConfigError(f"the {what} must be finite; got {list(doses)}")
    if (d <= 0).any():
        raise ConfigError(f"the {what} must be positive (the signs are added); got {list(doses)}")
    if integer and not np.allclose(d, np.round(d)):
        raise ConfigError(f"the {what} of a place shift are whole steps; got {list(doses)}")
    return np.unique(d)


@dataclass
class DoseResponse:
    """The summary of one (intended factor, family) dose–response.

    Attributes
    ----------
    curve : DataFrame
        One row per (dose level, measured factor): ``dose, measured, plus, minus, odd, even, response,
        expected`` (mean changes in normalised units).
    dose : float
        The level kept.
    efficacy, specificity, consistency : float
        At the level kept.
    slope0 : float
        Normalised change of the intended factor per unit dose at the smallest level, over ``σ_i``.
    reach : float
        The largest ``|R_i| / σ_i`` over the levels.
    odd, even : float
        The intended factor's odd and even parts at the level kept, over ``σ_i``.
    """

    curve: pd.DataFrame
    dose: float
    efficacy: float
    specificity: float
    consistency: float
    slope0: float
    reach: float
    odd: float
    even: float

    def measures(self) -> dict[str, float]:
        """The scalar measures as a dict (the columns of the operational table)."""
        return {k: getattr(self, k) for k in ("dose", "efficacy", "specificity", "consistency", "slope0", "reach",
                                             "odd", "even")}


def _nanmean(v: np.ndarray, axis: int) -> np.ndarray:
    ok = np.isfinite(v)
    n = ok.sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(ok, v, 0.0).sum(axis) / np.maximum(n, 1), np.nan)


def dose_response(
    values: np.ndarray,
    doses: np.ndarray,
    names: Sequence[str],
    intended: str,
    spread: float,
    *,
    expected: np.ndarray | None = None,
) -> DoseResponse:
    """Score one family's dose–response for the intended factor (see the module docstring).

    Parameters
    ----------
    values : array ``[M, B, J]``
        Measured factors (normalised units) of ``B`` clips after each of ``M`` doses; NaN where undefined.
    doses : array ``[M]``
        Signed doses; one of them is 0.
    names : sequence of str ``[J]``
        The measured factors; ``intended`` is one of them.
    spread : float
        ``σ_i``: the intended factor's standard deviation in the stimuli (normalised units).
    expected : array ``[M, B, J]``, optional
        The change each dose is expected to cause (0 where none); only ``j ≠ i`` is used.
    """
    v = np.asarray(values, dtype=np.float64)
    d = np.asarray(doses, dtype=np.float64)
    names = list(names)
    if v.ndim != 3 or v.shape[0] != d.size or v.shape[2] != len(names):
        raise ConfigError(f"values must be [doses, clips, factors] = [{d.size}, B, {len(names)}]; got {v.shape}")
    zero = np.flatnonzero(d == 0)
    if zero.size != 1:
        raise ConfigError("the doses must hold 0 exactly once (the unedited output)")
    if intended not in names:
        raise ConfigError(f"{intended!r} is not among the measured factors {names}")
    i = names.index(intended)
    delta = v - v[zero[0]][None]  # [M, B, J]
    exp = np.zeros_like(delta) if expected is None else np.asarray(expected, dtype=np.float64)
    levels = np.unique(np.abs(d[d != 0]))
    sigma = spread if spread > 0 else np.nan
    rows, per_level, clip_resps = [], [], []
    for lv in levels:
        plus, minus = np.flatnonzero(d == lv), np.flatnonzero(d == -lv)
        dp = delta[plus[0]] if plus.size else None
        dm = delta[minus[0]] if minus.size else None
        if dp is None:  # only the negative side: mirror it
            dp, dm = -dm, None
        mp = _nanmean(dp, 0)  # [J]
        # the expected change averaged over the clips whose change is measured, as the change itself is
        ep = _nanmean(np.where(np.isfinite(dp), exp[plus[0]] if plus.size else -exp[minus[0]], np.nan), 0)
        if dm is not None:
            mm = _nanmean(dm, 0)
            em = _nanmean(np.where(np.isfinite(dm), exp[minus[0]], np.nan), 0)
            odd, even = (mp - mm) / 2, (mp + mm) / 2
            resp, e = odd, (ep - em) / 2
            clip_resp = (dp[:, i] - dm[:, i]) / 2
        else:
            mm = np.full_like(mp, np.nan)
            odd, even = np.full_like(mp, np.nan), mp
            resp, e = mp, ep
            clip_resp = dp[:, i]
        leak = np.abs(resp - np.nan_to_num(e))
        leak[i] = 0.0
        r_i = resp[i]
        eff = abs(r_i) / sigma if np.isfinite(r_i) else np.nan
        total = abs(r_i) + np.nansum(leak)
        spec = abs(r_i) / total if np.isfinite(r_i) and total > 0 else np.nan
        clip_resps.append((r_i, clip_resp))
        visible = [c for r, c in clip_resps[:-1] if np.isfinite(r) and abs(r) >= 0.25 * abs(r_i)]
        seen = np.concatenate([clip_resp, *visible])
        ok = np.isfinite(seen)
        cons = float(np.mean(np.sign(seen[ok]) == np.sign(r_i))) if ok.any() and r_i != 0 else np.nan
        per_level.append((lv, eff, spec, cons, odd[i], even[i], r_i))
        rows += [{"dose": lv, "measured": n, "plus": mp[j], "minus": mm[j], "odd": odd[j], "even": even[j],
                  "response": resp[j], "expected": e[j] if j != i else 0.0} for j, n in enumerate(names)]

    def score(eff: float, spec: float, cons: float) -> float:
        parts = [min(eff, 1.0), spec, max(2 * cons - 1, 0.0)]
        if not all(np.isfinite(parts)):
            return -1.0
        return float(np.prod(np.maximum(parts, 1e-6)) ** (1 / 3))

    k = max(range(len(per_level)), key=lambda j: (score(*per_level[j][1:4]), -j))
    lv, eff, spec, cons, odd_i, even_i, _ = per_level[k]
    r0 = per_level[0][6]
    reach = [abs(p[6]) / sigma for p in per_level if np.isfinite(p[6])]
    return DoseResponse(curve=pd.DataFrame(rows), dose=float(lv), efficacy=float(eff), specificity=float(spec),
                        consistency=float(cons), slope0=float(r0 / per_level[0][0] / sigma),
                        reach=float(max(reach)) if reach else np.nan,
                        odd=float(odd_i / sigma), even=float(even_i / sigma))
