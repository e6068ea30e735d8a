"""Stimulus sets from recorded instruments: factors to MIDI controls, rendering, measuring back.

A SoundFont set is a :class:`~ontoscope.stimuli.dataset.StimulusSet` like a
synthetic one (same files, same ``factors.parquet`` keyed by ``clip``), so every
later stage accepts either. What differs is where the sound comes from and what
the table holds (``docs/soundfont.md``):

- the **nominal** value of every controlled factor, in the canon's column and
  unit (``f0``, ``loudness``, ``attack``, ``vibrato_*``, ``tremolo_*``); a canon
  factor the controls cannot set (``brightness``, ``noise``, ...) is the
  recording's own, and its nominal column is NaN;
- ``instrument`` (the GM program, a categorical factor) and ``instrument_name``;
- the MIDI controls that realise the nominal values: ``note``, ``bend`` (cents),
  ``velocity``, ``expression`` (amplitude gain of CC 11 at the tremolo's centre)
  and ``gain_db`` (the note's calibration gain, below);
- ``measured_<column>``: every descriptor of :func:`ontoscope.descriptors.measure`
  measured on the rendered clip (``measured_reason`` says why a value is NaN);
- ``baseline_<factor>``: the vibrato, tremolo and attack the recording has by
  itself, measured on the same note (program, key, bend, velocity, expression)
  rendered without the vibrato and tremolo LFOs and with the bank's own attack;
- ``control_<factor>``: the vibrato and tremolo the controls added, measured with
  the recording's own removed: the vibrato on the difference of the two clips'
  f0 tracks (cents), the tremolo on the ratio of their amplitude envelopes;
- ``swamped_vibrato``, ``swamped_tremolo``, ``swamped_attack``: where the
  recording's own modulation (or onset) is at least ``swamp_ratio`` of the
  nominal control, which it then swamps.

**Level.** Every note is calibrated so that at velocity 127 and full expression
its clip would have an RMS level of 0 dBFS (``gain_db``, a fixed digital gain per
clip, found by rendering it so). The nominal loudness is then reached by the
SoundFont level laws: velocity ``40 log10(v / 127)`` dB (rounded up to an
integer), the remainder and the tremolo's own power ``10 log10(1 + m² / 2)`` by
expression. Expression keeps a headroom ``1 / (1 + m_max)`` for the deepest
tremolo of the space, so the loudest reachable level is ``-20 log10(1 + m_max)``
dBFS. Velocity depends on the loudness alone, so a counterfactual pair that
changes another factor keeps the same velocity (and the same recorded sample).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ontoscope.errors import ConfigError, FactorError
from ontoscope.stimuli.dataset import StimulusSet, space_to_dict
from ontoscope.stimuli.factors import FACTOR_NAMES, FADE_SECONDS, INSTRUMENT, FactorSpace, clip_seeds, mark_rates
from ontoscope.stimuli.soundfont import BEND_RANGE, SoundFont, key_frequency, open_soundfont

#: Canon factors the MIDI controls set; the others are the recording's own (NaN nominal values).
CONTROLLED = ("f0", "loudness", "attack", "vibrato_rate", "vibrato_depth", "tremolo_rate", "tremolo_depth")
#: Factors varied on SoundFont stimuli by default (attack only where asked for: many recordings
#: have onsets of their own that are longer than the control).
DEFAULT_FACTORS = ("f0", "loudness", "vibrato_rate", "vibrato_depth", "tremolo_rate", "tremolo_depth")
#: Default GM programs: violin and flute.
DEFAULT_PROGRAMS = (40, 73)
#: Default fraction of a control that the recording's own modulation must reach to swamp it.
SWAMP_RATIO = 0.5
#: Column prefixes of the measured values (see the module docstring).
MEASURED, BASELINE, CONTROL = "measured_", "baseline_", "control_"
#: Columns of the MIDI controls a clip is rendered with.
CONTROL_COLUMNS = ("instrument", "instrument_name", "note", "bend", "velocity", "expression", "gain_db")
#: The factors measured on the baseline render.
BASELINE_FACTORS = ("vibrato_rate", "vibrato_depth", "tremolo_rate", "tremolo_depth", "attack")


def check_space(space: FactorSpace) -> None:
    """Raise :class:`FactorError` if ``space`` varies a factor the MIDI controls cannot set."""
    bad = [n for n in space.names if n not in CONTROLLED]
    if bad:
        raise FactorError(f"SoundFont stimuli cannot control {', '.join(bad)} (the recording sets them); vary "
                          f"only {', '.join(CONTROLLED)}")


def parse_programs(text: str | Iterable[int] | None) -> list[int]:
    """GM program numbers from ``"40,73"`` (or a sequence); default :data:`DEFAULT_PROGRAMS`."""
    if text is None:
        return list(DEFAULT_PROGRAMS)
    items = [t.strip() for t in text.split(",") if t.strip()] if isinstance(text, str) else list(text)
    if not items:
        raise ConfigError("the program list is empty; give comma-separated GM programs, e.g. 40,73")
    out = []
    for t in items:
        if isinstance(t, str) and t.strip().isdigit():
            p = int(t)
        elif isinstance(t, (int, np.integer)) and not isinstance(t, bool):
            p = int(t)
        else:
            raise ConfigError(f"GM program {t!r} is not a whole number; give comma-separated programs 0-127, "
                              "e.g. 40,73")
        if p not in INSTRUMENT.levels:
            raise ConfigError(f"GM program {p} is outside 0-127; give General MIDI program numbers, e.g. 40,73")
        out.append(p)
    return list(dict.fromkeys(out))


def tremolo_headroom(space: FactorSpace) -> float:
    """Expression gain at the tremolo's centre, ``1 / (1 + m_max)``: room for the deepest tremolo."""
    return 1.0 / (1.0 + _span(space, "tremolo_depth")[1])


def check_soundfont_space(space: FactorSpace, sr: int, seconds: float) -> None:
    """Every check a factor space must pass before SoundFont rendering (a clear error for each)."""
    check_space(space)
    space.check_sample_rate(sr)
    space.check_duration(seconds)
    top = 20 * math.log10(tremolo_headroom(space))
    loudest = _span(space, "loudness")[1]
    if loudest > top + 1e-9:
        raise FactorError(f"loudness up to {loudest:g} dBFS is above the loudest a SoundFont note reaches "
                          f"with this tremolo depth ({top:.1f} dBFS); lower the loudness range")


def assign_programs(n: int, programs: Sequence[int], seed: int) -> np.ndarray:
    """Balanced program per clip: each program ``n / len(programs)`` times (±1), in a seeded random order."""
    rng = np.random.default_rng([int(seed), 0x534632])
    return np.asarray(programs, dtype=np.int64)[rng.permutation(np.arange(n) % len(programs))]


def midi_controls(table: pd.DataFrame, sf: SoundFont, space: FactorSpace, seconds: float) -> pd.DataFrame:
    """Add the MIDI controls that realise each row's nominal factors (see the module docstring).

    Parameters
    ----------
    table : DataFrame
        One row per clip with ``instrument`` and the canon factor columns (nominal values).
    sf : SoundFont
        The bank and sample rate the clips will be rendered at.
    space : FactorSpace
        The factor space (for the tremolo headroom and which factors are controlled).
    seconds : float
        Clip duration (the calibration renders clips of it).

    Returns
    -------
    DataFrame
        ``table`` with the uncontrolled canon columns set to NaN and the columns of
        :data:`CONTROL_COLUMNS` added.

    Raises
    ------
    ConfigError
        A program the bank lacks, a note outside a program's range.
    """
    t = table.copy()
    for name in FACTOR_NAMES:
        if name not in CONTROLLED or (name == "attack" and "attack" not in space.names):
            t[name] = np.nan
    programs = t["instrument"].to_numpy(dtype=np.int64)
    names = {int(p): sf.check_program(int(p)) for p in np.unique(programs)}
    semis = 12 * np.log2(t["f0"].to_numpy(dtype=np.float64) / 440.0) + 69
    note = np.rint(semis).astype(np.int64)
    for p, k in {(int(p), int(k)) for p, k in zip(programs, note, strict=True)}:
        sf.check_key(p, k)
    bend = 100 * (semis - note)
    g_c = tremolo_headroom(space)
    m = np.nan_to_num(t["tremolo_depth"].to_numpy(dtype=np.float64))
    drop = t["loudness"].to_numpy(dtype=np.float64) - 20 * np.log10(g_c)  # dB below the loudest level, <= 0
    velocity = np.clip(np.ceil(127 * 10 ** (drop / 40) - 1e-9), 1, 127).astype(np.int64)
    trim = drop - 40 * np.log10(velocity / 127)
    expression = g_c * 10 ** (trim / 20) / np.sqrt(1 + m**2 / 2)
    t["instrument_name"] = [names[int(p)] for p in programs]
    t["note"] = note
    t["bend"] = bend
    t["velocity"] = velocity
    t["expression"] = expression
    attack = t["attack"].to_numpy(dtype=np.float64)
    t["gain_db"] = [_calibrate(sf, int(p), int(k), float(b), seconds, float(a))
                    for p, k, b, a in zip(programs, note, bend, attack, strict=True)]
    return mark_rates(t)


def _calibrate(sf: SoundFont, program: int, key: int, bend: float, seconds: float, attack: float) -> float:
    """Gain (dB) that brings the note at velocity 127 and full expression to 0 dBFS RMS."""
    x = sf.render_note(program, key, 127, seconds, bend=bend, attack=None if math.isnan(attack) else attack / 0.8)
    x = x * _fade(x.shape[0], sf.sr)
    level = 10 * math.log10(max(float(np.mean(np.square(x, dtype=np.float64))), 1e-30))
    if level < -150:
        raise ConfigError(f"program {program} ({sf.preset_name(program)}) is silent at note {key}; choose another "
                          "program or f0 range")
    return -level


def _fade(n: int, sr: int) -> np.ndarray:
    """The synthesizer's 10 ms linear fade to 0 at the end of a clip."""
    idx = np.arange(n, dtype=np.float64)
    return np.minimum((n - idx) / (sr * FADE_SECONDS), 1.0).astype(np.float32)


def soundfont_table(
    space: FactorSpace,
    n: int,
    sr: int = 16000,
    seconds: float = 1.0,
    seed: int = 0,
    *,
    bank: str | os.PathLike | None = None,
    programs: Sequence[int] = DEFAULT_PROGRAMS,
    method: str = "uniform",
    bend_range: int | None = None,
) -> pd.DataFrame:
    """Sample a SoundFont factor table: nominal factors, a program per clip, and their MIDI controls.

    Parameters
    ----------
    space : FactorSpace
        Varies only factors of :data:`CONTROLLED`.
    n : int
        Clips (with ``method="grid"``: the grid of :meth:`FactorSpace.sample`, crossed with the programs).
    sr, seconds : int, float
        Sample rate (Hz) and clip duration (s) the clips will be rendered at.
    seed : int
        Seed of the sampler and of every clip's LFO phases.
    bank : path, optional
        The SoundFont bank (default :func:`~ontoscope.stimuli.soundfont.find_bank`).
    programs : sequence of int
        GM programs drawn from, balanced over clips in a seeded order.
    method : {"uniform", "grid", "lhs"}
        As in :meth:`FactorSpace.sample`.
    bend_range : int, optional
        Pitch-bend range, semitones (default :func:`bend_range_for` the space).

    Returns
    -------
    DataFrame
        One row per clip: ``clip``, ``seed``, the canon factors (nominal; NaN where not
        controlled), ``rate_defined_*`` and the columns of :data:`CONTROL_COLUMNS`.
    """
    programs = parse_programs(programs)
    check_soundfont_space(space, sr, seconds)
    sf = open_soundfont(bank, sr, bend_range or bend_range_for(space))
    if method not in ("uniform", "grid", "lhs"):
        raise ConfigError(f"unknown sampling method {method!r}; use uniform, grid or lhs")
    table = space.sample(n, seed=seed, method=method)  # type: ignore[arg-type]
    if method == "grid":
        table = pd.concat([table.assign(instrument=p) for p in programs], ignore_index=True)
        table["clip"] = np.arange(len(table), dtype=np.int64)
        table["seed"] = clip_seeds(seed, len(table))
    else:
        table["instrument"] = assign_programs(len(table), programs, seed)
    return midi_controls(mark_rates(table), sf, space, seconds)


def soundfont_pairs(
    space: FactorSpace,
    n: int,
    sr: int = 16000,
    seconds: float = 1.0,
    seed: int = 0,
    *,
    bank: str | os.PathLike | None = None,
    programs: Sequence[int] = DEFAULT_PROGRAMS,
    factors: Iterable[str] | None = None,
    min_change: float = 0.1,
    bend_range: int | None = None,
) -> pd.DataFrame:
    """Counterfactual pairs on SoundFont notes: one control changed, the same program, note and seed.

    As :func:`ontoscope.stimuli.pairs.counterfactual_pairs` (``n`` pairs per factor,
    columns ``pair``, ``role``, ``factor``), with a program per pair shared by base and
    source, and the MIDI controls of :func:`midi_controls`. Where the changed factor is
    not ``f0`` the pair shares the note and bend too; velocity follows the loudness
    alone, so only a loudness pair changes it.
    """
    from ontoscope.stimuli.pairs import counterfactual_pairs

    programs = parse_programs(programs)
    check_soundfont_space(space, sr, seconds)
    sf = open_soundfont(bank, sr, bend_range or bend_range_for(space))
    table = counterfactual_pairs(space, n, factors=factors, seed=seed, min_change=min_change)
    per_pair = assign_programs(int(table["pair"].max()) + 1, programs, seed)
    table["instrument"] = per_pair[table["pair"].to_numpy()]
    return midi_controls(table, sf, space, seconds)


def bend_range_for(space: FactorSpace) -> int:
    """Smallest bend range (semitones, at least 2) that holds a 50-cent fine bend plus the deepest vibrato."""
    depth = _span(space, "vibrato_depth")[1]
    return max(BEND_RANGE, int(math.ceil((50.0 + depth) / 100.0 - 1e-9)))


def render_clips(table: pd.DataFrame, sf: SoundFont, seconds: float, baseline: bool = False) -> np.ndarray:
    """Render every row of a SoundFont table (see :func:`soundfont_table`).

    Parameters
    ----------
    table : DataFrame
        Rows with the canon factors, ``seed`` and :data:`CONTROL_COLUMNS`.
    sf : SoundFont
        Bank and sample rate.
    seconds : float
        Clip duration.
    baseline : bool
        Render each note without its vibrato and tremolo LFOs and with the bank's own
        attack (the recording's own modulation).

    Returns
    -------
    ndarray ``[rows, round(seconds · sr)]`` float32
        Calibrated (``gain_db``) and faded out over the last 10 ms, as the synthesizer's clips.
    """
    from ontoscope.stimuli.synth import Nuisance

    n = int(round(seconds * sf.sr))
    nuis = Nuisance.from_seeds(table["seed"].to_numpy(), 1)
    fade = _fade(n, sf.sr)
    out = np.empty((len(table), n), dtype=np.float32)
    for i, row in enumerate(table.itertuples(index=False)):
        vib = 0.0 if baseline or not row.vibrato_depth > 0 else float(row.vibrato_depth)
        trem = 0.0 if baseline or not row.tremolo_depth > 0 else float(row.tremolo_depth)
        attack = None if baseline or math.isnan(row.attack) else float(row.attack) / 0.8
        x = sf.render_note(int(row.instrument), int(row.note), int(row.velocity), seconds, bend=float(row.bend),
                           expression=float(row.expression),
                           vibrato_rate=float(row.vibrato_rate) if vib else 0.0, vibrato_depth=vib,
                           vibrato_phase=float(nuis.vibrato_phase[i]),
                           tremolo_rate=float(row.tremolo_rate) if trem else 0.0, tremolo_depth=trem,
                           tremolo_phase=float(nuis.tremolo_phase[i]), attack=attack)
        out[i] = x * np.float32(10 ** (row.gain_db / 20)) * fade
    return out


def needs_baseline(table: pd.DataFrame) -> np.ndarray:
    """Rows whose baseline render differs from the clip: a vibrato, a tremolo or an attack is controlled."""
    return np.asarray((table["vibrato_depth"].fillna(0) > 0) | (table["tremolo_depth"].fillna(0) > 0)
                      | table["attack"].notna())


def measure_range(space: FactorSpace, sr: int) -> tuple[float, float]:
    """f0 search range for measuring clips of ``space`` at ``sr``, Hz."""
    fmin = min(50.0, 0.5 * _span(space, "f0")[0])
    fmax = min(max(2000.0, 2.0 * space.max_frequency()), 0.45 * sr)
    return fmin, fmax


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
        The clips (:func:`render_clips`).
    baseline : ndarray ``[B, N]``
        The same notes rendered with ``baseline=True`` (rows where
        :func:`needs_baseline` is False are not read: their baseline is the clip).
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
        ``baseline_<factor>`` for :data:`BASELINE_FACTORS`, ``control_vibrato_rate``,
        ``control_vibrato_depth``, ``control_tremolo_rate``, ``control_tremolo_depth``
        (NaN where that control is off or its modulation is not found), and the bool
        columns ``swamped_vibrato``, ``swamped_tremolo``, ``swamped_attack``.
    """
    from ontoscope.descriptors import measure

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
    from ontoscope.descriptors.envelope import envelope_analysis
    from ontoscope.descriptors.modulation import vibrato
    from ontoscope.descriptors.pitch import f0_track

    x = torch.from_numpy(np.ascontiguousarray(audio))
    b = torch.from_numpy(np.ascontiguousarray(baseline))
    f_x = f_b = times = None
    for key in np.unique(notes):
        sel = torch.from_numpy(np.flatnonzero(notes == key))
        f_note = float(key_frequency(key))
        lo, hi = f_note / math.sqrt(2.0), min(f_note * math.sqrt(2.0), 0.45 * sr)
        tx, _, times = f0_track(x[sel], sr, fmin=lo, fmax=hi)
        tb, _, _ = f0_track(b[sel], sr, fmin=lo, fmax=hi)
        if f_x is None or f_b is None:
            f_x = torch.full((len(notes), tx.shape[1]), math.nan, dtype=torch.float64)
            f_b = f_x.clone()
        f_x[sel], f_b[sel] = tx.double(), tb.double()
    assert f_x is not None and f_b is not None and times is not None
    own_vib = vibrato(f_b, times, rate_range=vibrato_range)
    own_env = envelope_analysis(b, sr, f_b)
    res = {BASELINE + "vibrato_rate": own_vib.rate, BASELINE + "vibrato_depth": own_vib.depth,
           BASELINE + "tremolo_rate": own_env["tremolo_rate"], BASELINE + "tremolo_depth": own_env["tremolo_depth"],
           BASELINE + "attack": own_env["attack"]}
    out = {k: v.double().numpy() for k, v in res.items()}
    nan = np.full(len(notes), np.nan)
    # the vibrato the bend added: the clip's pitch relative to the recording's own (cents about 440 Hz)
    ctl = vibrato(440.0 * f_x / f_b, times, rate_range=vibrato_range)
    out[CONTROL + "vibrato_rate"] = np.where(vib_on, ctl.rate.numpy(), nan)
    out[CONTROL + "vibrato_depth"] = np.where(vib_on, ctl.depth.numpy(), nan)
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
    from ontoscope.descriptors.envelope import amplitude_envelope
    from ontoscope.descriptors.modulation import fit_sinusoid

    env_x = amplitude_envelope(x, sr, f0=f0, env_rate=250.0)
    env_b = amplitude_envelope(b, sr, f0=f0, env_rate=250.0)
    times = env_x.times.double()
    p_x, p_b = env_x.power.double(), env_b.power.double()
    gain = torch.sqrt(p_x.clamp_min(0) / p_b.clamp_min(1e-30))
    keep = (p_b > 1e-4 * p_b.amax(-1, keepdim=True)) & (times > 0.1) & (times < times[-1] - 0.03)
    fit = fit_sinusoid(torch.where(keep, gain, torch.full_like(gain, math.nan)), times, rate_range, drift=False)
    return fit.rate.numpy(), (fit.amplitude / fit.offset).numpy()


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
        Varies only factors of :data:`CONTROLLED` (e.g. :data:`DEFAULT_FACTORS`).
    n : int
        Clips; with ``pairs``, pairs per factor.
    sr, seconds : int, float
        Sample rate (8000-96000 Hz) and clip duration (s).
    seed : int
        Seed: the same seed (and bank) gives the same set.
    bank : path, optional
        SoundFont 2 bank (default :func:`~ontoscope.stimuli.soundfont.find_bank`).
    programs : sequence of int or str, optional
        GM programs, e.g. ``[40, 73]`` or ``"40,73"`` (default :data:`DEFAULT_PROGRAMS`).
    method : {"uniform", "grid", "lhs"}
        Sampling of the factors (ignored with ``pairs``).
    pairs : bool
        Make counterfactual pairs (:func:`soundfont_pairs`) over ``factors`` (default every varied factor).
    bend_range : int, optional
        Pitch-bend range in semitones (default :func:`bend_range_for` the space).
    swamp_ratio : float
        See :func:`measure_clips`.
    shard_size, overwrite, progress
        As in :meth:`StimulusSet.render`.

    Returns
    -------
    StimulusSet
        Its ``factors`` hold the nominal, control, measured, baseline and control
        columns (module docstring); its manifest's ``meta`` records ``source``
        (``"soundfont"``), ``bank``, ``programs`` and a per-program summary
        (``instruments``, :func:`instrument_summary`).
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
    v_lo, v_hi = _span(space, "vibrato_rate")
    vib_range = (min(2.0, 0.8 * v_lo), max(12.0, 1.2 * v_hi))
    trem_range = (min(2.0, 0.8 * _span(space, "tremolo_rate")[0]), max(14.0, 1.2 * _span(space, "tremolo_rate")[1]))

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


def _span(space: FactorSpace, name: str) -> tuple[float, float]:
    """Lowest and highest value of a factor in ``space`` (its fixed value twice if not varied)."""
    if name in space.names:
        return space[name].low, space[name].high
    v = float(space.fixed[name])
    return v, v


def instrument_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per program: the recording's own modulation and how often it swamps each control.

    Returns
    -------
    DataFrame
        One row per ``instrument``: ``instrument_name``, ``clips``, the medians of
        ``baseline_vibrato_depth`` (cents), ``baseline_tremolo_depth`` and
        ``baseline_attack`` (s), and for each of vibrato, tremolo and attack the
        fraction of the controlled clips that are swamped (``swamped_<f>``, NaN
        where none is controlled) and the flag ``swamps_<f>`` (at least half are).
    """
    rows = []
    for p, g in table.groupby("instrument", sort=True):
        row: dict[str, Any] = {"instrument": int(p), "instrument_name": str(g["instrument_name"].iloc[0]),
                               "clips": len(g)}
        for f in ("vibrato_depth", "tremolo_depth", "attack"):
            row[BASELINE + f] = float(g[BASELINE + f].median())
        for f, nominal in (("vibrato", "vibrato_depth"), ("tremolo", "tremolo_depth"), ("attack", "attack")):
            on = g[nominal].fillna(0) > 0
            frac = float(g.loc[on, f"swamped_{f}"].mean()) if on.any() else math.nan
            row[f"swamped_{f}"] = frac
            row[f"swamps_{f}"] = bool(frac >= 0.5) if on.any() else False
        rows.append(row)
    return pd.DataFrame(rows)
