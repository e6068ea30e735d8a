"""Status heatmaps (factor x site) as inline SVG, one categorical colour per status.

Each cell carries a tooltip (``<title>``) with the status and the numbers behind it; a cell where the
latent ontology's prediction did not hold is drawn with a heavy outline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import pandas as pd
from markupsafe import Markup

__all__ = ["LATENT_COLOURS", "OPERATIONAL_COLOURS", "Cell", "latent_cells", "operational_cells", "status_svg"]

#: Predicted statuses (``ontoscope.operators.latent.STATUSES``) and their colours.
LATENT_COLOURS = {"affords": "#4caf50", "capacity-limited": "#ffb300", "alias-limited": "#e53935",
                  "rate-limited": "#8e24aa", "invariant": "#9e9e9e"}
#: Measured statuses (``ontoscope.probing.icv``) and their colours.
OPERATIONAL_COLOURS = {"icv": "#1b5e20", "entangled": "#fb8c00", "absent": "#cfd8dc"}
_OTHER = "#607d8b"
_CELL_W, _CELL_H, _CHAR = 30, 20, 6.4


@dataclass(frozen=True)
class Cell:
    """One heatmap cell: its status, tooltip, an optional short label and whether it is flagged."""

    status: str
    tooltip: str
    label: str = ""
    flagged: bool = False


def _fmt(v: object) -> str:
    if isinstance(v, (float, int)) and not isinstance(v, bool):
        return "–" if not math.isfinite(float(v)) else f"{float(v):.3g}"
    return str(v)


def _failures(comparison: pd.DataFrame) -> dict[tuple[str, str], str]:
    if comparison.empty or not {"site", "factor", "held"} <= set(comparison.columns):
        return {}
    bad = comparison[comparison["held"].notna() & ~comparison["held"].fillna(True).astype(bool)]
    text = bad["failure"] if "failure" in bad.columns else pd.Series("prediction did not hold", index=bad.index)
    return {(str(f), str(s)): str(t) if isinstance(t, str) and t else "prediction did not hold"
            for s, f, t in zip(bad["site"], bad["factor"], text, strict=True)}


def latent_cells(latent: pd.DataFrame, comparison: pd.DataFrame) -> dict[tuple[str, str], Cell]:
    """``{(factor, site): Cell}`` from one model's latent ``factors`` rows (tooltip: the reason)."""
    fails = _failures(comparison)
    cells = {}
    for _, r in latent.iterrows():
        key = (str(r["factor"]), str(r["site"]))
        tip = f"{key[0]} at {key[1]}: {r.get('status', '?')}"
        if isinstance(r.get("reason"), str) and r["reason"]:
            tip += f"\n{r['reason']}"
        if key in fails:
            tip += f"\nnot held: {fails[key]}"
        cells[key] = Cell(str(r.get("status", "?")), tip, flagged=key in fails)
    return cells


def operational_cells(best: pd.DataFrame, comparison: pd.DataFrame) -> dict[tuple[str, str], Cell]:
    """``{(factor, site): Cell}`` from one model's best operational rows (label: the ICV score)."""
    fails = _failures(comparison)
    cells = {}
    measures = ("decodability", "efficacy", "specificity", "consistency")
    for _, r in best.iterrows():
        key = (str(r["factor"]), str(r["site"]))
        score = pd.to_numeric(pd.Series([r.get("icv_score")]), errors="coerce").iloc[0]
        tip = f"{key[0]} at {key[1]}: {r.get('status', '?')} ({r.get('family', '?')})"
        tip += f"\nICV score {_fmt(score)}; " + ", ".join(f"{m} {_fmt(r[m])}" for m in measures if m in r)
        if key in fails:
            tip += f"\nnot held: {fails[key]}"
        label = "" if not math.isfinite(score) else f"{score:.2f}".lstrip("0") if score < 1 else "1"
        cells[key] = Cell(str(r.get("status", "?")), tip, label=label, flagged=key in fails)
    return cells


def _text_colour(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"


def status_svg(cells: dict[tuple[str, str], Cell], factors: list[str], sites: list[str],
               colours: dict[str, str], label: str) -> Markup:
    """An SVG heatmap: ``factors`` down, ``sites`` across; cells absent from ``cells`` are drawn empty.

    Parameters
    ----------
    cells : dict
        ``{(factor, site): Cell}``.
    factors, sites : list of str
        Row and column order.
    colours : dict
        Status to fill colour; an unknown status is slate grey.
    label : str
        The figure's accessible name (``aria-label``).
    """
    left = int(max((len(f) for f in factors), default=4) * _CHAR) + 10
    slant = int(max((len(s) for s in sites), default=4) * _CHAR * 0.72)  # a label at 45 degrees
    top = slant + 14
    width = left + _CELL_W * max(len(sites), 1) + max(8, slant - _CELL_W // 2)
    height = top + _CELL_H * max(len(factors), 1) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">',
             f"<title>{escape(label)}</title>"]
    for j, site in enumerate(sites):
        x = left + _CELL_W * j + _CELL_W / 2
        parts.append(f'<text x="{x:.1f}" y="{top - 6}" transform="rotate(-45 {x:.1f} {top - 6})" '
                     f'class="col">{escape(site)}</text>')
    for i, factor in enumerate(factors):
        y = top + _CELL_H * i
        parts.append(f'<text x="{left - 6}" y="{y + _CELL_H / 2 + 4:.1f}" text-anchor="end" class="row">'
                     f"{escape(factor)}</text>")
        for j, site in enumerate(sites):
            x = left + _CELL_W * j
            cell = cells.get((factor, site))
            if cell is None:
                parts.append(f'<rect x="{x + 1}" y="{y + 1}" width="{_CELL_W - 2}" height="{_CELL_H - 2}" '
                             f'class="empty"><title>{escape(factor)} at {escape(site)}: not measured</title></rect>')
                continue
            fill = colours.get(cell.status, _OTHER)
            stroke = ' stroke="#000" stroke-width="2.5"' if cell.flagged else ""
            parts.append(f'<g class="cell" data-status="{escape(cell.status)}"><rect x="{x + 1}" y="{y + 1}" '
                         f'width="{_CELL_W - 2}" height="{_CELL_H - 2}" fill="{fill}"{stroke}/>')
            if cell.label:
                parts.append(f'<text x="{x + _CELL_W / 2}" y="{y + _CELL_H / 2 + 3.5}" text-anchor="middle" '
                             f'class="val" fill="{_text_colour(fill)}">{escape(cell.label)}</text>')
            parts.append(f"<title>{escape(cell.tooltip)}</title></g>")
    parts.append("</svg>")
    return Markup("".join(parts))
