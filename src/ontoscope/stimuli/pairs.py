"""Counterfactual pairs: two clips that differ in exactly one factor and share every nuisance.

Interchange interventions (Geiger et al. 2021, "Causal abstractions of neural
networks") are scored on such pairs: take the base clip, swap in the part of a
model's state that encodes factor ``i`` from the source clip, and compare the
model's output with the source's value of ``i``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ontoscope.errors import FactorError
from ontoscope.stimuli.factors import FACTOR_NAMES, FactorSpace, mark_rates


def counterfactual_pairs(
    space: FactorSpace, n: int, factors: Iterable[str] | None = None, seed: int = 0,
    min_change: float = 0.1,
) -> pd.DataFrame:
    """Sample ``n`` (base, source) pairs per factor.

    Parameters
    ----------
    space : FactorSpace
        Where bases are drawn from.
    n : int
        Pairs per factor.
    factors : iterable of str, optional
        Factors to intervene on; default every varied factor.
    seed : int
        Seed of the sampler.
    min_change : float
        Least change of the intervened factor between base and source, as a
        fraction of its range on its scale (so a pair is never a no-op).

    Returns
    -------
    DataFrame
        ``2 * n * len(factors)`` rows: ``clip``, ``pair``, ``role`` (``base`` or
        ``source``), ``factor`` (the intervened factor), ``seed`` (shared within a
        pair, hence the same phases and noise), then every canon factor. Within a
        pair only ``factor`` differs.
    """
    names = list(space.names if factors is None else factors)
    for f in names:
        if f not in space.names:
            raise FactorError(f"cannot make pairs over {f!r}: it is not varied in the factor space "
                              f"(varied: {', '.join(space.names)})")
    if not 0 <= min_change < 0.5:
        raise FactorError(f"min_change must lie in [0, 0.5), got {min_change}")
    rng = np.random.default_rng(seed)
    blocks = []
    for j, f in enumerate(names):
        base = space.sample(n, seed=int(rng.integers(2**31)))
        fac = space[f]
        u_base = np.clip(fac.normalize(base[f].to_numpy()), 0, 1)
        # a source value at least min_change away on the factor's own scale
        shift = min_change + rng.random(n) * (1 - 2 * min_change)
        u_src = (u_base + shift) % 1.0
        source = base.copy()
        source[f] = fac.denormalize(u_src)
        if fac.depth is not None:  # a rate: its depth is shared, so undo the NaN of rate-less rows
            source[f] = np.where(base[f].isna(), np.nan, source[f])
        pair_ids = np.arange(n) + j * n
        for role, tab in (("base", base), ("source", source)):
            tab = tab.drop(columns=[c for c in tab.columns if c.startswith("rate_defined_")])
            tab.insert(0, "pair", pair_ids)
            tab.insert(1, "role", role)
            tab.insert(2, "factor", f)
            blocks.append(tab)
    table = pd.concat(blocks, ignore_index=True).sort_values(["pair", "role"], kind="stable")
    table = table.reset_index(drop=True)
    table["clip"] = np.arange(len(table), dtype=np.int64)
    cols = ["clip", "pair", "role", "factor", "seed", *FACTOR_NAMES]
    return mark_rates(table[cols])
