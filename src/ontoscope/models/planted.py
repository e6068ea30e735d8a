"""Planted models: audio models whose internal variables are known by construction.

A :class:`PlantedModel` is the proof that the probing instrument measures what it
claims. Its encoder measures the factors of a clip (:func:`ontoscope.descriptors.measure`),
maps each to ``u = 2 · normalize(value) - 1`` in [-1, 1] on the factor's own
scale (``0`` where a value is undefined, e.g. a rate at depth 0), and mixes
them with a known matrix; its decoder un-mixes and renders the factors with the
synthesizer itself. Sites:

``encoder.factors`` (role ``encoder``)  ``[B, k, T]``
    The normalised factors ``u``, held over ``T`` frames (``frame_rate`` per second).
``bottleneck`` (role ``bottleneck``; the planted latent)  ``[B, k, T]``
    ``z = h(M(θ) u)``: ``M(θ)`` rotates consecutive pairs of factors
    ``(u₁, u₂), (u₃, u₄), …`` by the *entanglement angle* ``θ`` (an odd last
    factor stays pure), and ``h`` is the identity (``nonlinearity="none"``) or the
    invertible cube ``h(v) = v³`` (``"cubic"``).

Factors in ``omit`` are not encoded at all: nothing at any site depends on them.
What a probe must find, by construction: at ``θ = 0`` each latent channel is one
factor, linearly (``R² = 1`` for a linear probe, up to the descriptors' own
error) or through the cube (a linear probe reaches ``R² ≈ 0.84`` for a uniform
factor: ``corr(u, u³)² = (1/5)² / ((1/3)(1/7)) = 21/25``; a nonlinear probe 1).
For independent, uniformly sampled factors the correlation of channel ``z₁``
with ``u₁`` is ``cos θ`` and with ``u₂`` ``sin θ`` (linear case), so the mean
correlation after matching is ``max(cos θ, sin θ)`` on the paired channels.
Omitted factors are decodable only through their correlation with encoded ones.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ontoscope.descriptors import measure
from ontoscope.errors import ConfigError
from ontoscope.models.protocol import Site, site_index
from ontoscope.stimuli.factors import FactorSpace
from ontoscope.stimuli.synth import Nuisance, synthesize

__all__ = ["PlantedModel", "mixing_matrix"]

SITES = ("encoder.factors", "bottleneck")


def mixing_matrix(k: int, angle_deg: float) -> torch.Tensor:
    """``[k, k]`` block-diagonal rotation of consecutive factor pairs by ``angle_deg`` degrees."""
    m = torch.eye(k, dtype=torch.float64)
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    for i in range(0, k - 1, 2):
        m[i, i], m[i, i + 1], m[i + 1, i], m[i + 1, i + 1] = c, s, -s, c
    return m


class PlantedModel(nn.Module):
    """An encoder with a planted latent and the synthesizer as its decoder (see the module docstring).

    Parameters
    ----------
    space : FactorSpace
        The factors and their ranges (normalisation), and the values held fixed.
    angle : float
        Entanglement angle in degrees.
    nonlinearity : {"none", "cubic"}
    omit : sequence of str
        Varied factors left out of the latent.
    sample_rate : int
    frame_rate : float
        Latent frames per second.
    seed : int
        Seed of the decoder's nuisances (partial phases, noise).
    """

    output = "audio"

    def __init__(self, space: FactorSpace, angle: float = 0.0, nonlinearity: str = "none",
                 omit: Sequence[str] = (), sample_rate: int = 16000, frame_rate: float = 50.0,
                 seed: int = 0) -> None:
        super().__init__()
        if nonlinearity not in ("none", "cubic"):
            raise ConfigError(f"unknown nonlinearity {nonlinearity!r}; use none or cubic")
        unknown = [n for n in omit if n not in space.names]
        if unknown:
            raise ConfigError(f"cannot omit {unknown}: not varied in the space ({', '.join(space.names)})")
        self.space = space
        self.encoded = [n for n in space.names if n not in set(omit)]
        if not self.encoded:
            raise ConfigError("a planted model must encode at least one factor")
        self.omitted = list(omit)
        self.angle = float(angle)
        self.nonlinearity = nonlinearity
        self.sample_rate = int(sample_rate)
        self.stride = max(1, int(round(sample_rate / frame_rate)))
        self.seed = int(seed)
        self.register_buffer("mixing", mixing_matrix(len(self.encoded), angle))
        self._memo: dict[bytes, np.ndarray] = {}
        k = len(self.encoded)
        self._sites = [Site(SITES[0], "BCT", k, role="encoder", stride=self.stride),
                       Site(SITES[1], "BCT", k, role="bottleneck", stride=self.stride)]

    def sites(self) -> list[Site]:
        """``encoder.factors`` and ``bottleneck`` (the planted latent)."""
        return list(self._sites)

    # -- encoder ------------------------------------------------------------------------
    def normalised_factors(self, audio: torch.Tensor) -> torch.Tensor:
        """``u`` ``[B, k]``: the measured factors mapped to [-1, 1] (0 where undefined).

        The encoder is a fixed function of each clip, so every clip's ``u`` is remembered (keyed by a digest of
        its samples): a clip encoded again (the capture, the steered clips, the pairs) is not measured again.
        """
        x = audio.detach().cpu().float().contiguous().numpy()
        keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in x]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        if todo:
            table = measure(torch.from_numpy(x[todo]), self.sample_rate)
            u = np.stack([2 * self.space[n].normalize(table[n].to_numpy()) - 1 for n in self.encoded], 1)
            for i, row in zip(todo, np.nan_to_num(u, nan=0.0), strict=True):
                self._memo[keys[i]] = row
        u = np.stack([self._memo[k] for k in keys])
        return torch.as_tensor(u, dtype=torch.float32, device=audio.device)

    def _frames(self, n_samples: int) -> int:
        return max(1, -(-n_samples // self.stride))

    def encode(self, audio: torch.Tensor, upto: str) -> torch.Tensor:
        """Activations ``[B, k, T]`` at ``encoder.factors`` or ``bottleneck``."""
        i = site_index(self._sites, upto)
        u = self.normalised_factors(audio)[..., None].expand(-1, -1, self._frames(audio.shape[-1]))
        return u.contiguous() if i == 0 else self.mix(u)

    def mix(self, u: torch.Tensor) -> torch.Tensor:
        """``h(M u)`` over the channel axis of ``[B, k, T]``."""
        v = torch.einsum("ij,bjt->bit", self.mixing.to(u), u)
        return v**3 if self.nonlinearity == "cubic" else v

    def unmix(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`mix`."""
        v = torch.sign(z) * z.abs() ** (1 / 3) if self.nonlinearity == "cubic" else z
        return torch.einsum("ji,bjt->bit", self.mixing.to(v), v)  # M is orthogonal

    # -- decoder ------------------------------------------------------------------------
    def factor_values(self, acts: torch.Tensor, site: str) -> dict[str, torch.Tensor]:
        """Factor values in natural units ``{name: [B]}`` decoded from a site (frame means).

        Differentiable in ``acts`` (inside the range; the clamp to [-1, 1] stops the gradient outside).
        """
        i = site_index(self._sites, site)
        u = acts if i == 0 else self.unmix(acts)
        u = u.mean(-1).clamp(-1, 1).double()
        return {n: self.space[n].denormalize((u[:, j] + 1) / 2) for j, n in enumerate(self.encoded)}

    def resume(self, acts: torch.Tensor, site: str, n_samples: int | None = None) -> torch.Tensor:
        """Audio ``[B, n_samples]`` rendered by the synthesizer from the factors a site holds.

        Factors not encoded take their fixed values (or the canon defaults); the
        nuisances come from ``seed`` (the same for every clip and every call).
        """
        values: dict[str, object] = dict(self.space.fixed)
        for n in self.omitted:
            values[n] = float(self.space[n].denormalize(0.5))
        values.update(self.factor_values(acts, site))
        b = acts.shape[0]
        n = int(n_samples or acts.shape[-1] * (self._sites[site_index(self._sites, site)].stride or self.stride))
        nui = Nuisance.from_seeds(np.full(b, self.seed), n)
        return synthesize(values, nui, self.sample_rate).to(acts.device)

    def decode(self, acts: torch.Tensor, site: str) -> torch.Tensor:
        """Same as :meth:`resume`: the planted model's output is audio."""
        return self.resume(acts, site)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        last = self._sites[-1].name  # the bottleneck (a subclass may name its sites otherwise)
        return self.resume(self.encode(audio, last), last, audio.shape[-1])
