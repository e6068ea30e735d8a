"""The operational ontology of a model: per (site, factor, family), what probing and intervening find.

:func:`operational_ontology` reads one capture of the stimuli (the one ``ontoscope
probe`` reads: the same probe recipe, the same seeded split) and, per site:

1. **decodability**: held-out R² of the ridge probe (:func:`~ontoscope.probing.decodability.probe_capture`)
   in each captured view; each family is credited with the views that match it
   (``FAMILY_VIEWS``: means and stds for additive, gain, place shift and
   interchange; the modulation spectrum too for time-warp, modulation and DAS);
2. **dose–response** of every steering family (:mod:`~ontoscope.probing.interventions`:
   additive along the factor's *pattern* direction, gain, time-warp, place shift,
   modulation) on ``n_steer`` held-out clips, measured on the output
   (:mod:`~ontoscope.probing.response`): efficacy, specificity, consistency at the
   dose kept, the local slope, the largest change, the odd and even parts. A
   time-warp is expected to scale every rate with the pitch (not leakage); what
   the same warp of the clips themselves does to the readout beyond that (its
   bias) is taken out of every factor's change before scoring;
3. with counterfactual ``pairs``: **interchange** over the pattern direction and
   **DAS** (ranks 1 and 2 by default, started from it), each beside the mean IIA of three
   random subspaces of the same rank (``iia_random``), scored against the model's *own* counterfactual output (the model
   run on the source clip, read the same way), with the share of pairs whose
   difference the model reproduces reported beside it (``pair_fidelity``);
4. LEACE erasure of each factor from the site's means (drop and collateral);
5. before a quantizer, how much of an additive edit survives re-quantization.

Every row is scored by :func:`~ontoscope.probing.icv.icv_scores`; the status of a
(site, factor) is that of its best family (:meth:`OperationalOntology.best`).
For models whose output is not audio, the output is read by ridge probes fitted on
the model's own time-averaged output; for audio models by the descriptors.

The pattern direction of a factor (Haufe et al. 2014) is the regression of the
site's channel means on the factors: the activation change per standard deviation
of the factor with the others held. It, not the probe's weight vector, is the
direction along which the data move when the factor does.

References
----------
Haufe, S., Meinecke, F., Görgen, K., Dähne, S., Haynes, J.-D., Blankertz, B., &
Bießmann, F. (2014). On the interpretation of weight vectors of linear models in
multivariate neuroimaging. NeuroImage 87, 96-110.
Geiger, A., Wu, Z., Potts, C., Icard, T., & Goodman, N. (2023). Finding alignments
between interpretable causal variables and distributed neural representations. CLeaR.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ontoscope.artifacts import ensure_dir, save_json, save_table
from ontoscope.descriptors import measure
from ontoscope.errors import ConfigError
from ontoscope.models.protocol import AudioModel, encode_sites, model_device, site_index
from ontoscope.probing.alignment import fit_subspace
from ontoscope.probing.capture import Capture, at_rate, capture
from ontoscope.probing.decodability import factor_targets, probe_capture
from ontoscope.probing.erasure import erasure_decodability
from ontoscope.probing.icv import ICVThresholds, best_family, icv_scores
from ontoscope.probing.interchange import orthonormal_basis, pair_positions
from ontoscope.probing.interventions import (
    FAMILIES,
    Additive,
    Gain,
    Interchange,
    Intervention,
    Modulation,
    PlaceShift,
    TimeWarp,
    place_axis,
    ratio,
    run_interventions,
)
from ontoscope.probing.probes import ridge_cv, split_indices
from ontoscope.probing.quantized import quantizer_after, quantizer_retention
from ontoscope.probing.response import check_doses, dose_response
from ontoscope.progress import track
from ontoscope.stimuli.audio_io import write_audio
from ontoscope.stimuli.dataset import StimulusSet, set_space
from ontoscope.stimuli.factors import CANON, FactorSpace

__all__ = ["DEFAULT_DOSES", "FAMILY_VIEWS", "MODULATED", "OperationalOntology", "modulation_direction",
           "operational_ontology", "pattern_directions"]

#: Dose levels per steering family (the signs are added): multiples of the site's per-frame norm (additive),
#: ``ratio`` arguments (gain, time-warp; ±0.5 is a fifth), bins (place shift).
DEFAULT_DOSES: dict[str, tuple[float, ...]] = {
    "additive": (0.05, 0.3, 1.7, 10.0),
    "gain": (0.06, 0.25, 1.0, 3.0),
    "time_warp": (0.03, 0.08, 0.2, 0.5),
    "place_shift": (2, 6, 16, 48),
}
#: The inner families that impose each oscillatory depth, and their one-sign dose levels.
MODULATED: dict[str, tuple[str, ...]] = {"vibrato_depth": ("time_warp", "additive"),
                                         "tremolo_depth": ("gain", "additive"), "beat_depth": ("gain", "additive")}
MODULATION_DOSES: dict[str, tuple[float, ...]] = {"additive": (0.05, 0.3, 1.7, 10.0), "gain": (0.06, 0.25, 1.0, 3.0),
                                                  "time_warp": (0.004, 0.012, 0.03, 0.06)}
#: The views whose decodability a family is credited with.
FAMILY_VIEWS: dict[str, tuple[str, ...]] = {
    "additive": ("pooled",), "gain": ("pooled",), "place_shift": ("pooled",), "interchange": ("pooled",),
    "time_warp": ("pooled", "modulation", "timing"), "modulation": ("pooled", "modulation", "timing"),
    "das": ("pooled", "modulation", "timing"),
}
STEERING = ("additive", "gain", "time_warp", "place_shift", "modulation")
#: A pair counts for IIA when the model's own outputs differ by at least this much (normalised units).
MIN_PAIR_CHANGE = 0.05
#: Random subspaces whose mean IIA is the baseline of an interchange or DAS row.
RANDOM_SUBSPACES = 3
#: A factor is read from a non-audio output only where a ridge probe of the output reaches this R².
MIN_READOUT_R2 = 0.2


@dataclass
class OperationalOntology:
    """What probing and intervening found in one model.

    Attributes
    ----------
    table : DataFrame
        One row per (site, factor, family, variant): ``site, site_index, role, factor, factor_kind, family,
        variant, rate_hz, view, decodability, dose, efficacy, specificity, consistency, slope0, reach, odd,
        even, iia, iia_random, pair_fidelity, pairs, erasure_drop, erasure_collateral, retained, icv_score,
        status``.
    effects : DataFrame
        The dose–response curves (:class:`~ontoscope.probing.response.DoseResponse` ``curve`` rows with
        ``site, role, family, variant, intended``).
    retention : DataFrame
        Quantizer retention rows (:func:`~ontoscope.probing.quantized.quantizer_retention`, with ``role``;
        empty without a quantizer).
    examples : dict
        ``{(site, factor): (base [N], edited [N])}`` audio at ``sample_rate`` for audio models: the best
        steering family of the pair at its kept dose.
    sample_rate : int
    thresholds : ICVThresholds
    directions : dict
        ``{(site, factor): [C]}``: the additive vector (unit pattern direction times the site's per-frame
        norm), in the site's units.
    steer_clips : ndarray
        Positions in the stimulus set of the base clips that were steered.
    probes : DataFrame
        The decodability rows (:func:`~ontoscope.probing.decodability.probe_capture`), with the site's ``role``
        after ``site``.
    """

    table: pd.DataFrame
    effects: pd.DataFrame
    retention: pd.DataFrame
    examples: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(repr=False)
    sample_rate: int
    thresholds: ICVThresholds
    directions: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)
    steer_clips: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)
    probes: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def status(self) -> pd.DataFrame:
        """Status per factor (rows) and site (columns), from the best family of each pair."""
        return self.best().pivot(index="factor", columns="site", values="status")[self.sites()]

    def sites(self) -> list[str]:
        """The sites in model order."""
        return self.table.drop_duplicates("site").sort_values("site_index")["site"].tolist()

    def best(self) -> pd.DataFrame:
        """One row per (site, factor): the family that controls it (an ``icv`` row first, then the highest
        score)."""
        return best_family(self.table, ["site", "factor"])

    def save(self, out: str | Path) -> Path:
        """Write ``operational.parquet``, ``effects.parquet``, ``retention.parquet``, ``probes.parquet``,
        ``thresholds.json``, ``directions.json`` and ``examples/<site>/<factor>_{base,steered}.wav``."""
        out = ensure_dir(out)
        save_table(out / "operational.parquet", self.table)
        save_table(out / "effects.parquet", self.effects)
        save_table(out / "retention.parquet", self.retention)
        save_table(out / "probes.parquet", self.probes)
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
        probes = root / "probes.parquet"
        return cls(pd.read_parquet(path), pd.read_parquet(root / "effects.parquet"),
                   pd.read_parquet(root / "retention.parquet"), {}, 0, th,
                   {(d["site"], d["factor"]): np.asarray(d["vector"]) for d in dirs["directions"]},
                   np.asarray(dirs["steer_clips"], dtype=np.int64),
                   pd.read_parquet(probes) if probes.exists() else pd.DataFrame())


def pattern_directions(X: np.ndarray, Y: pd.DataFrame) -> dict[str, np.ndarray]:
    """Pattern vectors ``{factor: [D]}``: the change of ``X`` ``[n, D]`` per standard deviation of each factor of
    ``Y`` ``[n, k]`` with the others held (least squares of ``X`` on all factors with an intercept; Haufe et al.
    2014). Factors undefined on some rows (a rate at depth 0) are fitted with the always-defined ones on the rows
    where they are defined."""
    x = np.asarray(X, dtype=np.float64)
    y = Y.to_numpy(dtype=np.float64)
    full = [j for j in range(y.shape[1]) if np.isfinite(y[:, j]).all()]
    out = {}
    for j, name in enumerate(Y.columns):
        cols = full if j in full else [*full, j]
        ok = np.isfinite(y[:, cols]).all(1)
        yy = y[ok][:, cols]
        sd = yy.std(0)
        if ok.sum() < len(cols) + 2 or sd[cols.index(j)] == 0:
            continue
        design = np.column_stack([np.ones(ok.sum()), (yy - yy.mean(0)) / np.where(sd > 0, sd, 1.0)])
        coef, *_ = np.linalg.lstsq(design, x[ok], rcond=None)
        out[name] = coef[1 + cols.index(j)]
    return out


def modulation_direction(acts: torch.Tensor, rates: np.ndarray, weights: np.ndarray, frame_rate: float
                         ) -> np.ndarray | None:
    """The direction ``[C·F]`` along which a site's trajectory oscillates at each clip's own modulation rate.

    Each clip's (mean-removed, Hann-windowed) trajectory is demodulated at its rate ``rates[b]`` (Hz) into a
    complex amplitude vector ``A_b``; the direction is the top eigenvector of ``Σ_b w_b Re(A_b A_bᴴ)`` (the plane
    of oscillation, whatever each clip's phase), ``w`` the clips' depths. None when no clip has a rate below the
    frame Nyquist rate.
    """
    a = acts.reshape(acts.shape[0], -1, acts.shape[-1]).double().cpu()
    t = a.shape[-1]
    ok = np.isfinite(rates) & (np.asarray(rates) < frame_rate / 2) & (np.asarray(weights) > 0)
    if t < 8 or not ok.any():
        return None
    win = torch.hann_window(t, periodic=False, dtype=torch.float64)
    tt = torch.arange(t, dtype=torch.float64) / frame_rate
    cols = []
    for b in np.flatnonzero(ok):
        phasor = torch.exp(-2j * math.pi * float(rates[b]) * tt) * win
        dev = a[b] - a[b].mean(-1, keepdim=True)
        amp = (dev.to(torch.complex128) * phasor).sum(-1) / win.sum() * math.sqrt(float(weights[b]))
        cols += [amp.real, amp.imag]
    # Σ_b w_b Re(A_b A_bᴴ) = M Mᵀ with M = [√w_b Re A_b, √w_b Im A_b]: its top eigenvector is M's top left
    # singular vector, found without forming the C x C matrix
    u, s, _ = torch.linalg.svd(torch.stack(cols, 1), full_matrices=False)
    return u[:, 0].numpy() if s[0] > 0 else None


def _mid_rate(space: FactorSpace, rate: str) -> float:
    if rate in space.names:
        f = space[rate]
        return math.sqrt(f.low * f.high) if f.scale == "log" else (f.low + f.high) / 2
    return float(space.fixed.get(rate, CANON[rate].default))


def _signed(levels: np.ndarray) -> np.ndarray:
    return np.concatenate([-levels[::-1], [0.0], levels])


def _warp_expected(doses: np.ndarray, v0: pd.DataFrame, space: FactorSpace) -> np.ndarray:
    """``[M, B, J]``: the normalised change a time-warp by ``ratio(dose)`` causes in principle: every factor in Hz
    scaled by the ratio, every one in seconds by its inverse, the rest unchanged."""
    out = np.zeros((len(doses), len(v0), len(space.names)))
    for j, n in enumerate(space.names):
        unit = space[n].unit
        if unit not in ("Hz", "s"):
            continue
        base = v0[n].to_numpy(dtype=np.float64)
        for k, d in enumerate(doses):
            r = ratio(float(d))
            out[k, :, j] = space[n].normalize(base * (r if unit == "Hz" else 1 / r)) - space[n].normalize(base)
    return out


@dataclass
class _Plan:
    """One steering family at one site: its interventions over the doses, and what it is scored for."""

    family: str
    variant: str
    factors: list[str]
    doses: np.ndarray
    build: Callable[[float], Intervention]
    rate_hz: float | None = None
    expected: Callable[[np.ndarray, pd.DataFrame], np.ndarray] | None = None


def operational_ontology(
    model: AudioModel,
    stimuli: StimulusSet,
    *,
    capture_dir: Capture | str | Path | None = None,
    pairs: StimulusSet | None = None,
    sites: Sequence[str] | None = None,
    factors: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    doses: Mapping[str, Sequence[float]] | None = None,
    n_steer: int = 8,
    das: bool = True,
    das_rank: int | Sequence[int] | None = None,
    das_steps: int = 40,
    erasure: bool = True,
    max_erasure_dims: int = 2048,
    thresholds: ICVThresholds | None = None,
    test_fraction: float = 0.2,
    random_directions: bool = False,
    chunk: int = 32,
    seed: int = 0,
    progress: bool | None = None,
) -> OperationalOntology:
    """Probe and intervene on every (site, factor, family) of ``model`` over ``stimuli`` (module docstring).

    Parameters
    ----------
    model : AudioModel
    stimuli : StimulusSet
        At the model's sample rate; its varied factors are the factors measured.
    capture_dir : Capture or path, optional
        A capture of ``stimuli`` with the ``pooled`` view (and ``modulation`` for the temporal families),
        e.g. the one ``ontoscope probe`` made; without one, the sites are captured into a temporary directory.
    pairs : StimulusSet, optional
        Counterfactual pairs (``ontoscope stimuli --pairs``) for interchange and DAS.
    sites, factors : optional subsets (default: every captured site, every varied factor)
    families : sequence of str, optional
        Of :data:`~ontoscope.probing.interventions.FAMILIES` (default: all; each runs where it applies).
    doses : mapping, optional
        Dose levels per family, overriding :data:`DEFAULT_DOSES` (positive; signs are added).
    n_steer : int
        Held-out base clips steered per (site, family).
    das, das_rank, das_steps
        Fit a DAS subspace of each rank in ``das_rank`` per factor with pairs (``das_steps`` Adam steps from the
        pattern). Default: ranks 1 and 2, each where it is below the site's width; a rank given explicitly must be
        below the width of every site (``variant`` ``rank1``, ``rank2``, ...).
    erasure, max_erasure_dims
        Score LEACE erasure at sites of at most ``max_erasure_dims`` (flattened) channels.
    thresholds : ICVThresholds
    test_fraction : float
        Share of clips held out for decodability and steering (the same split as ``ontoscope probe``).
    random_directions : bool
        Also steer along a seeded random direction per factor (``family = additive``, ``variant = random``):
        the negative cells of the controls; :meth:`OperationalOntology.best` never picks them.
    seed : int
    """
    stimuli = at_rate(stimuli, model.sample_rate)
    pairs = at_rate(pairs, model.sample_rate) if pairs is not None else None
    thresholds = thresholds or ICVThresholds()
    space = set_space(stimuli)
    names = list(factors) if factors is not None else list(space.names)
    unknown = sorted(set(names) - set(space.names))
    if unknown:
        raise ConfigError(f"factors {unknown} are not varied in {stimuli.root}; it varies {', '.join(space.names)}")
    fams = list(families) if families is not None else list(FAMILIES)
    bad = [f for f in fams if f not in FAMILIES]
    if bad:
        raise ConfigError(f"unknown intervention family {bad[0]!r}; use any of {', '.join(FAMILIES)}")
    levels = {f: check_doses(v, what=f"{f} doses", integer=f == "place_shift")
              for f, v in {**DEFAULT_DOSES, **dict(doses or {})}.items() if f in DEFAULT_DOSES}
    unknown_doses = sorted(set(doses or {}) - set(DEFAULT_DOSES))
    if unknown_doses:
        raise ConfigError(f"doses for {unknown_doses[0]!r}: only {', '.join(DEFAULT_DOSES)} take dose levels")
    if n_steer < 2:
        raise ConfigError(f"n_steer must be at least 2, got {n_steer}")
    model_sites = model.sites()
    site_names = list(sites) if sites is not None else [s.name for s in model_sites]
    for s in site_names:  # unknown sites fail here, before any work
        site_index(model_sites, s)
    if pairs is not None and "factor" not in pairs.factors:
        raise ConfigError(f"{pairs.root} is not a set of counterfactual pairs; render one with "
                          "`ontoscope stimuli OUT --pairs`")
    ranks = _das_ranks(das_rank)
    for s in site_names:
        if "place_shift" in (families or ()) and place_axis(model_sites[site_index(model_sites, s)]) is None:
            raise ConfigError(f"site {s!r} declares no ordered axis, so a place shift has nothing to roll; drop "
                              "place_shift from the families or choose a site with notes['place']")
        if das and pairs is not None and "das" in fams and das_rank is not None:
            width = model_sites[site_index(model_sites, s)].channels * (
                model_sites[site_index(model_sites, s)].freq_bins or 1)
            if max(ranks) >= width and width > 1:
                raise ConfigError(f"DAS rank {max(ranks)} is not below the width of site {s!r} ({width} channels); "
                                  "choose a smaller das_rank")
    if isinstance(model, torch.nn.Module):
        model.eval()

    with tempfile.TemporaryDirectory() as tmp:
        if capture_dir is None:
            cap = capture(model, stimuli, Path(tmp) / "capture", sites=site_names,
                          views=("pooled", "modulation", "timing"), chunk=chunk, progress=progress)
        else:
            cap = capture_dir if isinstance(capture_dir, Capture) else Capture(capture_dir)
        return _operational(model, stimuli, cap, pairs, site_names, names, fams, levels, n_steer, das, ranks,
                            das_steps, erasure, max_erasure_dims, thresholds, test_fraction, random_directions,
                            chunk, seed, progress)


def _operational(model: AudioModel, stimuli: StimulusSet, cap: Capture, pairs: StimulusSet | None,
                 site_names: list[str], names: list[str], fams: list[str], levels: dict[str, np.ndarray],
                 n_steer: int, das: bool, das_ranks: tuple[int, ...], das_steps: int, erasure: bool,
                 max_erasure_dims: int,
                 thresholds: ICVThresholds, test_fraction: float, random_directions: bool, chunk: int,
                 seed: int, progress: bool | None) -> OperationalOntology:
    missing = [s for s in site_names if s not in cap.sites]
    if missing or "pooled" not in cap.views:
        what = f"site {missing[0]!r}" if missing else "the pooled view"
        raise ConfigError(f"the capture at {cap.root} lacks {what}; capture the sites with the pooled view")
    if len(cap.clips) != len(stimuli) or not np.array_equal(cap.clips, stimuli.factors["clip"].to_numpy()):
        raise ConfigError(f"the capture at {cap.root} was made of another stimulus set; capture this one")
    space = set_space(stimuli)
    device = model_device(model)
    model_sites = model.sites()
    all_sites = [s.name for s in model_sites]
    audio_model = getattr(model, "output", None) == "audio"
    targets = factor_targets(stimuli.factors, space)
    spread = {n: float(np.nanstd(targets[n].to_numpy())) for n in space.names}
    views = [v for v in ("pooled", "modulation", "timing") if v in cap.views]
    probes = probe_capture(cap, targets, sites=site_names, views=views, probes=("ridge",),
                           test_fraction=test_fraction, n_boot=200, seed=seed, progress=progress)
    dec = {(r.site, r.view, r.factor): r.test_r2 for r in probes.itertuples()}
    if "site" in probes.columns and "role" not in probes.columns:  # every result table carries the role
        roles = {s.name: s.role for s in model_sites}
        probes.insert(list(probes.columns).index("site") + 1, "role", probes["site"].map(roles))
    train, test = split_indices(len(stimuli), test_fraction, seed)
    steer_idx = np.sort(test[:n_steer])
    base_audio = stimuli.audio(steer_idx).to(device)
    with torch.no_grad():
        base_acts = encode_sites(model, base_audio, site_names)
    readout = _make_readout(model, stimuli, space, train, chunk, seed) if not audio_model else None

    def measure_norm(y: torch.Tensor) -> np.ndarray:
        table = readout(y) if readout is not None else measure(y.cpu(), model.sample_rate)
        return np.stack([space[n].normalize(table[n].to_numpy(dtype=np.float64)) for n in space.names], 1)

    def natural(values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({n: space[n].denormalize(values[:, j]) for j, n in enumerate(space.names)})

    # the factors' own modulation directions, from the training clips with the deepest modulation; the base clips
    # a modulation is imposed on: the clips of the set where the factor is weakest (imposed on an existing
    # modulation of another phase, it would beat against it)
    mod_dirs: dict[tuple[str, str], np.ndarray] = {}
    mod_base: dict[str, dict[str, torch.Tensor]] = {}
    depth_names = [n for n in names if n in MODULATED and CANON[n].rate and "modulation" in fams]
    if depth_names:
        for name in depth_names:
            depth_all = stimuli.factors[name].to_numpy(dtype=np.float64)
            weak = np.sort(np.argsort(depth_all, kind="stable")[:n_steer])
            with torch.no_grad():
                mod_base[name] = encode_sites(model, stimuli.audio(weak).to(device), site_names)
            depth = stimuli.factors[name].to_numpy(dtype=np.float64)[train]
            pick = train[np.argsort(-depth, kind="stable")[:min(32, len(train))]]
            rate = CANON[name].rate
            rates = (stimuli.factors[rate].to_numpy(dtype=np.float64)[pick] if rate in stimuli.factors
                     else np.full(len(pick), _mid_rate(space, rate)))
            with torch.no_grad():
                acts = encode_sites(model, stimuli.audio(pick).to(device), site_names)
            for s in site_names:
                v = modulation_direction(acts[s], rates, stimuli.factors[name].to_numpy(dtype=np.float64)[pick],
                                         cap.frame_rate(s))
                if v is not None:
                    mod_dirs[(s, name)] = v

    # what a time-warp of the sound itself does to every factor, read the same way, beyond what it does in
    # principle (rates follow the pitch, durations shrink): the readout's own bias under a warp (a vibrato read
    # across the warp's reflected ends, a rate pushed past the estimator's range), taken out of every factor's
    # change before a time-warp at a site is scored
    warp_bias = None
    if audio_model and "time_warp" in fams:
        d = _signed(levels["time_warp"])
        flat_audio = torch.cat([TimeWarp(float(x))(base_audio[:, None])[:, 0] for x in d])
        ref = measure_norm(flat_audio).reshape(len(d), len(steer_idx), len(space.names))
        warp_bias = np.nan_to_num(ref - ref[d == 0] - _warp_expected(d, natural(ref[d == 0][0]), space))

    pair_data = _encode_pair_set(model, pairs, site_names, names, measure_norm, chunk) \
        if pairs is not None and any(f in fams for f in ("interchange", "das")) else {}

    rows, effects, retention, vectors, plans_by_site = [], [], [], {}, {}
    for site in track(site_names, len(site_names), "interventions per site", progress):
        site_obj = model_sites[site_index(model_sites, site)]
        acts = base_acts[site]
        flat = acts.reshape(acts.shape[0], -1, acts.shape[-1])
        frame_norm = float(flat.double().pow(2).sum(1).mean().sqrt())
        fr = cap.frame_rate(site)
        x, _ = cap.features(site, "pooled")
        means = x[:, : x.shape[1] // 2].astype(np.float64)
        patterns = pattern_directions(means[train], targets.iloc[train][list(space.names)])
        plans = _plans(site_obj, acts, fr, frame_norm, names, space, fams, levels, patterns, mod_dirs,
                       np.random.default_rng([seed, all_sites.index(site)]) if random_directions else None)
        plans_by_site[site] = plans
        for p in plans:
            if p.family == "additive" and p.variant == "pattern":
                vectors[(site, p.factors[0])] = np.asarray(p.build(1.0).vector, dtype=np.float64)
        # every dose of every plan of the site through one runner; a modulation is imposed on the clips of the set
        # where its factor is weakest (its own base clips)
        values = _run_plans(model, acts, site, [p for p in plans if p.family != "modulation"], measure_norm, chunk)
        for name in {p.factors[0] for p in plans if p.family == "modulation"}:
            mine = [p for p in plans if p.family == "modulation" and p.factors[0] == name]
            values.update(_run_plans(model, mod_base[name][site], site, mine, measure_norm, chunk))
        erased = _erasure(means, targets, names, space, erasure, max_erasure_dims, seed)
        common = {"site": site, "site_index": all_sites.index(site), "role": site_obj.role}
        for p in plans:
            v = values[id(p)]
            zero = v[int(np.flatnonzero(p.doses == 0)[0])]
            if p.family == "time_warp" and warp_bias is not None:
                v = v - warp_bias
            expected = p.expected(p.doses, natural(zero)) if p.expected is not None else None
            for name in p.factors:
                dr = dose_response(v, p.doses, space.names, name, spread[name], expected=expected)
                effects.append(dr.curve.assign(site=site, role=site_obj.role, family=p.family, variant=p.variant,
                                               intended=name))
                rows.append({**common, "factor": name, "factor_kind": CANON[name].kind, "family": p.family,
                             "variant": p.variant, "rate_hz": p.rate_hz,
                             **_decodability(dec, site, name, p.family), **dr.measures(),
                             "iia": np.nan, "iia_random": np.nan, "pair_fidelity": np.nan, "pairs": 0,
                             "erasure_drop": erased.get(name, (np.nan, np.nan))[0],
                             "erasure_collateral": erased.get(name, (np.nan, np.nan))[1], "retained": np.nan})
                if p.family == "additive" and p.variant == "pattern" and quantizer_after(model, site):
                    q = quantizer_retention(model, base_audio, site, vectors[(site, name)], magnitudes=[1.0])
                    retention.append(q.assign(factor=name))
                    rows[-1]["retained"] = float(q["retained"].iloc[0])
        # interchange and DAS on the pairs
        if pair_data:
            for name in names:
                if name not in pair_data["factors"] or flat.shape[1] < 2:
                    continue
                rows += _interchange_rows(model, site, name, pair_data, patterns.get(name), fams, das, das_ranks,
                                          das_steps, seed, measure_norm, space, common, dec, erased)
    table = pd.DataFrame(rows)
    if table.empty:
        raise ConfigError("no (site, factor) could be intervened on: too few clips with defined values, or no family "
                          "applies to these sites; render more clips or add families")
    scored = icv_scores(table, thresholds)
    table["icv_score"], table["status"] = scored["icv_score"], scored["status"]
    op = OperationalOntology(
        table=table, effects=pd.concat(effects, ignore_index=True) if effects else pd.DataFrame(),
        retention=pd.concat(retention, ignore_index=True) if retention else pd.DataFrame(),
        examples={}, sample_rate=model.sample_rate, thresholds=thresholds, directions=vectors,
        steer_clips=steer_idx, probes=probes)
    if audio_model:
        steering = table[table["family"].isin(STEERING)]
        op.examples = _examples(model, best_family(steering, ["site", "factor"]), plans_by_site, base_acts)
    return op


def _run_plans(model: AudioModel, acts: torch.Tensor, site: str, plans: list[_Plan],
               measure_norm: Callable[[torch.Tensor], np.ndarray], chunk: int) -> dict[int, np.ndarray]:
    """``{id(plan): [M, B, J]}``: every dose of every plan on the same base activations, measured, through one
    runner (the unedited output computed once and shared)."""
    if not plans:
        return {}
    ivs: list[Intervention] = [Additive(np.zeros(int(np.prod(acts.shape[1:-1]))), 0.0)]
    for p in plans:
        ivs += [p.build(float(d)) for d in p.doses if d != 0]
    blocks = run_interventions(model, acts, site, ivs, consume=measure_norm, max_rows=max(acts.shape[0], chunk * 2))
    vals = np.concatenate(blocks).reshape(len(ivs), acts.shape[0], -1)
    out, pos = {}, 1
    for p in plans:
        n_edit = int((p.doses != 0).sum())
        out[id(p)] = np.insert(vals[pos:pos + n_edit], int(np.flatnonzero(p.doses == 0)[0]), vals[0], axis=0)
        pos += n_edit
    return out


def _decodability(dec: dict, site: str, factor: str, family: str) -> dict[str, object]:
    """The best held-out R² of ``factor`` at ``site`` among the views that match ``family``, and that view."""
    best, view = np.nan, None
    for v in FAMILY_VIEWS[family]:
        r = dec.get((site, v, factor), np.nan)
        if np.isfinite(r) and not (np.isfinite(best) and best >= r):
            best, view = r, v
    return {"decodability": best, "view": view}


def _plans(site: object, acts: torch.Tensor, fr: float, frame_norm: float, names: list[str], space: FactorSpace,
           fams: list[str], levels: dict[str, np.ndarray], patterns: dict[str, np.ndarray],
           mod_dirs: dict[tuple[str, str], np.ndarray], rng: np.random.Generator | None) -> list[_Plan]:
    """The steering families that apply at ``site``, each with its doses and what it is scored for; with
    ``rng``, additive steering along a random direction per factor too."""
    plans: list[_Plan] = []
    n_frames = acts.shape[-1]
    if "additive" in fams:
        for name in names:
            p = patterns.get(name)
            if p is None or not np.linalg.norm(p) > 0:
                continue
            vec = p / np.linalg.norm(p) * frame_norm
            plans.append(_Plan("additive", "pattern", [name], _signed(levels["additive"]),
                               lambda m, v=vec: Additive(v, m)))
            if rng is not None:
                r = rng.standard_normal(len(p))
                plans.append(_Plan("additive", "random", [name], _signed(levels["additive"]),
                                   lambda m, v=r / np.linalg.norm(r) * frame_norm: Additive(v, m)))
    if "gain" in fams:
        plans.append(_Plan("gain", "site", list(names), _signed(levels["gain"]), lambda m: Gain(m)))
    if "time_warp" in fams and n_frames >= 8:
        plans.append(_Plan("time_warp", "site", list(names), _signed(levels["time_warp"]), lambda m: TimeWarp(m),
                           expected=lambda d, v0: _warp_expected(d, v0, space)))
    axis = place_axis(site)
    if "place_shift" in fams and axis is not None:
        plans.append(_Plan("place_shift", "site", list(names), _signed(levels["place_shift"]),
                           lambda m, a=axis: PlaceShift(int(round(m)), a)))
    if "modulation" in fams:
        for name in names:
            rate_name = CANON[name].rate
            if name not in MODULATED or rate_name is None or n_frames < 8:
                continue
            rate = _mid_rate(space, rate_name)
            if not rate < fr / 2:
                continue
            for inner in MODULATED[name]:
                vec = mod_dirs.get((site.name, name)) if inner == "additive" else None
                if inner == "additive":
                    if vec is None:
                        continue
                    vec = vec / np.linalg.norm(vec) * frame_norm
                d = np.concatenate([[0.0], np.asarray(MODULATION_DOSES[inner])])
                plans.append(_Plan("modulation", inner, [name], d,
                                   lambda m, i=inner, v=vec, r=rate: Modulation(i, m, r, fr, vector=v), rate_hz=rate))
    return plans


def _make_readout(model: AudioModel, stimuli: StimulusSet, space: FactorSpace, train: np.ndarray, chunk: int,
                  seed: int) -> Callable[[torch.Tensor], pd.DataFrame]:
    """Ridge probes from the model's time-averaged output to every factor, fitted on the training clips.

    A factor whose probe does not reach a cross-validated R² of ``MIN_READOUT_R2`` is not carried by the output
    and reads NaN: a pitch tracker's output says nothing of loudness, and a probe that guesses it from the pitch
    would make every pitch edit look like leakage. An output with non-finite values (an edit of a softmax site
    that leaves no distribution to decode) reads NaN too: nothing was measured."""
    first = model.sites()[0].name
    outs = []
    with torch.no_grad():
        for _, audio in stimuli.chunks(chunk):
            outs.append(_pool_output(model.resume(model.encode(audio.to(model_device(model)), first), first)))
    x = np.concatenate(outs)
    targets = factor_targets(stimuli.factors, space).to_numpy(dtype=np.float64)
    fits = {}
    for j, name in enumerate(space.names):
        ok = train[np.isfinite(targets[train, j])]
        fit = ridge_cv(x[ok], targets[ok, j:j + 1], seed=seed)
        fits[name] = fit if float(fit.cv_r2[0]) >= MIN_READOUT_R2 else None

    def readout(y: torch.Tensor) -> pd.DataFrame:
        z = _pool_output(y)
        ok = np.isfinite(z).all(axis=1)  # an edit can drive an output out of its domain (a negative distribution)
        cols = {}
        for n, f in fits.items():
            cols[n] = np.full(len(z), np.nan)
            if f is not None and ok.any():
                cols[n][ok] = space[n].denormalize(np.clip(f.predict(z[ok])[:, 0], 0, 1))
        return pd.DataFrame(cols)

    return readout


def _pool_output(y: torch.Tensor) -> np.ndarray:
    y = y.detach().double().cpu()
    return (y.reshape(y.shape[0], -1, y.shape[-1]).mean(-1) if y.ndim >= 3 else y.reshape(y.shape[0], -1)).numpy()


def _erasure(means: np.ndarray, targets: pd.DataFrame, names: list[str], space: FactorSpace, erasure: bool,
             max_dims: int, seed: int) -> dict[str, tuple[float, float]]:
    """LEACE drop of each factor and the mean collateral drop of the others, from a site's channel means."""
    if not erasure or means.shape[1] > max_dims:
        return {}
    complete = [n for n in space.names if np.isfinite(targets[n]).all()]
    cols = [n for n in names if n in complete]
    if not cols or len(complete) < 2:
        return {}
    er = erasure_decodability(means, targets[complete], erase=cols, seed=seed)
    out = {}
    for n in cols:
        e = er[er["erased"] == n]
        own, others = e[e["factor"] == n]["drop"], e[e["factor"] != n]["drop"]
        out[n] = (float(own.iloc[0]), float(others.mean()) if len(others) else float("nan"))
    return out


def _encode_pair_set(model: AudioModel, pairs: StimulusSet, site_names: list[str], names: list[str],
                     measure_norm: Callable[[torch.Tensor], np.ndarray], chunk: int) -> dict:
    """Every factor's pair positions and the model's own outputs on them, measured (one pass per chunk).

    The pairs' activations are not kept: :func:`_pair_acts` encodes them at one site when that site is
    intervened on, so memory holds one site's pairs of one factor at a time (a wide model's pairs at every
    site at once need tens of GB).
    """
    device = model_device(model)
    have = [n for n in names if (pairs.factors["factor"] == n).any()]
    if not have:
        return {}
    out: dict = {"pairs": pairs, "chunk": chunk, "factors": {}}
    first = site_names[0]
    for name in have:
        b_pos, s_pos = pair_positions(pairs, name)
        own = {"base": [], "source": []}
        with torch.no_grad():
            for role, pos in (("base", b_pos), ("source", s_pos)):
                for i in range(0, len(pos), chunk):
                    a = encode_sites(model, pairs.audio(pos[i:i + chunk]).to(device), [first])
                    own[role].append(measure_norm(model.resume(a[first], first)))
        out["factors"][name] = {"base_pos": b_pos, "source_pos": s_pos,
                                "own_base": np.concatenate(own["base"]), "own_source": np.concatenate(own["source"])}
    return out


def _pair_acts(model: AudioModel, pair_data: dict, name: str, site: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The activations ``(base, source)`` of factor ``name``'s pairs at ``site``, ``[P, ..., C]`` each."""
    pairs, chunk, d = pair_data["pairs"], pair_data["chunk"], pair_data["factors"][name]
    device = model_device(model)
    out = []
    with torch.no_grad():
        for pos in (d["base_pos"], d["source_pos"]):
            out.append(torch.cat([encode_sites(model, pairs.audio(pos[i:i + chunk]).to(device), [site])[site]
                                  for i in range(0, len(pos), chunk)]))
    return out[0], out[1]


def _iia(measured: np.ndarray, own_base: np.ndarray, own_source: np.ndarray, j: int) -> dict[str, float]:
    """IIA of factor ``j`` against the model's own counterfactual output, and its companions (normalised units)."""
    b, s, m = own_base, own_source, measured
    diff = s[:, j] - b[:, j]
    valid = np.isfinite(diff) & np.isfinite(m[:, j]) & (np.abs(diff) >= MIN_PAIR_CHANGE)
    out = {"pairs": int(valid.sum()), "pair_fidelity": float(valid.mean()) if len(valid) else np.nan}
    if valid.sum() < 3:
        return {**out, "iia": np.nan, "efficacy": np.nan, "specificity": np.nan, "consistency": np.nan}
    score = np.clip(1 - np.abs(m[valid, j] - s[valid, j]) / np.abs(diff[valid]), 0, 1)
    moved = m[valid] - b[valid]
    own = float(np.mean(np.abs(moved[:, j])))
    # the other factors' departure from both of the model's own outputs: a pair differs in factor j alone, yet a
    # readout may see another factor move with it. Where the model reads that move after the site (beating moves
    # the envelope a tremolo is read from), a perfect interchange reproduces the source's value; where it reads
    # it before (a recording's own vibrato sets the rate read off a note with little added vibrato), it keeps
    # the base's. Either is the model's own; leakage is the distance to the nearer of the two
    rest = np.minimum(np.abs(m[valid] - s[valid]), np.abs(m[valid] - b[valid]))
    rest = np.delete(rest, j, axis=1)
    ok = np.isfinite(rest)
    # the mean change of every other factor over the pairs where it is defined (0 where it never is)
    leak = float((np.where(ok, rest, 0).sum(0) / np.maximum(ok.sum(0), 1)).sum())
    return {**out, "iia": float(score.mean()), "efficacy": float(score.mean()),
            "specificity": own / (own + leak) if own + leak > 0 else np.nan,
            "consistency": float(np.mean(np.sign(moved[:, j]) == np.sign(diff[valid])))}


def _interchange_rows(model: AudioModel, site: str, name: str, pair_data: dict, pattern: np.ndarray | None,
                      fams: list[str], das: bool, das_ranks: tuple[int, ...], das_steps: int, seed: int,
                      measure_norm: Callable[[torch.Tensor], np.ndarray], space: FactorSpace, common: dict,
                      dec: dict, erased: dict) -> list[dict]:
    """Interchange over the pattern direction and DAS, each beside a random subspace of the same rank."""
    d = pair_data["factors"][name]
    a_b, a_s = _pair_acts(model, pair_data, name, site)
    width = int(np.prod(a_b.shape[1:-1]))
    j = space.names.index(name)
    gen = np.random.default_rng([seed, width, j])
    bases: list[tuple[str, np.ndarray, np.ndarray]] = []
    if "interchange" in fams and pattern is not None and np.linalg.norm(pattern) > 0:
        bases.append(("interchange", orthonormal_basis(pattern), np.arange(a_b.shape[0])))
    ranks = [r for r in das_ranks if "das" in fams and das and r < width and a_b.shape[0] >= 6]
    if ranks:  # fitted on half of the pairs, scored on the other half
        fit_idx, held = np.arange(0, a_b.shape[0], 2), np.arange(1, a_b.shape[0], 2)
        target = _own_target(model, site, a_s[fit_idx])
        for rank in ranks:
            q = _das_basis(model, site, a_b[fit_idx], a_s[fit_idx], target, d["own_base"][fit_idx],
                           d["own_source"][fit_idx], pattern, rank, das_steps, seed, gen, measure_norm, j)
            bases.append(("das", q, held))
    rows = []
    for family, q, idx in bases:
        rand = [orthonormal_basis(gen.standard_normal((width, q.shape[1]))) for _ in range(RANDOM_SUBSPACES)]
        blocks = run_interventions(model, a_b[idx], site, [Interchange(b) for b in (q, *rand)], source=a_s[idx],
                                   consume=measure_norm)
        m = np.concatenate(blocks).reshape(1 + len(rand), len(idx), len(space.names))
        own_b, own_s = d["own_base"][idx], d["own_source"][idx]
        got = _iia(m[0], own_b, own_s, j)
        rand_iia = np.array([_iia(m[k], own_b, own_s, j)["iia"] for k in range(1, len(m))])
        base_line = {"iia": float(rand_iia[np.isfinite(rand_iia)].mean()) if np.isfinite(rand_iia).any() else np.nan}
        rows.append({**common, "factor": name, "factor_kind": CANON[name].kind, "family": family,
                     "variant": f"rank{q.shape[1]}", "rate_hz": None, **_decodability(dec, site, name, family),
                     "dose": np.nan, "slope0": np.nan, "reach": np.nan, "odd": np.nan, "even": np.nan,
                     **got, "iia_random": base_line["iia"],
                     "erasure_drop": erased.get(name, (np.nan, np.nan))[0],
                     "erasure_collateral": erased.get(name, (np.nan, np.nan))[1], "retained": np.nan})
    return rows


def _das_basis(model: AudioModel, site: str, a_b: torch.Tensor, a_s: torch.Tensor, target: torch.Tensor,
               own_b: np.ndarray, own_s: np.ndarray, pattern: np.ndarray | None, rank: int, steps: int, seed: int,
               gen: np.random.Generator, measure_norm: Callable[[torch.Tensor], np.ndarray], j: int) -> np.ndarray:
    """A rank-``rank`` DAS basis ``[C, rank]`` fitted on the pairs ``(a_b, a_s)`` (the model's output on the
    sources as ``target``, read as ``own_b``, ``own_s``) from the pattern direction, completed by seeded random
    columns: of its start and its end, the one with the higher IIA on these pairs."""
    width = int(np.prod(a_b.shape[1:-1]))
    init = pattern[:, None] if pattern is not None and np.linalg.norm(pattern) > 0 else None
    al = fit_subspace(model, site, a_b, a_s, target, rank=rank, init=init, restarts=0 if init is not None else 1,
                      steps=steps, seed=seed)
    if init is None:
        return al.basis
    candidates = [al.basis, orthonormal_basis(np.concatenate([init, gen.standard_normal((width, rank - 1))], 1))]
    blocks = run_interventions(model, a_b, site, [Interchange(q) for q in candidates], source=a_s,
                               consume=measure_norm)
    m = np.concatenate(blocks).reshape(len(candidates), a_b.shape[0], -1)
    fit_iia = [_iia(m[c], own_b, own_s, j)["iia"] for c in range(len(candidates))]
    return candidates[int(np.nanargmax(np.nan_to_num(fit_iia, nan=-1.0)))]


def _das_ranks(das_rank: int | Sequence[int] | None) -> tuple[int, ...]:
    """The DAS ranks asked for (default 1 and 2), each a positive integer."""
    ranks = (1, 2) if das_rank is None else (das_rank,) if isinstance(das_rank, (int, np.integer)) else tuple(das_rank)
    if not ranks or any(not isinstance(r, (int, np.integer)) or isinstance(r, bool) or r < 1 for r in ranks):
        raise ConfigError(f"das_rank must be a positive integer or a list of them, got {das_rank!r}")
    return tuple(sorted({int(r) for r in ranks}))


def _own_target(model: AudioModel, site: str, source: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.resume(source, site)


def _examples(model: AudioModel, best: pd.DataFrame, plans_by_site: dict[str, list[_Plan]],
              base_acts: dict[str, torch.Tensor]) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Base and edited audio of the first steered clip for every (site, factor): its best steering family (``best``
    holds one steering row per pair) at its kept dose, with the sign that raises the factor."""
    out = {}
    for r in best.itertuples():
        plans = [p for p in plans_by_site.get(r.site, []) if p.family == r.family and p.variant == r.variant
                 and r.factor in p.factors]
        if not plans or not np.isfinite(r.dose):
            continue
        dose = float(r.dose) * (1 if not np.isfinite(r.odd) or r.odd >= 0 or r.family == "modulation" else -1)
        acts = base_acts[r.site][:1]
        y = run_interventions(model, acts, r.site, [plans[0].build(0.0), plans[0].build(dose)])
        out[(r.site, r.factor)] = (y[0, 0].cpu().numpy(), y[1, 0].cpu().numpy())
    return out
