"""Distributed alignment search (DAS): the subspace of a site that carries a factor, learned by intervening.

DAS (Geiger et al. 2023) looks for the rank-``r`` subspace ``B`` (orthonormal
columns, ``[C, r]``) of a site such that the interchange intervention

    a' = a_base + B Bᵀ (a_source − a_base)

on counterfactual pairs (clips that differ in factor ``i`` alone) makes the model
produce what it produces for the source clip, which *is* the counterfactual:
the base with factor ``i`` set to the source's value. ``B`` is a semi-orthogonal
matrix kept on the Stiefel manifold as the QR factor of an unconstrained ``[C, r]`` matrix
and fitted by Adam on the counterfactual loss between ``resume(a')`` and
``resume(a_source)``.

For audio outputs the loss must see pitch from afar: a spectral L1 has no
gradient between two harmonic combs whose partials do not overlap. It is the
spectral optimal-transport distance (Torres et al. 2024): the 1-Wasserstein
distance between the frames' normalised power spectra, which for a 1-D axis is
the L1 distance between their cumulative distributions and grows smoothly with
a shift of the partials, plus the mean absolute difference of the frames' log
energies (which the normalised spectra do not see):

    L = 10 · mean_t Σ_f |CDF_y(f, t) − CDF_s(f, t)| / F  +  0.5 · mean_t |log E_y(t) − log E_s(t)|

(STFT of 1024 samples, hop 256). For other outputs (pitch, embeddings) it is the
mean squared error divided by the target's variance.

A rank-``r`` subspace with ``r`` small is the test: a factor that a site holds
in a few directions of its own is found by DAS with IIA near 1, and its
subspace can be compared with the probe's (principal angles).

The search starts from ``init`` (a probe's directions) when given, and from
``restarts`` random subspaces (seeded): each start runs a quarter of the steps
and the one with the lowest loss runs the rest. A random start in ``C``
dimensions is nearly orthogonal to any given direction, where the interchange
does nothing and the gradient vanishes; starting from the probe avoids that.

References
----------
Geiger, A., Wu, Z., Potts, C., Icard, T., & Goodman, N. (2023). Finding alignments
between interpretable causal variables and distributed neural representations.
CLeaR. arXiv:2303.02536.
Torres, B., Peeters, G., & Richard, G. (2024). Unsupervised harmonic parameter
estimation using differentiable DSP and spectral optimal transport. ICASSP.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg
import torch
from torch import nn

from ontoscope.errors import ConfigError
from ontoscope.models.protocol import AudioModel, model_device
from ontoscope.probing.interchange import check_pairs, interchange_accuracy, orthonormal_basis, pair_positions
from ontoscope.stimuli.dataset import StimulusSet
from ontoscope.stimuli.factors import FactorSpace

__all__ = ["Alignment", "alignment_table", "counterfactual_loss", "fit_alignment", "fit_subspace", "principal_angles"]

N_FFT = 1024


def _frames(y: torch.Tensor) -> torch.Tensor:
    win = torch.hann_window(N_FFT, device=y.device, dtype=y.dtype)
    return torch.stft(y, N_FFT, N_FFT // 4, window=win, return_complex=True).abs() ** 2  # [B, F, T]


def counterfactual_loss(y: torch.Tensor, target: torch.Tensor, output: str = "audio") -> torch.Tensor:
    """Scalar distance between a model's outputs ``y`` and ``target`` (same shape), differentiable in ``y``.

    For ``output="audio"`` (``[B, N]``), the spectral optimal-transport distance plus the log-energy
    difference of the module docstring; otherwise the mean squared error over the target's variance.
    """
    if y.shape != target.shape:
        raise ConfigError(f"output shapes differ: {tuple(y.shape)} vs {tuple(target.shape)}")
    if output != "audio":
        return ((y - target) ** 2).mean() / target.var().clamp_min(1e-12)
    p, q = _frames(y), _frames(target)
    ep, eq = p.sum(1) + 1e-10, q.sum(1) + 1e-10
    w1 = (torch.cumsum(p, 1) / ep[:, None] - torch.cumsum(q, 1) / eq[:, None]).abs().mean(1)
    return 10 * w1.mean() + 0.5 * (torch.log(ep) - torch.log(eq)).abs().mean()


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles in degrees, ascending, between the column spans of ``a`` ``[C, r]`` and ``b`` ``[C, s]``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = (a[:, None] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
    return np.sort(np.degrees(scipy.linalg.subspace_angles(a, b)))


@dataclass
class Alignment:
    """A fitted DAS subspace.

    Attributes
    ----------
    factor, site : str
    basis : ndarray ``[C, r]``
        Orthonormal columns over the site's (flattened) channels.
    loss : list of float
        Counterfactual loss after each step of the start that was kept.
    start : str
        ``init`` or ``random <k>``: where the kept search began.
    seconds : float
        Wall time of the fit (encoding the pairs included).
    """

    factor: str
    site: str
    basis: np.ndarray
    loss: list[float] = field(repr=False)
    start: str
    seconds: float


class _Subspace(nn.Module):
    """A rank-``r`` subspace of ``C`` channels: an unconstrained ``[C, r]`` matrix whose QR factor is the
    orthonormal basis (a retraction onto the Stiefel manifold that costs ``O(C r²)``, so that a site of tens of
    thousands of channels costs what its rank does, not a ``C × C`` orthogonal matrix)."""

    def __init__(self, start: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(start.clone())

    @property
    def basis(self) -> torch.Tensor:
        q, r = torch.linalg.qr(self.weight)
        return q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # the sign convention that keeps q = start at 0


def _encode_pairs(model: AudioModel, pairs: StimulusSet, site: str, factor: str, chunk: int,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Size]:
    b_pos, s_pos = pair_positions(pairs, factor)
    a_b, a_s, target = [], [], []
    device = model_device(model)
    with torch.no_grad():
        for i in range(0, len(b_pos), chunk):
            ab = model.encode(pairs.audio(b_pos[i:i + chunk]).to(device), site)
            as_ = model.encode(pairs.audio(s_pos[i:i + chunk]).to(device), site)
            a_b.append(ab.reshape(ab.shape[0], -1, ab.shape[-1]))
            a_s.append(as_.reshape(as_.shape[0], -1, as_.shape[-1]))
            target.append(model.resume(as_, site))
    return torch.cat(a_b), torch.cat(a_s), torch.cat(target), ab.shape[1:]


def fit_alignment(model: AudioModel, pairs: StimulusSet, site: str, factor: str, *, chunk: int = 32,
                  **fit: object) -> Alignment:
    """Fit the DAS subspace of ``factor`` at ``site`` on the pairs over ``factor``.

    Parameters
    ----------
    model : AudioModel
        Its ``resume`` must be differentiable in the activations.
    pairs : StimulusSet
        Counterfactual pairs (``ontoscope stimuli --pairs``) at the model's sample rate.
    site, factor : str
    chunk : int
        Pairs per encoding pass.
    **fit
        ``rank``, ``init``, ``restarts``, ``steps``, ``lr``, ``batch``, ``seed`` of :func:`fit_subspace`.
    """
    check_pairs(pairs, model)
    t0 = time.perf_counter()
    a_b, a_s, target, shape = _encode_pairs(model, pairs, site, factor, chunk)
    al = fit_subspace(model, site, a_b.reshape(a_b.shape[0], *shape), a_s.reshape(a_s.shape[0], *shape), target,
                      **fit)
    al.factor = factor
    al.seconds = time.perf_counter() - t0
    return al


def fit_subspace(
    model: AudioModel,
    site: str,
    base: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    rank: int = 1,
    init: np.ndarray | None = None,
    restarts: int = 3,
    steps: int = 120,
    lr: float = 0.03,
    batch: int = 32,
    seed: int = 0,
) -> Alignment:
    """Fit a rank-``rank`` DAS subspace at ``site`` from encoded pairs.

    Parameters
    ----------
    model : AudioModel
        Its ``resume`` must be differentiable in the activations.
    site : str
    base, source : Tensor ``[P, ...]``
        The pairs' activations at ``site``.
    target : Tensor ``[P, ...]``
        The model's own output for each source clip (the counterfactual).
    rank : int
        Dimension ``r`` of the subspace.
    init : ndarray ``[C, r']``, optional
        Directions to start from (e.g. the probe's); completed to rank ``r`` with random columns.
    restarts : int
        Random starts (beside ``init``); each runs ``steps // 4`` steps and the best goes on.
    steps : int
        Adam steps of the kept start, in all.
    lr : float
        Adam learning rate.
    batch : int
        Pairs per step (all of them if fewer).
    seed : int
        Seeds the random starts and the batches.
    """
    t0 = time.perf_counter()
    shape = base.shape[1:]
    a_b = base.reshape(base.shape[0], -1, base.shape[-1])
    a_s = source.reshape(source.shape[0], -1, source.shape[-1])
    n, c = a_b.shape[:2]
    if not 1 <= rank < c:
        raise ConfigError(f"rank must be between 1 and {c - 1} for site {site!r} ({c} channels); got {rank}")
    if restarts < 0 or steps < 4 or (init is None and restarts == 0):
        raise ConfigError("give steps >= 4 and at least one start (init or restarts >= 1)")
    output = getattr(model, "output", "audio")
    gen = torch.Generator().manual_seed(seed)
    dtype = a_b.dtype

    def start(k: int) -> _Subspace:
        """Start 0 is ``init`` (completed with random columns), start k > 0 a random subspace, all seeded."""
        rand = torch.randn(c, rank, generator=gen, dtype=torch.float64).numpy()
        v = np.asarray(init, dtype=np.float64).reshape(c, -1) if k == 0 and init is not None else np.zeros((c, 0))
        q = torch.as_tensor(orthonormal_basis(np.concatenate([v, rand], 1))[:, :rank], device=a_b.device)
        return _Subspace(q.to(torch.float64))

    def run(sub: _Subspace, opt: torch.optim.Optimizer, n_steps: int, history: list[float]) -> None:
        for _ in range(n_steps):
            # drawn on the CPU (the generator's device, so the draws do not depend on the model's), used there
            idx = (torch.randperm(n, generator=gen)[:batch] if n > batch else torch.arange(n)).to(a_b.device)
            q = sub.basis.to(dtype)
            db = a_s[idx] - a_b[idx]
            edited = a_b[idx] + q @ (q.T @ db)
            y = model.resume(edited.reshape(len(idx), *shape), site)
            loss = counterfactual_loss(y, target[idx], output)
            if not loss.requires_grad:
                raise ConfigError(f"the model's resume from {site!r} is not differentiable; DAS needs gradients")
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))

    starts = ([0] if init is not None else []) + list(range(1, restarts + 1))
    warm = max(1, steps // 4)
    tried = []
    for k in starts:
        sub = start(k)
        opt = torch.optim.Adam(sub.parameters(), lr=lr)
        history: list[float] = []
        run(sub, opt, warm, history)
        tried.append((np.mean(history[-max(1, warm // 4):]), k, sub, opt, history))
    _, k, sub, opt, history = min(tried, key=lambda x: x[0])
    run(sub, opt, steps - warm, history)
    basis = sub.basis.detach().cpu().numpy()
    return Alignment("", site, basis, history, "init" if k == 0 else f"random {k}", time.perf_counter() - t0)


def alignment_table(
    model: AudioModel,
    pairs: StimulusSet,
    site: str,
    *,
    space: FactorSpace,
    factors: Sequence[str] | None = None,
    probe_bases: Mapping[str, np.ndarray] | None = None,
    rank: int = 1,
    **fit: object,
) -> tuple[pd.DataFrame, dict[str, Alignment]]:
    """DAS per factor at ``site``, scored by IIA and compared with the probe's subspace.

    ``probe_bases`` (``{factor: [C, r]}``, e.g. :func:`~ontoscope.probing.interchange.orthonormal_basis` of
    the probe directions) start the search and are scored beside it. ``fit`` goes to :func:`fit_alignment`.

    Returns
    -------
    (DataFrame, dict)
        One row per factor: ``factor, site, rank, das_iia, das_drift, probe_iia, probe_drift, angle_deg``
        (the largest principal angle between the DAS and probe subspaces), ``das_seconds``, ``start``;
        and the fitted :class:`Alignment` per factor.
    """
    names = list(factors) if factors is not None else sorted(set(pairs.factors["factor"]))
    probe_bases = dict(probe_bases or {})
    rows, fitted = [], {}
    for name in names:
        init = probe_bases.get(name)
        al = fit_alignment(model, pairs, site, name, rank=rank, init=init, **fit)
        fitted[name] = al
        das = interchange_accuracy(model, pairs, site, {name: al.basis}, space).iloc[0]
        row = {"factor": name, "site": site, "rank": rank, "das_iia": das["iia"], "das_drift": das["drift"],
               "probe_iia": np.nan, "probe_drift": np.nan, "angle_deg": np.nan,
               "das_seconds": al.seconds, "start": al.start}
        if init is not None:
            pr = interchange_accuracy(model, pairs, site, {name: init}, space).iloc[0]
            row.update(probe_iia=pr["iia"], probe_drift=pr["drift"],
                       angle_deg=float(principal_angles(al.basis, init).max()))
        rows.append(row)
    return pd.DataFrame(rows), fitted
