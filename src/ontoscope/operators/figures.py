"""Figures of a latent ontology (matplotlib figures, no pyplot), written as PNG next to its tables.

* ``ladder.png``: per site, half the frame rate (the highest rate a trajectory can follow) and
  ``periods / RF`` (the lowest rate a frame can measure), against the oscillatory factors' rate ranges.
* ``aliasing.png``: alias fraction per decimating layer (channel mean and spread) and cumulative per site.
* ``spectra.png``: pooled singular values of every conv layer, normalised by the largest.
* ``responses.png``: sine-sweep responses, channel x input frequency, for up to four sites.
* ``jacobian_cosines.png``: |cosine| between factors' Jacobian columns at up to four sites.
* ``status.png``: the predicted status of every (site, factor).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ontoscope.artifacts import save_figure

__all__ = ["LatentTables", "write_figures"]


class LatentTables(Protocol):
    """What the figures read of a :class:`ontoscope.operators.latent.LatentOntology`.

    Its model name, its meta and its tables as attributes (an empty table where one is missing). A protocol,
    so that this module does not import :mod:`ontoscope.operators.latent`, which imports it to draw.
    """

    model: str
    meta: dict[str, Any]

    def __getattr__(self, name: str) -> pd.DataFrame: ...

_STATUS_COLOURS = {"affords": "#4caf50", "capacity-limited": "#ffb300", "alias-limited": "#e53935",
                   "rate-limited": "#8e24aa", "invariant": "#9e9e9e"}


def _pick_sites(sites: list[str], n: int = 4) -> list[str]:
    if len(sites) <= n:
        return sites
    idx = np.unique(np.linspace(0, len(sites) - 1, n).round().astype(int))
    return [sites[i] for i in idx]


def write_figures(onto: LatentTables, directory: str | os.PathLike) -> list[Path]:
    """Draw every figure that the ontology's tables allow into ``directory``; returns the paths written."""
    d = Path(directory)
    out: list[Path] = []
    for fn in (_ladder, _aliasing, _spectra, _responses, _cosines, _status):
        p = fn(onto, d)
        if p is not None:
            out.append(p)
    return out


def _ladder(onto: LatentTables, d: Path) -> Path | None:
    geo = onto.sites
    if not len(geo):
        return None
    x = np.arange(len(geo))
    fig = Figure(figsize=(max(6, 0.5 * len(geo) + 2), 4.5))
    ax = fig.subplots()
    nyq = geo["frame_rate_hz"].to_numpy(dtype=float) / 2
    periods = float(onto.meta.get("thresholds", {}).get("periods", 1.0))
    rf = geo["receptive_field_s"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        min_rate = np.where(geo["global_context"].to_numpy(bool), np.nan, periods / rf)
    ax.plot(x, nyq, "o-", label="frame rate / 2 (trajectory up to)")
    ax.plot(x, min_rate, "s--", label=f"{periods:g} / receptive field (per frame from)")
    mod = onto.modulation
    if len(mod):
        colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        ranges = mod.drop_duplicates("rate_factor")[["rate_factor", "rate_lo_hz", "rate_hi_hz"]]
        for i, (_, r) in enumerate(ranges.iterrows()):
            ax.axhspan(r["rate_lo_hz"], max(r["rate_hi_hz"], r["rate_lo_hz"] * 1.02), alpha=0.18,
                       color=colours[(i + 2) % len(colours)], label=r["rate_factor"])
    ax.set_yscale("log")
    ax.set_xticks(x, geo["site"], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("rate (Hz)")
    ax.set_title(f"{onto.model}: frame-rate and receptive-field ladder")
    ax.legend(fontsize=7, loc="best")
    return save_figure(d / "ladder.png", fig)


def _aliasing(onto: LatentTables, d: Path) -> Path | None:
    al, cum = onto.aliasing, onto.alias_sites
    if not len(al) and not len(cum):
        return None
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    if len(al):
        g = al.groupby(["depth", "layer"], sort=True)["alias_fraction"]
        stats = g.agg(["mean", "min", "max"]).reset_index()
        xs = np.arange(len(stats))
        axes[0].bar(xs, stats["mean"], color="#5c6bc0")
        axes[0].errorbar(xs, stats["mean"], yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                         fmt="none", ecolor="k", lw=0.8)
        axes[0].set_xticks(xs, [f"{r.depth}: {r.layer}" for r in stats.itertuples()], rotation=60, ha="right",
                           fontsize=7)
    axes[0].set_ylim(0, 1)
    axes[0].set_ylabel("energy outside |f| < 1/(2s)")
    axes[0].set_title("per decimating layer (channel mean, min-max)")
    if len(cum):
        axes[1].plot(np.arange(len(cum)), cum["alias_cumulative"], "o-")
        axes[1].set_xticks(np.arange(len(cum)), cum["site"], rotation=60, ha="right", fontsize=7)
    axes[1].set_ylim(0, 1)
    axes[1].set_title("cumulative alias fraction per site")
    fig.suptitle(onto.model)
    return save_figure(d / "aliasing.png", fig)


def _spectra(onto: LatentTables, d: Path) -> Path | None:
    sv = onto.spectra_values
    if not len(sv):
        return None
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    layers = list(dict.fromkeys(sv["layer"]))
    cmap = matplotlib.colormaps["viridis"]
    for i, layer in enumerate(layers):
        s = sv[sv["layer"] == layer]
        top = s["sigma"].max()
        if top > 0:
            ax.plot(s["quantile"], s["sigma"] / top, color=cmap(i / max(len(layers) - 1, 1)), lw=1,
                    label=layer if len(layers) <= 12 else None)
    ax.set_yscale("log")
    ax.set_xlabel("rank (fraction of all singular values)")
    ax.set_ylabel("sigma / sigma_max")
    ax.set_title(f"{onto.model}: conv singular values (circular, per layer; early = dark)")
    if len(layers) <= 12:
        ax.legend(fontsize=6)
    return save_figure(d / "spectra.png", fig)


def _responses(onto: LatentTables, d: Path) -> Path | None:
    r = onto.responses
    if not len(r):
        return None
    sites = _pick_sites(list(dict.fromkeys(r["site"])))
    fig = Figure(figsize=(4 * len(sites), 4))
    axes = fig.subplots(1, len(sites), squeeze=False)
    for ax, s in zip(axes[0], sites, strict=True):
        sub = r[r["site"] == s]
        piv = sub.pivot(index="channel", columns="freq_hz", values="response").to_numpy()
        top = piv.max(1, keepdims=True)
        norm = np.divide(piv, top, out=np.zeros_like(piv), where=top > 0)
        order = np.argsort(norm.argmax(1))
        freqs = np.sort(sub["freq_hz"].unique())
        ax.pcolormesh(freqs, np.arange(norm.shape[0]), norm[order], shading="auto", cmap="magma")
        ax.set_xscale("log")
        ax.set_title(s, fontsize=9)
        ax.set_xlabel("input frequency (Hz)")
    axes[0][0].set_ylabel("channel (sorted by peak)")
    fig.suptitle(f"{onto.model}: sine-sweep response per channel (normalised)")
    return save_figure(d / "responses.png", fig)


def _cosines(onto: LatentTables, d: Path) -> Path | None:
    jp = onto.jacobian_pairs
    if not len(jp):
        return None
    use = jp[jp["weights"] == "init"] if (jp["weights"] == "init").any() else jp
    sites = _pick_sites(list(dict.fromkeys(use["site"])))
    names = list(dict.fromkeys(list(use["factor_a"]) + list(use["factor_b"])))
    fig = Figure(figsize=(4.2 * len(sites), 4))
    axes = fig.subplots(1, len(sites), squeeze=False)
    im = None
    for n, (ax, s) in enumerate(zip(axes[0], sites, strict=True)):
        sub = use[use["site"] == s].assign(abs_cos=lambda t: t["cos_gram"].abs())
        sub = sub.groupby(["factor_a", "factor_b"])["abs_cos"].mean()  # |cos| per seed, then the mean
        m = np.eye(len(names))
        for (a, b), v in sub.items():
            i, j = names.index(a), names.index(b)
            m[i, j] = m[j, i] = v if v == v else np.nan
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        ax.set_yticks(range(len(names)), names if n == 0 else [], fontsize=6)
        ax.set_title(s, fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="|cos| of Jacobian columns")
    label = "initialisation (mean over seeds)" if (jp["weights"] == "init").any() else "given weights"
    fig.suptitle(f"{onto.model}: factor entanglement, {label}")
    return save_figure(d / "jacobian_cosines.png", fig)


def _status(onto: LatentTables, d: Path) -> Path | None:
    f = onto.factors
    if not len(f):
        return None
    sites = list(dict.fromkeys(f["site"]))
    names = list(dict.fromkeys(f["factor"]))
    keys = list(_STATUS_COLOURS)
    grid = pd.pivot_table(f.assign(code=f["status"].map(keys.index)), index="factor", columns="site",
                          values="code", aggfunc="first").reindex(index=names, columns=sites)
    fig = Figure(figsize=(max(6, 0.45 * len(sites) + 3), 0.35 * len(names) + 2))
    ax = fig.subplots()
    ax.imshow(grid.to_numpy(dtype=float), cmap=ListedColormap([_STATUS_COLOURS[k] for k in keys]),
              vmin=-0.5, vmax=len(keys) - 0.5, aspect="auto")
    ax.set_xticks(range(len(sites)), sites, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.legend(handles=[Patch(color=_STATUS_COLOURS[k], label=k) for k in keys], fontsize=7,
              bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title(f"{onto.model}: predicted status (latent ontology)")
    return save_figure(d / "status.png", fig)
