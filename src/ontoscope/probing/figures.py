"""Figures of what the sites encode (matplotlib figures, no pyplot: written as PNG by the Agg canvas)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ontoscope.artifacts import ensure_dir, save_figure
from ontoscope.probing.icv import best_family
from ontoscope.stimuli.factors import get_factor

__all__ = ["write_operational_figures", "write_probe_figures"]

_TAB20 = matplotlib.colormaps["tab20"]


def write_probe_figures(probes: pd.DataFrame, directory: str | os.PathLike,
                        metrics: pd.DataFrame | None = None) -> list[Path]:
    """Held-out R² of every factor down the sites, one panel per view; and the metrics per site.

    Solid lines are static factors, dashed ones oscillatory; the ridge probe is
    drawn (the MLP probe, where present, as faint markers). Returns the written paths.
    """
    d = ensure_dir(directory)
    out = []
    views = list(dict.fromkeys(probes["view"]))
    sites = probes.drop_duplicates("site").sort_values("site_index")["site"].tolist()
    fig = Figure(figsize=(4.2 * len(views) + 1.5, 3.6))
    axes = fig.subplots(1, len(views), squeeze=False, sharey=True)
    for ax, view in zip(axes[0], views, strict=True):
        sub = probes[probes["view"] == view]
        for i, (factor, g) in enumerate(sub.groupby("factor", sort=False)):
            style = "--" if get_factor(factor).kind == "oscillatory" else "-"
            r = g[g["probe"] == "ridge"].sort_values("site_index")
            (line,) = ax.plot(r["site_index"], r["test_r2"].clip(lower=-0.1), style, marker="o", ms=3,
                              color=_TAB20(i % 20), label=factor)
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
        fig = Figure(figsize=(6.5, 3.4))
        ax = fig.subplots()
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
    """The ICV score of every factor down the sites (best family of each pair), and the dose–response curves.

    ``table`` and ``effects`` are :class:`~ontoscope.probing.operational.OperationalOntology`'s.
    ``icv_by_site.png``: one line per factor, the marker naming the family that scored best.
    ``dose_response.png``: one panel per steering family, the intended factor's change (normalised units,
    odd part for signed families, mean change for modulations) against the dose on a log axis, one line per
    (site, factor); filled markers where the row's status is ``icv``.
    """
    d = ensure_dir(directory)
    out = []
    sites = table.drop_duplicates("site").sort_values("site_index")["site"].tolist()
    pos = {s: i for i, s in enumerate(sites)}
    rows = table[table["variant"] != "random"] if "variant" in table else table
    best = best_family(rows, ["site", "factor"])
    markers = {"additive": "o", "gain": "s", "time_warp": ">", "place_shift": "D", "modulation": "^",
               "interchange": "x", "das": "*"}
    fig = Figure(figsize=(max(5.0, 0.6 * len(sites) + 3), 3.6))
    ax = fig.subplots()
    for i, (factor, g) in enumerate(best.groupby("factor", sort=False)):
        style = "--" if get_factor(factor).kind == "oscillatory" else "-"
        g = g.sort_values("site_index")
        colour = _TAB20(i % 20)
        ax.plot([pos[s] for s in g["site"]], g["icv_score"], style, color=colour, label=factor)
        for r in g.itertuples():
            ax.plot(pos[r.site], r.icv_score, markers.get(r.family, "o"), color=colour, ms=5,
                    mfc=colour if r.status == "icv" else "white")
    ax.set_xticks(range(len(sites)), sites, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("ICV score (best family)")
    ax.set_xlabel("site")
    handles = [Line2D([], [], marker=m, ls="", color="k", label=f) for f, m in markers.items()
               if f in set(best["family"])]
    first = ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.65))
    ax.add_artist(first)
    ax.legend(handles=handles, fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.1), title="family",
              title_fontsize=6)
    out.append(save_figure(d / "icv_by_site.png", fig))
    if len(effects):
        own = effects[(effects["measured"] == effects["intended"]) & (effects.get("variant", "") != "random")]
        fams = [f for f in markers if f in set(own["family"])]
        status = rows.set_index(["site", "factor", "family", "variant"])["status"].to_dict()
        fig = Figure(figsize=(3.2 * len(fams) + 1.5, 3.0))
        axes = fig.subplots(1, len(fams), squeeze=False)
        for ax, fam in zip(axes[0], fams, strict=True):
            g = own[own["family"] == fam]
            for i, ((site, factor, variant), c) in enumerate(g.groupby(["site", "intended", "variant"], sort=False)):
                c = c.sort_values("dose")
                colour = _TAB20(i % 20)
                icv = status.get((site, factor, fam, variant)) == "icv"
                ax.plot(c["dose"], c["response"], "-", marker="o", ms=3, color=colour, mfc=colour if icv else "white",
                        label=f"{factor} @ {site}" + (f" ({variant})" if fam == "modulation" else ""))
            ax.set_xscale("log")
            ax.axhline(0, color="0.7", lw=0.5)
            ax.set_title(fam, fontsize=8)
            ax.set_xlabel("dose", fontsize=7)
            ax.tick_params(labelsize=6)
        axes[0][0].set_ylabel("change of the intended factor (normalised)", fontsize=7)
        handles, labels = axes[0][-1].get_legend_handles_labels()
        if len(labels) <= 24:
            axes[0][-1].legend(fontsize=5, loc="center left", bbox_to_anchor=(1.01, 0.5))
        out.append(save_figure(d / "dose_response.png", fig))
    return out
