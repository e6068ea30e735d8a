"""Stimulus sets that are measured as they are made: SoundFont sets, and the one call that renders any set.

A SoundFont set's table holds, beside the nominal factors and the MIDI controls
(:mod:`ontoscope.stimuli.soundfont_set`), every descriptor measured back on each
rendered clip and on its baseline (the same note without the controls'
modulation). The stimuli layer sits below the descriptors and cannot measure,
so the set is assembled here, one layer up: :func:`render_soundfont_set` renders
each shard with :func:`~ontoscope.stimuli.soundfont_set.render_clips` and adds
the columns of :func:`measure_clips`. :func:`render_stimuli` is the one call a
study config or the command line makes: ``source="synth"`` samples the factor
space and renders it with the synthesizer
(:meth:`~ontoscope.stimuli.dataset.StimulusSet.synthesize`,
:func:`~ontoscope.stimuli.pairs.counterfactual_pairs`), ``source="soundfont"``
plays it on General MIDI programs of a SoundFont bank (:func:`render_soundfont_set`).
Both give a :class:`~ontoscope.stimuli.dataset.StimulusSet` with the same files,
so every later stage accepts either.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ontoscope.descriptors import measure
from ontoscope.descriptors.envelope import amplitude_envelope, envelope_analysis
from ontoscope.descriptors.modulation import fit_sinusoid, vibrato
from ontoscope.descriptors.pitch import f0_track
from ontoscope.errors import ConfigError
from ontoscope.stimuli.dataset import StimulusSet, space_to_dict
from ontoscope.stimuli.factors import INSTRUMENT, FactorSpace
from ontoscope.stimuli.pairs import counterfactual_pairs
from ontoscope.stimuli.soundfont import key_frequency, open_soundfont
from ontoscope.stimuli.soundfont_set import (
    BASELINE,
    BASELINE_FACTORS,
    CONTROL,
    MEASURED,
    SWAMP_RATIO,
    bend_range_for,
    instrument_summary,
    measure_range,
    modulation_ranges,
    needs_baseline,
    parse_programs,
    render_clips,
    soundfont_pairs,
    soundfont_table,
)

__all__ = ["SOURCES", "measure_clips", "render_soundfont_set", "render_stimuli"]

#: The stimulus sources.
SOURCES = ("synth", "soundfont")


def render_stimuli(
    out: str | os.PathLike,
    space: FactorSpace,
    n: int,
    sr: int = 16000,
    seconds: float = 1.0,
    seed: int = 0,
    *,
    source: str = "synth",
    bank: str | os.PathLike | None = None,
    programs: Sequence[int] | str | None = None,
    method: str = "uniform",
    pairs: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    **kwargs: Any,
) -> StimulusSet:
    """Render a stimulus set from ``source``.

    Parameters
    ----------
    out : path
        Directory of the set.
    space : FactorSpace
        The factors to vary (for ``soundfont``, only those the MIDI controls set:
        :data:`~ontoscope.stimuli.soundfont_set.CONTROLLED`).
    n : int
        Clips, or pairs per varied factor with ``pairs``.
    sr, seconds, seed
        Sample rate (Hz), clip duration (s) and seed.
    source : {"synth", "soundfont"}
        The synthesizer, or recorded instruments from a SoundFont bank.
    bank : path, optional
        ``soundfont`` only: the ``.sf2`` bank (default
        :func:`~ontoscope.stimuli.soundfont.find_bank`).
    programs : sequence of int or str, optional
        ``soundfont`` only: GM programs, e.g. ``[40, 73]`` or ``"40,73"``.
    method : {"uniform", "grid", "lhs"}
        Sampling of the factors (ignored with ``pairs``).
    pairs : bool
        Counterfactual pairs instead of independent clips.
    overwrite, progress
        As in :meth:`~ontoscope.stimuli.dataset.StimulusSet.render`.
    **kwargs
        Passed to the source's renderer (e.g. ``swamp_ratio`` for ``soundfont``).
    """
    if source not in SOURCES:
        raise ConfigError(f"unknown stimulus source {source!r}; use {' or '.join(SOURCES)}")
    if method not in ("uniform", "grid", "lhs"):
        raise ConfigError(f"unknown sampling method {method!r}; use uniform, grid or lhs")
    if source == "soundfont":
        return render_soundfont_set(out, space, n, sr, seconds, seed, bank=bank, programs=programs, method=method,
                                    pairs=pairs, overwrite=overwrite, progress=progress, **kwargs)
    if bank is not None or programs is not None:
        raise ConfigError("a bank and programs belong to the soundfont source; choose source soundfont "
                          "(--source soundfont) or leave them out")
    space.check_sample_rate(sr)
    space.check_duration(seconds)
    if pairs:
        table = counterfactual_pairs(space, n, seed=seed)
        meta = {"space": space_to_dict(space), "seed": seed, "pairs": True, "source": "synth"}
        return StimulusSet.render(out, table, sr, seconds, overwrite=overwrite, progress=progress, meta=meta,
                                  **kwargs)
    return StimulusSet.synthesize(out, space, n, sr, seconds, seed=seed, method=method, overwrite=overwrite,
                                  progress=progress, **kwargs)


def render_soundfont_set(
    out: str | os.PathLike,
    space: FactorSpace,
    n: int,
    sr: int = 16000,
    seconds: float = 1.0,
    seed: int = 0,
    *,
    bank: str | os.PathLike | None = None,
    programs: Sequence[int] | str | None = None,
    method: str = "uniform",
    pairs: bool = False,
    factors: Iterable[str] | None = None,
    bend_range: int | None = None,
    swamp_ratio: float = SWAMP_RATIO,
    shard_size: int = 64,
    overwrite: bool = False,
    progress: bool | None = None,
) -> StimulusSet:
    """Render a stimulus set from a SoundFont: the entry point for the CLI and study configs.

    Parameters
    ----------
    out : path
        Directory of the set (resumes an interrupted render of the same set).
    space : FactorSpace
        Varies only factors of :data:`~ontoscope.stimuli.soundfont_set.CONTROLLED`
        (e.g. :data:`~ontoscope.stimuli.soundfont_set.DEFAULT_FACTORS`).
    n : int
        Clips; with ``pairs``, pairs per factor.
    sr, seconds : int, float
        Sample rate (8000-96000 Hz) and clip duration (s).
    seed : int
        Seed: the same seed (and bank) gives the same set.
    bank : path, optional
        SoundFont 2 bank (default :func:`~ontoscope.stimuli.soundfont.find_bank`).
    programs : sequence of int or str, optional
        GM programs, e.g. ``[40, 73]`` or ``"40,73"``
        (default :data:`~ontoscope.stimuli.soundfont_set.DEFAULT_PROGRAMS`).
    method : {"uniform", "grid", "lhs"}
        Sampling of the factors (ignored with ``pairs``).
    pairs : bool
        Make counterfactual pairs (:func:`~ontoscope.stimuli.soundfont_set.soundfont_pairs`) over ``factors``
        (default every varied factor).
    bend_range : int, optional
        Pitch-bend range in semitones (default :func:`~ontoscope.stimuli.soundfont_set.bend_range_for` the space).
    swamp_ratio : float
        See :func:`measure_clips`.
    shard_size, overwrite, progress
        As in :meth:`~ontoscope.stimuli.dataset.StimulusSet.render`.

    Returns
    -------
    StimulusSet
        Its ``factors`` hold the nominal, control, measured, baseline and control
        columns (:mod:`ontoscope.stimuli.soundfont_set`); its manifest's ``meta`` records ``source``
        (``"soundfont"``), ``bank``, ``programs`` and a per-program summary
        (``instruments``, :func:`~ontoscope.stimuli.soundfont_set.instrument_summary`).
    """
    progs = parse_programs(programs)
    if not 0 < swamp_ratio:
        raise ConfigError(f"swamp_ratio must be positive, got {swamp_ratio}")
    br = bend_range or bend_range_for(space)
    if pairs:
        table = soundfont_pairs(space, n, sr, seconds, seed, bank=bank, programs=progs, factors=factors,
                                bend_range=br)
    else:
        table = soundfont_table(space, n, sr, seconds, seed, bank=bank, programs=progs, method=method, bend_range=br)
    sf = open_soundfont(bank, sr, br)
    fmin, fmax = measure_range(space, sr)
    vib_range, trem_range = modulation_ranges(space)

    def shard(rows: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        audio = render_clips(rows, sf, seconds)
        base = audio.copy()
        need = needs_baseline(rows)
        if need.any():
            base[need] = render_clips(rows[need], sf, seconds, baseline=True)
        cols = measure_clips(audio, base, rows.reset_index(drop=True), sr, fmin=fmin, fmax=fmax,
                             swamp_ratio=swamp_ratio, vibrato_range=vib_range, tremolo_range=trem_range)
        return audio, cols

    plan = {"source": "soundfont", "bank": str(sf.bank), "bank_bytes": sf.bank.stat().st_size, "programs": progs,
            "bend_range": br, "swamp_ratio": float(swamp_ratio), "fmin": fmin, "fmax": fmax}
    meta = {"source": "soundfont", "space": space_to_dict(space), "seed": seed, "method": method, "pairs": pairs,
            "bank": str(sf.bank), "programs": progs, "bend_range": br,
            "categorical": {INSTRUMENT.name: INSTRUMENT.unit}}
    return StimulusSet.build(out, table, sr, seconds, shard, plan=plan, columns=True, shard_size=shard_size,
                             overwrite=overwrite, progress=progress, meta=meta,
                             finish=lambda t: {"instruments": instrument_summary(t).to_dict(orient="records")})


def measure_clips(
    audio: np.ndarray,
    baseline: np.ndarray,
    table: pd.DataFrame,
    sr: int,
    *,
    fmin: float = 50.0,
    fmax: float = 2000.0,
    swamp_ratio: float = SWAMP_RATIO,
    vibrato_range: tuple[float, float] = (2.0, 12.0),
    tremolo_range: tuple[float, float] = (2.0, 14.0),
) -> pd.DataFrame:
    """The measured, baseline and control columns and the swamp flags of rendered clips.

    Parameters
    ----------
    audio : ndarray ``[B, N]``
        The clips (:func:`~ontoscope.stimuli.soundfont_set.render_clips`).
    baseline : ndarray ``[B, N]``
        The same notes rendered with ``baseline=True`` (rows where
        :func:`~ontoscope.stimuli.soundfont_set.needs_baseline` is False are not read: their baseline is the clip).
    table : DataFrame
        The clips' rows (nominal factors).
    sr : int
        Sample rate, Hz.
    fmin, fmax : float
        f0 search range, Hz.
    swamp_ratio : float
        A control is swamped where the recording's own depth (or onset) is at least
        this fraction of the nominal one.
    vibrato_range, tremolo_range : (float, float)
        Rates searched for the control modulations, Hz.

    Returns
    -------
    DataFrame
        One row per clip, in order: ``measured_<column>`` for every column of
        :func:`~ontoscope.descriptors.measure` (including ``voiced`` and ``reason``),
        ``baseline_<factor>`` for :data:`~ontoscope.stimuli.soundfont_set.BASELINE_FACTORS`, ``control_vibrato_rate``,
        ``control_vibrato_depth``, ``control_tremolo_rate``, ``control_tremolo_depth``
        (NaN where that control is off or its modulation is not found), and the bool
        columns ``swamped_vibrato``, ``swamped_tremolo``, ``swamped_attack``.
    """
    measured = measure(audio, sr, fmin=fmin, fmax=fmax)
    out = measured.add_prefix(MEASURED)
    for f in BASELINE_FACTORS:
        out[BASELINE + f] = measured[f].to_numpy()
    for f in ("vibrato_rate", "vibrato_depth", "tremolo_rate", "tremolo_depth"):
        out[CONTROL + f] = np.nan
    rows = np.flatnonzero(needs_baseline(table))
    if rows.size:
        vib_on = table["vibrato_depth"].fillna(0).to_numpy()[rows] > 0
        trem_on = table["tremolo_depth"].fillna(0).to_numpy()[rows] > 0
        res = _against_baseline(audio[rows], baseline[rows], sr, table["note"].to_numpy(dtype=np.int64)[rows],
                                vib_on, trem_on, vibrato_range, tremolo_range)
        for col, values in res.items():
            out.loc[rows, col] = values
    for f, nominal in (("vibrato", "vibrato_depth"), ("tremolo", "tremolo_depth"), ("attack", "attack")):
        nom = table[nominal].to_numpy(dtype=np.float64)
        own = out[BASELINE + (nominal if f == "attack" else f"{f}_depth")].to_numpy(dtype=np.float64)
        out[f"swamped_{f}"] = np.nan_to_num(nom) > 0
        out[f"swamped_{f}"] &= np.nan_to_num(own) >= swamp_ratio * np.nan_to_num(nom)
    return out.reset_index(drop=True)


def _against_baseline(audio: np.ndarray, baseline: np.ndarray, sr: int, notes: np.ndarray, vib_on: np.ndarray,
                      trem_on: np.ndarray, vibrato_range: tuple[float, float], tremolo_range: tuple[float, float]
                      ) -> dict[str, np.ndarray]:
    """Baseline and control columns of clips and their baselines (``[B, N]``), MIDI keys ``notes [B]``.

    The f0 of each clip is searched within half an octave of its note, which rules out the
    octave errors a recording's strong partials can give the tracker.
    """
    x = torch.from_numpy(np.ascontiguousarray(audio))
    b = torch.from_numpy(np.ascontiguousarray(baseline))
    f_x = f_b = times = None
    for key in np.unique(notes):
        sel = torch.from_numpy(np.flatnonzero(notes == key))
        f_note = float(key_frequency(key))
        lo, hi = f_note / math.sqrt(2.0), min(f_note * math.sqrt(2.0), 0.45 * sr)
        track_x = f0_track(x[sel], sr, fmin=lo, fmax=hi)
        tx, times = track_x.value, track_x.times
        tb = f0_track(b[sel], sr, fmin=lo, fmax=hi).value
        if f_x is None or f_b is None:
            f_x = torch.full((len(notes), tx.shape[1]), math.nan, dtype=torch.float64)
            f_b = f_x.clone()
        f_x[sel], f_b[sel] = tx.double(), tb.double()
    assert f_x is not None and f_b is not None and times is not None
    own_vib = vibrato(f_b, times, rate_range=vibrato_range)
    own_env = envelope_analysis(b, sr, f_b)
    res = {BASELINE + "vibrato_rate": own_vib["vibrato_rate"], BASELINE + "vibrato_depth": own_vib["vibrato_depth"],
           BASELINE + "tremolo_rate": own_env["tremolo_rate"], BASELINE + "tremolo_depth": own_env["tremolo_depth"],
           BASELINE + "attack": own_env["attack"]}
    out = {k: v.value.double().numpy() for k, v in res.items()}
    nan = np.full(len(notes), np.nan)
    # the vibrato the bend added: the clip's pitch relative to the recording's own (cents about 440 Hz)
    ctl = vibrato(440.0 * f_x / f_b, times, rate_range=vibrato_range)
    out[CONTROL + "vibrato_rate"] = np.where(vib_on, ctl["vibrato_rate"].value.numpy(), nan)
    out[CONTROL + "vibrato_depth"] = np.where(vib_on, ctl["vibrato_depth"].value.numpy(), nan)
    # the tremolo expression added: the ratio of the two amplitude envelopes
    if trem_on.any():
        rate, depth = _control_tremolo(x[trem_on], b[trem_on], sr, f_b[trem_on], tremolo_range)
        out[CONTROL + "tremolo_rate"] = nan.copy()
        out[CONTROL + "tremolo_rate"][trem_on] = rate
        out[CONTROL + "tremolo_depth"] = nan.copy()
        out[CONTROL + "tremolo_depth"][trem_on] = depth
    return out


def _control_tremolo(x: torch.Tensor, b: torch.Tensor, sr: int, f0: torch.Tensor, rate_range: tuple[float, float]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Tremolo rate (Hz) and index ``m`` of the gain ``sqrt(P_clip / P_baseline)`` between clips and baselines.

    Fitted (:func:`~ontoscope.descriptors.modulation.fit_sinusoid`, no drift) after the first 0.1 s and
    before the last 30 ms, where the baseline's power is above 1e-4 of its peak: ``m`` is the
    sinusoid's amplitude over the gain's mean.
    """
    env_x = amplitude_envelope(x, sr, f0=f0, env_rate=250.0)
    env_b = amplitude_envelope(b, sr, f0=f0, env_rate=250.0)
    times = env_x.times.double()
    p_x, p_b = env_x.power.double(), env_b.power.double()
    gain = torch.sqrt(p_x.clamp_min(0) / p_b.clamp_min(1e-30))
    keep = (p_b > 1e-4 * p_b.amax(-1, keepdim=True)) & (times > 0.1) & (times < times[-1] - 0.03)
    fit = fit_sinusoid(torch.where(keep, gain, torch.full_like(gain, math.nan)), times, rate_range=rate_range,
                       drift=False)
    return fit.rate.numpy(), (fit.amplitude / fit.offset).numpy()
