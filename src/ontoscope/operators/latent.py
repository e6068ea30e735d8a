"""The latent ontology of a model: what its operators allow, predicted from the architecture.

:func:`analyze` runs every operator analysis on one model and decides, for
each (site, factor), a predicted status:

``rate-limited``
    An oscillatory factor (a modulation rate, or a depth through its rate)
    whose rate range is, on more than ``rate_tolerance`` of its measure, neither
    below half the site's frame rate nor spanned (``periods`` periods) by the
    receptive field (:mod:`~ontoscope.operators.modulation_limits`).
``invariant``
    The site does not move with the factor: its Jacobian sensitivity is below
    ``invariance_threshold`` times the median factor's at that site (e.g. CREPE
    normalises every frame, so loudness cannot reach any site).
``alias-limited``
    A factor whose information lives in frequency (``frequency_factors``: f0,
    brightness, odd/even balance, inharmonicity) at a site where the
    injectivity collapse over the factor's band exceeds ``collapse_threshold``, or
    the cumulative alias fraction exceeds ``alias_threshold``
    (:mod:`~ontoscope.operators.frequency_response`, :mod:`~ontoscope.operators.aliasing`).
    The band is the f0 range for f0, and from the lowest f0 to 0.95 Nyquist
    (where the partials live) for the others.
``capacity-limited``
    More factors than dims per frame with a Welch/Levenshtein coherence bound above
    ``interference_threshold`` (:mod:`~ontoscope.operators.capacity`), or the factor's
    Jacobian column has a cosine above ``cosine_threshold`` with another factor's
    (pooled Gram cosine, mean over the initialisation seeds) (:mod:`~ontoscope.operators.jacobians`).
``affords``
    None of the above.

The rules are tried in that order; ``reason`` gives the numbers that decided.
Jacobian statistics for the decision come from the architecture at
initialisation (``seeds`` random initialisations) unless ``seeds=0``, in which
case the given weights are used. See ``docs/latent_ontology.md``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ontoscope.artifacts import ensure_dir, save_json, save_table, write_atomic
from ontoscope.errors import ConfigError, OntoscopeError
from ontoscope.models.protocol import AudioModel
from ontoscope.operators._common import reinitialised, site_names
from ontoscope.operators.aliasing import composed_alias, layer_aliasing, site_alias_summary
from ontoscope.operators.capacity import capacity_table
from ontoscope.operators.frequency_response import (
    band_collapse,
    channel_bandwidths,
    injectivity,
    sine_sweep,
    sweep_frequencies,
)
from ontoscope.operators.jacobians import feature_jacobians, jacobian_stats, stimulus_batch
from ontoscope.operators.modulation_limits import modulation_limits
from ontoscope.operators.receptive_field import site_geometry, traced_ops
from ontoscope.operators.spectra import layer_spectra
from ontoscope.stimuli.factors import FactorSpace

__all__ = ["STATUSES", "LatentOntology", "Thresholds", "analyze"]

#: Predicted statuses, in the order the rules are tried.
STATUSES = ("rate-limited", "invariant", "alias-limited", "capacity-limited", "affords")

TABLES = ("sites", "factors", "spectra", "spectra_values", "aliasing", "alias_sites", "composed_alias",
          "responses", "bandwidths", "injectivity", "modulation", "capacity", "jacobian_factors",
          "jacobian_pairs", "jacobian_sites")


@dataclass(frozen=True)
class Thresholds:
    """Parameters of the decision rules (see the module docstring)."""

    periods: float = 1.0
    rate_tolerance: float = 0.0
    collapse_threshold: float = 0.25
    alias_threshold: float = 0.5
    interference_threshold: float = 0.3
    cosine_threshold: float = 0.9
    invariance_threshold: float = 1e-3
    frequency_factors: tuple[str, ...] = ("f0", "brightness", "odd_even", "inharmonicity")


@dataclass
class LatentOntology:
    """Every table of the latent ontology of one model.

    Tables (pandas, one row per ...):

    * ``sites``: site geometry (:func:`~ontoscope.operators.receptive_field.site_geometry`) plus the
      cumulative alias fraction and the collapse fraction.
    * ``factors``: (model, site, factor) with ``status``, ``reason`` and the numbers behind them.
    * ``spectra`` / ``spectra_values``: per conv layer, singular-value summary / pooled spectrum.
    * ``aliasing``: per decimating layer and channel; ``alias_sites``: cumulative per site;
      ``composed_alias``: composed linear path per site and channel.
    * ``responses``: (site, channel, frequency) sine-sweep response; ``bandwidths``: per
      (site, channel); ``injectivity``: per (site, frequency).
    * ``modulation``: per (site, oscillatory factor); ``capacity``: per site.
    * ``jacobian_factors`` / ``jacobian_pairs`` / ``jacobian_sites``: Jacobian statistics with a
      ``weights`` column (``given`` or ``init``) and the ``seed``.
    """

    model: str
    sample_rate: int
    meta: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        if name in TABLES:
            return pd.DataFrame()
        raise AttributeError(name)

    # ------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike, figures: bool = True) -> Path:
        """Write every table as Parquet, the figures as PNG, then ``latent.json`` (the manifest), atomically.

        Figures need matplotlib (drawn with the Agg backend); without it they are skipped and the
        manifest says so (``figures_skipped``).
        """
        out = ensure_dir(directory)
        for name, table in self.tables.items():
            save_table(out / f"{name}.parquet", _parquet_safe(table))
        written: list[str] = []
        skipped = ""
        if figures:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                skipped = "matplotlib is not installed (pip install matplotlib)"
            else:
                from ontoscope.operators.figures import write_figures

                written = [p.name for p in write_figures(self, out)]
        manifest = {"model": self.model, "sample_rate": self.sample_rate, "meta": self.meta,
                    "tables": sorted(self.tables), "figures": written}
        if skipped:
            manifest["figures_skipped"] = skipped
        save_json(out / "latent.json", manifest)
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike) -> LatentOntology:
        """Read a directory written by :meth:`save`."""
        d = Path(directory)
        manifest = d / "latent.json"
        if not manifest.is_file():
            raise OntoscopeError(f"{d} holds no latent ontology (no latent.json); run `ontoscope analyze` first")
        info = json.loads(manifest.read_text())
        tables = {n: pd.read_parquet(d / f"{n}.parquet") for n in info["tables"] if (d / f"{n}.parquet").is_file()}
        return cls(info["model"], int(info["sample_rate"]), info.get("meta", {}), tables)

    # ------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """The summary the CLI prints as JSON: model, sample rate, sites and factor statuses."""
        keep = ["site", "role", "layout", "channels", "freq_bins", "stride", "frame_rate_hz",
                "receptive_field_samples", "receptive_field_s", "global_context", "dims_per_frame",
                "dims_per_second", "compression_ratio", "empirical_rf_samples", "effective_rf_samples",
                "alias_cumulative", "collapse_fraction"]
        sites = []
        for _, r in self.sites.iterrows():
            row = {("name" if k == "site" else k): _plain(r[k]) for k in keep if k in r}
            sites.append(row)
        fkeep = ["site", "factor", "status", "reason", "kind"]
        factors = [{k: _plain(r[k]) for k in fkeep if k in r} for _, r in self.factors.iterrows()]
        return {"model": self.model, "sample_rate": self.sample_rate, "sites": sites, "factors": factors}


def _plain(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        if not math.isfinite(f):
            return None
        return int(f) if f.is_integer() and abs(f) < 2**53 else f
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: v if v is None or isinstance(v, (str, bytes)) else str(v))
    return out


# ------------------------------------------------------------------ initialisation
@contextlib.contextmanager
def _at_init(model: AudioModel, ref: str | None, seed: int,
             init: Callable[[int], AudioModel] | None) -> Iterator[tuple[AudioModel, str]]:
    """The model's architecture with fresh weights drawn from ``seed``, and how they were drawn."""
    if init is not None:
        yield init(seed), "init()"
        return
    spec = getattr(model, "spec", None)
    if spec is not None and getattr(spec, "family", None) in ("conv_ae", "tcn", "spec_cnn"):
        from ontoscope.models.family import build

        yield build(spec, seed=seed).eval(), "family build"
        return
    if ref is not None and ref.startswith("hf:") and not Path(ref[3:]).expanduser().is_dir():
        from ontoscope.models.registry import load_model

        yield load_model(ref, seed=seed), "load_model(seed)"
        return
    if ref is not None and ref.lower().endswith((".yaml", ".yml")):
        from ontoscope.models.registry import load_model

        yield load_model(ref, seed=seed), "load_model(seed)"
        return
    if not isinstance(model, nn.Module):
        raise ConfigError("cannot re-initialise a model that is not an nn.Module; pass init=callable(seed)")
    with reinitialised(model, seed) as m:
        yield m, "reset_parameters"


# ------------------------------------------------------------------ analysis
def _progress(enabled: bool | None) -> Callable[[str], None]:
    import sys

    from rich.console import Console

    if enabled is None:
        enabled = sys.stderr.isatty()
    console = Console(stderr=True)
    return (lambda msg: console.log(msg)) if enabled else (lambda msg: None)


def analyze(
    model: AudioModel | str,
    factors: FactorSpace | Sequence[str] | None = None,
    seeds: int = 5,
    sites: Sequence[str] | None = None,
    *,
    ref: str | None = None,
    init: Callable[[int], AudioModel] | None = None,
    thresholds: Thresholds = Thresholds(),
    n_stimuli: int = 4,
    seconds: float = 0.25,
    max_partials: int = 32,
    sweep_points: int = 192,
    sweep_seconds: float = 0.25,
    spectra_freqs: int = 32,
    empirical: bool = True,
    jacobians: bool = True,
    use_vmap: bool = True,
    seed: int = 0,
    progress: bool | None = None,
) -> LatentOntology:
    """Run every operator analysis on ``model`` and decide each (site, factor)'s predicted status.

    Parameters
    ----------
    model : AudioModel or str
        A model, or a reference for :func:`~ontoscope.models.registry.load_model`.
    factors : FactorSpace or list of factor names, optional
        The factors (default: the canon's default space, every factor but inharmonicity).
    seeds : int
        Random initialisations for the architecture-only Jacobian statistics (0: use the given weights).
    sites : list of str, optional
        Sites analysed (default all).
    ref : str, optional
        The model's reference (for re-initialisation through ``load_model(ref, seed)``).
    init : callable, optional
        ``init(seed) -> AudioModel`` drawing the architecture with fresh weights (overrides the default).
    thresholds : Thresholds
        Decision-rule parameters.
    n_stimuli, seconds, max_partials : Jacobian stimuli: how many, how long, how many partials.
    sweep_points, sweep_seconds : sine sweep: frequencies (log grid, 20 Hz to 0.95 Nyquist) and length.
    spectra_freqs : frequencies per conv layer for the singular values.
    empirical : run the gradient check of the receptive fields.
    jacobians : compute feature Jacobians (the most expensive part).
    use_vmap : vmap the model's forward-mode passes over factors (see :mod:`~ontoscope.operators.jacobians`).
    seed : seed of the stimuli, sines and sketches.
    progress : log each step on stderr (default: when stderr is a terminal).
    """
    log = _progress(progress)
    if isinstance(model, str):
        from ontoscope.models.registry import load_model

        ref = model if ref is None else ref
        model = load_model(model, seed=seed)
    name = ref or type(model).__name__
    if isinstance(model, nn.Module):
        model.eval()
    space = factors if isinstance(factors, FactorSpace) else FactorSpace.create(None if factors is None
                                                                                else list(factors))
    sr = int(model.sample_rate)
    names = site_names(model, sites)
    tables: dict[str, pd.DataFrame] = {}

    log(f"{name}: geometry of {len(names)} sites")
    geo = site_geometry(model, name, empirical=empirical)
    geo = geo[geo["site"].isin(names)].reset_index(drop=True)
    ops = traced_ops(model)
    layer_sites: dict[str, str] = {}
    layer_axes: dict[str, str] = {}
    for s in model.sites():
        for op in ops.get(s.name, []):
            layer_sites.setdefault(op.name, s.name)
            layer_axes.setdefault(op.name, op.axis)
    order = {s.name: i for i, s in enumerate(model.sites())}

    log("conv spectra")
    if isinstance(model, nn.Module):
        summ, vals = layer_spectra(model, n_freq=spectra_freqs, model_name=name, layer_sites=layer_sites)
        tables["spectra"], tables["spectra_values"] = summ, vals
        log("aliasing")
        al = layer_aliasing(model, model_name=name, layer_sites=layer_sites, layer_axes=layer_axes)
        comp = composed_alias(model)
    else:
        al = pd.DataFrame(columns=["model", "layer", "site", "depth", "kind", "axis", "stride", "kernel", "blur",
                                   "channel", "alias_fraction"])
        comp = pd.DataFrame(columns=["site", "stride", "channel", "alias_fraction"])
    comp.insert(0, "model", name)
    tables["aliasing"], tables["composed_alias"] = al, comp
    alias_sites = site_alias_summary(names, al, comp, order)
    alias_sites.insert(0, "model", name)
    tables["alias_sites"] = alias_sites

    log(f"sine sweep ({sweep_points} frequencies)")
    freqs = sweep_frequencies(sr, sweep_points)
    margins = {}
    for _, r in geo.iterrows():
        if r["stride"] == r["stride"] and r["receptive_field_samples"] == r["receptive_field_samples"]:
            margins[r["site"]] = int(math.ceil(r["receptive_field_samples"] / 2 / r["stride"]))
    sweep = sine_sweep(model, names, freqs, seconds=sweep_seconds, margins=margins, seed=seed)
    tables["responses"] = sweep.table(name)
    bws, injs, inj_by_site = [], [], {}
    for _, r in geo.iterrows():
        s = r["site"]
        bw = channel_bandwidths(sweep.channel_responses(s), freqs, float(r["frame_rate_hz"]))
        bw.insert(0, "site", s)
        bw.insert(0, "model", name)
        bws.append(bw)
        inj = injectivity(sweep.features[s], freqs, min_separation_hz=2.0 / sweep_seconds)
        inj_by_site[s] = inj
        nearest = np.asarray(inj["nearest"])
        injs.append(pd.DataFrame({"model": name, "site": s, "freq_hz": freqs, "collapsed": inj["collapsed"],
                                  "nearest_hz": np.where(nearest >= 0, freqs[np.maximum(nearest, 0)], np.nan),
                                  "nearest_distance": inj["nearest_distance"],
                                  "neighbour_distance": inj["neighbour_distance"]}))
    tables["bandwidths"] = pd.concat(bws, ignore_index=True) if bws else pd.DataFrame()
    tables["injectivity"] = pd.concat(injs, ignore_index=True) if injs else pd.DataFrame()
    geo["alias_cumulative"] = geo["site"].map(alias_sites.set_index("site")["alias_cumulative"])
    geo["alias_method"] = geo["site"].map(alias_sites.set_index("site")["alias_method"])
    geo["collapse_fraction"] = geo["site"].map({s: v["collapse_fraction"] for s, v in inj_by_site.items()})
    tables["sites"] = geo

    log("modulation limits and capacity")
    tables["modulation"] = modulation_limits(geo, space, periods=thresholds.periods,
                                             tolerance=thresholds.rate_tolerance)
    tables["capacity"] = capacity_table(geo, len(space.factors))

    if jacobians:
        jf, jp, js = [], [], []
        batch = stimulus_batch(space, n_stimuli, sr, seconds=seconds, seed=seed, max_partials=max_partials)
        log(f"feature Jacobians, given weights ({len(space.factors)} factors, {n_stimuli} stimuli)")
        j, a, used = feature_jacobians(model, batch, names, use_vmap=use_vmap)
        res = jacobian_stats(j, a, batch.names, {"model": name, "weights": "given", "seed": -1, "method": used})
        jf.append(res.factors), jp.append(res.pairs), js.append(res.sites)
        del j, a
        for k in range(seeds):
            log(f"feature Jacobians at initialisation, seed {k}")
            with _at_init(model, ref, k, init) as (m0, how):
                if isinstance(m0, nn.Module):
                    m0.eval()
                j, a, used = feature_jacobians(m0, batch, names, use_vmap=use_vmap)
                res = jacobian_stats(j, a, batch.names, {"model": name, "weights": "init", "seed": k,
                                                         "method": f"{used} ({how})"})
                jf.append(res.factors), jp.append(res.pairs), js.append(res.sites)
                del j, a
        tables["jacobian_factors"] = pd.concat(jf, ignore_index=True)
        tables["jacobian_pairs"] = pd.concat(jp, ignore_index=True)
        tables["jacobian_sites"] = pd.concat(js, ignore_index=True)

    tables["factors"] = decide(tables, space, thresholds, freqs, inj_by_site, sr, name, seeds > 0)
    meta = {"thresholds": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(thresholds).items()},
            "factors": list(space.names), "seeds": seeds, "n_stimuli": n_stimuli, "seconds": seconds,
            "sweep_points": sweep_points, "sweep_seconds": sweep_seconds, "spectra_freqs": spectra_freqs,
            "seed": seed, "torch": torch.__version__,
            "parameters": int(sum(p.numel() for p in model.parameters())) if isinstance(model, nn.Module) else None}
    log("done")
    return LatentOntology(name, sr, meta, tables)


def _band(factor: str, space: FactorSpace, sr: int) -> tuple[float, float]:
    f0 = space["f0"]
    if factor == "f0":
        return (f0.low, f0.high) if "f0" in space.names else (space.fixed["f0"], space.fixed["f0"])
    lo = f0.low if "f0" in space.names else float(space.fixed["f0"])
    return lo, 0.95 * sr / 2


def decide(
    tables: dict[str, pd.DataFrame],
    space: FactorSpace,
    th: Thresholds,
    freqs: np.ndarray,
    inj_by_site: dict[str, dict],
    sr: int,
    model_name: str,
    use_init: bool,
) -> pd.DataFrame:
    """Apply the decision rules (module docstring) to every (site, factor); one row each."""
    geo = tables["sites"]
    mod = tables["modulation"].set_index(["site", "factor"]) if len(tables["modulation"]) else None
    cap = tables["capacity"].set_index("site")
    jf = tables.get("jacobian_factors", pd.DataFrame())
    weights = "init" if use_init else "given"
    if len(jf):
        sel = jf[jf["weights"] == weights]
        if not len(sel):
            sel = jf
        jstat = sel.groupby(["site", "factor"]).agg(sensitivity=("sensitivity", "mean"),
                                                    max_abs_cos=("max_abs_cos", "mean"))
        med = jstat.groupby(level=0)["sensitivity"].median()
    else:
        jstat, med = None, None
    rows = []
    for _, g in geo.iterrows():
        site = g["site"]
        c = cap.loc[site]
        for f in space.factors:
            row: dict[str, Any] = {"model": model_name, "site": site, "factor": f.name, "kind": f.kind,
                                   "frame_rate_hz": g["frame_rate_hz"], "receptive_field_s": g["receptive_field_s"],
                                   "dims_per_frame": int(g["dims_per_frame"]), "n_factors": len(space.factors),
                                   "coherence_bound": float(c["coherence_bound"]),
                                   "alias_cumulative": float(g["alias_cumulative"])}
            m = mod.loc[(site, f.name)] if mod is not None and (site, f.name) in mod.index else None
            row["frac_rate_representable"] = float(m["frac_either"]) if m is not None else np.nan
            lo, hi = _band(f.name, space, sr)
            row["band_collapse"] = (band_collapse(inj_by_site[site], freqs, lo, hi)
                                    if f.name in th.frequency_factors and site in inj_by_site else np.nan)
            if jstat is not None and (site, f.name) in jstat.index:
                row["sensitivity"] = float(jstat.loc[(site, f.name), "sensitivity"])
                row["max_abs_cos"] = float(jstat.loc[(site, f.name), "max_abs_cos"])
                row["sensitivity_rel_median"] = row["sensitivity"] / float(med[site]) if med[site] > 0 else np.nan
            else:
                row["sensitivity"] = row["max_abs_cos"] = row["sensitivity_rel_median"] = np.nan
            status, reason = _rule(row, m, f.name, th, weights)
            row["status"], row["reason"] = status, reason
            rows.append(row)
    cols = ["model", "site", "factor", "kind", "status", "reason", "frame_rate_hz", "receptive_field_s",
            "frac_rate_representable", "band_collapse", "alias_cumulative", "dims_per_frame", "n_factors",
            "coherence_bound", "sensitivity", "sensitivity_rel_median", "max_abs_cos"]
    return pd.DataFrame(rows, columns=cols)


def _rule(row: dict[str, Any], m: pd.Series | None, factor: str, th: Thresholds, weights: str) -> tuple[str, str]:
    if m is not None and m["status"] == "rate-limited":
        return "rate-limited", str(m["reason"])
    rel = row["sensitivity_rel_median"]
    if rel == rel and rel < th.invariance_threshold:
        return "invariant", (f"Jacobian sensitivity {row['sensitivity']:.3g} is {rel:.2g} x the median factor's "
                             f"(< {th.invariance_threshold:g}, {weights} weights)")
    if factor in th.frequency_factors:
        bc, ac = row["band_collapse"], row["alias_cumulative"]
        if bc == bc and bc > th.collapse_threshold:
            return "alias-limited", (f"{100 * bc:.0f}% of the factor's band collapses onto distant frequencies "
                                     f"(> {100 * th.collapse_threshold:.0f}%)")
        if ac == ac and ac > th.alias_threshold:
            return "alias-limited", (f"cumulative alias fraction {ac:.2f} > {th.alias_threshold:g} at a site whose "
                                     "factor lives in frequency")
    k, d, cb = row["n_factors"], row["dims_per_frame"], row["coherence_bound"]
    if k > d and cb > th.interference_threshold:
        return "capacity-limited", (f"{k} factors in {d} dims per frame: any code has |cos| >= {cb:.2f} "
                                    f"(> {th.interference_threshold:g})")
    mc = row["max_abs_cos"]
    if mc == mc and mc > th.cosine_threshold:
        return "capacity-limited", (f"Jacobian column has |cos| {mc:.2f} with another factor's "
                                    f"(> {th.cosine_threshold:g}, {weights} weights)")
    parts = []
    if m is not None:
        parts.append(f"rates representable on {100 * float(m['frac_either']):.0f}% of the range")
    if row["band_collapse"] == row["band_collapse"]:
        parts.append(f"band collapse {100 * row['band_collapse']:.0f}%")
    parts.append(f"{k} factors in {d} dims")
    if mc == mc:
        parts.append(f"max |cos| {mc:.2f}")
    return "affords", "; ".join(parts)


def write_json(path: str | os.PathLike, onto: LatentOntology) -> Path:
    """Write :meth:`LatentOntology.to_dict` as JSON, atomically."""
    return write_atomic(path, lambda p: p.write_text(json.dumps(onto.to_dict(), indent=2) + "\n"))
