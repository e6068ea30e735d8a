"""The report's own figures (matplotlib figures, no pyplot): ICV score against the knobs, and spectrograms of
steering examples (base against steered)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.signal import spectrogram

from ontoscope.artifacts import save_figure
from ontoscope.report.summaries import KNOB_LABELS, canonical_knob

__all__ = ["knob_figure", "spectrogram_figure"]

_KIND_STYLE = {"static": ("#1565c0", "o", "-"), "oscillatory": ("#ef6c00", "s", "--")}


def _numeric(values: pd.Series) -> np.ndarray | None:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    return x if np.isfinite(x).all() else None


def knob_figure(means: pd.DataFrame, path: str | os.PathLike) -> Path | None:
    """Mean ICV score against each knob, one panel per knob, one line per factor kind, with error bars.

    Parameters
    ----------
    means : DataFrame
        ``knob, value, factor_kind, mean, ci_low, ci_high`` (:func:`~ontoscope.report.summaries.plotted_means`).
    path : path
        The PNG to write.

    Returns
    -------
    Path or None
        None when ``means`` has no rows.
    """
    if means.empty:
        return None
    means = means.assign(knob=means["knob"].map(canonical_knob))
    knobs = [k for k in KNOB_LABELS if k in set(means["knob"])] + sorted(set(means["knob"]) - set(KNOB_LABELS))
    fig = Figure(figsize=(3.1 * len(knobs) + 0.6, 3.0))
    axs = fig.subplots(1, len(knobs), squeeze=False, sharey=True)
    for ax, knob in zip(axs[0], knobs, strict=True):
        sub = means[means["knob"] == knob]
        raw = list(dict.fromkeys(sub["value"]))
        num = _numeric(pd.Series(raw, dtype=object))
        values = [raw[i] for i in np.argsort(num, kind="stable")] if num is not None else sorted(raw, key=str)
        pos = dict(zip(values, np.sort(num) if num is not None else np.arange(len(values), dtype=float),
                       strict=True))
        log = num is not None and bool((num > 0).all()) and num.max() / num.min() >= 4
        for kind, g in sub.groupby("factor_kind", sort=True):
            colour, marker, line = _KIND_STYLE.get(str(kind), ("#455a64", "^", ":"))
            g = g.drop_duplicates("value").set_index("value").reindex(values).dropna(subset=["mean"])
            x = np.array([pos[v] for v in g.index], dtype=float)
            y = g["mean"].to_numpy(dtype=float)
            lo = np.nan_to_num(y - g["ci_low"].to_numpy(dtype=float), nan=0.0).clip(min=0)
            hi = np.nan_to_num(g["ci_high"].to_numpy(dtype=float) - y, nan=0.0).clip(min=0)
            ax.errorbar(x, y, yerr=[lo, hi], color=colour, marker=marker, ls=line, capsize=3, ms=5, label=str(kind))
        if log:
            ax.set_xscale("log", base=2)
            ax.minorticks_off()
        ax.set_xticks([pos[v] for v in values], [f"{pos[v]:g}" if num is not None else str(v) for v in values])
        ax.set_xlabel(KNOB_LABELS.get(knob, knob))
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axs[0][0].set_ylabel("mean ICV score")
    axs[0][-1].legend(fontsize=8, title="factors", title_fontsize=8, loc="best")
    return save_figure(path, fig)


def spectrogram_figure(base: np.ndarray, steered: np.ndarray, sr: int, path: str | os.PathLike,
                       title: str) -> Path:
    """Spectrograms of the base clip and the steered one side by side, on one colour scale (dB).

    Parameters
    ----------
    base, steered : ndarray ``[samples]``
    sr : int
        Sample rate in Hz.
    path : path
        The PNG to write.
    title : str
    """
    nper = int(min(512, max(64, 2 ** np.floor(np.log2(max(len(base), 2) / 8)))))
    specs = []
    for x in (base, steered):
        f, t, s = spectrogram(np.asarray(x, dtype=np.float64), fs=sr, nperseg=min(nper, len(x)),
                              noverlap=min(nper, len(x)) * 3 // 4, scaling="spectrum")
        specs.append((f, t, 10 * np.log10(s + 1e-12)))
    top = max(float(s.max()) for _, _, s in specs)
    fig = Figure(figsize=(7.6, 2.6))
    axs = fig.subplots(1, 2, sharey=True)
    for ax, (f, t, s), name in zip(axs, specs, ("base", "steered"), strict=True):
        mesh = ax.pcolormesh(t, f / 1000, s, shading="auto", cmap="magma", vmin=top - 80, vmax=top)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("time (s)")
    axs[0].set_ylabel("frequency (kHz)")
    fig.colorbar(mesh, ax=list(axs), label="dB", shrink=0.9)
    fig.suptitle(title, fontsize=9, y=1.02)
    return save_figure(path, fig)
