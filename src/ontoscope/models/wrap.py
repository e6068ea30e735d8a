"""Bring your own model: any ``nn.Module`` becomes an :class:`AudioModel` by naming its sites.

A site is the output of a submodule, addressed by its dotted path (as in
``module.get_submodule``). Forward hooks read it (``encode``, which stops the
forward pass as soon as the site has been computed) and replace it
(``resume``, which reruns the forward pass with the site's output swapped for
the given activations, so everything after the site sees the edit).

Example::

    net = nn.Sequential(nn.Conv1d(1, 8, 9, stride=4), nn.ReLU(), nn.Conv1d(8, 1, 9, stride=4))
    model = wrap(net, sites={"conv0": "0", "relu": "1"}, sample_rate=16000,
                 output="embedding", preprocess=lambda a: a.unsqueeze(1))
    acts = model.encode(audio, "relu")           # [B, 8, T]
    out = model.resume(acts * 2.0, "relu")       # the rest of the net on edited activations

Site names are the caller's. Named by the scheme every built-in model follows
(``docs/models.md``, "Site names": ``encoder.<name>``, ``bottleneck``,
``quantizer``, ``decoder.<name>``, ``head`` or ``head.<name>``), an undeclared
site takes its role from its name (:func:`role_from_name`), so the analyses
that look for the bottleneck by role find it; any other name gets role ``layer``.
A declared :class:`Site` keeps its own role.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ontoscope.errors import ConfigError
from ontoscope.models.protocol import OutputKind, Site, SiteError, site_index

__all__ = ["ROLES", "WrappedModel", "role_from_name", "wrap"]

_OUTPUTS = ("audio", "spectrogram", "pitch", "factors", "embedding", "probability")

#: The roles of the site naming scheme, in forward order.
ROLES = ("encoder", "bottleneck", "quantizer", "decoder", "head")


def role_from_name(name: str) -> str:
    """The role a site name states by the naming scheme (its first dotted part, when one of :data:`ROLES`),
    else ``layer``: ``encoder.conv1`` -> ``encoder``, ``bottleneck`` -> ``bottleneck``, ``relu`` -> ``layer``."""
    first = name.split(".", 1)[0]
    return first if first in ROLES else "layer"


class _Stop(Exception):
    """Raised by a capture hook to end a forward pass once the site is read."""


def _first_tensor(out: Any) -> torch.Tensor:
    """The activation a module's output stands for: the tensor itself, or the first element of a tuple."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise ConfigError(f"a site must be a module whose output is a tensor (or a tuple starting with one), "
                      f"got {type(out).__name__}")


def _swap_first(out: Any, new: torch.Tensor) -> Any:
    if isinstance(out, torch.Tensor):
        return new
    return type(out)([new, *out[1:]]) if isinstance(out, (tuple, list)) else new


def resolve_module(root: nn.Module, path: str) -> nn.Module:
    """The submodule of ``root`` at dotted ``path``; a :class:`ConfigError` naming close matches otherwise."""
    if not isinstance(path, str):
        raise ConfigError(f"a module path must be a dotted string such as 'encoder.0', got {path!r}")
    try:
        return root if path == "" else root.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in root.named_modules() if n]
        close = difflib.get_close_matches(path, names, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise ConfigError(f"module path {path!r} does not exist in {type(root).__name__}{hint} "
                          f"(submodules: {shown})") from None


class WrappedModel(nn.Module):
    """An ``nn.Module`` seen through named sites, meeting the :class:`AudioModel` protocol.

    Use :func:`wrap` to build one. ``encode(audio, upto)`` returns the output of
    the site's module (the first element when it returns a tuple) and stops the
    forward pass there. ``resume(acts, site)`` reruns the forward pass with that
    output replaced by ``acts`` and returns the model's output. The part before
    the site is run on ``audio`` when given, otherwise on silence of the length
    last passed to ``encode`` (or ``probe_samples``); its result is thrown
    away, so it only matters for models whose later layers also read earlier
    tensors (skip connections), for which the original audio should be passed.
    That part runs without building a graph; gradients flow from the output
    back to ``acts``.

    A module called several times in one forward pass is read and replaced at
    its first call.
    """

    def __init__(
        self,
        module: nn.Module,
        sites: Mapping[str, str | Site],
        sample_rate: int,
        output: OutputKind = "embedding",
        decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
        preprocess: Callable[[torch.Tensor], Any] | None = None,
        postprocess: Callable[[Any], torch.Tensor] | None = None,
        probe_samples: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise ConfigError(f"wrap() needs a torch.nn.Module, got {type(module).__name__}")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ConfigError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
        if output not in _OUTPUTS:
            raise ConfigError(f"output must be one of {', '.join(_OUTPUTS)}; got {output!r}")
        if not isinstance(sites, Mapping) or not sites:
            raise ConfigError("wrap() needs at least one site: sites={'name': 'dotted.module.path'}")
        self.module = module
        self.sample_rate = sample_rate
        self.output = output
        self._decode_fn = decode
        self._pre = preprocess if preprocess is not None else (lambda a: a)
        self._post = postprocess if postprocess is not None else _first_tensor
        self._probe = int(probe_samples) if probe_samples is not None else sample_rate
        self._paths: dict[str, str] = {}
        self._declared: dict[str, Site | None] = {}
        for name, spec in sites.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"site names must be non-empty strings, got {name!r}")
            if isinstance(spec, Site):
                path = spec.notes.get("module", name)
                self._declared[name] = spec if spec.name == name else replace(spec, name=name)
            elif isinstance(spec, str):
                path = spec
                self._declared[name] = None
            else:
                raise ConfigError(f"site {name!r}: give a dotted module path or a Site, got {type(spec).__name__}")
            resolve_module(module, path)
            self._paths[name] = path
        self._sites: list[Site] | None = None
        self._last_len: int | None = None

    # ------------------------------------------------------------------ sites
    def _check(self, name: str) -> str:
        if name not in self._paths:
            known = ", ".join(self._paths)
            raise SiteError(f"unknown site {name!r}; this model's sites are: {known}")
        return self._paths[name]

    def sites(self) -> list[Site]:
        """Ordered sites; layout and channels of undeclared ones are read from one probe pass on silence."""
        if self._sites is None:
            shapes: dict[str, tuple[int, ...]] = {}
            if any(s is None for s in self._declared.values()):
                shapes = self._probe_shapes()
            out = []
            for name, declared in self._declared.items():
                if declared is not None:
                    out.append(declared)
                    continue
                shape = shapes.get(name)
                if shape is None:
                    raise ConfigError(f"site {name!r} (module {self._paths[name]!r}) is never called in a forward "
                                      f"pass on {self._probe} samples; check the module path")
                if len(shape) not in (3, 4):
                    raise ConfigError(f"site {name!r} gives activations of shape {shape}; a site must be "
                                      "[B, C, T] or [B, C, F, T] (declare a Site or pick another module)")
                out.append(Site(name=name, layout="BCT" if len(shape) == 3 else "BCFT", channels=int(shape[1]),
                                role=role_from_name(name), freq_bins=int(shape[2]) if len(shape) == 4 else None,
                                notes={"module": self._paths[name]}))
            self._sites = out
        return list(self._sites)

    def site(self, name: str) -> Site:
        """The site called ``name``."""
        self._check(name)
        sites = self.sites()
        return sites[site_index(sites, name)]

    def _probe_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        handles = []
        for name, path in self._paths.items():
            def hook(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
                shapes.setdefault(name, tuple(_first_tensor(out).shape))
            handles.append(resolve_module(self.module, path).register_forward_hook(hook))
        dev = _device(self.module)
        try:
            with torch.no_grad():
                self.module(self._pre(torch.zeros(1, self._probe, device=dev)))
        finally:
            for h in handles:
                h.remove()
        return shapes

    # -------------------------------------------------------------- protocol
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self._post(self.module(self._pre(audio)))

    def encode(self, audio: torch.Tensor, upto: str) -> torch.Tensor:
        """The output of site ``upto``'s module for ``audio`` ``[B, samples]``; the rest is not run."""
        target = resolve_module(self.module, self._check(upto))
        got: list[torch.Tensor] = []

        def capture(_m: nn.Module, _i: Any, out: Any) -> None:
            got.append(_first_tensor(out))
            raise _Stop

        handle = target.register_forward_hook(capture)
        self._last_len = int(audio.shape[-1])
        try:
            self.module(self._pre(audio))
        except _Stop:
            pass
        finally:
            handle.remove()
        if not got:
            raise ConfigError(f"site {upto!r} (module {self._paths[upto]!r}) was not reached in the forward pass")
        return got[0]

    def resume(self, acts: torch.Tensor, site: str, audio: torch.Tensor | None = None) -> torch.Tensor:
        """The model's output with site ``site``'s output replaced by ``acts``.

        ``audio`` (optional) feeds the part before the site; by default it is
        silence of the last encoded length, batch size taken from ``acts``.
        """
        target = resolve_module(self.module, self._check(site))
        if audio is None:
            n = self._last_len if self._last_len is not None else self._probe
            audio = torch.zeros(acts.shape[0], n, device=acts.device)
        grad = torch.is_grad_enabled()
        done: list[bool] = []

        def swap(_m: nn.Module, _i: Any, out: Any) -> Any:
            if done:  # a module called twice: replace its first call only
                return None
            done.append(True)
            torch.set_grad_enabled(grad)  # the rest of the pass builds a graph again if the caller wanted one
            return _swap_first(out, acts)

        handle = target.register_forward_hook(swap)
        try:
            with torch.no_grad():
                out = self.module(self._pre(audio))
        finally:
            handle.remove()
        if not done:
            raise ConfigError(f"site {site!r} (module {self._paths[site]!r}) was not reached in the forward pass")
        return self._post(out)

    def decode(self, acts: torch.Tensor, site: str) -> torch.Tensor | None:
        """Audio from activations at ``site``: the output itself for audio models, ``decode(output)``
        when a decoder was given, else None."""
        if self._decode_fn is not None:
            return self._decode_fn(self.resume(acts, site))
        return self.resume(acts, site) if self.output == "audio" else None


def _device(module: nn.Module) -> torch.device:
    p = next(iter(module.parameters()), None)
    if p is None:
        p = next(iter(module.buffers()), None)
    return p.device if p is not None else torch.device("cpu")


def wrap(
    module: nn.Module,
    sites: Mapping[str, str | Site],
    *,
    sample_rate: int,
    output: OutputKind = "embedding",
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
    preprocess: Callable[[torch.Tensor], Any] | None = None,
    postprocess: Callable[[Any], torch.Tensor] | None = None,
    probe_samples: int | None = None,
) -> WrappedModel:
    """Turn ``module`` into an :class:`AudioModel` by declaring its sites.

    Parameters
    ----------
    module : nn.Module
        Called as ``module(preprocess(audio))`` on audio ``[B, samples]``.
    sites : mapping of site name to module path or :class:`Site`
        In forward order. A path is dotted, as printed by
        ``module.named_modules()`` (``"encoder.2"``, ``"blocks.0.attn"``). A
        :class:`Site` declares geometry itself (stride, receptive field...);
        its module path is ``site.notes["module"]``, or the site name.
        Undeclared sites get layout and channels from a probe pass, and their
        role from their name (:func:`role_from_name`: ``encoder.*``,
        ``bottleneck``, ``quantizer``, ``decoder.*``, ``head``; ``layer`` otherwise).
    sample_rate : int
        Rate, in Hz, the module expects.
    output : str
        What the module produces: ``audio``, ``spectrogram``, ``pitch``,
        ``factors`` or ``embedding``.
    decode : callable, optional
        Maps the module's output to audio (e.g. a vocoder for a spectrogram
        model); ``decode()`` returns None without it unless ``output="audio"``.
    preprocess, postprocess : callable, optional
        Audio ``[B, samples]`` to the module's input (e.g. ``lambda a: a.unsqueeze(1)``),
        and the module's raw output to a tensor (default: the output, or its
        first element).
    probe_samples : int, optional
        Length of the silent probe input (default: one second).

    Raises
    ------
    ConfigError
        A module path that does not exist (the message lists close matches),
        a bad sample rate or output kind.
    """
    return WrappedModel(module, sites, sample_rate, output=output, decode=decode, preprocess=preprocess,
                        postprocess=postprocess, probe_samples=probe_samples)
