"""The one protocol every model meets, and the sites where it can be read and intervened on.

Every model ontoscope analyses, whether from its own family, a real pretrained
network or one a user brings, exposes an ordered list of named *sites*. A site is
a place in the forward pass where activations can be read (``encode``) and from
which the rest of the model can be run on edited activations (``resume``).
Everything downstream (capture, steering, interchange, alignment search) speaks
in site names, never in module paths, in the spirit of TransformerLens's hook
points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import nn

from ontoscope.errors import ConfigError, OntoscopeError

Layout = Literal["BCT", "BCFT"]
OutputKind = Literal["audio", "spectrogram", "pitch", "factors", "embedding", "probability"]


class SiteError(OntoscopeError, KeyError):
    """An unknown site name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Site:
    """A named place in a model's forward pass.

    Attributes
    ----------
    name : str
        Dotted name, e.g. ``encoder.block2``, ``bottleneck``, ``decoder.block0``.
    layout : {"BCT", "BCFT"}
        Activations are ``[batch, channels, frames]`` or ``[batch, channels, freq, frames]``.
    channels : int
        Size of the channel axis.
    role : str
        ``encoder``, ``bottleneck``, ``quantizer``, ``decoder``, ``head`` or ``layer``.
    stride : int or None
        Input samples per frame at this site (cumulative stride); filled in by
        the operator analysis where a model does not declare it.
    receptive_field : int or None
        Theoretical receptive field in input samples.
    global_context : bool
        True when attention or recurrence gives every frame the whole input.
    freq_bins : int or None
        Size of the frequency axis for ``BCFT`` sites.
    """

    name: str
    layout: Layout
    channels: int
    role: str = "layer"
    stride: int | None = None
    receptive_field: int | None = None
    global_context: bool = False
    freq_bins: int | None = None
    notes: dict = field(default_factory=dict, compare=False)

    def frame_rate(self, sample_rate: int) -> float | None:
        """Frames per second at this site, or None if the stride is unknown (None, NaN or not positive).

        The one place a site's frame rate is computed: capture, steering and the operator analysis ask here.
        """
        if self.stride is None or not self.stride > 0:
            return None
        return sample_rate / self.stride

    def with_geometry(self, stride: int | None, receptive_field: int | None) -> Site:
        """The same site with its stride and receptive field filled in."""
        return replace(self, stride=stride, receptive_field=receptive_field)


@runtime_checkable
class AudioModel(Protocol):
    """What ontoscope needs of a model.

    ``sample_rate`` is the rate the model expects; ``output`` says what its
    final output is (``audio`` for autoencoders, ``pitch``, ``factors``,
    ``embedding``...). Audio is ``[batch, samples]`` float32.
    """

    sample_rate: int
    output: OutputKind

    def sites(self) -> list[Site]:
        """Ordered intervention sites."""
        ...

    def encode(self, audio: torch.Tensor, upto: str) -> torch.Tensor:
        """Activations at site ``upto`` for ``audio`` ``[B, samples]``."""
        ...

    def resume(self, acts: torch.Tensor, site: str) -> torch.Tensor:
        """Run the rest of the model from (possibly edited) activations at ``site``."""
        ...

    def decode(self, acts: torch.Tensor, site: str) -> torch.Tensor | None:
        """Audio from activations at ``site``, or None for models that produce no audio."""
        ...


@runtime_checkable
class SiteChain(Protocol):
    """What a model that is a chain of sites adds to :class:`AudioModel` (optional: :class:`StagedModel` has it).

    Its forward pass runs one module per site, in site order: ``stage(name)`` maps the activations at the site
    before (or the preprocessed input, for the first site) to those at ``name``, so every layer met on the way
    to a site lies in its stage or an earlier one. ``advance`` runs the chain from one site to a later one.
    ``takes_audio`` is True when the first stage reads the audio itself with a channel axis added (and at most
    zero padding), so that the chain from the input is made of the stages alone.
    Analyses reach these through :func:`site_module`, :func:`advance` and :func:`takes_audio`, which answer for
    any model, never through a concrete class.
    """

    takes_audio: bool

    def stage(self, name: str) -> nn.Module:
        """The module whose output is the activation at site ``name``."""
        ...

    def advance(self, acts: torch.Tensor, site: str, upto: str) -> torch.Tensor:
        """Activations at site ``upto`` from (possibly edited) activations at an earlier ``site``."""
        ...


def site_module(model: AudioModel, name: str) -> nn.Module | None:
    """The module of a :class:`SiteChain` that produces site ``name``; None for a model that is no chain.

    Unknown names raise :class:`SiteError`.
    """
    site_index(model.sites(), name)
    return model.stage(name) if isinstance(model, SiteChain) else None


def advance(model: AudioModel, acts: torch.Tensor, site: str, upto: str, *,
            what: str = "this analysis") -> torch.Tensor:
    """Activations at site ``upto`` computed from (possibly edited) activations at an earlier ``site``.

    Only a :class:`SiteChain` can run from one site to another without running the whole model; for any
    other a one-line :class:`~ontoscope.errors.ConfigError` says that ``what`` needs one.
    """
    if not isinstance(model, SiteChain):
        raise ConfigError(f"{what} needs a model that can run from one site to the next (a chain of stages, "
                          f"such as StagedModel); {type(model).__name__} is not one")
    return model.advance(acts, site, upto)


def takes_audio(model: AudioModel) -> bool:
    """True for a :class:`SiteChain` whose first stage reads the audio itself (a channel axis added, at most
    zero padding): the linear path from the input to a site is then that of its stages alone."""
    return isinstance(model, SiteChain) and bool(model.takes_audio)


def site_index(sites: Sequence[Site], name: str) -> int:
    """Position of site ``name``; a clear error listing the known sites otherwise."""
    for i, s in enumerate(sites):
        if s.name == name:
            return i
    known = ", ".join(s.name for s in sites)
    raise SiteError(f"unknown site {name!r}; this model's sites are: {known}")


class StagedModel(nn.Module):
    """A model that is a chain of stages, with a site after each named stage.

    ``stages`` run in order; stage ``i``'s output is the activation at
    ``sites[i]``. ``head`` (optional) maps the last stage's output to the
    model's output. ``encode`` runs the chain up to a site and ``resume`` runs
    the rest, so reading a site costs nothing over a plain forward pass.
    Subclasses set ``sample_rate``, ``output`` and build the stages.
    """

    sample_rate: int
    output: OutputKind

    def __init__(self, stages: Sequence[tuple[Site, nn.Module]], head: nn.Module | None = None) -> None:
        super().__init__()
        self._sites = [s for s, _ in stages]
        self.stages = nn.ModuleList([m for _, m in stages])
        self.head = head if head is not None else nn.Identity()

    def sites(self) -> list[Site]:
        """Ordered intervention sites."""
        return list(self._sites)

    def site(self, name: str) -> Site:
        """The site called ``name``."""
        return self._sites[site_index(self._sites, name)]

    def stage(self, name: str) -> nn.Module:
        """The stage whose output is the activation at site ``name``."""
        return self.stages[site_index(self._sites, name)]

    @property
    def takes_audio(self) -> bool:
        """True when :meth:`preprocess` is the default (only a channel axis added); a subclass whose own
        preprocessing only pads with zeros as well says so with ``takes_audio = True``."""
        return type(self).preprocess is StagedModel.preprocess

    def preprocess(self, audio: torch.Tensor) -> torch.Tensor:
        """Turn audio ``[B, samples]`` into the first stage's input (default: add a channel axis)."""
        return audio.unsqueeze(1)

    def encode(self, audio: torch.Tensor, upto: str) -> torch.Tensor:
        """Activations at site ``upto``."""
        end = site_index(self._sites, upto)
        x = self.preprocess(audio)
        for stage in self.stages[: end + 1]:
            x = stage(x)
        return x

    def resume(self, acts: torch.Tensor, site: str) -> torch.Tensor:
        """The model's output from activations at ``site``."""
        start = site_index(self._sites, site)
        x = acts
        for stage in self.stages[start + 1:]:
            x = stage(x)
        return self.postprocess(self.head(x))

    def advance(self, acts: torch.Tensor, site: str, upto: str) -> torch.Tensor:
        """Activations at site ``upto`` computed from (possibly edited) activations at an earlier ``site``."""
        start, end = site_index(self._sites, site), site_index(self._sites, upto)
        if end < start:
            raise ConfigError(f"site {upto!r} comes before {site!r}; advance runs forward only")
        x = acts
        for stage in self.stages[start + 1: end + 1]:
            x = stage(x)
        return x

    def postprocess(self, out: torch.Tensor) -> torch.Tensor:
        """Turn the head's output into the model's output (default: unchanged)."""
        return out

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(audio)
        for stage in self.stages:
            x = stage(x)
        return self.postprocess(self.head(x))

    def decode(self, acts: torch.Tensor, site: str) -> torch.Tensor | None:
        """Audio from activations at ``site`` for audio-producing models, else None."""
        return self.resume(acts, site) if self.output == "audio" else None


def encode_sites(model: AudioModel, audio: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Activations at every site in ``names`` for ``audio`` ``[B, samples]``, keyed by site name.

    A :class:`StagedModel` runs its chain once, up to the last requested site;
    any other model is encoded site by site. Unknown names raise :class:`SiteError`.
    """
    if not names:
        return {}
    if isinstance(model, StagedModel):
        sites = model.sites()
        want = {site_index(sites, n): n for n in names}
        last = max(want)
        x = model.preprocess(audio)
        out: dict[str, torch.Tensor] = {}
        for i, stage in enumerate(model.stages[: last + 1]):
            x = stage(x)
            if i in want:
                out[want[i]] = x
        return out
    return {n: model.encode(audio, upto=n) for n in names}


def model_device(model: AudioModel) -> torch.device:
    """The device a model runs on: that of its first parameter, else of its first buffer, else the CPU."""
    for attr in ("parameters", "buffers"):
        tensors = getattr(model, attr, None)
        first = next(iter(tensors()), None) if callable(tensors) else None
        if first is not None:
            return first.device
    return torch.device("cpu")


def require_audio_output(model: AudioModel, what: str) -> None:
    """Raise a one-line :class:`~ontoscope.errors.ConfigError` unless ``model`` produces audio (``what``: the use)."""
    kind = getattr(model, "output", None)
    if kind != "audio":
        raise ConfigError(f"{what} is scored on the audio a model produces; this model's output is {kind!r}")
