"""Where a stimulus set's audio comes from: the synthesizer or recorded instruments.

:func:`render_stimuli` is the one call a study config or the command line makes:
``source="synth"`` samples the factor space and renders it with the synthesizer
(:meth:`StimulusSet.synthesize`, :func:`~ontoscope.stimuli.pairs.counterfactual_pairs`),
``source="soundfont"`` plays it on General MIDI programs of a SoundFont bank
(:func:`~ontoscope.stimuli.soundfont_set.render_soundfont_set`). Both give a
:class:`StimulusSet` with the same files, so every later stage accepts either.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ontoscope.errors import ConfigError
from ontoscope.stimuli.dataset import StimulusSet, space_to_dict
from ontoscope.stimuli.factors import FactorSpace

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
        As in :meth:`StimulusSet.render`.
    **kwargs
        Passed to the source's renderer (e.g. ``swamp_ratio`` for ``soundfont``).
    """
    if source not in SOURCES:
        raise ConfigError(f"unknown stimulus source {source!r}; use {' or '.join(SOURCES)}")
    if method not in ("uniform", "grid", "lhs"):
        raise ConfigError(f"unknown sampling method {method!r}; use uniform, grid or lhs")
    if source == "soundfont":
        from ontoscope.stimuli.soundfont_set import render_soundfont_set

        return render_soundfont_set(out, space, n, sr, seconds, seed, bank=bank, programs=programs, method=method,
                                    pairs=pairs, overwrite=overwrite, progress=progress, **kwargs)
    if bank is not None or programs is not None:
        raise ConfigError("a bank and programs belong to the soundfont source; choose source soundfont "
                          "(--source soundfont) or leave them out")
    space.check_sample_rate(sr)
    space.check_duration(seconds)
    if pairs:
        from ontoscope.stimuli.pairs import counterfactual_pairs

        table = counterfactual_pairs(space, n, seed=seed)
        meta = {"space": space_to_dict(space), "seed": seed, "pairs": True, "source": "synth"}
        return StimulusSet.render(out, table, sr, seconds, overwrite=overwrite, progress=progress, meta=meta,
                                  **kwargs)
    return StimulusSet.synthesize(out, space, n, sr, seconds, seed=seed, method=method, overwrite=overwrite,
                                  progress=progress, **kwargs)
