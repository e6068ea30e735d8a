"""Stimulus sets from recorded instruments: factors to MIDI controls, rendering.

A SoundFont set is a :class:`~ontoscope.stimuli.dataset.StimulusSet` like a
synthetic one (same files, same ``factors.parquet`` keyed by ``clip``), so every
later stage accepts either. What differs is where the sound comes from and what
the table holds (``docs/soundfont.md``). This module makes the table and renders
the clips; measuring them back needs the descriptors, a layer above the stimuli,
so the set itself is rendered and measured by
:func:`ontoscope.descriptors.renders.render_soundfont_set` (the ``measured_``,
``baseline_``, ``control_`` and ``swamped_`` columns below come from
:func:`ontoscope.descriptors.renders.measure_clips`):

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

from ontoscope.errors import ConfigError, FactorError
from ontoscope.stimuli.factors import FACTOR_NAMES, FADE_SECONDS, INSTRUMENT, FactorSpace, clip_seeds, mark_rates
from ontoscope.stimuli.pairs import counterfactual_pairs
from ontoscope.stimuli.soundfont import BEND_RANGE, SoundFont, open_soundfont
from ontoscope.stimuli.synth import Nuisance

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


def modulation_ranges(space: FactorSpace) -> tuple[tuple[float, float], tuple[float, float]]:
    """Rates searched for the vibrato and the tremolo the controls add to clips of ``space``, Hz."""
    v_lo, v_hi = _span(space, "vibrato_rate")
    t_lo, t_hi = _span(space, "tremolo_rate")
    return (min(2.0, 0.8 * v_lo), max(12.0, 1.2 * v_hi)), (min(2.0, 0.8 * t_lo), max(14.0, 1.2 * t_hi))


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
