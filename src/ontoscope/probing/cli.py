"""``ontoscope probe MODEL_REF --data STIMULI_DIR --out DIR``: what a model's sites encode.

:func:`probe_command` is the command's body: capture the sites over the
stimulus set (resumable), probe every (site, view, factor), score the
disentanglement of each site, and write ``probes.parquet``, ``metrics.parquet``
and the figures under ``DIR``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from ontoscope.artifacts import ensure_dir, save_table
from ontoscope.errors import ConfigError
from ontoscope.models.registry import load_model
from ontoscope.probing.capture import capture
from ontoscope.probing.decodability import factor_targets, probe_capture, site_metrics
from ontoscope.probing.figures import write_operational_figures, write_probe_figures
from ontoscope.probing.interventions import FAMILIES
from ontoscope.probing.operational import operational_ontology
from ontoscope.probing.sae import sae_site_analysis
from ontoscope.probing.views import VIEWS
from ontoscope.stimuli.dataset import StimulusSet, set_space

__all__ = ["probe_command"]


def probe_command(
    model_ref: str,
    data: Path,
    out: Path,
    *,
    sites: Sequence[str] | None = None,
    views: Sequence[str] = VIEWS,
    probes: Sequence[str] = ("ridge", "mlp"),
    chunk: int = 64,
    metrics_mode: str = "fast",
    interventions: bool = False,
    pairs: Path | None = None,
    families: Sequence[str] | None = None,
    das: bool = True,
    sae: bool = False,
    seed: int = 0,
    console: Console | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Capture, probe and score ``model_ref`` on the stimulus set ``data``; write the tables and figures to ``out``.

    Returns ``(probes, metrics)``: the tables written as ``probes.parquet`` (one row per site, view,
    factor, probe) and ``metrics.parquet`` (one row per site). With ``interventions``, the operational
    ontology (:func:`~ontoscope.probing.operational.operational_ontology`, read from the same capture, with the
    same probe recipe and split; interchange, and DAS unless ``das`` is False, with ``pairs``) goes to
    ``operational.parquet``, ``effects.parquet``, ``retention.parquet`` and ``examples/``;
    with ``sae``, the sparse-autoencoder table of every site to ``sae.parquet``.
    """
    unknown = sorted(set(probes) - {"ridge", "mlp"})
    if unknown or not probes:
        raise ConfigError(f"unknown probe(s) {unknown}; use ridge and/or mlp")
    if (pairs is not None or families is not None) and not interventions:
        raise ConfigError("--pairs and --families score interventions; add --interventions")
    bad = [f for f in families or [] if f not in FAMILIES]
    if bad:
        raise ConfigError(f"unknown intervention family {bad[0]!r}; use any of {', '.join(FAMILIES)}")
    if interventions and "pooled" not in views:
        raise ConfigError("--interventions reads the pooled view; add pooled to --views")
    if sae and "frames" not in views:
        raise ConfigError("--sae reads the frames view; add frames to --views")
    console = console or Console(soft_wrap=True)
    model = load_model(model_ref, seed=seed)
    ds = StimulusSet.load(data)
    space = set_space(ds)
    out = ensure_dir(out)
    cap = capture(model, ds, out / "capture", sites=sites, views=views, chunk=chunk, model_ref=model_ref)
    targets = factor_targets(ds.factors, space)
    table = probe_capture(cap, targets, probes=probes, seed=seed)
    metrics = site_metrics(cap, targets, mode=metrics_mode, seed=seed) if "pooled" in cap.views else pd.DataFrame()
    save_table(out / "probes.parquet", table)
    if len(metrics):
        save_table(out / "metrics.parquet", metrics)
    write_probe_figures(table, out / "figures", metrics)
    _print_summary(table, console)
    if sae:
        sae_table = pd.concat([sae_site_analysis(cap, s, targets, seed=seed) for s in cap.sites], ignore_index=True)
        save_table(out / "sae.parquet", sae_table)
    if interventions:
        pair_set = StimulusSet.load(pairs) if pairs is not None else None
        op = operational_ontology(model, ds, capture_dir=cap, pairs=pair_set, sites=cap.sites, families=families,
                                  das=das, chunk=chunk, seed=seed)
        op.save(out)
        write_operational_figures(op.table, op.effects, out / "figures")
        _print_status(op.status(), console)
    console.print(f"tables and figures -> {out}")
    return table, metrics


def _print_summary(table: pd.DataFrame, console: Console) -> None:
    best = (table[table["probe"] == "ridge"].groupby(["factor", "site"], sort=False)["test_r2"].max()
            .unstack("site"))
    sites = table.drop_duplicates("site").sort_values("site_index")["site"].tolist()
    t = Table(title="held-out R² of the ridge probe (best view) per factor and site")
    t.add_column("factor")
    for s in sites:
        t.add_column(s, justify="right")
    for factor, row in best.iterrows():
        t.add_row(str(factor), *[f"{row.get(s, float('nan')):.2f}" for s in sites])
    console.print(t)


def _print_status(status: pd.DataFrame, console: Console) -> None:
    colour = {"icv": "green", "entangled": "yellow", "absent": "dim"}
    t = Table(title="operational ontology: status per factor and site")
    t.add_column("factor")
    for s in status.columns:
        t.add_column(str(s), justify="center")
    for factor, row in status.iterrows():
        t.add_row(str(factor), *[f"[{colour.get(v, 'white')}]{v}[/]" if isinstance(v, str) else "" for v in row])
    console.print(t)
