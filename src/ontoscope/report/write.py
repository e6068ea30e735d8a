"""``write_report(run_dir)``: one HTML file (``RUN/report.html``) and its assets (``RUN/report/``).

The assets (figures, copied WAV files, spectrograms) are written into a fresh directory that replaces
``RUN/report`` when complete; ``report.html`` is written last, atomically, so it never refers to assets
that are not there.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from jinja2 import DictLoader, Environment, StrictUndefined
from markupsafe import Markup

from ontoscope.artifacts import ensure_dir, write_atomic
from ontoscope.claims import STATEMENTS
from ontoscope.errors import AudioError
from ontoscope.report.examples import select_examples
from ontoscope.report.figures import knob_figure, spectrogram_figure
from ontoscope.report.heatmaps import (
    LATENT_COLOURS,
    OPERATIONAL_COLOURS,
    latent_cells,
    operational_cells,
    status_svg,
)
from ontoscope.report.run import ModelEntry, RunData, load_run
from ontoscope.report.summaries import KNOB_LABELS, agreement, axes, best_rows, knob_means, plotted_means
from ontoscope.report.templates import REPORT, STYLE

__all__ = ["CLAIMS", "write_report"]

#: The four claims a study tests (``claims.parquet`` gives their numbers and verdicts).
CLAIMS = STATEMENTS

_FIGURE_CAPTIONS = {
    "ladder": "frame-rate and receptive-field ladder against the factors' rate ranges",
    "aliasing": "alias fraction per decimating layer and cumulative per site",
    "spectra": "singular values of every conv layer",
    "responses": "sine-sweep responses, channel by input frequency",
    "jacobian_cosines": "|cosine| between the factors' Jacobian columns",
    "status": "predicted status of every (site, factor)",
    "icv_by_site": "ICV score of every factor down the sites (measured; marker: the family that scored best)",
    "dose_response": "dose–response of each intervention family: the intended factor's change against the dose",
}
_MEASURES = ("decodability", "efficacy", "specificity", "consistency")
_VERDICTS = {"supported": "supported", "not supported": "not-supported", "inconclusive": "inconclusive",
             "instrument failed its controls": "failed"}


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            return "–"
        return str(int(f)) if f.is_integer() and abs(f) < 1e15 else f"{f:.{digits}g}"
    return str(v)


def _numbers(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, dict):
        return "; ".join(f"{k} = {_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple, np.ndarray)):
        return "; ".join(_fmt(x) for x in v)
    return _fmt(v)


def _claims(claims: pd.DataFrame) -> list[dict[str, Any]]:
    given = {}
    if not claims.empty and "claim" in claims.columns:
        for _, r in claims.iterrows():
            try:
                n = int(r["claim"])
            except (TypeError, ValueError):
                continue
            verdict = str(r.get("verdict") or "inconclusive").strip()
            reason = r.get("reason")
            given[n] = {"claim": n, "statement": str(r.get("statement") or CLAIMS.get(n, "")),
                        "numbers": _numbers(r.get("numbers")), "verdict": verdict,
                        "reason": reason if isinstance(reason, str) else "",
                        "badge": _VERDICTS.get(verdict.lower(), "other")}
    out = [given.pop(n, {"claim": n, "statement": s, "numbers": "", "reason": "", "verdict": "not evaluated",
                         "badge": "other"})
           for n, s in CLAIMS.items()]
    return out + [given[n] for n in sorted(given)]


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "model"
    slug, i = base, 1
    while slug in taken:
        i += 1
        slug = f"{base}-{i}"
    taken.add(slug)
    return slug


def _missing(v: Any) -> bool:
    return v is None or (np.ndim(v) == 0 and bool(pd.isna(v)))


def _knob_line(row: pd.Series | None, ref: str) -> str:
    if row is None:
        return ref
    parts = [str(row.get("family") or ref)]
    for key, label in (("total_stride", "total stride"), ("bottleneck", "bottleneck"),
                       ("compression", "compression"), ("antialias", "antialias"), ("activation", "activation"),
                       ("bitrate", "bitrate (bit/s)"), ("width", "width"), ("depth", "depth"), ("data_size", "data"),
                       ("steps", "steps"), ("seed", "seed")):
        v = row.get(key)
        if not _missing(v):
            parts.append(f"{label} {_fmt(v)}")
    trained = row.get("trained")
    if not _missing(trained):
        parts.append("trained" if str(trained).lower() in ("true", "1", "1.0") else "at initialisation")
    if str(row.get("fidelity")) == "undertrained":
        parts.append(f"UNDERTRAINED, left out of the claims ({row.get('fidelity_reason') or 'fidelity gate'})")
    elif str(row.get("fidelity")) == "passed":
        parts.append("passed the fidelity gate")
    return ", ".join(parts)


def _own(run: RunData, name: str, model: str, directory: Path | None, file: str) -> pd.DataFrame:
    rows = run.rows_of(name, model)
    if rows.empty and directory is not None and (directory / file).is_file():
        try:
            rows = pd.read_parquet(directory / file).assign(model=model)
        except Exception:  # noqa: BLE001  (a damaged per-model file: the report says there is none)
            rows = pd.DataFrame()
    return rows


def _copy(src: Path, dst: Path) -> Path:
    return write_atomic(dst, lambda p: shutil.copyfile(src, p))


def _latent_figures(directory: Path) -> list[Path]:
    """The figures ``LatentOntology.save`` listed in ``latent.json`` (beside it or under ``figures/``), then any
    other PNG under ``figures/``; without a list, every PNG beside ``latent.json`` too."""
    names: list[str] = []
    manifest = directory / "latent.json"
    if manifest.is_file():
        try:
            names = [str(n) for n in json.loads(manifest.read_text()).get("figures", [])]
        except (OSError, ValueError, AttributeError):
            names = []
    found = [p for n in names for p in [directory / n, directory / "figures" / n] if p.is_file()]
    extra = sorted((directory / "figures").glob("*.png")) + ([] if names else sorted(directory.glob("*.png")))
    return list(dict.fromkeys(found + extra))


def _figures(entry: ModelEntry, assets: Path, slug: str) -> list[dict[str, str]]:
    found = [("latent", p) for p in (_latent_figures(entry.latent_dir) if entry.latent_dir is not None else [])]
    if entry.operational_dir is not None:
        found += [("operational", p) for n in ("icv_by_site.png", "dose_response.png")
                  if (p := entry.operational_dir / "figures" / n).is_file()]
    out = []
    for i, (side, p) in enumerate(found):
        dst = _copy(p, assets / slug / side / f"{i:02d}_{p.name}")
        out.append({"src": _href(dst, assets), "caption": _FIGURE_CAPTIONS.get(p.stem, p.stem.replace("_", " "))})
    return out


def _href(path: Path, assets: Path) -> str:
    return f"report/{path.relative_to(assets).as_posix()}"


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioError(f"{path}: cannot read audio ({e})") from None
    if not data.size or not np.isfinite(data).all():
        raise AudioError(f"{path}: empty, NaN or infinite audio")
    return data.mean(axis=1), int(sr)


def _examples(op: pd.DataFrame, entry: ModelEntry, assets: Path, slug: str, k: int,
              notes: list[str]) -> list[dict[str, str]]:
    directory = entry.operational_dir / "examples" if entry.operational_dir is not None else None
    out = []
    for e in select_examples(op, directory, k):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{e.site}__{e.factor}")
        try:
            base, sr = _read_wav(e.base)
            steered, sr2 = _read_wav(e.steered)
        except AudioError as err:
            notes.append(f"steering example {e.factor} at {e.site} skipped: {err}")
            continue
        d = assets / slug / "examples"
        spec = spectrogram_figure(base, steered, sr, d / f"{name}.png",
                                  f"{e.factor} at {e.site}: base and steered")
        b, s = _copy(e.base, d / f"{name}_base.wav"), _copy(e.steered, d / f"{name}_steered.wav")
        if sr2 != sr:
            notes.append(f"steering example {e.factor} at {e.site}: base at {sr} Hz, steered at {sr2} Hz")
        out.append({"site": e.site, "role": e.role, "factor": e.factor, "why": e.why,
                    "status": str(e.row.get("status", "?")),
                    "score": _fmt(e.row.get("icv_score"), 2),
                    "measures": ", ".join(f"{m} {_fmt(e.row.get(m), 2)}" for m in _MEASURES if m in e.row),
                    "base": _href(b, assets),
                    "steered": _href(s, assets),
                    "spectrogram": _href(spec, assets)})
    return out


def _model_section(run: RunData, entry: ModelEntry, assets: Path, slug: str, k: int) -> dict[str, Any]:
    models = run.table("models")
    row = None
    if "model" in models.columns and (models["model"] == entry.model).any():
        row = models[models["model"] == entry.model].iloc[0]
    notes = [f"directory {d} (named in run.json) is missing" for d in entry.missing]
    lat = _own(run, "latent", entry.model, entry.latent_dir, "factors.parquet")
    op = _own(run, "operational", entry.model, entry.operational_dir, "operational.parquet")
    best = best_rows(op)
    comp = run.rows_of("comparison", entry.model)
    factors, sites = axes(lat, best)
    lat_svg = (status_svg(latent_cells(lat, comp), factors, sites, LATENT_COLOURS,
                          f"latent ontology of {entry.model}") if not lat.empty else None)
    op_svg = (status_svg(operational_cells(best, comp), factors, sites, OPERATIONAL_COLOURS,
                         f"operational ontology of {entry.model}") if not best.empty else None)
    return {"model": entry.model, "slug": slug, "knobs": _knob_line(row, entry.ref), "agreement": agreement(comp),
            "notes": notes, "latent_svg": lat_svg, "operational_svg": op_svg,
            "figures": _figures(entry, assets, slug), "examples": _examples(op, entry, assets, slug, k, notes),
            "no_examples": ("steering examples are switched off (report.examples is 0)" if k <= 0 else
                            "no steering examples (no audio examples were written for this model)")}


def _knobs(run: RunData, assets: Path) -> dict[str, Any]:
    if "knob_means" in run.tables:
        means = plotted_means(run.table("knob_means"))
        source = ("From tables/knob_means.parquet (the comparison's attribution): per knob value, the mean over "
                  "the models of each model's mean ICV score, with its interval; where the table has groups, the "
                  "pooled one (every other knob held fixed within a group).")
        empty = "tables/knob_means.parquet has no rows: no knob is swept among the models the comparison compares."
    else:
        means = plotted_means(knob_means(run.table("operational"), run.table("models")))
        source = ("Computed from tables/operational.parquet and tables/models.parquet (the run has no "
                  "knob_means table): per model the mean ICV score over its sites and factors (the better "
                  "intervention; undefined scores left out), then the mean over the models sharing a knob "
                  "value, with a 95 % t interval; other knobs are not held fixed.")
        empty = "No knob takes two values among the models with an operational ontology: nothing to plot against."
    img = knob_figure(means, assets / "knobs.png") if not means.empty else None
    if img is None:
        return {"img": None, "source": empty, "rows": []}
    rows = [{"knob": KNOB_LABELS.get(r["knob"], r["knob"]), "value": _fmt(r["value"]), "factor_kind": r["factor_kind"],
             "mean": _fmt(r["mean"]), "ci": _interval_text(r["ci_low"], r["ci_high"]), "n": _fmt(r["n"])}
            for _, r in means.iterrows()]
    return {"img": _href(img, assets), "source": source, "rows": rows}


def _controls(run: RunData) -> dict[str, Any]:
    """The controls' rates per family (``tables/control_rates.parquet``) for the report's first section."""
    rates = run.table("control_rates")
    cfg = run.config.get("analyses") if isinstance(run.config.get("analyses"), dict) else {}
    cc = cfg.get("controls") if isinstance(cfg.get("controls"), dict) else {}
    rows = [{"family": str(r["family"]), "found": f"{_fmt(r['found'])} of {_fmt(r['positives'])}",
             "sensitivity": _fmt(r["sensitivity"], 3), "fp": f"{_fmt(r['false_positives'])} of {_fmt(r['negatives'])}",
             "fpr": _fmt(r["fpr"], 3), "passed": "yes" if bool(r["passed"]) else "no"} for _, r in rates.iterrows()]
    return {"rows": rows, "passed": bool(len(rates)) and bool(rates["passed"].astype(bool).all()),
            "seeds": len(cc.get("seeds", [0, 1, 2])), "min_sensitivity": _fmt(cc.get("min_sensitivity", 0.95)),
            "max_fpr": _fmt(cc.get("max_fpr", 0.05))}


def _interval_text(lo: Any, hi: Any) -> str:
    return "–" if _missing(lo) and _missing(hi) else f"{_fmt(lo)} – {_fmt(hi)}"


def _reproducibility(run: RunData) -> dict[str, Any]:
    info = run.info
    versions = info.get("versions") if isinstance(info.get("versions"), dict) else {}
    seeds = []
    stim = run.config.get("stimuli")
    if isinstance(stim, dict) and "seed" in stim:
        seeds.append(("stimuli seed", _fmt(stim["seed"])))
    models = run.table("models")
    seed_of = dict(zip(models["model"], models["seed"], strict=True)) if {"model", "seed"} <= set(models) else {}
    known = {"train": 0, "latent": 1, "operational": 2}
    stages = sorted({k for m in run.models for k in m.stage_hashes}, key=lambda s: (known.get(s, 3), s))
    header = ["model", "ref", "seed", *[f"{s} hash" for s in stages], "latent_dir", "operational_dir"]
    by_id = {m.get("model"): m for m in info["models"] if isinstance(m, dict)}
    rows = []
    for m in run.models:
        raw = by_id.get(m.model, {})
        rows.append([m.model, m.ref, _fmt(seed_of.get(m.model)), *[m.stage_hashes.get(s, "–") for s in stages],
                     str(raw.get("latent_dir") or "–"), str(raw.get("operational_dir") or "–")])
    return {"name": run.name, "created": str(info.get("created") or ""), "root": run.root.name,
            "stimuli_hash": str(info.get("stimuli_hash") or ""), "seeds": seeds,
            "versions": [(str(k), str(v)) for k, v in versions.items()], "model_header": header,
            "model_rows": rows, "config_text": str(info.get("config_text") or ""),
            "ontoscope_version": str(versions.get("ontoscope", ""))}


def _environment() -> Environment:
    return Environment(loader=DictLoader({"report.html": REPORT}), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _install(staging: Path, final: Path) -> None:
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=".report-old-", dir=final.parent))
        os.replace(final, old / "report")
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_report(run_dir: str | os.PathLike, examples: int | None = None) -> Path:
    """Write ``RUN/report.html`` (and its assets under ``RUN/report/``) from a finished study run.

    Parameters
    ----------
    run_dir : path
        The run directory (``run.json``, ``tables/``, the per-model directories it names).
    examples : int, optional
        Steering examples per model (default: the config's ``report.examples``, else 3).

    Returns
    -------
    Path
        ``RUN/report.html``.

    Raises
    ------
    ConfigError
        When ``run_dir`` is not a finished run (no ``run.json`` or no ``tables/models.parquet``).
    """
    run = load_run(run_dir)
    report_cfg = run.config.get("report") if isinstance(run.config.get("report"), dict) else {}
    k = int(examples if examples is not None else report_cfg.get("examples", 3))
    ensure_dir(run.root)
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=run.root))
    try:
        taken: set[str] = set()
        models = [_model_section(run, m, staging, _slug(m.model, taken), k) for m in run.models]
        context = {"run": _reproducibility(run), "style": Markup(STYLE), "models": models, "controls": _controls(run),
                   "claims": _claims(run.table("claims")), "claims_measured": not run.table("claims").empty,
                   "knobs": _knobs(run, staging), "latent_colours": LATENT_COLOURS,
                   "operational_colours": OPERATIONAL_COLOURS}
        html = _environment().get_template("report.html").render(**context)
        _install(staging, run.root / "report")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return write_atomic(run.root / "report.html", lambda p: p.write_text(html, encoding="utf-8"))
