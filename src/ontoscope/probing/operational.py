"""The operational ontology of a model: per (site, factor), what probing and intervening find.

:func:`operational_ontology` runs, for every site and factor of a stimulus set:

1. a linear probe (:func:`~ontoscope.probing.probes.ridge_cv`) on the site's time-averaged
   channels (scaled by one factor per site): held-out ``decodability`` (R²) and the readout
   direction ``d`` (unit, in the site's own units);
2. steering along ``d`` (:func:`~ontoscope.probing.steering.effect_matrix`) by
   ``magnitudes`` standard deviations of the site's projection on ``d``, on
   ``n_steer`` held-out clips, measured on the output: ``efficacy`` (normalised by
   the factor's own spread), ``specificity``, ``consistency``;
3. for an oscillatory depth (``vibrato_depth``, ``tremolo_depth``), a *temporal*
   intervention too: the direction of its carrier (``f0``, ``loudness``)
   modulated at the middle of the rate's range, where the site's frame rate
   allows it; the row says ``kind = temporal``;
4. with counterfactual ``pairs``, the interchange intervention accuracy of the
   probe direction (:mod:`~ontoscope.probing.interchange`), and with ``das`` the
   DAS subspace started from it (:mod:`~ontoscope.probing.alignment`) and its
   principal angle to the probe's;
5. LEACE erasure (:mod:`~ontoscope.probing.erasure`): the target's drop in
   decodability and the mean collateral drop of the others;
6. before a quantizer, how much of the edit survives re-quantization
   (:mod:`~ontoscope.probing.quantized`).

The measures are combined into an ICV score and status (:mod:`~ontoscope.probing.icv`).
For models whose output is not audio, the output is read by ridge probes fitted
on the model's own (time-averaged) output; for audio models by the descriptors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ontoscope.artifacts import ensure_dir, save_json, save_table
from ontoscope.errors import ConfigError
from ontoscope.models.protocol import AudioModel, encode_sites, site_index
from ontoscope.probing.alignment import fit_alignment, principal_angles
from ontoscope.probing.capture import model_device
from ontoscope.probing.decodability import factor_targets
from ontoscope.probing.erasure import erasure_decodability
from ontoscope.probing.icv import ICVThresholds, icv_scores
from ontoscope.probing.interchange import interchange_accuracy
from ontoscope.probing.probes import r2_score, ridge_cv, split_indices
from ontoscope.probing.quantized import quantizer_after, quantizer_retention
from ontoscope.probing.steering import effect_matrix, steer
from ontoscope.progress import track
from ontoscope.stimuli.dataset import StimulusSet, set_space
from ontoscope.stimuli.factors import CANON, FactorSpace

__all__ = ["CARRIERS", "OperationalOntology", "operational_ontology"]

#: The static factor whose direction, modulated over time, drives an oscillatory depth.
CARRIERS = {"vibrato_depth": "f0", "tremolo_depth": "loudness"}


@dataclass
class OperationalOntology:
    """What probing and intervening found in one model.

    Attributes
    ----------
    table : DataFrame
        One row per (site, factor, kind): ``site, site_index, factor, factor_kind, kind, rate_hz,
        decodability, efficacy, slope, specificity, consistency, iia, iia_drift, das_iia, das_angle_deg,
        erasure_drop, erasure_collateral, retained, icv_score, status``.
    effects : DataFrame
        The full effect matrices (:func:`~ontoscope.probing.steering.effect_matrix` rows with ``site``).
    retention : DataFrame
        Quantizer retention rows (empty without a quantizer).
    examples : dict
        ``{(site, factor): (base [N], steered [N])}`` audio at ``sample_rate``, for audio models.
    sample_rate : int
    thresholds : ICVThresholds
    directions : dict
        ``{(site, factor): [C]}``: the static steering vector (unit probe direction times the site's
        standard deviation along it), in the site's units.
    steer_clips : ndarray
        Positions in the stimulus set of the base clips that were steered.
    """

    table: pd.DataFrame
    effects: pd.DataFrame
    retention: pd.DataFrame
    examples: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(repr=False)
    sample_rate: int
    thresholds: ICVThresholds
    directions: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)
    steer_clips: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)

    def status(self) -> pd.DataFrame:
        """Status per factor (rows) and site (columns), the better kind of intervention of each pair."""
        return self.best().pivot(index="factor", columns="site", values="status")[self.sites()]

    def sites(self) -> list[str]:
        """The sites in model order."""
        return self.table.drop_duplicates("site").sort_values("site_index")["site"].tolist()

    def best(self) -> pd.DataFrame:
        """One row per (site, factor): the kind of intervention (static or temporal) with the higher score."""
        t = self.table.assign(_s=self.table["icv_score"].fillna(-1))
        return (t.sort_values("_s", ascending=False, kind="stable").drop_duplicates(["site", "factor"])
                .drop(columns="_s").sort_values(["site_index", "factor"]).reset_index(drop=True))

    def save(self, out: str | Path) -> Path:
        """Write ``operational.parquet``, ``effects.parquet``, ``retention.parquet``, ``thresholds.json`` and
        ``examples/<site>/<factor>_{base,steered}.wav`` under ``out``."""
        from ontoscope.stimuli.audio_io import write_audio

        out = ensure_dir(out)
        save_table(out / "operational.parquet", self.table)
        save_table(out / "effects.parquet", self.effects)
        save_table(out / "retention.parquet", self.retention)
        save_json(out / "thresholds.json", asdict(self.thresholds))
        save_json(out / "directions.json", {"steer_clips": self.steer_clips.tolist(),
                                            "directions": [{"site": s, "factor": f, "vector": v.tolist()}
                                                           for (s, f), v in self.directions.items()]})
        for (site, factor), (base, steered) in self.examples.items():
            d = ensure_dir(out / "examples" / site)
            write_audio(d / f"{factor}_base.wav", base, self.sample_rate)
            write_audio(d / f"{factor}_steered.wav", steered, self.sample_rate)
        return out

    @classmethod
    def load(cls, root: str | Path) -> OperationalOntology:
        """Read what :meth:`save` wrote (without the audio examples)."""
        root = Path(root)
        path = root / "operational.parquet"
        if not path.exists():
            raise ConfigError(f"{root} holds no operational ontology (no operational.parquet); run "
                              "`ontoscope probe ... --interventions` first")
        th = ICVThresholds(**json.loads((root / "thresholds.json").read_text()))
        dirs = json.loads((root / "directions.json").read_text())
        return cls(pd.read_parquet(path), pd.read_parquet(root / "effects.parquet"),
                   pd.read_parquet(root / "retention.parquet"), {}, 0, th,
                   {(d["site"], d["factor"]): np.asarray(d["vector"]) for d in dirs["directions"]},
                   np.asarray(dirs["steer_clips"], dtype=np.int64))


def _pooled(model: AudioModel, ds: StimulusSet, sites: Sequence[str], chunk: int, progress: bool | None,
            output: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Time-averaged activations ``{site: [n, C]}`` over the set, and with ``output`` the model's time-averaged
    output ``[n, D]`` from the same pass (resumed from the deepest site read)."""
    feats: dict[str, list[np.ndarray]] = {s: [] for s in sites}
    outs: list[np.ndarray] = []
    order = [s.name for s in model.sites()]
    deepest = max(sites, key=order.index)
    chunks = list(ds.chunks(chunk))
    with torch.no_grad():
        for _, audio in track(chunks, len(chunks), "site activations", progress):
            acts = encode_sites(model, audio.to(model_device(model)), sites)
            for s in sites:
                a = acts[s]
                feats[s].append(a.reshape(a.shape[0], -1, a.shape[-1]).mean(-1).double().cpu().numpy())
            if output:
                outs.append(_pool_output(model.resume(acts[deepest], deepest)))
    return {s: np.concatenate(v) for s, v in feats.items()}, (np.concatenate(outs) if output else None)


def _output_readout(x: np.ndarray, targets: np.ndarray, space: FactorSpace, train: np.ndarray,
                    seed: int) -> Callable[[torch.Tensor], pd.DataFrame]:
    """Ridge probes from the model's time-averaged output ``x`` to every factor, fitted on the training clips."""
    fits = {}
    for j, name in enumerate(space.names):
        ok = train[np.isfinite(targets[train, j])]
        fits[name] = ridge_cv(x[ok], targets[ok, j:j + 1], seed=seed)

    def readout(y: torch.Tensor) -> pd.DataFrame:
        z = _pool_output(y)
        return pd.DataFrame({n: space[n].denormalize(np.clip(f.predict(z)[:, 0], 0, 1)) for n, f in fits.items()})

    return readout


def _pool_output(y: torch.Tensor) -> np.ndarray:
    y = y.detach().double().cpu()
    return (y.reshape(y.shape[0], -1, y.shape[-1]).mean(-1) if y.ndim >= 3 else y.reshape(y.shape[0], -1)).numpy()


def _mid_rate(space: FactorSpace, rate: str) -> float:
    if rate in space.names:
        f = space[rate]
        return math.sqrt(f.low * f.high) if f.scale == "log" else (f.low + f.high) / 2
    return float(space.fixed.get(rate, CANON[rate].default))


def operational_ontology(
    model: AudioModel,
    stimuli: StimulusSet,
    *,
    pairs: StimulusSet | None = None,
    sites: Sequence[str] | None = None,
    factors: Sequence[str] | None = None,
    n_steer: int = 16,
    magnitudes: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 1.0),
    temporal: bool = True,
    das: bool = False,
    das_steps: int = 60,
    erasure: bool = True,
    max_erasure_dims: int = 2048,
    thresholds: ICVThresholds | None = None,
    test_fraction: float = 0.25,
    chunk: int = 32,
    seed: int = 0,
    progress: bool | None = None,
) -> OperationalOntology:
    """Probe and intervene on every (site, factor) of ``model`` over ``stimuli`` (see the module docstring).

    Parameters
    ----------
    model : AudioModel
    stimuli : StimulusSet
        At the model's sample rate; its varied factors are the factors measured.
    pairs : StimulusSet, optional
        Counterfactual pairs (``ontoscope stimuli --pairs``) for IIA (and DAS).
    sites, factors : optional subsets (default: every site, every varied factor)
    n_steer : int
        Held-out base clips steered per (site, factor).
    magnitudes : sequence of float
        Steps in standard deviations of the site's projection on the direction. Temporal
        interventions use their non-negative half.
    temporal : bool
        Also run the temporal intervention of oscillatory depths.
    das : bool
        Fit a rank-1 DAS subspace per factor with pairs, from the probe direction (``das_steps`` steps).
    erasure : bool
        Score LEACE erasure per site, at sites of at most ``max_erasure_dims`` (flattened) channels
        (LEACE holds their covariance: 2048 channels take 32 MB, a 32768-channel site 8.6 GB); NaN elsewhere.
    thresholds : ICVThresholds
    test_fraction : float
        Share of clips held out for decodability and for steering.
    seed : int
    """
    if stimuli.sr != model.sample_rate:
        raise ConfigError(f"the stimuli are at {stimuli.sr} Hz but the model expects {model.sample_rate} Hz")
    thresholds = thresholds or ICVThresholds()
    space = set_space(stimuli)
    names = list(factors) if factors is not None else list(space.names)
    unknown = sorted(set(names) - set(space.names))
    if unknown:
        raise ConfigError(f"factors {unknown} are not varied in {stimuli.root}; it varies {', '.join(space.names)}")
    all_sites = [s.name for s in model.sites()]
    site_names = list(sites) if sites is not None else all_sites
    for s in site_names:  # unknown sites fail here, before any work
        site_index(model.sites(), s)
    audio_model = getattr(model, "output", None) == "audio"
    pooled, outputs = _pooled(model, stimuli, site_names, chunk, progress, output=not audio_model)
    targets = factor_targets(stimuli.factors, space)
    y_all = targets.to_numpy(dtype=np.float64)
    train, test = split_indices(len(stimuli), test_fraction, seed)
    spread = {n: float(np.nanstd(targets[n].to_numpy())) for n in space.names}
    readout = None if audio_model else _output_readout(outputs, y_all, space, train, seed)
    steer_idx = np.sort(test[:n_steer])
    base = stimuli.audio(steer_idx).to(model_device(model))
    mags = np.asarray(magnitudes, dtype=np.float64)
    pos = mags[mags >= 0]
    pair_factors = set(pairs.factors["factor"]) if pairs is not None and "factor" in pairs.factors else set()

    rows, effects, retention, examples, vectors = [], [], [], {}, {}
    for site in track(site_names, len(site_names), "interventions per site", progress):
        x = pooled[site]
        fr = model.sites()[site_index(model.sites(), site)].frame_rate(model.sample_rate)
        # 1. probes: decodability and readout directions
        dirs, sigma, dec = {}, {}, {}
        for name in space.names:
            j = space.names.index(name)
            tr, te = train[np.isfinite(y_all[train, j])], test[np.isfinite(y_all[test, j])]
            if len(tr) < 8 or len(te) < 2:
                continue
            # one scale for the whole site (its RMS channel deviation), so that the penalty grid fits any site's
            # units without magnifying near-constant channels; the weights go back to site units
            mu = x[tr].mean(0)
            sd = float(np.sqrt(np.mean(x[tr].var(0)))) or 1.0
            res = ridge_cv((x[tr] - mu) / sd, y_all[tr, j:j + 1], seed=seed)
            w = res.coef[:, 0] / sd
            pred = res.predict((x[te] - mu) / sd)
            dec[name] = float(r2_score(torch.as_tensor(y_all[te, j:j + 1]), torch.as_tensor(pred))[0])
            norm = np.linalg.norm(w)
            if norm > 0:
                dirs[name] = w / norm
                sigma[name] = float(np.std(x @ dirs[name]))
        # 5. erasure
        erased = {}
        if erasure and x.shape[1] <= max_erasure_dims:  # LEACE holds a d x d covariance
            cols = [n for n in names if n in dirs]
            complete = [n for n in space.names if np.isfinite(targets[n]).all()]
            cols = [n for n in cols if n in complete]
            if cols and len(complete) > 1:
                er = erasure_decodability(x, targets[complete], erase=cols, seed=seed)
                for n in cols:
                    e = er[er["erased"] == n]
                    own = e[e["factor"] == n]["drop"]
                    others = e[e["factor"] != n]["drop"]
                    erased[n] = (float(own.iloc[0]), float(others.mean()) if len(others) else float("nan"))
        # 2-3. steering, static and temporal
        plans = []
        for name in names:
            if name in dirs and sigma.get(name, 0) > 0:
                plans.append((name, "static", None, dirs[name] * sigma[name], mags))
            carrier = CARRIERS.get(name)
            rate = CANON[name].rate
            if temporal and carrier in dirs and sigma.get(carrier, 0) > 0 and rate and fr and pos.size >= 2:
                r = _mid_rate(space, rate)
                if r < fr / 2:
                    plans.append((name, "temporal", r, dirs[carrier] * sigma[carrier], pos))
        for name, kind, rate, d, m in plans:
            e = effect_matrix(model, base, site, {name: d}, space, m, rate_hz=rate, readout=readout)
            effects.append(e.assign(site=site))
            own = e[e["measured"] == name].iloc[0]
            row = {"site": site, "site_index": all_sites.index(site), "factor": name,
                   "factor_kind": CANON[name].kind, "kind": kind, "rate_hz": rate,
                   "decodability": dec.get(name, np.nan),
                   "slope": own["slope"],
                   "efficacy": abs(own["slope"]) / spread[name] if spread[name] > 0 else np.nan,
                   "specificity": own["specificity"], "consistency": own["consistency"],
                   "iia": np.nan, "iia_drift": np.nan, "das_iia": np.nan, "das_angle_deg": np.nan,
                   "erasure_drop": erased.get(name, (np.nan, np.nan))[0],
                   "erasure_collateral": erased.get(name, (np.nan, np.nan))[1], "retained": np.nan}
            # 4. interchange and DAS (static only: a pair differs in a static value)
            if kind == "static" and name in pair_factors and audio_model:
                basis = dirs[name][:, None]
                ia = interchange_accuracy(model, pairs, site, {name: basis}, space, chunk=chunk).iloc[0]
                row.update(iia=ia["iia"], iia_drift=ia["drift"])
                if das:
                    al = fit_alignment(model, pairs, site, name, init=basis, restarts=0, steps=das_steps, seed=seed)
                    da = interchange_accuracy(model, pairs, site, {name: al.basis}, space, chunk=chunk).iloc[0]
                    row.update(das_iia=da["iia"], das_angle_deg=float(principal_angles(al.basis, basis).max()))
            # 6. quantizer
            if kind == "static" and quantizer_after(model, site):
                q = quantizer_retention(model, base, site, d, magnitudes=[1.0])
                retention.append(q.assign(factor=name))
                row["retained"] = float(q["retained"].iloc[0])
            rows.append(row)
            if kind == "static":
                vectors[(site, name)] = d
            if audio_model and kind == "static" and (site, name) not in examples:
                out = steer(model, base[:1], site, d, [0.0, float(mags.max())])
                examples[(site, name)] = (out[0, 0].cpu().numpy(), out[1, 0].cpu().numpy())
    table = pd.DataFrame(rows)
    if table.empty:
        raise ConfigError("no (site, factor) could be probed: too few clips with defined values; render more")
    # the IIA of a row is the better of the probe's and DAS's
    table["iia_used"] = table[["iia", "das_iia"]].max(axis=1, skipna=True)
    scored = icv_scores(table.assign(iia=table["iia_used"]), thresholds)
    table["icv_score"], table["status"] = scored["icv_score"], scored["status"]
    return OperationalOntology(
        table=table, effects=pd.concat(effects, ignore_index=True) if effects else pd.DataFrame(),
        retention=pd.concat(retention, ignore_index=True) if retention else pd.DataFrame(),
        examples=examples, sample_rate=model.sample_rate, thresholds=thresholds, directions=vectors,
        steer_clips=steer_idx)
