"""Interchange interventions on counterfactual pairs, and their accuracy (IIA).

A counterfactual pair is two clips that differ in one factor ``i`` and share
every nuisance (:func:`ontoscope.stimuli.pairs.counterfactual_pairs`). An
interchange intervention at a site replaces the base's component in a subspace
``B`` (an orthonormal basis ``[C, r]`` of channels, meant to hold factor ``i``)
by the source's, frame by frame,

    a' = a_base + B Bᵀ (a_source − a_base),

and runs the rest of the model. If ``B`` holds factor ``i`` and nothing else,
the output is the counterfactual clip: factor ``i`` takes the source's value,
every other factor keeps the base's.

:func:`interchange_accuracy` scores that on the model's output, measured by the
descriptors, on each factor's normalised scale ([0, 1]):

- ``iia``: the mean over pairs of ``clip(1 − |m_i − s_i| / |s_i − b_i|, 0, 1)``, with
  ``m`` the measured output, ``s`` the source's and ``b`` the base's true values:
  1 when the output reaches the source's value, 0 when it stays at the base's
  (or overshoots by as much);
- ``drift``: the mean over pairs and the other factors of ``|m_j − b_j|``.

References
----------
Geiger, A., Lu, H., Icard, T., & Potts, C. (2021). Causal abstractions of neural
networks. NeurIPS.
Geiger, A., Wu, Z., Potts, C., Icard, T., & Goodman, N. (2023). Finding alignments
between interpretable causal variables and distributed neural representations.
CLeaR (distributed alignment search).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from ontoscope.descriptors import measure
from ontoscope.errors import ConfigError
from ontoscope.models.protocol import AudioModel, model_device, require_audio_output
from ontoscope.probing.interventions import Interchange, run_interventions
from ontoscope.stimuli.dataset import StimulusSet
from ontoscope.stimuli.factors import FactorSpace

__all__ = ["check_pairs", "interchange", "interchange_accuracy", "orthonormal_basis", "pair_positions"]


def orthonormal_basis(vectors: np.ndarray) -> np.ndarray:
    """An orthonormal basis ``[C, r]`` of the span of the columns of ``vectors`` ``[C, r]`` (or ``[C]``).

    A column is dropped where it adds less than 1e-10 of the largest column's norm (the tolerance is relative,
    so vectors of a near-silent model's activations, however small, still span their directions)."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if not np.isfinite(v).all():
        raise ConfigError("the subspace's vectors are not finite")
    q, r = np.linalg.qr(v)
    top = float(np.abs(r).max())
    keep = np.abs(np.diag(r)) > 1e-10 * top
    if not keep.any():
        raise ConfigError("the subspace is empty: its vectors are zero")
    return q[:, keep]


def check_pairs(pairs: StimulusSet, model: AudioModel) -> None:
    """Refuse a stimulus set that is not a set of counterfactual pairs at the model's sample rate."""
    if not {"pair", "role", "factor"} <= set(pairs.factors.columns):
        raise ConfigError(f"{pairs.root} is not a set of counterfactual pairs; render one with "
                          "`ontoscope stimuli OUT --pairs`")
    if pairs.sr != model.sample_rate:
        raise ConfigError(f"the pairs are at {pairs.sr} Hz but the model expects {model.sample_rate} Hz")


def pair_positions(pairs: StimulusSet, factor: str) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(base, source)`` of the pairs over ``factor``, matched pair by pair."""
    t = pairs.factors
    if not (t["factor"] == factor).any():
        raise ConfigError(f"the pair set has no pairs over {factor!r}; it has {sorted(set(t['factor']))}")
    b_pos = np.flatnonzero((t["factor"] == factor) & (t["role"] == "base"))
    s_pos = np.flatnonzero((t["factor"] == factor) & (t["role"] == "source"))
    order_b, order_s = np.argsort(t["pair"].to_numpy()[b_pos]), np.argsort(t["pair"].to_numpy()[s_pos])
    return b_pos[order_b], s_pos[order_s]


def interchange(model: AudioModel, base: torch.Tensor, source: torch.Tensor, site: str,
                basis: np.ndarray) -> torch.Tensor:
    """Audio ``[B, N']``: the model run from ``site`` with the base's ``basis`` component replaced by the source's.

    ``base`` and ``source`` are ``[B, N]`` clips of equal length; ``basis`` ``[C, r]`` is
    orthonormal over the site's channels (``C·F`` for ``[B, C, F, T]`` sites).
    """
    require_audio_output(model, "interchange")
    if base.shape != source.shape:
        raise ConfigError(f"base and source clips differ in shape: {tuple(base.shape)} vs {tuple(source.shape)}")
    device = model_device(model)
    with torch.no_grad():
        a_b = model.encode(base.to(device), site)
        a_s = model.encode(source.to(device), site)
    q = np.asarray(basis, dtype=np.float64)
    width = int(np.prod(a_b.shape[1:-1]))
    if q.ndim != 2 or q.shape[0] != width:
        raise ConfigError(f"the basis must be [channels, r] with {width} channels for site {site!r}, "
                          f"got shape {tuple(q.shape)}")
    return run_interventions(model, a_b, site, [Interchange(q)], source=a_s)[0]


def interchange_accuracy(
    model: AudioModel,
    pairs: StimulusSet,
    site: str,
    bases: Mapping[str, np.ndarray],
    space: FactorSpace,
    chunk: int = 32,
) -> pd.DataFrame:
    """IIA of each factor's subspace at ``site``, on the pairs of a counterfactual stimulus set.

    Parameters
    ----------
    model : AudioModel producing audio, at the pairs' sample rate
    pairs : StimulusSet
        A set rendered from :func:`~ontoscope.stimuli.pairs.counterfactual_pairs`
        (``ontoscope stimuli --pairs``): columns ``pair``, ``role``, ``factor``.
    site : str
    bases : ``{factor: basis [C, r]}``
        The subspace tried for each factor (:func:`orthonormal_basis` of probe
        directions, an axis, a DAS subspace, ...).
    space : FactorSpace
        The measured factors and their normalisation.

    Returns
    -------
    DataFrame
        One row per factor: ``factor, site, rank, pairs, iia, drift``.
    """
    check_pairs(pairs, model)
    t = pairs.factors
    rows = []
    for factor, basis in bases.items():
        b_pos, s_pos = pair_positions(pairs, factor)
        measured = []
        for i in range(0, len(b_pos), chunk):
            out = interchange(model, pairs.audio(b_pos[i:i + chunk]), pairs.audio(s_pos[i:i + chunk]), site, basis)
            measured.append(measure(out.cpu(), model.sample_rate))
        m = pd.concat(measured, ignore_index=True)
        fac = space[factor]
        mi = fac.normalize(m[factor].to_numpy())
        bi = fac.normalize(t[factor].to_numpy()[b_pos])
        si = fac.normalize(t[factor].to_numpy()[s_pos])
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.clip(1 - np.abs(mi - si) / np.abs(si - bi), 0, 1)
        others = [n for n in space.names if n != factor]
        drift = [np.abs(space[n].normalize(m[n].to_numpy()) - space[n].normalize(t[n].to_numpy()[b_pos]))
                 for n in others]
        def mean(v: np.ndarray) -> float:  # NaN, without a warning, where the factor is undefined on every pair
            v = np.asarray(v, dtype=np.float64)
            return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else float("nan")

        rows.append({"factor": factor, "site": site, "rank": int(np.shape(basis)[1]),
                     "pairs": len(b_pos), "iia": mean(score), "drift": mean(drift) if others else float("nan")})
    return pd.DataFrame(rows)
