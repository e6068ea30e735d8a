"""Descriptors: estimate every factor of the canon back from audio, plus the standard spectral set.

:func:`measure` is the entry point; the estimators live in

- :mod:`~ontoscope.descriptors.pitch`: f0 track (YIN with sub-sample refinement);
- :mod:`~ontoscope.descriptors.partials`: the partials measured on a pitch-synchronous spectrum
  (shared by the f0 correction and the harmonic descriptors);
- :mod:`~ontoscope.descriptors.harmonic`: spectral tilt, odd/even balance, inharmonicity, HNR;
- :mod:`~ontoscope.descriptors.envelope`: loudness, attack, tremolo, beating (roughness);
- :mod:`~ontoscope.descriptors.modulation`: sinusoid fits, vibrato from the f0 track;
- :mod:`~ontoscope.descriptors.spectral`: centroid, spread, flatness, rolloff, RMS (as librosa).

Every estimator returns an :class:`~ontoscope.descriptors.estimate.Estimate` (``value`` ``[B]`` or
``[B, T]``, ``unit``, a ``reason`` per clip: ``""`` where the value is defined; ``times`` for a
track), or a dict of them keyed by name where one analysis gives several quantities.

:mod:`~ontoscope.descriptors.renders` makes the stimulus sets that are measured as they are rendered
(SoundFont sets) and holds ``render_stimuli``, the one call that renders any set.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from ontoscope.descriptors.envelope import envelope_descriptors
from ontoscope.descriptors.estimate import Estimate, reasons_where_undefined
from ontoscope.descriptors.harmonic import harmonic_summary
from ontoscope.descriptors.modulation import vibrato
from ontoscope.descriptors.pitch import clip_f0, f0_track
from ontoscope.descriptors.spectral import spectral_summary
from ontoscope.descriptors.validate import as_audio_batch
from ontoscope.errors import ConfigError, SampleRateError
from ontoscope.progress import track

#: Columns of :func:`measure` that estimate canon factors, in canonical order.
FACTOR_COLUMNS = ("f0", "loudness", "brightness", "odd_even", "inharmonicity", "noise", "attack",
                  "vibrato_rate", "vibrato_depth", "tremolo_rate", "tremolo_depth", "beat_rate", "beat_depth")
#: The standard spectral descriptors :func:`measure` adds (frame means; Hz, except flatness and RMS).
SPECTRAL_COLUMNS = ("centroid", "spread", "flatness", "rolloff", "rms")

#: An f0 tracker :func:`measure` can be given in place of YIN: ``tracker(audio [B, N], sr)`` returns
#: an :class:`~ontoscope.descriptors.estimate.Estimate` with ``value`` f0 ``[B, T]`` in Hz (NaN where
#: unvoiced) and ``times`` ``[T]`` in s, as :func:`~ontoscope.descriptors.pitch.f0_track` does, or
#: the triple ``(f0 [B, T] Hz, confidence [B, T], times [T] s)`` (e.g. the PESTO tracker of the
#: models layer, :func:`ontoscope.models.adapters.pesto.pesto_f0_track`).
F0Tracker = Callable[[torch.Tensor, int], Estimate | tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def measure(
    audio: np.ndarray | torch.Tensor,
    sr: int,
    *,
    fmin: float = 50.0,
    fmax: float = 2000.0,
    hop_seconds: float = 0.005,
    n_fft: int = 2048,
    hop: int = 512,
    chunk: int = 64,
    f0_method: str | F0Tracker = "yin",
    progress: bool | None = False,
) -> pd.DataFrame:
    """Measure every canon factor and the standard spectral descriptors of each clip.

    Parameters
    ----------
    audio : array or tensor, ``[samples]`` or ``[batch, samples]``
        Mono audio, float, full scale 1.
    sr : int
        Sample rate in Hz.
    fmin, fmax : float
        f0 search range in Hz; ``fmax`` must lie below Nyquist.
    hop_seconds : float
        Hop of the f0 track.
    n_fft, hop : int
        STFT size and hop of the spectral descriptors (as librosa's defaults).
    chunk : int
        Clips analysed at once (bounds memory).
    f0_method : "yin" or an :data:`F0Tracker`
        ``"yin"``: the classical estimator of :func:`~ontoscope.descriptors.pitch.f0_track`
        (default); or a tracker the caller passes in, such as the pretrained neural
        estimator :func:`ontoscope.models.adapters.pesto.pesto_f0_track` (needs
        ``pesto-pitch``, whose weights ship in the package; 10 ms frames). A tracker's
        f0 outside ``[fmin, fmax]`` is unvoiced. The f0 track feeds the vibrato,
        harmonic and envelope estimates too.
    progress : bool, optional
        Show a progress bar over chunks (None: when stderr is a terminal).

    Returns
    -------
    DataFrame
        One row per clip. Factor columns use the canon's names and units
        (``docs/synthesis.md``): ``f0`` (Hz; the vibrato centre where there is
        vibrato), ``loudness`` (dBFS), ``brightness`` (dB/octave),
        ``odd_even`` (dB), ``inharmonicity`` (B), ``noise`` (HNR, dB),
        ``attack`` (s), ``vibrato_rate`` (Hz), ``vibrato_depth`` (cents),
        ``tremolo_rate`` (Hz), ``tremolo_depth``, ``beat_rate`` (Hz),
        ``beat_depth``; then ``centroid``, ``spread``, ``rolloff`` (Hz),
        ``flatness``, ``rms``; ``voiced`` (fraction of voiced f0 frames); and
        ``reason``: for every NaN value, ``"column: why"`` (joined by ``"; "``),
        empty where all is defined. Undefined values (silence, unpitched noise, no
        modulation) are NaN, never made up.
    """
    x = as_audio_batch(audio, sr, min_samples=max(n_fft // 4, int(0.05 * sr)))
    if fmax >= sr / 2:
        raise SampleRateError(f"fmax={fmax} Hz is not below Nyquist ({sr / 2:g} Hz at {sr} Hz); lower fmax")
    if f0_method == "pesto":
        raise ConfigError("the PESTO f0 tracker belongs to the models layer: pass "
                          "f0_method=ontoscope.models.adapters.pesto.pesto_f0_track")
    if not callable(f0_method) and f0_method != "yin":
        raise ConfigError(f"unknown f0 method {f0_method!r}; use yin or an f0 tracker (a callable)")
    parts = []
    starts = range(0, x.shape[0], chunk)
    for s in track(starts, len(starts), f"measuring {x.shape[0]} clips", progress):
        a = x[s:s + chunk]
        if callable(f0_method):
            f0, times = _tracked(f0_method(a, sr))
            f0 = torch.where((f0 >= fmin) & (f0 <= fmax), f0, torch.full_like(f0, float("nan")))
        else:
            yin = f0_track(a, sr, fmin=fmin, fmax=fmax, hop_seconds=hop_seconds)
            f0, times = yin.value, yin.times
        vib = vibrato(f0, times)
        harm = harmonic_summary(a, sr, f0_track=f0, hop_seconds=hop_seconds)
        env = envelope_descriptors(a, sr, f0_track=f0, hnr=harm["hnr"].value)
        spec = spectral_summary(a, sr, n_fft=n_fft, hop=hop)
        median_f0 = clip_f0(f0)
        # with vibrato, the clip's f0 is the centre of the fitted modulation, not the track's median
        rate, centre = vib["vibrato_rate"].value, vib["vibrato_centre"].value
        f0_clip = torch.where(torch.isfinite(rate) & torch.isfinite(centre), centre.to(median_f0.value),
                              median_f0.value)
        factors = {
            "f0": Estimate(f0_clip, "Hz", reasons_where_undefined(f0_clip, median_f0.reason)),
            "loudness": env["loudness"],
            "brightness": harm["brightness"], "odd_even": harm["odd_even"],
            "inharmonicity": harm["inharmonicity"], "noise": harm["hnr"], "attack": env["attack"],
            "vibrato_rate": vib["vibrato_rate"], "vibrato_depth": vib["vibrato_depth"],
            "tremolo_rate": env["tremolo_rate"], "tremolo_depth": env["tremolo_depth"],
            "beat_rate": env["beat_rate"], "beat_depth": env["beat_depth"],
        }
        values = {k: e.value for k, e in factors.items()} | {k: spec[k].value for k in SPECTRAL_COLUMNS}
        table = pd.DataFrame({k: v.detach().cpu().double().numpy() for k, v in values.items()})
        table["voiced"] = torch.isfinite(f0).float().mean(-1).cpu().numpy()
        # the factors' reasons; the spectral columns (NaN only for silent clips) read "undefined"
        reasons = {k: e.reason for k, e in factors.items()}
        table["reason"] = [_reason_line(table.iloc[i], reasons, i) for i in range(len(table))]
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def _tracked(result: Estimate | tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """f0 ``[B, T]`` (Hz) and frame times ``[T]`` (s) from what an :data:`F0Tracker` returned."""
    if isinstance(result, Estimate):
        if result.times is None:
            raise ConfigError("an f0 tracker's Estimate must carry the frame times (times=...)")
        return result.value, result.times
    f0, _, times = result
    return f0, times


def _reason_line(row: pd.Series, reasons: dict[str, tuple[str, ...]], i: int) -> str:
    out = []
    for col in (*FACTOR_COLUMNS, *SPECTRAL_COLUMNS):
        if not np.isfinite(row[col]):
            why = reasons[col][i] if col in reasons else ""
            out.append(f"{col}: {why or 'undefined'}")
    return "; ".join(out)


__all__ = ["FACTOR_COLUMNS", "SPECTRAL_COLUMNS", "Estimate", "F0Tracker", "measure"]
