"""Interventions before a quantizer: what re-quantization keeps of an edit, and what it undoes.

In a model with a vector quantizer (a site followed by one of role
``quantizer``: ``bottleneck`` then ``quantizer`` in every built-in model), an edit of the
pre-quantizer activations reaches the decoder only through the codes it moves.
:func:`quantizer_retention` steers the pre-quantizer site by ``m · d`` and
re-quantizes:

- ``retained``: the component along ``d`` of the change of the quantized
  activations, per unit of intervention, ``⟨q(a + m d) − q(a), d⟩ / (m ‖d‖²)``
  averaged over frames and clips: 1 when the quantizer passes the edit whole,
  0 when it snaps every frame back to the same codes;
- ``codes_changed``: the fraction of (frame, codebook) codes that differ from
  the unedited ones;
- ``off_axis``: the norm of the change orthogonal to ``d``, per unit of
  intervention: what the quantizer adds that the edit did not ask for.

Steering or interchange *at* the pre-quantizer site (:mod:`~ontoscope.probing.steering`,
:mod:`~ontoscope.probing.interchange`) re-quantizes by construction, since the
rest of the model runs through the quantizer; steering at the quantized site
bypasses it. The two effect matrices side by side say what the quantizer undoes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ontoscope.errors import ConfigError
from ontoscope.models.protocol import AudioModel, advance, model_device, site_index, site_module

__all__ = ["quantizer_after", "quantizer_retention"]


def quantizer_after(model: AudioModel, site: str) -> str | None:
    """Name of the quantizer site right after ``site``, or None when the next site is not a quantizer."""
    sites = model.sites()
    i = site_index(sites, site)
    if i + 1 < len(sites) and sites[i + 1].role == "quantizer":
        return sites[i + 1].name
    return None


def quantizer_retention(model: AudioModel, audio: torch.Tensor, site: str, direction: np.ndarray,
                        magnitudes: Sequence[float] = (0.25, 0.5, 1.0, 2.0)) -> pd.DataFrame:
    """How much of a steering edit at ``site`` survives the quantizer that follows it.

    Parameters
    ----------
    model : AudioModel
        A chain of stages (:class:`~ontoscope.models.protocol.SiteChain`) with a site of role
        ``quantizer`` right after ``site``.
    audio : Tensor ``[B, N]``
    site : str
        The pre-quantizer site.
    direction : ndarray ``[C]``
        The edit's direction, in the site's units (not normalised: magnitudes multiply it).
    magnitudes : sequence of float
        Non-zero multiples of ``direction``.

    Returns
    -------
    DataFrame
        One row per magnitude: ``site, role, quantizer, magnitude, retained, off_axis, codes_changed``
        (``role``: the pre-quantizer site's, ``bottleneck`` in every built-in model).
    """
    q_site = quantizer_after(model, site)
    if q_site is None:
        raise ConfigError(f"site {site!r} is not followed by a quantizer; this model's sites are: "
                          f"{', '.join(s.name for s in model.sites())}")
    quantizer = site_module(model, q_site)
    if quantizer is None:
        raise ConfigError("re-quantizing an edit needs a model that is a chain of stages (one that can run from "
                          "one site to the next)")
    mags = [float(m) for m in magnitudes]
    if not mags or any(m == 0 for m in mags):
        raise ConfigError("give non-zero magnitudes")
    sites = model.sites()
    role = sites[site_index(sites, site)].role
    with torch.no_grad():
        acts = model.encode(audio.to(model_device(model)), site)
        d = torch.as_tensor(np.asarray(direction, dtype=np.float32), device=acts.device)
        if d.numel() != acts.shape[1]:
            raise ConfigError(f"the direction has {d.numel()} entries; site {site!r} has {acts.shape[1]} channels")
        d = d.reshape(1, -1, 1)
        q0 = advance(model, acts, site, q_site, what="re-quantizing an edit")
        codes0 = getattr(quantizer, "codes", None)
        codes0 = None if codes0 is None else codes0.clone()
        rows = []
        dd = float((d**2).sum())
        for m in mags:
            q1 = advance(model, acts + m * d, site, q_site, what="re-quantizing an edit")
            delta = q1 - q0
            along = (delta * d).sum(1) / dd  # [B, T], in units of d
            off = delta - along[:, None] * d
            codes1 = getattr(quantizer, "codes", None)
            changed = float((codes1 != codes0).float().mean()) if codes0 is not None and codes1 is not None \
                else float("nan")
            rows.append({"site": site, "role": role, "quantizer": q_site, "magnitude": m,
                         "retained": float(along.mean()) / m,
                         "off_axis": float(off.norm(dim=1).mean()) / (abs(m) * dd**0.5),
                         "codes_changed": changed})
    return pd.DataFrame(rows)
