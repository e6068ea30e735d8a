"""Steering: move a site's activations along a direction and measure what the model then produces.

For a model that produces audio, :func:`steer` adds ``m · d`` to every frame of
a site (for each magnitude ``m``) and runs the rest of the model;
:func:`effect_matrix` measures every factor of the results with the
descriptors and fits, for each intended factor ``i`` and measured factor ``j``,
the slope ``E[i, j]`` of ``j`` (on its normalised scale, [0, 1]) against the
magnitude. From it:

- *efficacy* ``E[i, i]``: how far the intended factor moves per unit of intervention;
- *specificity* ``|E[i, i]| / Σ_j |E[i, j]|``: the share of the total movement that
  went to the intended factor (1: nothing else moved; ``1 - specificity`` is the
  normalised leakage);
- *consistency*: the fraction of base clips whose own slope of the intended
  factor has the sign of the efficacy (1: the direction works the same way on
  every input).

A *temporal* intervention (``rate_hz``) adds the direction modulated by a
sinusoid across frames, for oscillatory factors; it is possible only below the
site's frame Nyquist rate.

Directions come from the factor's probe weights (:func:`probe_directions`) or
from the difference of the mean activations of the clips in its top and bottom
quartiles (:func:`mean_difference_directions`).

References
----------
Turner, A., et al. (2023). Activation addition: steering language models without
optimization. arXiv:2308.10248.
Li, K., et al. (2023). Inference-time intervention: eliciting truthful answers from
a language model. NeurIPS.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ontoscope.descriptors import measure
from ontoscope.errors import ConfigError
from ontoscope.models.protocol import AudioModel, model_device, require_audio_output, site_index
from ontoscope.probing.interventions import Additive, Modulation, run_interventions
from ontoscope.probing.probes import DEFAULT_ALPHAS, ridge_cv
from ontoscope.stimuli.factors import FactorSpace

__all__ = ["effect_matrix", "mean_difference_directions", "probe_directions", "steer"]


def _unit(w: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(w, axis=0, keepdims=True)
    return w / np.where(norm > 0, norm, 1.0)


def probe_directions(X: np.ndarray, Y: pd.DataFrame, alphas: Sequence[float] = DEFAULT_ALPHAS,
                     folds: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Unit directions ``{factor: [d]}``: the ridge readout weights of each factor (:func:`ridge_cv`).

    ``X`` ``[n, d]`` are activations in the site's own units (e.g. channel means), not standardised,
    so that the direction can be added to the site as it is.
    """
    y = Y.to_numpy(dtype=np.float64)
    if not np.isfinite(y).all():
        raise ConfigError("probe directions need every factor defined on every clip; drop the undefined rows")
    res = ridge_cv(X, y, alphas, folds=folds, seed=seed)
    w = _unit(res.coef)
    return {name: w[:, j] for j, name in enumerate(Y.columns)}


def mean_difference_directions(X: np.ndarray, Y: pd.DataFrame, quantile: float = 0.25) -> dict[str, np.ndarray]:
    """Unit directions ``{factor: [d]}``: mean of the clips in a factor's top ``quantile`` minus its bottom's."""
    x = np.asarray(X, dtype=np.float64)
    out = {}
    for name in Y.columns:
        y = Y[name].to_numpy(dtype=np.float64)
        ok = np.isfinite(y)
        lo, hi = np.quantile(y[ok], [quantile, 1 - quantile])
        top, bottom = ok & (y >= hi), ok & (y <= lo)
        if not top.any() or not bottom.any():
            raise ConfigError(f"{name} does not vary enough to split into quartiles")
        out[name] = _unit((x[top].mean(0) - x[bottom].mean(0))[:, None])[:, 0]
    return out


def steer(model: AudioModel, audio: torch.Tensor, site: str, direction: np.ndarray | torch.Tensor,
          magnitudes: Sequence[float], *, rate_hz: float | None = None, phase: float = 0.0) -> torch.Tensor:
    """Outputs ``[M, B, ...]`` of the model run from ``site`` with ``m · direction`` added to its frames.

    ``direction`` has one entry per channel of the site (``C``, or ``C·F`` for
    ``[B, C, F, T]`` sites, in the flattening order of the views). With ``rate_hz``, the
    intervention is *temporal*: frame ``t`` gets ``m · sin(2π · rate_hz · t / frame_rate + phase) ·
    direction`` (an additive :class:`~ontoscope.probing.interventions.Modulation`), which needs the
    site's stride and a rate below half its frame rate. One use of
    :func:`~ontoscope.probing.interventions.run_interventions`: the site is encoded once and every
    magnitude resumed in as few calls as memory allows.
    """
    sites = model.sites()
    frame_rate = sites[site_index(sites, site)].frame_rate(model.sample_rate)
    with torch.no_grad():
        acts = model.encode(audio.to(model_device(model)), site)
    if rate_hz is None:
        ivs = [Additive(direction, float(m)) for m in magnitudes]
    else:
        if frame_rate is None:
            raise ConfigError(f"site {site!r} has no known stride, so a temporal intervention has no time axis")
        ivs = [Modulation("additive", float(m), rate_hz, frame_rate, vector=direction, phase=phase)
               for m in magnitudes]
    return run_interventions(model, acts, site, ivs)


def effect_matrix(
    model: AudioModel,
    audio: torch.Tensor,
    site: str,
    directions: Mapping[str, np.ndarray],
    *,
    space: FactorSpace,
    magnitudes: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 1.0),
    rate_hz: float | None = None,
    readout: Callable[[torch.Tensor], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Steering effects of each direction on every factor of ``space``, measured on the model's output.

    Parameters
    ----------
    model : AudioModel producing audio
    audio : Tensor ``[B, N]`` at ``model.sample_rate``
        The base clips.
    site : str
    directions : ``{intended factor: direction [C]}``
    space : FactorSpace
        The measured factors and their normalisation.
    magnitudes : sequence of float
        Steps along each (unit) direction, in the site's units.
    rate_hz : float, optional
        Make every intervention temporal at this rate (:func:`steer`); the rows then say
        ``kind = "temporal"``. A modulation depth answers a temporal intervention in
        proportion to ``|m|``, so use magnitudes of one sign (e.g. ``0, 0.5, 1``).
    readout : callable, optional
        Outputs ``[B, ...]`` -> a table of factor values in natural units, one row per output.
        Default: the descriptors (:func:`ontoscope.descriptors.measure`), for audio models; a model
        whose output is not audio needs one (e.g. probes fitted on its output).

    Returns
    -------
    DataFrame
        One row per (intended, measured) factor: ``slope`` (normalised units per unit of
        intervention, least squares over magnitudes with each clip's own offset), ``intended``,
        ``measured``, ``kind`` (``static`` or ``temporal``) and ``rate_hz``; and per intended factor
        ``efficacy``, ``specificity`` and ``consistency`` (repeated on its rows).
    """
    if readout is None:
        require_audio_output(model, "steering without a readout")

        def readout(y: torch.Tensor) -> pd.DataFrame:
            return measure(y.cpu(), model.sample_rate)

    mags = np.asarray(magnitudes, dtype=np.float64)
    if mags.size < 2 or np.ptp(mags) == 0:
        raise ConfigError("give at least two different magnitudes")
    rows = []
    for intended, d in directions.items():
        out = steer(model, audio, site, d, mags, rate_hz=rate_hz)  # [M, B, ...]
        m_count, b = out.shape[:2]
        table = readout(out.reshape(m_count * b, *out.shape[2:]))
        slopes, per_clip = {}, {}
        for name in space.names:
            v = space[name].normalize(table[name].to_numpy()).reshape(m_count, b)
            with warnings.catch_warnings():  # a clip where the factor is undefined at every magnitude
                warnings.simplefilter("ignore", RuntimeWarning)
                v = v - np.nanmean(v, axis=0, keepdims=True)  # each clip's own offset
            x = np.broadcast_to((mags - mags.mean())[:, None], v.shape)
            ok = np.isfinite(v)
            num = np.where(ok, x * np.nan_to_num(v), 0.0).sum(0)  # [B]
            den = np.where(ok, x**2, 0.0).sum(0)
            slopes[name] = float(num.sum() / den.sum()) if ok.sum() >= 2 else float("nan")
            with np.errstate(divide="ignore", invalid="ignore"):
                per_clip[name] = np.where(ok.sum(0) >= 2, num / den, np.nan)
        total = np.nansum(np.abs(list(slopes.values())))
        efficacy = slopes.get(intended, float("nan"))
        specificity = abs(efficacy) / total if total > 0 else float("nan")
        own = per_clip.get(intended, np.full(b, np.nan))
        own = own[np.isfinite(own)]
        consistency = float(np.mean(np.sign(own) == np.sign(efficacy))) if own.size and efficacy != 0 else float("nan")
        kind = "static" if rate_hz is None else "temporal"
        rows += [{"intended": intended, "measured": name, "slope": s, "efficacy": efficacy,
                  "specificity": specificity, "consistency": consistency, "kind": kind, "rate_hz": rate_hz}
                 for name, s in slopes.items()]
    return pd.DataFrame(rows)
