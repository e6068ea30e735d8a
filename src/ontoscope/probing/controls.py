"""Can the instrument see? The operational ontology run on models whose answer is known by construction.

:func:`run_controls` builds the control models of :mod:`ontoscope.models.controls` for a
stimulus set's factors, runs :func:`~ontoscope.probing.operational.operational_ontology` on
each, and marks every (control, site, factor, family) row with what the status must be:

=================  =====================================================================  =====================
control            positive cells (must be ``icv``)                                        negative cells
=================  =====================================================================  =====================
controller         every encoded factor it reads (R² at least 0.8 over the stimuli,        the omitted factor by
(trained, seeds;   :func:`control_reads`) by additive (pattern), interchange and DAS       those; every factor by
one site)          at ``bottleneck``                                                       gain, time-warp,
                                                                                           modulation; additive
                                                                                           along random directions
supervised         every static factor the head reads (held-out R² of its                  every factor it does
(trained, seeds;   training and R² over the stimuli at least 0.8) by additive              not read (the omitted
one site)          (pattern), interchange and DAS at ``bottleneck``                        static one, the
                                                                                           oscillatory ones) by
                                                                                           those
waveform           loudness by gain, f0 by time-warp, vibrato depth by a warp               every other factor by
                   modulation, tremolo depth by a gain modulation (each where linear       those; additive
                   probes read the factor off the waveform)
waveform_level     f0 by time-warp (where read)                                            loudness (and all) by gain
place              f0 by place shift                                                       every other factor by it
place_shuffled     —                                                                       f0 by place shift
=================  =====================================================================  =====================

A random direction is a negative cell of the controller alone: where a head reads only two factors, a random
direction often moves one of them nearly alone, which is control, not a false positive.
Beside every interchange and DAS row, the random subspaces of the same rank are a
negative cell of their own (an IIA that reaches the threshold there would be a false
positive of the interchange itself). Cells whose answer is not fixed by construction
(a rate under a time-warp, which moves with it by design) are left unmarked. :func:`control_rates` turns the rows into
sensitivity (share of positive cells found ``icv``) and false-positive rate (share of
negative cells found ``icv``) per family, and says whether the instrument passed:
sensitivity at least ``min_sensitivity`` and false positives at most ``max_fpr``
wherever the family has cells.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ontoscope.errors import ConfigError
from ontoscope.models.controls import ControllerModel, PlaceControl, SupervisedControl, WaveformControl
from ontoscope.models.planted import PlantedModel
from ontoscope.models.protocol import AudioModel
from ontoscope.probing.icv import ICVThresholds, icv_scores
from ontoscope.probing.interventions import FAMILIES
from ontoscope.probing.operational import operational_ontology
from ontoscope.probing.probes import r2_score
from ontoscope.progress import track
from ontoscope.stimuli.dataset import StimulusSet, set_space
from ontoscope.stimuli.factors import FactorSpace

__all__ = ["CONTROLS", "control_reads", "control_rates", "control_truth", "controls_passed", "run_controls",
           "unmark_unread"]

#: The control models, in the order they run.
CONTROLS = ("controller", "supervised", "waveform", "waveform_level", "place", "place_shuffled")
#: The held-out R² a supervised control's head must reach on a factor for that factor to be a positive cell.
MIN_FIT_R2 = 0.8
_RATES = ("vibrato_rate", "tremolo_rate", "beat_rate", "attack")


def omitted_factor(space: FactorSpace) -> str | None:
    """The factor the controller leaves out: the last varied static factor other than f0 and loudness (else the
    last varied factor), None when only one factor varies."""
    if len(space.names) < 2:
        return None
    static = [n for n in space.names if space[n].kind == "static" and n not in ("f0", "loudness")]
    return static[-1] if static else space.names[-1]


def control_truth(control: str, factor: str, family: str, variant: str, *, omitted: str | None = None,
                  read: Mapping[str, float] | None = None) -> bool | None:
    """Whether the cell must be ``icv`` (True), must not be (False), or is not fixed by construction (None).

    ``read`` is how well a trained control reads each factor it encodes (:func:`control_reads`; for the
    supervised control, the lower of that and its head's held-out ``fit_r2``): a factor read with an R² of at
    least :data:`MIN_FIT_R2` is a positive cell, one read worse is left unmarked (the control does not carry the
    factor on these stimuli: its training fell short, or its encoder misreads them, which says nothing of the
    instrument), one it does not encode is a negative cell. Without ``read`` every encoded factor counts as read.
    """
    if control == "controller":
        if family not in ("additive", "interchange", "das") or variant == "random" or factor == omitted:
            return False
        fit = (read or {}).get(factor)
        return None if fit is not None and fit < MIN_FIT_R2 else True
    if control == "supervised":
        fit = (read or {}).get(factor)
        if family not in ("additive", "interchange", "das") or variant == "random" or fit is None:
            return False
        return True if fit >= MIN_FIT_R2 else None
    if control in ("waveform", "waveform_level"):
        if family == "gain":
            return control == "waveform" and factor == "loudness"
        if family == "time_warp":
            return None if factor in _RATES else factor == "f0"
        if family == "modulation":
            if variant == "additive":
                return False
            return {("vibrato_depth", "time_warp"): True, ("tremolo_depth", "gain"): True}.get((factor, variant))
        if family == "additive":
            return False
        return None
    if control in ("place", "place_shuffled"):
        if family == "place_shift":
            return control == "place" and factor == "f0"
        if family in ("gain", "time_warp", "modulation"):
            return False
        return None
    raise ConfigError(f"unknown control {control!r}; use any of {', '.join(CONTROLS)}")


def unmark_unread(rows: pd.DataFrame, thresholds: ICVThresholds) -> pd.Series:
    """The ``expected`` column of a waveform control's rows with its unreadable positives unmarked.

    What an intervention on the waveform controls is fixed by construction, but whether linear probes read the
    factor off a raw waveform is not: with beating among the factors a vibrato's depth is hidden from them, and on
    recorded instruments a time-warp's f0 (R² 0.43 against 0.999 on the synthesizer's tones). A positive cell
    whose decodability is below ``thresholds.decodable`` becomes None, as a supervised head that fell short does.
    """
    unread = pd.to_numeric(rows["decodability"]) < thresholds.decodable
    return rows["expected"].where(~(unread & rows["expected"].eq(True)), None)


def control_reads(model: PlantedModel, stimuli: StimulusSet, *, site: str = "bottleneck",
                  chunk: int = 32) -> dict[str, float]:
    """How well a trained control carries each factor it encodes over ``stimuli``: R² of what its decoder renders.

    The factor values the control reads at ``site`` (:meth:`~ontoscope.models.planted.PlantedModel.factor_values`
    of its own activations, what the synthesizer is given) against the stimuli's nominal values, both on the
    factor's normalised scale [0, 1]; clips where the factor is undefined (a rate at depth 0) are left out.
    On the synthesizer's stimuli these are the descriptors' round trip (R² 0.93 to 1.00); on recorded
    instruments a factor the encoder misreads (a tremolo rate under the instrument's own amplitude
    fluctuations) falls short.
    """
    space = set_space(stimuli)
    values: dict[str, list[np.ndarray]] = {n: [] for n in model.encoded}
    with torch.no_grad():
        for _, audio in stimuli.chunks(chunk):
            got = model.factor_values(model.encode(audio, site), site)
            for n in model.encoded:
                values[n].append(space[n].normalize(got[n].cpu().numpy()))
    out = {}
    for n in model.encoded:
        pred = np.concatenate(values[n])
        true = space[n].normalize(stimuli.factors[n].to_numpy(dtype=np.float64))
        ok = np.isfinite(true) & np.isfinite(pred)
        out[n] = float(r2_score(torch.as_tensor(true[ok, None]), torch.as_tensor(pred[ok, None]))[0]) \
            if ok.any() else float("nan")
    return out


@dataclass(frozen=True)
class _Control:
    name: str
    build: Callable[[FactorSpace, int, int], AudioModel]
    seeded: bool
    families: tuple[str, ...]
    sites: tuple[str, ...] | None = None
    random_directions: bool = False


def _controls(space: FactorSpace) -> list[_Control]:
    """The control models for ``space``, each with the families whose cells it marks (the others would only
    repeat its negatives) and the sites it is read at."""
    omit = omitted_factor(space)
    wave = ("additive", "gain", "time_warp", "modulation")
    out = [_Control("controller", lambda sp, sr, seed: ControllerModel(sp, omit=[omit] if omit else [],
                                                                       sample_rate=sr, seed=seed), True,
                    ("additive", "gain", "time_warp", "modulation", "interchange", "das"), ("bottleneck",), True),
           _Control("waveform", lambda sp, sr, seed: WaveformControl(sample_rate=sr), False, wave),
           _Control("waveform_level", lambda sp, sr, seed: WaveformControl(sample_rate=sr, level_db=-20.0), False,
                    ("gain", "time_warp"))]
    if any(space[n].kind == "static" and n != omit for n in space.names):
        out.insert(1, _Control("supervised", lambda sp, sr, seed: SupervisedControl(sp, omit=[omit] if omit else [],
                                                                                   sample_rate=sr, seed=seed),
                               True, ("additive", "interchange", "das"), ("bottleneck",)))
    if "f0" in space.names:
        out += [_Control("place", lambda sp, sr, seed: PlaceControl(sp, sample_rate=sr, seed=seed), False,
                         ("place_shift",)),
                _Control("place_shuffled", lambda sp, sr, seed: PlaceControl(sp, shuffled=True, sample_rate=sr,
                                                                             seed=seed), False, ("place_shift",))]
    return out


def run_controls(
    stimuli: StimulusSet,
    *,
    pairs: StimulusSet | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    controls: Sequence[str] | None = None,
    n_steer: int = 8,
    das_steps: int = 40,
    thresholds: ICVThresholds | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> pd.DataFrame:
    """The operational ontology of every control model over ``stimuli``, each row marked with its truth.

    Parameters
    ----------
    stimuli, pairs : StimulusSet
        The study's stimuli and counterfactual pairs (pairs give the interchange and DAS cells).
    seeds : sequence of int
        Training seeds of the trained controls (the controller and the supervised control); the others are fixed
        models, run once.
    controls : sequence of str, optional
        A subset of :data:`CONTROLS`.
    n_steer, das_steps, thresholds, seed
        Passed to :func:`~ontoscope.probing.operational.operational_ontology`.

    Returns
    -------
    DataFrame
        The operational rows with ``control``, ``control_seed`` and ``expected`` (True / False / None).
    """
    space = set_space(stimuli)
    chosen = list(controls) if controls is not None else list(CONTROLS)
    bad = [c for c in chosen if c not in CONTROLS]
    if bad:
        raise ConfigError(f"unknown control {bad[0]!r}; use any of {', '.join(CONTROLS)}")
    if not list(seeds):
        raise ConfigError("give at least one control seed")
    omit = omitted_factor(space)
    th = thresholds or ICVThresholds()
    runs = [(c, s) for c in _controls(space) if c.name in chosen for s in (seeds if c.seeded else [seeds[0]])]
    tables = []
    for c, s in track(runs, len(runs), "controls", progress):
        model = c.build(space, stimuli.sr, s)
        op = operational_ontology(model, stimuli, pairs=pairs, sites=c.sites, families=c.families,
                                  n_steer=n_steer, das_steps=das_steps,
                                  thresholds=thresholds, seed=seed + s, random_directions=c.random_directions,
                                  progress=False)
        t = pd.concat([op.table, _random_subspaces(op.table, op.thresholds)], ignore_index=True)
        t = t.assign(control=c.name, control_seed=s)
        read = control_reads(model, stimuli) if c.name in ("controller", "supervised") else None
        if read is not None and getattr(model, "fit_r2", None):
            read = {n: min(r, model.fit_r2.get(n, r)) for n, r in read.items()}
        t["expected"] = [control_truth(c.name, r.factor, r.family, r.variant, omitted=omit, read=read)
                         for r in t.itertuples()]
        if c.name in ("waveform", "waveform_level"):
            t["expected"] = unmark_unread(t, th)
        tables.append(t)
    return pd.concat(tables, ignore_index=True)


def _random_subspaces(table: pd.DataFrame, thresholds: ICVThresholds) -> pd.DataFrame:
    """The random subspaces beside each interchange and DAS row as negative cells (``variant = random``): the
    mean IIA of random subspaces of the same rank as their efficacy, called ``icv`` when it reaches the IIA
    threshold (a random subspace that did would be a false positive of the interchange itself)."""
    t = table[table["family"].isin(["interchange", "das"]) & table["iia_random"].notna()]
    if t.empty:
        return t
    out = t.assign(variant="random", efficacy=t["iia_random"], iia=t["iia_random"], iia_random=np.nan)
    out["icv_score"] = np.nan
    out["status"] = np.where(out["efficacy"] >= thresholds.iia, "icv", "entangled")
    return out


def control_rates(rows: pd.DataFrame, thresholds: ICVThresholds | None = None, *, min_sensitivity: float = 0.95,
                  max_fpr: float = 0.05) -> pd.DataFrame:
    """Sensitivity and false-positive rate of the ``icv`` status per family over the marked control rows.

    Cells that could not be measured (no efficacy: too few pairs whose outputs differ, a factor undefined
    everywhere) are left out.

    With ``thresholds`` the rows are re-scored first (for an ROC over thresholds). Returns one row per family
    with cells: ``family, positives, found, sensitivity, negatives, false_positives, fpr, passed``.
    """
    if rows.empty or "expected" not in rows:
        raise ConfigError("no control rows to score; run the controls first")
    t = rows if thresholds is None else rows.assign(status=icv_scores(rows, thresholds)["status"])
    marked = t[t["expected"].notna() & t["efficacy"].notna()]  # a cell that could not be measured is no miss
    out = []
    for fam in FAMILIES:
        g = marked[marked["family"] == fam]
        if g.empty:
            continue
        exp = g["expected"].astype(bool)
        icv = g["status"] == "icv"
        pos, neg = int(exp.sum()), int((~exp).sum())
        found, fp = int((icv & exp).sum()), int((icv & ~exp).sum())
        sens = found / pos if pos else np.nan
        fpr = fp / neg if neg else np.nan
        ok = (not pos or sens >= min_sensitivity) and (not neg or fpr <= max_fpr)
        out.append({"family": fam, "positives": pos, "found": found, "sensitivity": sens, "negatives": neg,
                    "false_positives": fp, "fpr": fpr, "passed": bool(ok)})
    return pd.DataFrame(out)


def controls_passed(rates: pd.DataFrame) -> bool:
    """True when every family with control cells passed."""
    return bool(len(rates)) and bool(rates["passed"].all())
