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
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from ontoscope.artifacts import ensure_dir, save_json, save_table, write_atomic
from ontoscope.errors import ConfigError, OntoscopeError
from ontoscope.models.family import build
from ontoscope.models.protocol import AudioModel
from ontoscope.models.registry import load_model
from ontoscope.operators._common import reinitialised, site_names
from ontoscope.operators.aliasing import composed_alias, layer_aliasing, site_alias_summary
from ontoscope.operators.capacity import capacity_table
from ontoscope.operators.figures import write_figures
from ontoscope.operators.frequency_response import (
    band_collapse,
    channel_bandwidths,
    injectivity,
    sine_sweep,
    sweep_frequencies,
)
from ontoscope.operators.jacobians import (
    JacobianResult,
    audio_tangents,
    feature_jacobians,
    jacobian_stats,
    stimulus_batch,
)
from ontoscope.operators.modulation_limits import modulation_limits
from ontoscope.operators.receptive_field import site_geometry, traced_ops
from ontoscope.operators.spectra import layer_spectra
from ontoscope.stimuli.factors import FactorSpace

__all__ = ["QUICK", "STATUSES", "LatentOntology", "Thresholds", "analyze"]

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

        The manifest lists the figures written (none with ``figures=False``).
        """
        out = ensure_dir(directory)
        for name, table in self.tables.items():
            save_table(out / f"{name}.parquet", _parquet_safe(table))
        written = [p.name for p in write_figures(self, out)] if figures else []
        manifest = {"model": self.model, "sample_rate": self.sample_rate, "meta": self.meta,
                    "tables": sorted(self.tables), "figures": written}
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
        yield build(spec, seed=seed).eval(), "family build"
        return
    if ref is not None and ref.startswith("hf:") and not Path(ref[3:]).expanduser().is_dir():
        yield load_model(ref, seed=seed), "load_model(seed)"
        return
    if ref is not None and ref.lower().endswith((".yaml", ".yml")):
        yield load_model(ref, seed=seed), "load_model(seed)"
        return
    if not isinstance(model, nn.Module):
        raise ConfigError("cannot re-initialise a model that is not an nn.Module; pass init=callable(seed)")
    with reinitialised(model, seed) as m:
        yield m, "reset_parameters"


# ------------------------------------------------------------------ analysis
class _Progress:
    """Progress of :func:`analyze` on stderr: one bar per analysis, advanced per site, layer, batch or seed."""

    def __init__(self, enabled: bool | None) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[item]}"), TimeElapsedColumn(),
                            console=Console(stderr=True)) if enabled else None

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            for task in self.bar.tasks:  # a bar of "up to" steps ends where its work ended
                if task.completed < (task.total or 0):
                    self.bar.update(task.id, total=task.completed)
            self.bar.stop()

    def step(self, description: str, total: int) -> Callable[[str], None]:
        """A new bar of ``total`` steps; the returned function advances it by one, naming the item."""
        bar = self.bar
        if bar is None:
            return lambda item="": None
        task = bar.add_task(description, total=max(int(total), 1), item="")
        return lambda item="": bar.update(task, advance=1, item=item)


#: What ``quick=True`` changes: one initialisation, two stimuli, a coarser sweep, no gradient check.
QUICK = {"seeds": 1, "n_stimuli": 2, "sweep_points": 48, "empirical": False}

#: A decision statistic this close to its threshold asks for another initialisation (see :func:`analyze`).
COSINE_MARGIN = 0.05
INVARIANCE_FACTOR = 10.0


def analyze(
    model: AudioModel | str,
    factors: FactorSpace | Sequence[str] | None = None,
    seeds: int = 5,
    sites: Sequence[str] | None = None,
    *,
    ref: str | None = None,
    init: Callable[[int], AudioModel] | None = None,
    thresholds: Thresholds = Thresholds(),
    n_stimuli: int = 2,
    seconds: float = 0.25,
    max_partials: int = 32,
    sweep_points: int = 192,
    sweep_seconds: float = 0.25,
    sweep: str = "needed",
    spectra_freqs: int = 8,
    empirical: bool = True,
    jacobians: bool = True,
    min_seeds: int = 1,
    use_vmap: bool = True,
    quick: bool = False,
    seed: int = 0,
    progress: bool | None = None,
) -> LatentOntology:
    """Run every operator analysis on ``model`` and decide each (site, factor)'s predicted status.

    Each analysis costs what the decision needs:

    * The feature Jacobians at initialisation run in rounds, one initialisation each: after
      ``min_seeds`` rounds, another is run (up to ``seeds``) only through the sites where a decision
      statistic, averaged over the rounds so far, lies near its threshold: a Jacobian column's
      largest |cos| within ``COSINE_MARGIN`` of ``cosine_threshold``, or a relative sensitivity within a
      factor ``INVARIANCE_FACTOR`` of ``invariance_threshold``. Where the given weights are the weights
      of an initialisation (a published architecture loaded without its weights), that round reuses
      the given-weights Jacobians.
    * With ``sweep="needed"`` the sine sweep runs up to the last site where an injectivity collapse
      can decide a status: a site with a frequency factor (``frequency_factors``) that is not
      already ``invariant`` and whose cumulative alias fraction is within ``alias_threshold``. The
      sweep tables (responses, bandwidths, injectivity, the sites' ``collapse_fraction``) cover those
      sites; ``sweep="all"`` sweeps every site.

    Parameters
    ----------
    model : AudioModel or str
        A model, or a reference for :func:`~ontoscope.models.registry.load_model`.
    factors : FactorSpace or list of factor names, optional
        The factors (default: the canon's default space, every factor but inharmonicity).
    seeds : int
        At most this many random initialisations for the architecture-only Jacobian statistics (0: use
        the given weights for the decision).
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
    sweep : {"needed", "all"}
        Sweep the sites a status can depend on, or every site.
    spectra_freqs : frequencies per conv layer for the singular values.
    empirical : run the gradient check of the receptive fields.
    jacobians : compute feature Jacobians (the most expensive part).
    min_seeds : initialisations always run (at most ``seeds``).
    use_vmap : vmap the model's forward-mode passes over factors (see :mod:`~ontoscope.operators.jacobians`).
    quick : a first look: the settings of :data:`QUICK` replace the defaults (recorded in ``meta``).
    seed : seed of the stimuli, sines and sketches.
    progress : show progress on stderr, per analysis and per site (default: when stderr is a terminal).
    """
    if sweep not in ("needed", "all"):
        raise ConfigError(f"unknown sweep {sweep!r}; use needed (the sites a status depends on) or all")
    if quick:
        seeds, n_stimuli = min(seeds, QUICK["seeds"]), min(n_stimuli, QUICK["n_stimuli"])
        sweep_points, empirical = min(sweep_points, QUICK["sweep_points"]), QUICK["empirical"]
    min_seeds = max(0, min(int(min_seeds), int(seeds)))
    given_seed = None  # the initialisation the given weights are, when analyze drew them itself
    if isinstance(model, str):
        if ref is None and init is None and ((model.startswith("hf:") and not Path(model[3:]).expanduser().is_dir())
                                             or model.lower().endswith((".yaml", ".yml"))):
            given_seed = seed
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
    with _Progress(progress) as bar:
        geo = site_geometry(model, model_name=name, empirical=empirical,
                            progress=bar.step(f"{name}: receptive fields", len(names)) if empirical else None)
        geo = geo[geo["site"].isin(names)].reset_index(drop=True)
        ops = traced_ops(model)
        layer_sites: dict[str, str] = {}
        layer_axes: dict[str, str] = {}
        for s in model.sites():
            for op in ops.get(s.name, []):
                layer_sites.setdefault(op.name, s.name)
                layer_axes.setdefault(op.name, op.axis)
        order = {s.name: i for i, s in enumerate(model.sites())}

        if isinstance(model, nn.Module):
            convs = sum(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d))
                        for m in model.modules())
            summ, vals = layer_spectra(model, n_freq=spectra_freqs, model_name=name, layer_sites=layer_sites,
                                       progress=bar.step("conv spectra", convs))
            tables["spectra"], tables["spectra_values"] = summ, vals
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
        geo["alias_cumulative"] = geo["site"].map(alias_sites.set_index("site")["alias_cumulative"])
        geo["alias_method"] = geo["site"].map(alias_sites.set_index("site")["alias_method"])

        tables["modulation"] = modulation_limits(geo, space, periods=thresholds.periods,
                                                 tolerance=thresholds.rate_tolerance)
        tables["capacity"] = capacity_table(geo, len(space.factors))

        rounds = 0
        if jacobians:
            rounds = _jacobian_rounds(model, tables, space, names, name, ref=ref, init=init, given_seed=given_seed,
                                      seeds=seeds,
                                      min_seeds=min_seeds, n_stimuli=n_stimuli, seconds=seconds,
                                      max_partials=max_partials, use_vmap=use_vmap, seed=seed,
                                      thresholds=thresholds, bar=bar)

        freqs = sweep_frequencies(sr, sweep_points)
        swept = names if sweep == "all" else _sweep_sites(names, geo, tables, space, thresholds, seeds > 0)
        margins = {}
        for _, r in geo.iterrows():
            if r["stride"] == r["stride"] and r["receptive_field_samples"] == r["receptive_field_samples"]:
                margins[r["site"]] = int(math.ceil(r["receptive_field_samples"] / 2 / r["stride"]))
        inj_by_site: dict[str, dict] = {}
        bws, injs = [], []
        if swept:
            result = sine_sweep(model, swept, freqs=freqs, seconds=sweep_seconds, margins=margins, seed=seed,
                                progress=bar.step(f"sine sweep, {len(swept)} of {len(names)} sites",
                                                  -(-freqs.size // 32)))
            tables["responses"] = result.table(name)
            for _, r in geo[geo["site"].isin(swept)].iterrows():
                s = r["site"]
                bw = channel_bandwidths(result.channel_responses(s), freqs, float(r["frame_rate_hz"]))
                bw.insert(0, "site", s)
                bw.insert(0, "model", name)
                bws.append(bw)
                inj = injectivity(result.features[s], freqs, min_separation_hz=2.0 / sweep_seconds)
                inj_by_site[s] = inj
                nearest = np.asarray(inj["nearest"])
                injs.append(pd.DataFrame({"model": name, "site": s, "freq_hz": freqs, "collapsed": inj["collapsed"],
                                          "nearest_hz": np.where(nearest >= 0, freqs[np.maximum(nearest, 0)], np.nan),
                                          "nearest_distance": inj["nearest_distance"],
                                          "neighbour_distance": inj["neighbour_distance"]}))
        tables["bandwidths"] = pd.concat(bws, ignore_index=True) if bws else pd.DataFrame()
        tables["injectivity"] = pd.concat(injs, ignore_index=True) if injs else pd.DataFrame()
        geo["collapse_fraction"] = geo["site"].map({s: v["collapse_fraction"] for s, v in inj_by_site.items()})
        tables["sites"] = geo

    tables["factors"] = decide(tables, space, th=thresholds, freqs=freqs, inj_by_site=inj_by_site, sr=sr,
                                 model_name=name, use_init=seeds > 0)
    meta = {"thresholds": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(thresholds).items()},
            "factors": list(space.names), "seeds": seeds, "min_seeds": min_seeds, "seeds_run": rounds,
            "n_stimuli": n_stimuli, "seconds": seconds, "sweep_points": sweep_points,
            "sweep_seconds": sweep_seconds, "sweep": sweep, "swept_sites": list(swept),
            "spectra_freqs": spectra_freqs, "empirical": empirical, "quick": quick, "seed": seed,
            "torch": torch.__version__,
            "parameters": int(sum(p.numel() for p in model.parameters())) if isinstance(model, nn.Module) else None}
    return LatentOntology(name, sr, meta, tables)


def _same_weights(a: AudioModel, b: AudioModel) -> bool:
    """Whether two models hold the same parameters and buffers (a published architecture loaded without
    its weights is an initialisation)."""
    if a is b:
        return True
    if not (isinstance(a, nn.Module) and isinstance(b, nn.Module)):
        return False
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa)


def _jacobian_rounds(model: AudioModel, tables: dict[str, pd.DataFrame], space: FactorSpace, names: list[str],
                     name: str, *, ref: str | None, init: Callable[[int], AudioModel] | None,
                     given_seed: int | None, seeds: int,
                     min_seeds: int, n_stimuli: int, seconds: float, max_partials: int, use_vmap: bool, seed: int,
                     thresholds: Thresholds, bar: _Progress) -> int:
    """The feature Jacobians at the given weights, then at ``min_seeds`` to ``seeds`` initialisations.

    Fills ``jacobian_factors``, ``jacobian_pairs`` and ``jacobian_sites`` in ``tables``; returns the number
    of initialisations run (see :func:`analyze` for when another one runs, and through which sites).
    """
    sr = int(model.sample_rate)
    batch = stimulus_batch(space, n_stimuli, sample_rate=sr, seconds=seconds, seed=seed, max_partials=max_partials)
    tangents = audio_tangents(batch)
    jf, jp, js = [], [], []
    step = bar.step(f"feature Jacobians ({len(space.factors)} factors, {n_stimuli} stimuli; given weights, then "
                    f"{min_seeds} to {seeds} initialisations)", 1 + seeds)
    j, a, used = feature_jacobians(model, batch, names, use_vmap=use_vmap, tangents=tangents)
    given = jacobian_stats(j, a, names=batch.names,
                           labels={"model": name, "weights": "given", "seed": -1, "method": used})
    del j, a
    jf.append(given.factors), jp.append(given.pairs), js.append(given.sites)
    step("given weights")
    def as_given(labels: dict[str, object], how: str) -> JacobianResult:
        return JacobianResult(*(t.assign(**labels, method=f"{used} (given weights, {how})")
                                for t in (given.factors, given.pairs, given.sites)))

    todo, k = list(names), 0
    while k < seeds and todo:
        labels = {"model": name, "weights": "init", "seed": k}
        if k == given_seed and todo == names:  # analyze loaded the given weights as this initialisation
            res = as_given(labels, "load_model(seed)")
        else:
            with _at_init(model, ref, k, init) as (m0, how):
                if isinstance(m0, nn.Module):
                    m0.eval()
                if todo == names and _same_weights(m0, model):
                    res = as_given(labels, how)
                else:
                    j, a, how_run = feature_jacobians(m0, batch, todo, use_vmap=use_vmap, tangents=tangents)
                    res = jacobian_stats(j, a, names=batch.names, labels={**labels, "method": f"{how_run} ({how})"})
                    del j, a
        jf.append(res.factors), jp.append(res.pairs), js.append(res.sites)
        k += 1
        step(f"initialisation {k}" + ("" if todo == names else f" ({len(todo)} sites)"))
        if k >= min_seeds:
            near = _near_threshold(pd.concat(jf, ignore_index=True), thresholds)
            last = max((names.index(s) for s in near), default=-1)
            todo = names[:last + 1] if last >= 0 else []
    tables["jacobian_factors"] = pd.concat(jf, ignore_index=True)
    tables["jacobian_pairs"] = pd.concat(jp, ignore_index=True)
    tables["jacobian_sites"] = pd.concat(js, ignore_index=True)
    return k


def _decision_stats(jf: pd.DataFrame, weights: str) -> pd.DataFrame:
    """The Jacobian statistics the rules read, per (site, factor): ``sensitivity`` and ``max_abs_cos`` averaged
    over the rows of ``weights`` (all rows if there are none), and ``rel``, the sensitivity over the site's
    median factor's (NaN where that median is 0)."""
    sel = jf[jf["weights"] == weights]
    stat = (sel if len(sel) else jf).groupby(["site", "factor"]).agg(sensitivity=("sensitivity", "mean"),
                                                                     max_abs_cos=("max_abs_cos", "mean"))
    med = stat.groupby(level=0)["sensitivity"].transform("median")
    stat["rel"] = stat["sensitivity"] / med.where(med > 0)
    return stat


def _near_threshold(jf: pd.DataFrame, th: Thresholds) -> set[str]:
    """Sites where a decision statistic averaged over the initialisations so far lies near its threshold."""
    stat = _decision_stats(jf, "init")
    lo, hi = th.invariance_threshold / INVARIANCE_FACTOR, th.invariance_threshold * INVARIANCE_FACTOR
    near = (stat["rel"].between(lo, hi)) | ((stat["max_abs_cos"] - th.cosine_threshold).abs() < COSINE_MARGIN)
    return set(stat.index[near.to_numpy()].get_level_values(0))


def _sweep_sites(names: list[str], geo: pd.DataFrame, tables: dict[str, pd.DataFrame], space: FactorSpace,
                 th: Thresholds, use_init: bool) -> list[str]:
    """The sites up to the last one where an injectivity collapse can decide a status (see :func:`analyze`)."""
    freq_factors = [f for f in space.names if f in th.frequency_factors]
    if not freq_factors:
        return []
    invariant: set[tuple[str, str]] = set()
    jf = tables.get("jacobian_factors", pd.DataFrame())
    if len(jf):
        rel = _decision_stats(jf, "init" if use_init else "given")["rel"]
        invariant = set(rel.index[(rel < th.invariance_threshold).to_numpy()])
    alias = geo.set_index("site")["alias_cumulative"]
    need = [s for s in names
            if not (alias.get(s, np.nan) > th.alias_threshold)
            and any((s, f) not in invariant for f in freq_factors)]
    if not need:
        return []
    return names[:max(names.index(s) for s in need) + 1]


def _band(factor: str, space: FactorSpace, sr: int) -> tuple[float, float]:
    f0 = space["f0"]
    if factor == "f0":
        return (f0.low, f0.high) if "f0" in space.names else (space.fixed["f0"], space.fixed["f0"])
    lo = f0.low if "f0" in space.names else float(space.fixed["f0"])
    return lo, 0.95 * sr / 2


def decide(
    tables: dict[str, pd.DataFrame],
    space: FactorSpace,
    *,
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
    jstat = _decision_stats(jf, weights) if len(jf) else None
    rows = []
    for _, g in geo.iterrows():
        site = g["site"]
        c = cap.loc[site]
        for f in space.factors:
            row: dict[str, Any] = {"model": model_name, "site": site, "role": g["role"], "factor": f.name,
                                   "kind": f.kind,
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
                st = jstat.loc[(site, f.name)]
                row["sensitivity"], row["max_abs_cos"] = float(st["sensitivity"]), float(st["max_abs_cos"])
                row["sensitivity_rel_median"] = float(st["rel"])
            else:
                row["sensitivity"] = row["max_abs_cos"] = row["sensitivity_rel_median"] = np.nan
            status, reason = _rule(row, m, f.name, th, weights)
            row["status"], row["reason"] = status, reason
            rows.append(row)
    cols = ["model", "site", "role", "factor", "kind", "status", "reason", "frame_rate_hz", "receptive_field_s",
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
