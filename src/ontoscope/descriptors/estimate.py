"""The one result type of every descriptor: :class:`Estimate`.

Each estimator of :mod:`ontoscope.descriptors` returns an :class:`Estimate` (one
quantity) or, where one analysis gives several quantities, a ``dict`` mapping
the quantity's name (the factor's name where it is one: ``"brightness"``,
``"tremolo_rate"``, ...) to an :class:`Estimate`.

An estimate holds

- ``value``: a Tensor ``[B]`` (one value per clip) or ``[B, T]`` (a track, one
  value per frame), NaN where the quantity is undefined;
- ``unit``: the unit of ``value``, one of ``"Hz"``, ``"s"``, ``"dBFS"``, ``"dB"``,
  ``"dB/octave"``, ``"cents"``, ``"index"`` (a modulation index: tremolo ``m``,
  beating ``d``), ``"ratio"`` (any other dimensionless number: inharmonicity
  ``B``, R², flatness, the noise ratio ``η``), ``"FS"`` (linear amplitude, full
  scale 1) or ``"count"``;
- ``reason``: a tuple of ``B`` strings, one per clip: why the clip's value is NaN
  (``"silent"``, ``"unvoiced"``, ``"no modulation"``, ...), and ``""`` where it is
  defined. For a track, a clip's reason is non-empty only where the whole track
  is undefined (no voiced frame); single NaN frames (unvoiced frames) carry no
  reason of their own;
- for tracks, ``times`` (Tensor ``[T]``, seconds of each frame) and, where the
  estimator has one, ``confidence`` (Tensor ``[B, T]`` in [0, 1], e.g. YIN's
  periodicity); both are None for per-clip values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Estimate", "reasons_where_undefined", "values_of"]


@dataclass(frozen=True)
class Estimate:
    """A descriptor's value for each clip of a batch, its unit and why it is missing where it is.

    Attributes
    ----------
    value : Tensor ``[B]`` or ``[B, T]``
        The descriptor; NaN where it is undefined.
    unit : str
        Unit of ``value`` (see the module docstring for the names used).
    reason : tuple of str, length ``B``
        Per clip, ``""`` where the value is defined, else why it is not.
    times : Tensor ``[T]``, optional
        Frame times in seconds, for a track (``value`` ``[B, T]``); None otherwise.
    confidence : Tensor ``[B, T]``, optional
        Per-frame confidence in [0, 1] of a track, where the estimator has one.
    """

    value: torch.Tensor
    unit: str
    reason: tuple[str, ...]
    times: torch.Tensor | None = None
    confidence: torch.Tensor | None = None

    def __post_init__(self) -> None:
        reason = tuple(self.reason)
        if self.value.ndim not in (1, 2) or len(reason) != self.value.shape[0]:
            raise ValueError(f"an Estimate needs a [B] or [B, T] value and B reasons; got value "
                             f"{tuple(self.value.shape)} and {len(reason)} reasons")
        if not all(isinstance(r, str) for r in reason):
            raise TypeError("an Estimate's reasons are strings ('' where the value is defined)")
        object.__setattr__(self, "reason", reason)

    def __len__(self) -> int:
        return int(self.value.shape[0])

    def to(self, dtype: torch.dtype) -> Estimate:
        """The same estimate with ``value`` (and ``confidence``) cast to ``dtype``."""
        conf = None if self.confidence is None else self.confidence.to(dtype)
        return Estimate(self.value.to(dtype), self.unit, self.reason, self.times, conf)


def reasons_where_undefined(value: torch.Tensor, reasons: Iterable[str | None]) -> tuple[str, ...]:
    """Per-clip reasons with ``""`` where ``value`` ``[B]`` is defined (finite or infinite, not NaN).

    ``reasons`` gives, per clip, why the value would be undefined (None or ``""`` where there is
    nothing to say); it is kept only where ``value`` is NaN.
    """
    nan = torch.isnan(value.detach()).cpu().numpy() if isinstance(value, torch.Tensor) else np.isnan(value)
    return tuple((r or "") if bool(n) else "" for r, n in zip(reasons, nan.tolist(), strict=True))


def values_of(x: Estimate | torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """``x.value`` for an :class:`Estimate`, ``x`` itself for a Tensor or array (e.g. an f0 track)."""
    return x.value if isinstance(x, Estimate) else x
