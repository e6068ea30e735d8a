"""Concept erasure at a site: LEACE, scored on decodability and on what the model then produces.

LEACE (Belrose et al. 2023; the ``concept-erasure`` package) is the least-squares
affine edit ``x' = x − P (x − μ)`` that makes a concept linearly undecodable
(no linear predictor of it does better than a constant) while moving ``x`` as
little as possible. Erasing factor ``i`` at a site tells:

- :func:`erasure_decodability`: how much the target's linear decodability falls
  (to about 0 when the factor is linearly present), and how much every other
  factor's falls with it: collateral loss means the factors share directions;
- :func:`erase_and_resume`: what the model produces from the erased site, for
  audio models; :func:`ontoscope.descriptors.measure` on it says which factors
  the output lost.

References
----------
Belrose, N., Schneider-Joseph, D., Ravfogel, S., Cotterell, R., Raff, E., &
Biderman, S. (2023). LEACE: Perfect linear concept erasure in closed form. NeurIPS.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from concept_erasure import LeaceEraser

from ontoscope.errors import ConfigError
from ontoscope.models.protocol import AudioModel, model_device, require_audio_output
from ontoscope.probing.probes import DEFAULT_ALPHAS, r2_score, ridge_cv, split_indices

__all__ = ["erase_and_resume", "erasure_decodability", "fit_eraser"]


def fit_eraser(X: np.ndarray | torch.Tensor, z: np.ndarray | torch.Tensor) -> object:
    """A fitted ``concept_erasure.LeaceEraser`` for concept values ``z`` ``[n]`` or ``[n, m]`` of ``X`` ``[n, d]``."""
    x = torch.as_tensor(np.asarray(X, dtype=np.float64)) if not isinstance(X, torch.Tensor) else X.double()
    zz = torch.as_tensor(np.asarray(z, dtype=np.float64)) if not isinstance(z, torch.Tensor) else z.double()
    zz = zz.to(x.device)
    if zz.ndim == 1:
        zz = zz[:, None]
    if x.ndim != 2 or zz.shape[0] != x.shape[0]:
        raise ConfigError(f"X must be [n, d] and z [n] or [n, m] with the same n; got {tuple(x.shape)} and "
                          f"{tuple(zz.shape)}")
    if not (torch.isfinite(x).all() and torch.isfinite(zz).all()):
        raise ConfigError("X and z must be finite; drop the rows where the concept is undefined")
    return LeaceEraser.fit(x, zz)


def erasure_decodability(
    X: np.ndarray,
    targets: pd.DataFrame,
    erase: Sequence[str] | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> pd.DataFrame:
    """Held-out linear decodability of every factor before and after erasing each factor in ``erase``.

    The eraser is fitted on the training clips only and applied to all; the ridge
    probes (:func:`~ontoscope.probing.probes.ridge_cv`) are fitted on the training
    clips and scored on the held-out ones, before and after.

    Returns
    -------
    DataFrame
        One row per (erased, factor): ``erased, factor, r2_before, r2_after, drop``.
    """
    x = np.asarray(X, dtype=np.float64)
    y = targets.to_numpy(dtype=np.float64)
    ok = np.isfinite(y).all(1)
    x, y = x[ok], y[ok]
    train, test = split_indices(len(x), test_fraction, seed)

    def held_out_r2(features: np.ndarray) -> np.ndarray:
        res = ridge_cv(features[train], y[train], alphas, folds=5, seed=seed)
        return r2_score(torch.as_tensor(y[test]), torch.as_tensor(res.predict(features[test]))).numpy()

    before = held_out_r2(x)
    rows = []
    for name in erase or list(targets.columns):
        if name not in targets.columns:
            raise ConfigError(f"cannot erase {name!r}: not a target ({', '.join(targets.columns)})")
        j = list(targets.columns).index(name)
        eraser = fit_eraser(x[train], y[train, j])
        after = held_out_r2(eraser(torch.as_tensor(x)).numpy())
        rows += [{"erased": name, "factor": f, "r2_before": float(before[k]), "r2_after": float(after[k]),
                  "drop": float(before[k] - after[k])} for k, f in enumerate(targets.columns)]
    return pd.DataFrame(rows)


def erase_and_resume(model: AudioModel, audio: torch.Tensor, site: str, eraser: object) -> torch.Tensor:
    """Audio the model produces when ``eraser`` is applied to every frame of ``site`` (channels, or ``C·F``)."""
    require_audio_output(model, "erasure")
    with torch.no_grad():
        acts = model.encode(audio.to(model_device(model)), site)
        flat = acts.reshape(acts.shape[0], -1, acts.shape[-1])
        frames = flat.permute(0, 2, 1).reshape(-1, flat.shape[1]).double()
        # the eraser's tensors stay where it was fitted (the CPU for numpy features): the frames go there and back
        where = getattr(getattr(eraser, "proj_left", None), "device", frames.device)
        erased = eraser(frames.to(where)).to(device=acts.device, dtype=acts.dtype)  # type: ignore[operator]
        back = erased.reshape(flat.shape[0], flat.shape[2], flat.shape[1]).permute(0, 2, 1)
        return model.resume(back.reshape(acts.shape).contiguous(), site)
