"""Pieces shared by the adapters: stage wrappers, receptive-field arithmetic, seeding, freezing."""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ontoscope.errors import AudioError, ConfigError

__all__ = ["Geometry", "Step", "check_clips", "freeze", "package_file", "seeded"]


class Step(nn.Module):
    """A stage made of a function over modules held elsewhere.

    The modules a step calls belong to (and are registered on) the adapter's
    wrapped network, so ``.to()``, ``.eval()`` and ``state_dict()`` reach them
    once, through that network; the step only keeps the function.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], label: str = "") -> None:
        super().__init__()
        object.__setattr__(self, "_fn", fn)
        self.label = label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(x)

    def extra_repr(self) -> str:
        return self.label


@dataclass
class Geometry:
    """Running stride and receptive field (in input samples) along a chain of layers.

    ``conv(k, s, d)`` adds a convolution or pooling of kernel ``k``, stride
    ``s``, dilation ``d``: the receptive field grows by ``(k - 1) * d`` times
    the stride so far, and the stride multiplies by ``s``. ``up(s, k)`` is a
    transposed convolution: each output reads ``ceil(k / s)`` input frames, so
    the receptive field grows by ``ceil(k / s) - 1`` input frames, and the
    stride divides by ``s``. ``rf`` is None once context is unbounded
    (recurrence, attention).
    """

    stride: int = 1
    rf: int | None = 1

    def conv(self, k: int, s: int = 1, d: int = 1) -> Geometry:
        if self.rf is not None:
            self.rf += (k - 1) * d * self.stride
        self.stride *= s
        return self

    def up(self, s: int, k: int | None = None) -> Geometry:
        if self.stride % s:
            raise ValueError(f"upsampling by {s} does not divide the stride {self.stride}")
        if self.rf is not None and k is not None:
            self.rf += (-(-k // s) - 1) * self.stride
        self.stride //= s
        return self

    def unbounded(self) -> Geometry:
        self.rf = None
        return self

    def module(self, m: nn.Module) -> Geometry:
        """Add every Conv1d / ConvTranspose1d inside ``m`` along its main path (kernel > 1 or stride > 1)."""
        for sub in m.modules():
            if isinstance(sub, nn.ConvTranspose1d):
                self.up(sub.stride[0], sub.kernel_size[0])
            elif isinstance(sub, nn.Conv1d) and (sub.kernel_size[0] > 1 or sub.stride[0] > 1):
                self.conv(sub.kernel_size[0], sub.stride[0], sub.dilation[0])
            elif isinstance(sub, (nn.LSTM, nn.GRU, nn.RNN)):
                self.unbounded()
        return self


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode, parameters without gradients (gradients still reach inputs and activations)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global generator seeded, restoring its state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def package_file(package: str, relative: str, *, what: str, install: str) -> Path:
    """Path of ``relative`` inside the installed ``package``, found without importing it (the packages that
    ship the weights import torchaudio or tensorflow on import).

    ``what`` names the weights in the error (``"FCPE weights"``), ``install`` the command that installs them;
    a missing package or file is one :class:`~ontoscope.errors.ConfigError` line naming that command.
    """
    try:
        spec = importlib.util.find_spec(package)
    except ValueError:  # a stand-in module without a spec sits in sys.modules
        spec = importlib.machinery.PathFinder.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{what} come with the {package} package; install it with `{install}`")
    for root in spec.submodule_search_locations:
        path = Path(root) / relative
        if path.is_file():
            return path
    raise ConfigError(f"{package} is installed but has no {relative}; reinstall it with `{install}`")


def check_clips(audio: torch.Tensor, *, min_samples: int, who: str, sample_rate: int) -> None:
    """One-line :class:`~ontoscope.errors.AudioError` unless ``audio`` is ``[batch, samples]`` with at least
    ``min_samples`` samples (``who`` names the model in the message)."""
    if audio.ndim != 2:
        raise AudioError(f"audio must be [batch, samples], got shape {tuple(audio.shape)}")
    if audio.shape[-1] < min_samples:
        unit = "sample" if min_samples == 1 else "samples"
        raise AudioError(f"{who} needs clips of at least {min_samples} {unit} ({min_samples / sample_rate * 1000:.3g} "
                         f"ms at {sample_rate} Hz), got {audio.shape[-1]}")
