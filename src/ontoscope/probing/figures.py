"""Figures of what the sites encode (matplotlib, Agg backend), written as PNG."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ontoscope.artifacts import ensure_dir, save_figure
from ontoscope.stimuli.factors import get_factor

__all__ = ["write_operational_figures", "write_probe_figures"]


def write_probe_figures(probes: pd.DataFrame, directory: str | os.PathLike,
                        metrics: pd.DataFrame | None = None) -> list[Path]:
    """Held-out R² of every factor down the sites, one panel per view; and the metrics per site.

    Solid lines are static factors, dashed ones oscillatory; the ridge probe is
    drawn (the MLP probe, where present, as faint markers). Returns the written paths.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    d = ensure_dir(directory)
    out = []
    views = list(dict.fromkeys(probes["view"]))
    sites = probes.drop_duplicates("site").sort_values("site_index")["site"].tolist()
    fig, axes = plt.subplots(1, len(views), figsize=(4.2 * len(views) + 1.5, 3.6), squeeze=False, sharey=True)
    for ax, view in zip(axes[0], views, strict=True):
        sub = probes[probes["view"] == view]
        for i, (factor, g) in enumerate(sub.groupby("factor", sort=False)):
            style = "--" if get_factor(factor).kind == "oscillatory" else "-"
            r = g[g["probe"] == "ridge"].sort_values("site_index")
            (line,) = ax.plot(r["site_index"], r["test_r2"].clip(lower=-0.1), style, marker="o", ms=3,
                              color=plt.cm.tab20(i % 20), label=factor)
            m = g[g["probe"] == "mlp"].sort_values("site_index")
            if len(m):
                ax.plot(m["site_index"], m["test_r2"].clip(lower=-0.1), "x", ms=4, color=line.get_color(), alpha=0.5)
        ax.set_title(f"{view} view")
        ax.set_xticks(range(len(sites)), sites, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(-0.1, 1.02)
        ax.axhline(0, color="0.8", lw=0.6)
        ax.set_xlabel("site")
    axes[0][0].set_ylabel("held-out R² (ridge; x: MLP)")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    out.append(save_figure(d / "r2_by_site.png", fig))
    if metrics is not None and len(metrics):
        keys = [k for k in ("dci_disentanglement", "dci_completeness", "dci_informativeness", "mig", "sap",
                            "modularity", "explicitness", "mcc") if k in metrics]
        fig, ax = plt.subplots(figsize=(6.5, 3.4))
        m = metrics.sort_values("site_index")
        for k in keys:
            ax.plot(m["site_index"], m[k], marker="o", ms=3, label=k)
        ax.set_xticks(range(len(m)), m["site"], rotation=60, ha="right", fontsize=7)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("score")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        out.append(save_figure(d / "metrics_by_site.png", fig))
    return out


def write_operational_figures(table: pd.DataFrame, effects: pd.DataFrame, directory: str | os.PathLike
                              ) -> list[Path]:
    """The ICV score of every factor down the sites, and the static effect matrix of each site as a heatmap.

    ``table`` and ``effects`` are :class:`~ontoscope.probing.operational.OperationalOntology`'s. In the
    heatmaps, row ``i`` is the factor steered, column ``j`` the factor measured, the colour the slope
    ``E[i, j]`` (normalised units per standard deviation of the site along the direction).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    d = ensure_dir(directory)
    out = []
    sites = table.drop_duplicates("site").sort_values("site_index")["site"].tolist()
    pos = {s: i for i, s in enumerate(sites)}
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(sites) + 3), 3.6))
    for i, ((factor, kind), g) in enumerate(table.groupby(["factor", "kind"], sort=False)):
        style = "--" if get_factor(factor).kind == "oscillatory" else "-"
        g = g.sort_values("site_index")
        marker = "o" if kind == "static" else "^"
        ax.plot([pos[s] for s in g["site"]], g["icv_score"], style, marker=marker, ms=4,
                color=plt.cm.tab20(i % 20), label=factor if kind == "static" else f"{factor} (temporal)")
    ax.set_xticks(range(len(sites)), sites, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("ICV score")
    ax.set_xlabel("site")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    out.append(save_figure(d / "icv_by_site.png", fig))
    static = effects[effects["kind"] == "static"] if len(effects) else effects
    if len(static):
        names = list(dict.fromkeys(static["measured"]))
        fig, axes = plt.subplots(1, len(sites), figsize=(2.6 * len(sites) + 1.2, 2.9), squeeze=False)
        lim = float(np.nanmax(np.abs(static["slope"]))) or 1.0
        for ax, site in zip(axes[0], sites, strict=True):
            m = (static[static["site"] == site].pivot_table(index="intended", columns="measured", values="slope")
                 .reindex(index=names, columns=names))
            im = ax.imshow(m.to_numpy(dtype=float), cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(site, fontsize=8)
            ax.set_xticks(range(len(names)), names, rotation=70, fontsize=6)
            ax.set_yticks(range(len(names)), names if ax is axes[0][0] else [], fontsize=6)
        axes[0][0].set_ylabel("steered")
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="slope (normalised / σ)")
        out.append(save_figure(d / "effects_by_site.png", fig))
    return out
