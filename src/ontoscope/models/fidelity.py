"""Reconstruction fidelity: how closely an autoencoder's output keeps each factor of its input.

A model that does not reconstruct a factor cannot carry it as a controllable variable, so a study reports
this beside its ontologies: an ICV verdict on a model that loses pitch says nothing about its architecture.
"""

from __future__ import annotations

import pandas as pd
import torch

from ontoscope.descriptors import measure
from ontoscope.descriptors.accuracy import round_trip_errors
from ontoscope.models.protocol import AudioModel, model_device

__all__ = ["fidelity_gate", "reconstruct", "reconstruction_fidelity"]


def reconstruct(model: AudioModel, audio: torch.Tensor, chunk: int = 32) -> torch.Tensor | None:
    """The model's audio output for ``audio`` ``[B, samples]``, trimmed to the input length, or None.

    None where the model produces no audio (encoders, pitch trackers). Runs without gradients, in chunks of
    ``chunk`` clips, on the model's device; the result is on the CPU.
    """
    sites = model.sites()
    if not sites:
        return None
    device = model_device(model)
    outs = []
    with torch.no_grad():
        for s in range(0, audio.shape[0], chunk):
            x = audio[s:s + chunk].to(device)
            y = model.decode(model.encode(x, upto=sites[-1].name), site=sites[-1].name)
            if y is None:
                return None
            outs.append(y.reshape(y.shape[0], -1)[:, :audio.shape[-1]].float().cpu())
    return torch.cat(outs)


def reconstruction_fidelity(model: AudioModel, audio: torch.Tensor, sr: int, chunk: int = 32) -> pd.DataFrame:
    """Per-factor error between the factors measured on ``audio`` and on its reconstruction.

    Both sides are measured with :func:`ontoscope.descriptors.measure`, so the descriptors' own error cancels
    and what remains is the model's. The errors and the subsets they are scored on are those of the
    synthesizer's round trip (:data:`ontoscope.descriptors.accuracy.CRITERIA`): f0 in cents, loudness in dB,
    rates in Hz, depths as ratios or indices.

    Parameters
    ----------
    model : AudioModel
        A model whose output is audio.
    audio : tensor ``[B, samples]``
        Input clips at ``sr``, full scale 1.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    DataFrame
        :func:`~ontoscope.descriptors.accuracy.round_trip_errors` columns (``factor``, ``where``, ``n``,
        ``defined``, ``median``, ``p95``, ``unit``, ...), plus ``loudness_bias_db``: the median signed
        loudness change (negative: the output is quieter). Empty for a model without audio output.
    """
    out = reconstruct(model, audio, chunk)
    if out is None:
        return pd.DataFrame()
    truth = measure(audio.float().cpu(), sr)
    got = measure(out, sr)
    table = round_trip_errors(truth, got)
    bias = float((got["loudness"] - truth["loudness"]).median())
    return table.assign(loudness_bias_db=bias)


def fidelity_gate(table: pd.DataFrame, *, f0_cents: float = 25.0, loudness_db: float = 1.5) -> tuple[bool, str]:
    """Whether a model reconstructs well enough for what it encodes to be read as learnt, and why not.

    ``table`` is a :func:`reconstruction_fidelity` table; the model passes when its median f0 error is at
    most ``f0_cents`` cents and its median loudness error at most ``loudness_db`` dB (a factor the table
    does not score is not held against it). Returns ``(passed, reason)``, the reason naming every miss,
    e.g. ``"f0 39 cents > 25; loudness 2.1 dB > 1.5"`` (empty when it passes).
    """
    if table is None or table.empty:
        return True, ""
    med = table.set_index("factor")["median"] if "factor" in table.columns else pd.Series(dtype=float)
    misses = []
    for factor, limit, unit in (("f0", f0_cents, "cents"), ("loudness", loudness_db, "dB")):
        v = float(med.get(factor, float("nan")))
        if v == v and v > limit:
            misses.append(f"{factor} {v:.3g} {unit} > {limit:g}")
    return not misses, "; ".join(misses)
