"""Choosing the steering examples the report plays: a few (site, factor) per model with both WAV files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ontoscope.report.summaries import best_rows, bottleneck_site, site_roles

__all__ = ["Example", "select_examples"]


@dataclass(frozen=True)
class Example:
    """One steering example: the operational row it illustrates, its two WAV files and why it was chosen."""

    site: str
    factor: str
    why: str
    row: dict
    base: Path
    steered: Path
    role: str = ""


def _score(row: pd.Series) -> float:
    v = pd.to_numeric(pd.Series([row.get("icv_score")]), errors="coerce").iloc[0]
    return float(v) if math.isfinite(v) else -1.0


def select_examples(operational: pd.DataFrame, examples_dir: Path | None, k: int = 3) -> list[Example]:
    """Up to ``k`` examples from one model's operational rows, each with ``<site>/<factor>_base.wav`` and
    ``_steered.wav`` under ``examples_dir``.

    The first is the highest-scoring static factor at the bottleneck (the site of role ``bottleneck``; the
    deepest site for a model without one), the second the highest-scoring oscillatory factor there (to hear
    what claim 2 is about), then the highest-scoring remaining (site, factor) pairs. Each is the family that
    controls the pair, at its kept dose (what the WAV files hold).
    """
    if k <= 0 or examples_dir is None or operational.empty or not examples_dir.is_dir():
        return []
    rows = best_rows(operational)
    have = []
    for _, r in rows.iterrows():
        base = examples_dir / str(r["site"]) / f"{r['factor']}_base.wav"
        steered = examples_dir / str(r["site"]) / f"{r['factor']}_steered.wav"
        if base.is_file() and steered.is_file():
            have.append((r, base, steered))
    if not have:
        return []
    neck = bottleneck_site(rows)
    roles = site_roles(rows)
    have.sort(key=lambda h: -_score(h[0]))
    chosen: list[Example] = []

    def take(pick, why: str) -> None:
        for r, base, steered in have:
            if len(chosen) >= k:
                return
            if pick(r) and all((e.site, e.factor) != (str(r["site"]), str(r["factor"])) for e in chosen):
                chosen.append(Example(str(r["site"]), str(r["factor"]), why, r.to_dict(), base, steered,
                                      roles.get(str(r["site"]), "")))
                return

    take(lambda r: str(r["site"]) == neck and r.get("factor_kind", "static") == "static",
         "the highest-scoring static factor at the bottleneck")
    take(lambda r: str(r["site"]) == neck and r.get("factor_kind") == "oscillatory",
         "the highest-scoring oscillatory factor at the bottleneck")
    while len(chosen) < min(k, len(have)):
        before = len(chosen)
        take(lambda r: True, "the next highest ICV score")
        if len(chosen) == before:
            break
    return chosen
