"""Helpers shared by the operator analyses: site order, forward-mode patches, weights at initialisation."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
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


def _attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: torch.Tensor | None = None,
               dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
               enable_gqa: bool = False) -> torch.Tensor:
    """Scaled dot-product attention written out (Vaswani et al. 2017): ``softmax(q k^T s + mask) v``."""
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        rep = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(rep, -3), value.repeat_interleave(rep, -3)
    s = query.shape[-1] ** -0.5 if scale is None else scale
    w = query @ key.transpose(-2, -1) * s
    if is_causal:
        keep = torch.ones(w.shape[-2], w.shape[-1], dtype=torch.bool, device=w.device).tril()
        w = w.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        w = w.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else w + attn_mask
    return w.softmax(-1) @ value


#: Query x key lengths up to which attention is written out for forward mode (see :class:`_ForwardADPatches`).
MAX_WRITTEN_ATTENTION = 256 * 256


class _ForwardADPatches(TorchFunctionMode):
    """Replace ops that lack forward-mode AD in torch by equal formulas that have it.

    ``torch.cdist`` (p = 2), used by vector quantizers to pick the nearest code, becomes
    ``sqrt(max(|a|^2 + |b|^2 - 2 a b^T, 0))``; ``scaled_dot_product_attention`` without dropout
    (its fused CPU kernels have no forward mode) becomes the written-out softmax attention, up to
    ``MAX_WRITTEN_ATTENTION`` query x key positions: beyond that (AST's 1214 patches, Whisper's 1500
    frames) the attention matrices of every tangent cost more memory traffic than one more pass of
    the fused kernel per factor, so forward mode is refused (``NotImplementedError``) and the
    Jacobians fall back to differences of the model.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func is torch.cdist and float(kwargs.get("p", args[2] if len(args) > 2 else 2.0)) == 2.0:
            a, b = args[0], args[1]
            d2 = (a * a).sum(-1, keepdim=True) + (b * b).sum(-1).unsqueeze(-2) - 2 * a @ b.transpose(-1, -2)
            return d2.clamp_min(0).sqrt()
        if func is F.scaled_dot_product_attention and float(kwargs.get("dropout_p", args[4] if len(args) > 4
                                                                       else 0.0)) == 0.0:
            q = args[0] if args else kwargs["query"]
            k = args[1] if len(args) > 1 else kwargs["key"]
            if q.shape[-2] * k.shape[-2] > MAX_WRITTEN_ATTENTION:
                raise NotImplementedError(f"forward mode through attention over {q.shape[-2]} x {k.shape[-2]} "
                                          "positions is left to differences")
            return _attention(*args, **kwargs)
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
