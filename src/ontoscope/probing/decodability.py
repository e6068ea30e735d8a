"""What each site encodes: probes and disentanglement metrics over a capture, as tables.

:func:`factor_targets` turns a stimulus set's factor table into probe targets
(each varied factor on its own normalised scale, [0, 1]; rates NaN where their
depth is 0). :func:`probe_capture` probes every (site, view) of a
:class:`~ontoscope.probing.capture.Capture` for every factor and returns one row per
(site, view, factor, probe). :func:`site_metrics` scores the disentanglement of
each site's time-averaged channels (the ``pooled`` view's means) against the
factors (:func:`ontoscope.probing.metrics.disentanglement`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ontoscope.errors import ConfigError
from ontoscope.probing.capture import Capture
from ontoscope.probing.metrics import disentanglement
from ontoscope.probing.probes import DEFAULT_ALPHAS, probe_factors
from ontoscope.progress import track
from ontoscope.stimuli.factors import FactorSpace

__all__ = ["factor_targets", "probe_capture", "site_metrics"]


def factor_targets(factors: pd.DataFrame, space: FactorSpace) -> pd.DataFrame:
    """The varied factors of ``space`` normalised to [0, 1] on their own scale, indexed by ``clip``."""
    missing = [n for n in space.names if n not in factors]
    if missing:
        raise ConfigError(f"the factor table has no column for {missing}")
    out = pd.DataFrame({n: space[n].normalize(factors[n].to_numpy(dtype=np.float64)) for n in space.names})
    out.index = factors["clip"].to_numpy()
    return out


def probe_capture(
    cap: Capture,
    targets: pd.DataFrame,
    *,
    sites: Sequence[str] | None = None,
    views: Sequence[str] | None = None,
    probes: Sequence[str] = ("ridge", "mlp"),
    mlp_views: Sequence[str] = ("pooled",),
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    folds: int = 5,
    test_fraction: float = 0.2,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Probe every (site, view) of a capture for every target column.

    Parameters
    ----------
    cap : Capture
    targets : DataFrame
        One row per clip, indexed by clip id (:func:`factor_targets`).
    sites, views : optional subsets (default: all captured).
    probes : sequence of {"ridge", "mlp"}
        Probes to run.
    mlp_views : views the MLP probe runs on (where it is in ``probes``): by default only
        ``pooled``, whose few dimensions keep the nonlinear control affordable; the other views
        get the ridge probe.
    alphas, folds, test_fraction, n_boot, seed : see :func:`~ontoscope.probing.probes.probe_factors`.
        The held-out clips are the same for every site and view (the split is by clip and seeded).

    Returns
    -------
    DataFrame
        ``site, site_index, view, dims, factor, probe, n_train, n_test, alpha, cv_r2, test_r2, r2_low,
        r2_high, control_r2, selectivity``.
    """
    sites = list(sites or cap.sites)
    views = list(views or cap.views)
    pairs = [(s, v) for s in sites for v in views]
    rows = []
    for site, view in track(pairs, len(pairs), "probing", progress):
        x, clips = cap.features(site, view)
        if x.shape[1] == 0:
            continue
        y = targets.loc[clips].reset_index(drop=True)
        use = [p for p in probes if p != "mlp" or view in mlp_views]
        if not use:
            continue
        t = probe_factors(x, y, probes=use, alphas=alphas, folds=folds,
                          test_fraction=test_fraction, groups=clips if view == "frames" else None,
                          n_boot=n_boot, seed=seed)
        t.insert(0, "site", site)
        t.insert(1, "site_index", cap.sites.index(site))
        t.insert(2, "view", view)
        t.insert(3, "dims", x.shape[1])
        rows.append(t)
    if not rows:
        raise ConfigError("nothing to probe: every requested view is empty at every site")
    return pd.concat(rows, ignore_index=True)


def site_metrics(cap: Capture, targets: pd.DataFrame, *, sites: Sequence[str] | None = None,
                 mode: str = "fast", max_codes: int = 256, seed: int = 0) -> pd.DataFrame:
    """Disentanglement metrics of each site's time-averaged channels against the factors.

    The codes are the channel means over frames (the first half of the
    ``pooled`` view); rows where a factor is undefined are left out. A site with
    more than ``max_codes`` channels (a ``[B, C, F, T]`` site counts ``C·F``) is
    scored on its ``max_codes`` channels of largest variance over the clips, so
    that the tree-based estimators stay affordable; the metrics speak of units,
    so the channels are kept as they are rather than projected.
    Returns one row per site: ``site, site_index, n, codes`` (the channels scored,
    ``of`` the site's) and the keys of :func:`ontoscope.probing.metrics.disentanglement`.
    """
    if "pooled" not in cap.views:
        raise ConfigError("disentanglement metrics need the pooled view; capture it")
    rows = []
    for site in sites or cap.sites:
        x, clips = cap.features(site, "pooled")
        codes = x[:, : x.shape[1] // 2]
        y = targets.loc[clips].to_numpy(dtype=np.float64)
        ok = np.isfinite(y).all(1)
        codes = codes[ok]
        width = codes.shape[1]
        if width > max_codes:
            keep = np.sort(np.argsort(-codes.var(0), kind="stable")[:max_codes])
            codes = codes[:, keep]
        scores = disentanglement(codes, y[ok], mode=mode, seed=seed)
        rows.append({"site": site, "site_index": cap.sites.index(site), "n": int(ok.sum()),
                     "codes": codes.shape[1], "of": width, **scores})
    return pd.DataFrame(rows)
