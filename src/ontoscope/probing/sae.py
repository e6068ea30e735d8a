"""Sparse autoencoders on a site's frames, and whether any one of their latents tracks a factor.

A probe asks whether a factor can be *read* from a site; a sparse autoencoder asks
whether the site's own geometry singles it out: whether, when the frames are
decomposed into a few active directions each, one of those directions follows the
factor on its own.

:func:`fit_sae` learns a dictionary of the site's frames the way Bricken et al. (2023)
and Cunningham et al. (2023) decompose a language model's activations, with the TopK
activation of Makhzani & Frey (2014) and Gao et al. (2024) in place of an L1 penalty:
a sparse autoencoder on per-frame activations ``X [n, d]``, standardised first
(``x_s = (x - μ) / s``)::

    z     = ReLU(TopK(W_enc (x_s - b_dec) + b_enc))     [L]   (k largest kept, the rest 0)
    x̂_s   = W_dec z + b_dec                              [d]   (columns of W_dec of unit norm)

minimising the normalised reconstruction error ``||x_s - x̂_s||² / E||x_s - E x_s||²``
with Adam, the decoder's columns renormalised to unit norm after every step and the
gradient's component along each column removed before it (Gao et al. 2024;
Bricken et al. 2023), ``b_dec`` initialised to the geometric median of the frames
and ``W_enc`` to ``W_decᵀ``. Latents that have not fired for ``dead_after`` training
rows are *dead*; the auxiliary loss of Gao et al. (AuxK) asks the ``aux_k`` largest of
them to reconstruct the residual, weighted by ``aux_coef``, so that they come back.

:func:`sae_factor_table` correlates every latent with every factor: per factor, the best
single latent's ``|Pearson|`` correlation (or ``|Spearman|``), and the MCC, the mean
correlation after matching factors one-to-one to distinct latents (the correlation
and the Hungarian matching of :func:`ontoscope.probing.metrics.mcc`; Khemakhem et al.
2020). :func:`sae_site_analysis` does both for one site of a
:class:`~ontoscope.probing.capture.Capture`, with the codes averaged per clip.

References
----------
Makhzani, A., & Frey, B. (2014). k-Sparse autoencoders. ICLR.

Bricken, T., Templeton, A., Batson, J., Chen, B., Jermyn, A., Conerly, T., Turner, N., et al.
(2023). Towards monosemanticity: decomposing language models with dictionary learning.
Transformer Circuits Thread.

Cunningham, H., Ewart, A., Riggs, L., Huben, R., & Sharkey, L. (2023). Sparse autoencoders find
highly interpretable features in language models. arXiv:2309.08600.

Gao, L., Dupré la Tour, T., Tillman, H., Goh, G., Troll, R., Radford, A., Sutskever, I., Leike, J.,
& Wu, J. (2024). Scaling and evaluating sparse autoencoders. arXiv:2406.04093.

Khemakhem, I., Kingma, D. P., Monti, R. P., & Hyvärinen, A. (2020). Variational autoencoders and
nonlinear ICA: a unifying framework. AISTATS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment

from ontoscope.errors import ConfigError
from ontoscope.probing.capture import Capture
from ontoscope.probing.metrics import correlation_matrix

__all__ = ["MIN_ROWS", "SCALES", "SparseAutoencoder", "fit_sae", "pool_by_clip", "sae_factor_table",
           "sae_site_analysis"]

#: Fewest frames :func:`fit_sae` accepts.
MIN_ROWS = 64
#: Fewest rows (clips, after pooling) on which :func:`sae_factor_table` correlates a factor.
MIN_FACTOR_ROWS = 10
#: How :func:`fit_sae` scales the centred frames.
SCALES = ("scalar", "channel")
#: Rows encoded at a time by :meth:`SparseAutoencoder.encode` and :meth:`~SparseAutoencoder.decode`.
CHUNK_ROWS = 8192


def _as_frames(X: Any, name: str = "X", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``X`` (numpy array or torch tensor) as a finite ``dtype`` tensor ``[n, d]``, on its own device."""
    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        try:
            t = torch.from_numpy(np.asarray(X, dtype=np.float64))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{name} must be a numeric array [n_frames, d]; could not convert it ({e})") from None
    if t.ndim != 2 or t.shape[1] == 0:
        raise ConfigError(f"{name} must be a 2-D array [n_frames, d] with d >= 1; got shape {tuple(t.shape)}")
    if t.is_complex() or t.dtype == torch.bool:
        raise ConfigError(f"{name} must hold real numbers; got dtype {t.dtype}")
    t = t.to(dtype)
    bad = ~torch.isfinite(t).all(1)
    if bool(bad.any()):
        raise ConfigError(f"{name} has NaN or infinite values in {int(bad.sum())} rows (first: row "
                          f"{int(torch.argmax(bad.to(torch.int8)))}); drop those frames first")
    return t


@dataclass
class SparseAutoencoder:
    """A fitted TopK sparse autoencoder (:func:`fit_sae`).

    Attributes
    ----------
    W_enc : torch.Tensor [shape=(L, d)]
    b_enc : torch.Tensor [shape=(L,)]
    W_dec : torch.Tensor [shape=(d, L)]
        Columns of unit norm: latent ``i`` writes along ``W_dec[:, i]``.
    b_dec : torch.Tensor [shape=(d,)]
        Subtracted before encoding and added back after decoding (standardised units).
    mean, scale : torch.Tensor [shape=(d,)]
        The standardisation ``x_s = (x - mean) / scale``; with ``scale_mode="scalar"`` every entry of
        ``scale`` is the same number.
    k : int
        Latents active per frame (at most).
    fvu : float
        Fraction of variance unexplained on the frames it was fitted on,
        ``Σ ||x_s - x̂_s||² / Σ ||x_s - mean(x_s)||²`` (standardised units; equal to that of ``X`` itself
        with ``scale_mode="scalar"``).
    dead_fraction : float
        Share of latents that are 0 on every fitted frame.
    frequency : np.ndarray [shape=(L,)]
        Share of the fitted frames on which each latent is active (> 0).
    scale_mode : {"scalar", "channel"}
    steps, seed : int
        Adam steps run and the seed that drew the initial dictionary and the batches.
    """

    W_enc: torch.Tensor
    b_enc: torch.Tensor
    W_dec: torch.Tensor
    b_dec: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    k: int
    fvu: float
    dead_fraction: float
    frequency: np.ndarray
    scale_mode: str
    steps: int
    seed: int

    @property
    def n_latents(self) -> int:
        """Number of latents ``L``."""
        return int(self.W_dec.shape[1])

    @property
    def dims(self) -> int:
        """Width ``d`` of the frames."""
        return int(self.W_dec.shape[0])

    @property
    def device(self) -> torch.device:
        return self.W_dec.device

    def _check_width(self, t: torch.Tensor, width: int, name: str, what: str) -> torch.Tensor:
        if t.shape[1] != width:
            raise ConfigError(f"{name} has {t.shape[1]} columns but this autoencoder has {width} {what}")
        return t.to(self.device)

    def encode(self, X: np.ndarray | torch.Tensor) -> np.ndarray:
        """Latent activations of frames in the units of the fitted ``X``.

        Parameters
        ----------
        X : np.ndarray or torch.Tensor [shape=(n, d)]

        Returns
        -------
        codes : np.ndarray [shape=(n, L), dtype=float32]
            Non-negative, at most ``k`` non-zero per row; standardised units (the length of each frame's
            component along the latent's unit decoder column).
        """
        x = self._check_width(_as_frames(X), self.dims, "X", "input dimensions")
        with torch.no_grad():
            out = [_encode(self, (c - self.mean) / self.scale) for c in x.split(CHUNK_ROWS)]
        return torch.cat(out).cpu().numpy()

    def decode(self, codes: np.ndarray | torch.Tensor) -> np.ndarray:
        """Frames ``[n, d]`` reconstructed from latent activations ``[n, L]``, in the units of the fitted ``X``."""
        z = self._check_width(_as_frames(codes, "codes"), self.n_latents, "codes", "latents")
        with torch.no_grad():
            out = [(c @ self.W_dec.T + self.b_dec) * self.scale + self.mean for c in z.split(CHUNK_ROWS)]
        return torch.cat(out).cpu().numpy()


def _preacts(sae: SparseAutoencoder, xs: torch.Tensor) -> torch.Tensor:
    return (xs - sae.b_dec) @ sae.W_enc.T + sae.b_enc


def _topk_relu(pre: torch.Tensor, k: int) -> torch.Tensor:
    """``ReLU(TopK(pre))`` per row: the ``k`` largest entries kept (then clipped at 0), the rest 0."""
    vals, idx = pre.topk(k, dim=1)
    return torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))


def _encode(sae: SparseAutoencoder, xs: torch.Tensor) -> torch.Tensor:
    return _topk_relu(_preacts(sae, xs), sae.k)


def _geometric_median(x: torch.Tensor, iters: int = 32, eps: float = 1e-8) -> torch.Tensor:
    """Weiszfeld's iteration for the point minimising the sum of distances to the rows of ``x`` ``[n, d]``."""
    m = x.mean(0)
    for _ in range(iters):
        w = 1.0 / (x - m).norm(dim=1).clamp_min(eps)
        m = (w[:, None] * x).sum(0) / w.sum()
    return m


def _standardise(x: torch.Tensor, scale: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean ``[d]`` and scale ``[d]`` of :func:`fit_sae`'s standardisation."""
    mean = x.mean(0)
    xc = x - mean
    if scale == "scalar":
        s = xc.pow(2).mean().sqrt()
        if not float(s) > 0:
            raise ConfigError("X is constant (every frame the same); there is nothing to decompose")
        return mean, s.expand(x.shape[1]).clone()
    s = xc.pow(2).mean(0).sqrt()
    if not bool((s > 0).any()):
        raise ConfigError("X is constant (every frame the same); there is nothing to decompose")
    return mean, torch.where(s > 0, s, torch.ones_like(s))


def _check_options(n: int, n_latents: int, k: int, steps: int, lr: float, batch: int, scale: str,
                   aux_k: int | None, aux_coef: float, dead_after: int | None) -> None:
    def positive_int(v: Any) -> bool:
        return not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v >= 1

    for name, v in (("n_latents", n_latents), ("k", k), ("steps", steps), ("batch", batch)):
        if not positive_int(v):
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    if k > n_latents:
        raise ConfigError(f"k = {k} active latents cannot exceed n_latents = {n_latents}; lower k or add latents")
    if n < MIN_ROWS:
        raise ConfigError(f"need at least {MIN_ROWS} frames to fit a sparse autoencoder; got {n}. "
                          "Capture more clips or more frames per clip.")
    if not (np.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a finite positive learning rate, got {lr!r}")
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; use 'scalar' or 'channel'")
    if aux_k is not None and not positive_int(aux_k):
        raise ConfigError(f"aux_k must be a positive integer or None, got {aux_k!r}")
    if not (np.isfinite(aux_coef) and aux_coef >= 0):
        raise ConfigError(f"aux_coef must be a finite weight >= 0, got {aux_coef!r}")
    if dead_after is not None and not positive_int(dead_after):
        raise ConfigError(f"dead_after must be a positive number of frames or None, got {dead_after!r}")


def fit_sae(
    X: np.ndarray | torch.Tensor,
    n_latents: int,
    k: int,
    *,
    steps: int = 2000,
    lr: float = 3e-3,
    batch: int = 256,
    scale: str = "scalar",
    aux_k: int | None = None,
    aux_coef: float = 1 / 32,
    dead_after: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> SparseAutoencoder:
    """Fit a TopK sparse autoencoder to frames ``X`` (see the module docstring for the model).

    Parameters
    ----------
    X : np.ndarray or torch.Tensor [shape=(n, d)]
        Per-frame activations of a site (at least :data:`MIN_ROWS` rows, finite), any real dtype
        (computed in float32).
    n_latents : int
        Number of latents ``L`` (dictionary size; ``L > d`` is the overcomplete case).
    k : int
        Latents kept per frame, ``1 <= k <= L``.
    steps : int
        Adam steps. The learning rate is constant for the first 80 % of them and falls linearly to 0
        over the last 20 %.
    lr : float
        Adam's learning rate (betas 0.9, 0.999).
    batch : int
        Frames per step (at most ``n``), drawn without replacement from a seeded permutation of the frames,
        a new one every pass.
    scale : {"scalar", "channel"}
        Standardisation of the centred frames: ``"scalar"`` (default) divides every channel by one number,
        the root mean square of the centred values, so ``E ||x_s||² = d`` and the site's geometry (which
        channels are large, which directions dominate) is kept; ``"channel"`` divides each channel by its
        own standard deviation (constant channels by 1), so that no channel dominates by its units alone.
    aux_k : int, optional
        Dead latents asked to reconstruct the residual by the AuxK loss (default ``max(1, d // 2)``);
        never more than are dead.
    aux_coef : float
        Weight of the AuxK loss (Gao et al.: 1/32); 0 switches it off.
    dead_after : int, optional
        A latent is dead in training once it has not fired for this many training frames (default ``n``,
        one pass over the data).
    seed : int
        Seeds the initial dictionary and the batch order; the same seed on the CPU gives the same weights.
    device : str or torch.device, optional
        Where to train (default: the device of ``X`` when it is a tensor, else the CPU). The initial
        dictionary and the batch order are drawn on the CPU, so they do not depend on the device.

    Returns
    -------
    SparseAutoencoder
        The weights, with ``fvu``, ``dead_fraction`` and ``frequency`` measured on all of ``X``.

    Raises
    ------
    ontoscope.errors.ConfigError
        ``X`` not 2-D, with NaN or infinite values, constant, or with fewer than :data:`MIN_ROWS` rows;
        ``k > n_latents``; any other option out of range.

    Notes
    -----
    The loss of one batch ``B`` is ``Σ_B ||x_s - x̂_s||² / (|B| v)`` with ``v = E||x_s - E x_s||²`` over all
    frames, the batch's normalised MSE, plus ``aux_coef · Σ_B ||e - W_dec z_aux||² / Σ_B ||e - ē||²``, the
    normalised MSE of the residual ``e = x_s - x̂_s`` (held fixed; ``ē`` its batch mean) reconstructed from
    ``z_aux``, the ReLU of the ``aux_k`` largest pre-activations among the dead latents (the AuxK loss of
    Gao et al. 2024).
    """
    x = _as_frames(X)
    dev = torch.device(device) if device is not None else x.device
    n, d = x.shape
    _check_options(n, n_latents, k, steps, lr, batch, scale, aux_k, aux_coef, dead_after)
    x = x.to(dev)
    batch = min(int(batch), n)
    aux_k = max(1, d // 2) if aux_k is None else int(aux_k)
    dead_after = n if dead_after is None else int(dead_after)
    mean, s = _standardise(x, scale)
    xs = (x - mean) / s
    variance = float(xs.var(0, unbiased=False).sum())

    gen = torch.Generator().manual_seed(int(seed))
    w_dec = torch.randn(d, n_latents, generator=gen, dtype=torch.float32)
    w_dec = w_dec / w_dec.norm(dim=0).clamp_min(1e-12)
    W_enc = w_dec.T.clone().to(dev).requires_grad_()
    W_dec = w_dec.to(dev).requires_grad_()
    b_enc = torch.zeros(n_latents, device=dev, requires_grad=True)
    b_dec = _geometric_median(xs).detach().clone().requires_grad_()
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=lr)
    decay_from = int(0.8 * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 1.0 if i < decay_from else max(0.0, (steps - i) / max(1, steps - decay_from)))

    since_fired = torch.zeros(n_latents, dtype=torch.long, device=dev)
    order, pos = torch.randperm(n, generator=gen).to(dev), 0
    for _ in range(steps):
        if pos + batch > n:
            order, pos = torch.randperm(n, generator=gen).to(dev), 0
        xb = xs[order[pos:pos + batch]]
        pos += batch
        pre = (xb - b_dec) @ W_enc.T + b_enc
        z = _topk_relu(pre, k)
        err = xb - (z @ W_dec.T + b_dec)
        loss = err.pow(2).sum(1).mean() / variance
        fired = (z > 0).any(0)
        since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + batch)
        dead = since_fired >= dead_after
        n_dead = int(dead.sum())
        if aux_coef > 0 and n_dead:
            z_aux = _topk_relu(pre.masked_fill(~dead, float("-inf")), min(aux_k, n_dead))
            e = err.detach()
            e_var = (e - e.mean(0)).pow(2).sum().clamp_min(1e-12)
            loss = loss + aux_coef * (e - z_aux @ W_dec.T).pow(2).sum() / e_var
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            # keep the step tangent to the unit sphere of each decoder column, then project back onto it
            W_dec.grad -= (W_dec.grad * W_dec).sum(0, keepdim=True) * W_dec
            opt.step()
            W_dec /= W_dec.norm(dim=0, keepdim=True).clamp_min(1e-12)
        sched.step()

    sae = SparseAutoencoder(W_enc=W_enc.detach(), b_enc=b_enc.detach(), W_dec=W_dec.detach(),
                            b_dec=b_dec.detach(), mean=mean, scale=s, k=int(k), fvu=float("nan"),
                            dead_fraction=float("nan"), frequency=np.zeros(n_latents), scale_mode=scale,
                            steps=int(steps), seed=int(seed))
    sq_err, active = 0.0, torch.zeros(n_latents, device=dev)
    with torch.no_grad():
        for c in xs.split(CHUNK_ROWS):
            z = _encode(sae, c)
            sq_err += float((c - z @ sae.W_dec.T - sae.b_dec).pow(2).sum())
            active += (z > 0).sum(0)
    sae.fvu = sq_err / (n * variance)
    sae.frequency = (active / n).cpu().numpy().astype(np.float64)
    sae.dead_fraction = float(np.mean(sae.frequency == 0))
    return sae


# ------------------------------------------------------------------ factor table


def pool_by_clip(x: np.ndarray, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the rows of ``x`` ``[n, m]`` over each clip.

    Parameters
    ----------
    x : np.ndarray [shape=(n, m)]
    clip : np.ndarray [shape=(n,)]
        Clip id of every row.

    Returns
    -------
    ids : np.ndarray [shape=(c,)]
        The clip ids, sorted.
    pooled : np.ndarray [shape=(c, m), dtype=float64]
        Row ``i`` is the mean over the rows of clip ``ids[i]`` (NaN where any of them is NaN).
    """
    x = np.asarray(x, dtype=np.float64)
    clip = np.asarray(clip)
    if clip.shape != (x.shape[0],):
        raise ConfigError(f"clip must give one clip id per row ({x.shape[0]}), got shape {clip.shape}")
    ids, inv, counts = np.unique(clip, return_inverse=True, return_counts=True)
    order = np.argsort(inv.ravel(), kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return ids, np.add.reduceat(x[order], starts, axis=0) / counts[:, None]


def sae_factor_table(
    codes: np.ndarray | torch.Tensor,
    Y: pd.DataFrame,
    clip: np.ndarray | None = None,
    method: str = "pearson",
) -> pd.DataFrame:
    """Does any single latent track each factor? Best latent per factor, and the MCC over factors.

    For factor ``j``, on the rows where it is defined, ``ρ_ij`` is the correlation of latent ``i`` with it
    (:func:`ontoscope.probing.metrics.correlation_matrix`; 0 for a latent constant on those rows, e.g. a dead
    one). ``best_corr_j = max_i |ρ_ij|`` says how well one latent on its own follows the factor. The factors
    are then matched to distinct latents by the Hungarian algorithm on ``|ρ|`` (maximising the sum), and
    ``MCC = (1/m) Σ_j |ρ_π(j) j|``; a factor left unmatched (fewer latents than factors) counts 0. This is
    :func:`ontoscope.probing.metrics.mcc`, with each factor's correlations taken over its own defined rows;
    where every factor is defined on every row the two are equal.

    Parameters
    ----------
    codes : np.ndarray or torch.Tensor [shape=(n, L)]
        Latent activations (:meth:`SparseAutoencoder.encode`), one row per frame or per clip; finite.
    Y : pandas.DataFrame [shape=(n, m)]
        One numeric column per factor (normalised values), aligned row by row with ``codes``; NaN where a
        factor is undefined (those rows are dropped for that factor only).
    clip : np.ndarray [shape=(n,)], optional
        Clip id of every row: ``codes`` and ``Y`` are then averaged per clip first (:func:`pool_by_clip`;
        factor values repeated over a clip's frames average to themselves).
    method : {"pearson", "spearman"}
        ``"pearson"`` (default, as :func:`~ontoscope.probing.metrics.mcc`) measures tracking up to an affine
        map; ``"spearman"`` up to a monotone one.

    Returns
    -------
    pandas.DataFrame
        One row per factor: ``factor``, ``n`` (rows used), ``best_latent``, ``best_corr`` (``|ρ|``, in
        [0, 1]), ``best_sign`` (the sign of that correlation), ``matched_latent`` (-1 if unmatched),
        ``matched_corr``, and ``mcc`` (the same on every row).

    Raises
    ------
    ontoscope.errors.ConfigError
        ``codes`` not 2-D or not finite; ``Y`` not a DataFrame of numbers with one row per row of ``codes``;
        a factor defined on fewer than :data:`MIN_FACTOR_ROWS` rows or constant on them; an unknown method.
    """
    if not isinstance(Y, pd.DataFrame) or Y.shape[1] == 0:
        raise ConfigError("Y must be a pandas DataFrame with one column per factor")
    z = _as_frames(codes, "codes", torch.float64).cpu().numpy()
    if len(Y) != z.shape[0]:
        raise ConfigError(f"codes has {z.shape[0]} rows but Y has {len(Y)}; give one factor row per code row")
    try:
        y = Y.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError("Y must hold numbers only (normalised factor values, NaN where undefined)") from None
    if method not in ("pearson", "spearman"):
        raise ConfigError(f"unknown correlation method {method!r}; use 'pearson' or 'spearman'.")
    if clip is not None:
        _, z = pool_by_clip(z, clip)
        _, y = pool_by_clip(y, clip)
    names = [str(c) for c in Y.columns]
    corr = np.zeros((z.shape[1], y.shape[1]))
    counts = np.zeros(y.shape[1], dtype=np.int64)
    for j, name in enumerate(names):
        ok = np.isfinite(y[:, j])
        counts[j] = int(ok.sum())
        if counts[j] < MIN_FACTOR_ROWS:
            raise ConfigError(f"factor {name!r} is defined on {counts[j]} rows; need at least {MIN_FACTOR_ROWS}. "
                              "Drop it or use more clips.")
        if np.ptp(y[ok, j]) == 0:
            raise ConfigError(f"factor {name!r} is constant; drop it (it carries nothing to track).")
        corr[:, j] = correlation_matrix(z[ok], y[ok, j:j + 1], method)[:, 0]
    absc = np.abs(corr)
    best = np.argmax(absc, axis=0)
    cols = np.arange(y.shape[1])
    rows, matched_cols = linear_sum_assignment(absc, maximize=True)
    matched = np.full(y.shape[1], -1, dtype=np.int64)
    matched[matched_cols] = rows
    matched_corr = np.where(matched >= 0, absc[np.maximum(matched, 0), cols], 0.0)
    return pd.DataFrame({
        "factor": names,
        "n": counts,
        "best_latent": best.astype(np.int64),
        "best_corr": absc[best, cols],
        "best_sign": np.sign(corr[best, cols]),
        "matched_latent": matched,
        "matched_corr": matched_corr,
        "mcc": float(matched_corr.sum() / y.shape[1]),
    })


# ------------------------------------------------------------------ one site of a capture


def sae_site_analysis(
    cap: Capture,
    site: str,
    targets: pd.DataFrame,
    *,
    n_latents: int | None = None,
    k: int | None = None,
    max_frames: int = 20000,
    steps: int = 2000,
    lr: float = 3e-3,
    batch: int = 256,
    scale: str = "scalar",
    method: str = "pearson",
    seed: int = 0,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Fit a sparse autoencoder on a site's frames and ask whether any latent tracks each factor.

    The site's ``frames`` view (``C`` channels; :func:`~ontoscope.probing.views.frame_view`) is read from the
    capture; at most ``max_frames`` frames, drawn without replacement with ``seed``, train the autoencoder
    (:func:`fit_sae`); every frame is then encoded, the codes averaged per clip, and the clip-level codes
    correlated with the factors (:func:`sae_factor_table`).

    Parameters
    ----------
    cap : Capture
        With the ``frames`` view captured.
    site : str
    targets : pandas.DataFrame
        One row per clip, indexed by clip id, one column per factor on its normalised scale
        (:func:`ontoscope.probing.decodability.factor_targets`); NaN where undefined.
    n_latents : int, optional
        Default ``min(8 C, 4096)`` (the cap keeps the weights of a wide site, such as a flattened
        ``[B, C, F, T]`` one, within memory).
    k : int, optional
        Default ``min(32, C)``.
    max_frames : int
        Cap on the frames the autoencoder is trained on.
    steps, lr, batch, scale, seed, device
        As :func:`fit_sae`; ``seed`` also draws the frames.
    method : {"pearson", "spearman"}
        As :func:`sae_factor_table`.

    Returns
    -------
    pandas.DataFrame
        One row per factor: ``site``, ``site_index``, the columns of :func:`sae_factor_table`, then ``fvu``
        and ``dead_fraction`` of the autoencoder (on its training frames), ``n_latents``, ``k``, ``frames``
        (frames trained on) and ``of`` (the site's frames).
    """
    if "frames" not in cap.views:
        raise ConfigError("sparse autoencoders are trained on the frames view; capture it (views=['frames', ...])")
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < MIN_ROWS:
        raise ConfigError(f"max_frames must be an integer of at least {MIN_ROWS}, got {max_frames!r}")
    x, clips = cap.features(site, "frames")
    missing = np.setdiff1d(np.unique(clips), targets.index.to_numpy())
    if missing.size:
        raise ConfigError(f"targets has no row for {missing.size} captured clips (first: {missing[0]}); "
                          "index it by clip id (factor_targets)")
    c = x.shape[1]
    n_latents = min(8 * c, 4096) if n_latents is None else n_latents
    k = min(32, c) if k is None else k
    rng = np.random.default_rng(seed)
    train = np.sort(rng.choice(len(x), size=max_frames, replace=False)) if len(x) > max_frames else np.arange(len(x))
    sae = fit_sae(x[train], n_latents, k, steps=steps, lr=lr, batch=batch, scale=scale, seed=seed, device=device)
    y = targets.loc[clips].reset_index(drop=True)
    table = sae_factor_table(sae.encode(x), y, clip=clips, method=method)
    table.insert(0, "site", site)
    table.insert(1, "site_index", cap.sites.index(site))
    table["fvu"] = sae.fvu
    table["dead_fraction"] = sae.dead_fraction
    table["n_latents"] = sae.n_latents
    table["k"] = sae.k
    table["frames"] = len(train)
    table["of"] = len(x)
    return table
