"""Helpers shared by the operator analyses: site order, forward-mode patches, weights at initialisation."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.overrides import TorchFunctionMode

from ontoscope.models.protocol import AudioModel, site_index


def site_names(model: AudioModel, sites: Sequence[str] | None) -> list[str]:
    """The requested site names in forward order (all sites by default); unknown names raise ``SiteError``."""
    all_sites = model.sites()
    if sites is None:
        return [s.name for s in all_sites]
    idx = sorted({site_index(all_sites, n) for n in sites})
    return [all_sites[i].name for i in idx]


class _ForwardADPatches(TorchFunctionMode):
    """Replace ops that lack forward-mode AD in torch by equal formulas that have it.

    ``torch.cdist`` (p = 2), used by vector quantizers to pick the nearest code, becomes
    ``sqrt(max(|a|^2 + |b|^2 - 2 a b^T, 0))``.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func is torch.cdist and float(kwargs.get("p", args[2] if len(args) > 2 else 2.0)) == 2.0:
            a, b = args[0], args[1]
            d2 = (a * a).sum(-1, keepdim=True) + (b * b).sum(-1).unsqueeze(-2) - 2 * a @ b.transpose(-1, -2)
            return d2.clamp_min(0).sqrt()
        return func(*args, **kwargs)


def _rnns(model: object) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.RNNBase)] if isinstance(model, nn.Module) else []


@contextlib.contextmanager
def forward_ad_ready(model: object = None) -> Iterator[None]:
    """Make forward-mode AD run through ``model``.

    oneDNN's RNN kernels lack forward mode, so oneDNN is switched off around every recurrent layer's
    forward (hooks), and only there: oneDNN convolutions are much faster than the native ones.
    ``torch.cdist`` is computed by an equal formula that has forward mode (:class:`_ForwardADPatches`).
    """
    before = torch._C._get_mkldnn_enabled()
    handles = []
    for m in _rnns(model):
        handles.append(m.register_forward_pre_hook(lambda *_: torch._C._set_mkldnn_enabled(False)))
        handles.append(m.register_forward_hook(lambda *_: torch._C._set_mkldnn_enabled(before)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            with _ForwardADPatches():
                yield
    finally:
        for h in handles:
            h.remove()
        torch._C._set_mkldnn_enabled(before)


def _reset(m: nn.Module) -> None:
    reset = getattr(m, "reset_parameters", None)
    if callable(reset):
        reset()
    if parametrize.is_parametrized(m):
        for pname in list(m.parametrizations.keys()):
            current = getattr(m, pname)
            fresh = torch.empty_like(current)
            if fresh.ndim >= 2:
                nn.init.kaiming_uniform_(fresh, a=math.sqrt(5))
            else:
                nn.init.normal_(fresh)
            setattr(m, pname, fresh)


@contextlib.contextmanager
def reinitialised(model: nn.Module, seed: int) -> Iterator[nn.Module]:
    """The model with every submodule's parameters re-drawn by its ``reset_parameters`` under ``seed``.

    Used for models whose architecture cannot be rebuilt from a spec (published weights). Weights
    are restored on exit (the state dict is kept in memory). Parametrised weights (weight norm)
    are re-drawn with PyTorch's default conv initialisation and assigned through the
    parametrisation. Buffers (codebooks, running statistics) are left as they are, except what
    ``reset_parameters`` itself resets.
    """
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(int(seed))
            for m in model.modules():
                _reset(m)
        yield model
    finally:
        with torch.no_grad():
            model.load_state_dict(state)
