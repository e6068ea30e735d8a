"""Feature Jacobians: how the activations at a site move when one factor of the sound moves.

For a batch of synthesized stimuli, ``J[f] = d(site activations) / d u_f``
where ``u_f`` is factor ``f`` on its normalised scale (0 to 1 over its range:
``d value / d u = high - low`` for a linear factor, ``value * ln(high / low)``
for a log one), so that every column is the response to moving that factor
across its whole range. The path is the differentiable synthesizer
(:func:`ontoscope.stimuli.synth.synthesize`) followed by the model, and the
columns come from forward-mode automatic differentiation
(``torch.func.jvp``): the synthesizer renders ``k`` copies of the batch in one
``jvp``, copy ``i`` carrying factor ``i``'s tangent (the synthesizer renders
each clip independently of its batch, so this is exactly a vmap over factors,
which its data-dependent branches would otherwise defeat), then the model is
vmapped over the factors' audio tangents (``torch.func.vmap``) so that its
primal pass is shared; where vmap cannot pass the model is looped, and where an
operator lacks forward mode the model part falls back to forward differences
along the exact audio tangents (the result says which ran). At a
quantized site the Jacobian is the straight-through one (the value is
piecewise constant; its tangent is the latent's).

Statistics per site (the batch pooled):

* ``sensitivity``: ``sqrt(mean_b ||J_f(b)||^2 / T)``, the activation change per
  frame (Euclidean norm over channels and bins, RMS over frames and stimuli)
  for a full-range move; ``relative_sensitivity``: ``mean_b ||J_f(b)|| / ||a(b)||``.
* pairwise cosines between factors' columns (entanglement): per stimulus
  ``<J_f, J_g> / (||J_f|| ||J_g||)`` over all the site's dims, averaged
  (``cos_mean``, ``abs_cos_mean``), and from the pooled Gram matrix (``cos_gram``).
* the condition number of the normalised Gram matrix ``G_fg = sum_b <J_f(b), J_g(b)>``
  scaled to a unit diagonal (factors with zero sensitivity left out): large when
  some combination of factors barely moves the site.
* principal angles (Björck & Golub 1973) between factor subspaces: the span of
  factor ``f``'s per-frame Jacobian vectors over stimuli and frames, truncated to
  the leading directions holding ``energy`` (90 %) of it (at most ``max_rank``).

Analysing architectures at initialisation over several seeds (what the
architecture imposes before any data) follows the spirit of random-network
analyses such as Saxe et al. (2011, "On random weights and unsupervised feature
learning").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg
import torch
from torch.func import jvp, vmap

from ontoscope.models.protocol import AudioModel, encode_sites
from ontoscope.operators._common import forward_ad_ready, site_names
from ontoscope.stimuli.factors import FactorSpace, clip_seeds
from ontoscope.stimuli.synth import Nuisance, synthesize

__all__ = [
    "JacobianResult",
    "StimulusBatch",
    "audio_tangents",
    "feature_jacobians",
    "jacobian_stats",
    "principal_angles",
    "stimulus_batch",
]


@dataclass
class StimulusBatch:
    """Base points for Jacobians: factor values, their scale, and nuisances.

    Attributes
    ----------
    names : list of str
        The varied factors (``k``).
    values : Tensor ``[k, B]`` float64
        Their values in natural units.
    du : Tensor ``[k, B]`` float64
        ``d value / d u`` (value change per unit of normalised factor).
    fixed : dict
        Values of the factors held fixed.
    nuisance : Nuisance
    sample_rate : int
    """

    names: list[str]
    values: torch.Tensor
    du: torch.Tensor
    fixed: dict[str, float]
    nuisance: Nuisance
    sample_rate: int

    def render(self, values: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, N]`` for factor values ``[k, B]`` (the other factors as fixed)."""
        vals: dict[str, torch.Tensor | float] = {n: values[i] for i, n in enumerate(self.names)}
        for n, v in self.fixed.items():
            vals.setdefault(n, v)
        return synthesize(vals, self.nuisance, self.sample_rate)


def stimulus_batch(
    space: FactorSpace | Sequence[str] | None,
    n: int,
    *,
    sample_rate: int,
    seconds: float = 0.25,
    seed: int = 0,
    margin: float = 0.05,
    max_partials: int = 32,
) -> StimulusBatch:
    """``n`` base points drawn uniformly on each factor's normalised scale within ``[margin, 1 - margin]``.

    The margin keeps finite-difference steps inside the factors' ranges (a depth never reaches 0,
    where its rate loses its meaning). ``max_partials`` bounds the synthesis cost.
    """
    if space is None:
        space = FactorSpace.create()
    elif not isinstance(space, FactorSpace):
        space = FactorSpace.create(list(space))
    space.check_sample_rate(int(sample_rate))
    rng = np.random.default_rng(seed)
    u = margin + (1 - 2 * margin) * rng.random((len(space.factors), n))
    vals, dus = [], []
    for i, f in enumerate(space.factors):
        v = f.denormalize(u[i])
        vals.append(v)
        dus.append(v * math.log(f.high / f.low) if f.scale == "log" else np.full(n, f.high - f.low))
    n_samples = int(round(seconds * sample_rate))
    nui = Nuisance.from_seeds(clip_seeds(seed, n), n_samples, max(1, int(max_partials)))
    fixed = {k: float(v) for k, v in space.fixed.items()}
    return StimulusBatch(list(space.names), torch.tensor(np.array(vals)), torch.tensor(np.array(dus)), fixed, nui,
                         int(sample_rate))


def _model_dtype(model: AudioModel) -> torch.dtype:
    params = getattr(model, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first.dtype if first is not None and first.is_floating_point() else torch.float32


def _repeat_nuisance(nui: Nuisance, times: int) -> Nuisance:
    """The nuisances of ``B`` clips repeated ``times`` times (clip ``r * B + b`` is clip ``b``)."""
    return Nuisance(nui.partial_phase.repeat(times, 1), nui.vibrato_phase.repeat(times),
                    nui.tremolo_phase.repeat(times), nui.noise.repeat(times, 1))


def audio_tangents(batch: StimulusBatch, factor_chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The clips and their derivative w.r.t. each factor (normalised units), by forward mode.

    The synthesizer renders every clip independently of the rest of its batch, so the ``k``
    factor directions are batched rather than vmapped (the synthesizer's data-dependent branches
    defeat ``vmap``): one ``jvp`` renders ``k`` copies of the ``B`` clips, copy ``i`` carrying the
    tangent of factor ``i`` (``factor_chunk`` copies per pass bound the memory).

    Returns ``audio [B, N]`` and ``tangents [k, B, N]`` (float32, the synthesizer's dtype).
    """
    v0 = batch.values
    k, b = v0.shape
    chunk = k if factor_chunk is None else max(1, int(factor_chunk))
    audio, outs = None, []
    for s in range(0, k, chunk):
        idx = list(range(s, min(s + chunk, k)))
        vals = v0.repeat(1, len(idx))  # [k, len(idx) * B]
        tan = torch.zeros_like(vals)
        for r, i in enumerate(idx):
            tan[i, r * b:(r + 1) * b] = batch.du[i]
        nui = _repeat_nuisance(batch.nuisance, len(idx))

        def render(values: torch.Tensor, nui: Nuisance = nui) -> torch.Tensor:
            named: dict[str, torch.Tensor | float] = {n: values[i] for i, n in enumerate(batch.names)}
            for n, v in batch.fixed.items():
                named.setdefault(n, v)
            return synthesize(named, nui, batch.sample_rate)

        a, t = jvp(render, (vals,), (tan,))
        audio = a[:b].detach() if audio is None else audio
        outs.append(t.detach().reshape(len(idx), b, -1))
    assert audio is not None
    return audio, torch.cat(outs)


def feature_jacobians(
    model: AudioModel,
    batch: StimulusBatch,
    sites: Sequence[str] | None = None,
    *,
    method: str = "jvp",
    use_vmap: bool = True,
    fd_step: float = 1e-3,
    fd_audio_step: float = 1e-2,
    fd_batch: int = 32,
    factor_chunk: int | None = None,
    tangents: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], str]:
    """Jacobian columns of every site's activations w.r.t. every factor (normalised units).

    Parameters
    ----------
    model : AudioModel
    batch : StimulusBatch
    sites : list of str, optional
        Default all.
    method : {"jvp", "fd"}
        ``jvp``: forward mode through the synthesizer (factors batched) and then the model
        (vmapped over factors, the primal pass shared; looped if vmap fails; forward differences
        of the model along the exact audio tangents if an operator lacks forward mode: ``k + 1``
        passes, the audio moved by ``fd_audio_step`` of its peak). ``fd``: central finite
        differences of the whole chain with step ``fd_step`` (normalised units).
    use_vmap : bool
        Vmap the model's forward-mode passes over factors.
    fd_audio_step : float
        Step of the forward differences, as a fraction of the clips' peak: in float32 a step of
        1e-3 leaves errors of several percent from rounding, 1e-2 about one percent on a
        transformer layer (``tests/test_operators_jacobians.py``).
    fd_batch : int
        Clips per pass of the forward differences.
    factor_chunk : int, optional
        Factors per vmapped pass (bounds memory; default all).
    tangents : (audio, tangents), optional
        :func:`audio_tangents` of ``batch``, computed once and shared when one batch goes through
        several models (initialisation seeds).

    Returns
    -------
    jac : dict site -> Tensor ``[k, B, *site dims]`` (the model's dtype)
    acts : dict site -> Tensor ``[B, *site dims]``, the activations at the base points
    used : str, what ran: ``jvp+vmap``, ``jvp``, ``jvp+fd`` (model by finite differences) or ``fd``
    """
    names = site_names(model, sites)
    dtype = _model_dtype(model)
    v0 = batch.values
    k = v0.shape[0]

    def sites_of(audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        acts = encode_sites(model, audio, names)
        return tuple(acts[n] for n in names)

    if method == "jvp":
        audio, dA = audio_tangents(batch, factor_chunk) if tangents is None else tangents
        audio, dA = audio.to(dtype), dA.to(dtype)
        chunk = k if factor_chunk is None else max(1, int(factor_chunk))
        with forward_ad_ready(model):
            if use_vmap:
                try:
                    outs, acts = [], None
                    for s in range(0, k, chunk):
                        prim, tans = vmap(lambda t: jvp(sites_of, (audio,), (t,)))(dA[s:s + chunk])
                        outs.append(tans)
                        acts = tuple(p[0] for p in prim)
                    jac = {n: torch.cat([o[i] for o in outs]).detach() for i, n in enumerate(names)}
                    return jac, {n: acts[i].detach() for i, n in enumerate(names)}, "jvp+vmap"
                except (RuntimeError, NotImplementedError, ValueError):
                    pass
            try:
                cols, prim = [], None
                for i in range(k):
                    prim, tan = jvp(sites_of, (audio,), (dA[i],))
                    cols.append(tuple(t.detach() for t in tan))
                jac = {n: torch.stack([c[j] for c in cols]) for j, n in enumerate(names)}
                return jac, {n: prim[j].detach() for j, n in enumerate(names)}, "jvp"
            except (RuntimeError, NotImplementedError):
                pass
        with torch.no_grad():  # the model by forward differences along the exact audio tangents
            acts = sites_of(audio)
            scale = float(audio.abs().max().clamp_min(1e-12))
            b = audio.shape[0]
            steps = fd_audio_step * scale / dA.flatten(1).abs().amax(1).clamp_min(1e-12)  # [k]
            moved = (audio[None] + steps[:, None, None] * dA).reshape(k * b, -1)
            per = max(b, fd_batch // b * b)
            outs = [sites_of(moved[i:i + per]) for i in range(0, k * b, per)]
        jac = {}
        for j, n in enumerate(names):
            plus = torch.cat([o[j] for o in outs]).reshape(k, *acts[j].shape)
            jac[n] = (plus - acts[j][None]) / steps.reshape(k, *[1] * acts[j].ndim).to(plus.dtype)
        return jac, {n: acts[j] for j, n in enumerate(names)}, "jvp+fd"
    if method != "fd":
        raise ValueError(f"method must be 'jvp' or 'fd', got {method!r}")
    tangents = torch.zeros(k, *v0.shape, dtype=v0.dtype)
    for i in range(k):
        tangents[i, i] = batch.du[i]

    def chain(values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return sites_of(batch.render(values).to(dtype))

    with torch.no_grad():
        acts = chain(v0)
        cols = []
        for i in range(k):
            plus, minus = chain(v0 + fd_step * tangents[i]), chain(v0 - fd_step * tangents[i])
            cols.append(tuple((p - m) / (2 * fd_step) for p, m in zip(plus, minus, strict=True)))
    jac = {n: torch.stack([c[j] for c in cols]) for j, n in enumerate(names)}
    return jac, {n: acts[j] for j, n in enumerate(names)}, "fd"


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spans of ``a`` and ``b`` (Björck & Golub 1973)."""
    qa, _ = np.linalg.qr(np.asarray(a, dtype=np.float64))
    qb, _ = np.linalg.qr(np.asarray(b, dtype=np.float64))
    s = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return np.sort(np.arccos(np.clip(s, -1.0, 1.0)))


def _bases(m: torch.Tensor, alive: np.ndarray, energy: float, max_rank: int) -> list[np.ndarray | None]:
    """Per factor, the leading left singular vectors of ``m[f]`` ``[D, N]`` holding ``energy`` of its squared norm.

    ``m`` is ``[k, D, N]`` float64. The leading singular pairs come from the ``max_rank`` leading
    eigenpairs (LAPACK's ``syevr`` on a subset) of the smaller Gram matrices (``m m^T`` or ``m^T m``,
    ``d = min(D, N)``), with the trace as the total energy: the same pairs as an SVD at a fraction of
    its cost when ``D`` and ``N`` are far apart (a site's per-frame dims against stimuli x frames).
    Factors not ``alive``, or whose column is zero or not finite, get None.
    """
    k, d, n = m.shape
    ok = [bool(alive[f]) and bool(torch.isfinite(m[f]).all()) and bool(m[f].any()) for f in range(k)]
    out: list[np.ndarray | None] = [None] * k
    idx = [f for f in range(k) if ok[f]]
    if not idx:
        return out
    sub = m[idx]
    gram = (sub @ sub.mT if d <= n else sub.mT @ sub).numpy()
    top = min(max_rank, gram.shape[-1])
    for j, f in enumerate(idx):
        g = gram[j]
        e, vec = scipy.linalg.eigh(g, subset_by_index=[g.shape[0] - top, g.shape[0] - 1], driver="evr")
        e, vec = np.clip(e[::-1], 0.0, None), vec[:, ::-1]  # the leading pairs only; the trace is the total
        cum = np.cumsum(e) / max(float(np.trace(g)), 1e-300)
        r = int(min(np.searchsorted(cum, energy) + 1, top, int((e > e[0] * 1e-12).sum())))
        if d <= n:
            out[f] = np.ascontiguousarray(vec[:, :r])
        else:
            u = sub[j].numpy() @ vec[:, :r] / np.sqrt(e[:r])[None]
            out[f] = np.linalg.qr(u)[0]
    return out


@dataclass
class JacobianResult:
    """Tables of :func:`jacobian_stats`: ``factors`` (site, factor), ``pairs`` (site, factor pair), ``sites``."""

    factors: pd.DataFrame
    pairs: pd.DataFrame
    sites: pd.DataFrame


def jacobian_stats(
    jac: dict[str, torch.Tensor],
    acts: dict[str, torch.Tensor],
    *,
    names: Sequence[str],
    labels: dict[str, object] | None = None,
    energy: float = 0.9,
    max_rank: int = 4,
    zero_tol: float = 1e-9,
) -> JacobianResult:
    """Sensitivity, entanglement (cosines, Gram condition number) and subspace angles per site.

    Parameters
    ----------
    jac, acts : from :func:`feature_jacobians`
    names : factor names, in the order of the Jacobians' first axis
    labels : dict, optional
        Columns added to every row (e.g. ``model``, ``weights``, ``seed``, ``method``).
    energy, max_rank : truncation of each factor's subspace.
    zero_tol : float
        A factor whose sensitivity is below ``zero_tol`` times the largest at the site counts as zero
        (its cosines are NaN, and it is left out of the Gram matrix).
    """
    labels = dict(labels or {})
    frows, prows, srows = [], [], []
    k = len(names)
    for site, j in jac.items():
        j64 = j.detach().double()
        kk, b = j64.shape[:2]
        t = j64.shape[-1] if j64.ndim >= 4 else 1
        flat = j64.reshape(kk, b, -1)  # [k, B, D]
        norms = flat.norm(dim=-1)  # [k, B]
        a_norm = acts[site].detach().double().reshape(b, -1).norm(dim=-1)  # [B]
        sens = torch.sqrt((norms ** 2).mean(1) / t).numpy()
        rel = (norms / a_norm.clamp_min(1e-30)).mean(1).numpy()
        top = sens.max() if sens.size else 0.0
        alive = sens > zero_tol * max(top, 1e-300)
        gram = torch.einsum("fbd,gbd->fg", flat, flat).numpy()
        dot = torch.einsum("fbd,gbd->fgb", flat, flat)
        denom = norms[:, None, :] * norms[None, :, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            cos_b = torch.where(denom > 0, dot / denom, torch.full_like(dot, float("nan"))).numpy()
            diag = np.sqrt(np.diag(gram))
            cos_g = gram / (diag[:, None] * diag[None, :])
        # per-frame vectors [k, D_frame, B*T] for the subspaces
        if j64.ndim == 3:  # [k, B, C] (no frame axis): one vector per stimulus
            per_frame = j64.permute(0, 2, 1)
        else:
            per_frame = j64.reshape(kk, b, -1, t).permute(0, 2, 1, 3).reshape(kk, -1, b * t)
        bases = _bases(per_frame, alive, energy, max_rank)
        for f in range(k):
            frows.append({**labels, "site": site, "factor": names[f], "sensitivity": float(sens[f]),
                          "relative_sensitivity": float(rel[f]), "alive": bool(alive[f]),
                          "subspace_rank": 0 if bases[f] is None else int(bases[f].shape[1])})
        max_abs = np.full(k, np.nan)
        for f in range(k):
            for g in range(f + 1, k):
                both = alive[f] and alive[g]
                cm = float(np.nanmean(cos_b[f, g])) if both else float("nan")
                am = float(np.nanmean(np.abs(cos_b[f, g]))) if both else float("nan")
                cg = float(cos_g[f, g]) if both else float("nan")
                if bases[f] is not None and bases[g] is not None:
                    ang = np.degrees(principal_angles(bases[f], bases[g]))
                    amin, amean = float(ang[0]), float(ang.mean())
                else:
                    amin = amean = float("nan")
                prows.append({**labels, "site": site, "factor_a": names[f], "factor_b": names[g], "cos_mean": cm,
                              "abs_cos_mean": am, "cos_gram": cg, "angle_min_deg": amin, "angle_mean_deg": amean})
                if both:
                    max_abs[f] = np.nanmax([max_abs[f], abs(cg)])
                    max_abs[g] = np.nanmax([max_abs[g], abs(cg)])
        for f in range(k):
            frows[-k + f]["max_abs_cos"] = float(max_abs[f])
        idx = np.flatnonzero(alive)
        if idx.size:
            g_n = cos_g[np.ix_(idx, idx)]
            ev = np.linalg.eigvalsh((g_n + g_n.T) / 2)
            cond = float(ev[-1] / ev[0]) if ev[0] > 1e-15 * ev[-1] else float("inf")
        else:
            cond = float("nan")
        srows.append({**labels, "site": site, "n_factors": k, "n_alive": int(alive.sum()),
                      "gram_condition": cond, "frames": t, "stimuli": b})
    return JacobianResult(pd.DataFrame(frows), pd.DataFrame(prows), pd.DataFrame(srows))
