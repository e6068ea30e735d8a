"""``ontoscope analyze MODEL_REF --out DIR [--format table|json]``: the latent ontology of a model.

:func:`analyze_command` is the command's body; the ``ontoscope`` app wires it in. ``MODEL_REF`` is
anything :func:`~ontoscope.models.registry.load_model` accepts: a checkpoint directory, a family
spec YAML, ``crepe:tiny``, ``hf:encodec-24khz``, ``pesto``...
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ontoscope.errors import ConfigError
from ontoscope.operators.latent import LatentOntology, Thresholds, analyze

__all__ = ["analyze_command", "print_table", "quick_note"]

_COLOURS = {"affords": "green", "capacity-limited": "yellow", "alias-limited": "red", "rate-limited": "magenta",
            "invariant": "bright_black"}
_SHORT = {"affords": "ok", "capacity-limited": "cap", "alias-limited": "alias", "rate-limited": "rate",
          "invariant": "inv"}


def _fmt(v: object, digits: int = 3) -> str:
    if isinstance(v, float):
        if v != v:
            return "–"
        if v.is_integer() and abs(v) < 1e7:
            return str(int(v))
        return f"{v:.{digits}g}"
    return str(v)


def print_table(onto: LatentOntology, console: Console) -> None:
    """Two rich tables: the sites' geometry, then the status of every (site, factor)."""
    t = Table(title=f"{onto.model} at {onto.sample_rate} Hz: sites")
    cols = [("site", "site"), ("stride", "stride"), ("frame_rate_hz", "frames/s"),
            ("receptive_field_samples", "RF"), ("dims_per_frame", "dims/frame"), ("compression_ratio", "compr."),
            ("global_context", "global"), ("alias_cumulative", "alias"), ("collapse_fraction", "collapse")]
    geo = onto.sites
    for key, label in cols:
        if key in geo:
            t.add_column(label, justify="left" if key == "site" else "right")
    for _, r in geo.iterrows():
        t.add_row(*[_fmt(r[k]) if k != "global_context" else ("yes" if r[k] else "") for k, _ in cols if k in geo])
    console.print(t)
    f = onto.factors
    if not len(f):
        return
    sites = list(dict.fromkeys(f["site"]))
    legend = ", ".join(f"{v} = {k}" for k, v in _SHORT.items())
    st = Table(title="predicted status (latent ontology)", caption=legend)
    st.add_column("factor")
    for s in sites:
        st.add_column(s, justify="center", overflow="fold")
    for name in dict.fromkeys(f["factor"]):
        sub = f[f["factor"] == name].set_index("site")["status"]
        cells = []
        for s in sites:
            v = sub.get(s, "")
            cells.append(f"[{_COLOURS.get(v, 'white')}]{_SHORT.get(v, v)}[/]")
        st.add_row(name, *cells)
    console.print(st)


def analyze_command(
    model_ref: str,
    out: Path,
    *,
    fmt: str = "table",
    seeds: int = 5,
    factors: Sequence[str] | None = None,
    sites: Sequence[str] | None = None,
    n_stimuli: int = 4,
    seconds: float = 0.25,
    sweep_points: int = 192,
    jacobians: bool = True,
    figures: bool = True,
    seed: int = 0,
    thresholds: Thresholds | None = None,
    quick: bool = False,
    sweep: str = "needed",
    console: Console | None = None,
) -> LatentOntology:
    """Analyse ``model_ref``, write the tables and figures to ``out``, and print a summary.

    Parameters
    ----------
    model_ref : str
        A reference for :func:`~ontoscope.models.registry.load_model`.
    out : Path
        Output directory (Parquet tables, PNG figures, ``latent.json``).
    fmt : {"table", "json"}
        ``table``: rich tables; ``json``: ``{"model", "sample_rate", "sites": [...], "factors": [...]}``
        on stdout (sites carry ``name, stride, frame_rate_hz, receptive_field_samples, channels,
        global_context`` and more; factors ``site, factor, status, reason, kind``).
    seeds : int
        Random initialisations for the architecture-only Jacobians (0: given weights only).
    factors, sites : optional subsets (default: the canon's default space; every site).
    n_stimuli, seconds : Jacobian stimuli (few and short keeps large models affordable on CPU).
    sweep_points : frequencies of the sine sweep.
    jacobians, figures : switch those parts off.
    seed : seed of weights (where random), stimuli and sines.
    thresholds : decision-rule parameters (default :class:`Thresholds`).
    quick : a first look with :data:`~ontoscope.operators.latent.QUICK`'s settings (said in the output).
    sweep : ``needed`` (the sites a status can depend on) or ``all``.
    console : where to print (default stdout).

    Raises
    ------
    ConfigError
        An unknown format, model reference, factor or site.
    """
    if fmt not in ("table", "json"):
        raise ConfigError(f"unknown --format {fmt!r}; use table or json")
    if sweep not in ("needed", "all"):
        raise ConfigError(f"unknown --sweep {sweep!r}; use needed (the sites a status depends on) or all")
    for label, value, low in (("--seeds", seeds, 0), ("--stimuli", n_stimuli, 1), ("--sweep-points", sweep_points, 4)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{label} must be an integer >= {low}, got {value!r}")
    if not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ConfigError(f"--seconds must be a positive number of seconds, got {seconds!r}")
    console = console or Console(soft_wrap=True)
    onto = analyze(model_ref, factors=factors, seeds=seeds, sites=sites, ref=model_ref, n_stimuli=n_stimuli,
                   seconds=seconds, sweep_points=sweep_points, jacobians=jacobians, seed=seed,
                   thresholds=thresholds or Thresholds(), quick=quick, sweep=sweep, progress=None)
    onto.save(out, figures=figures)
    if fmt == "json":
        console.out(json.dumps(onto.to_dict(), indent=2), highlight=False)
    else:
        print_table(onto, console)
        if quick:
            console.print(quick_note(onto))
        console.print(f"tables and figures -> {out}")
    return onto


def quick_note(onto: LatentOntology) -> str:
    """One line saying what a ``--quick`` analysis left out."""
    m = onto.meta
    return (f"quick look: {m['seeds_run']} initialisation, {m['n_stimuli']} Jacobian stimuli, {m['sweep_points']} "
            "sweep frequencies, no gradient check of the receptive fields; run without --quick for the "
            "full analysis")
