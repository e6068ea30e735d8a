"""Print the tables of docs/findings.md from finished study runs (their ``tables/`` Parquet files).

    python scripts/findings_tables.py runs/findings_arch runs/findings_scale --figures docs/figures

With ``--figures DIR``, also draws ``DIR/<run>.png``: each factor's ICV score (mean over a model's
sites, then over seeds, with a 95% t interval) against each swept knob.

Every table is a view of what the study wrote; nothing here is computed that the study did not compute,
apart from means over seeds and counts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ontoscope.ontology.stats import mean_interval, wilson_interval

KINDS = ("all", "static", "oscillatory")
FIDELITY = {"f0": "f0 (cents)", "loudness": "loudness (dB)", "brightness": "brightness (dB/oct)",
            "vibrato_depth": "vibrato depth (ratio)", "tremolo_depth": "tremolo depth (index)"}


def markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A pipe table; floats with ``digits`` significant decimals."""
    def cell(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def mean_ci(x: pd.Series) -> str:
    """``mean [low, high]`` with the study's 95 % t interval over the values (the seeds); the mean alone for one."""
    fit = mean_interval(x.to_numpy(dtype=float))
    if fit.n == 0:
        return ""
    if np.isnan(fit.ci_low):
        return f"{fit.estimate:.3f}"
    return f"{fit.estimate:.3f} [{fit.ci_low:.3f}, {fit.ci_high:.3f}]"


def load(run: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in sorted((run / "tables").glob("*.parquet"))}


def design_label(models: pd.DataFrame, knobs: list[str]) -> pd.Series:
    def one(row: pd.Series) -> str:
        if row["kind"] == "pretrained":
            return row["ref"]
        parts = []
        for k in knobs:
            v = row.get(k)
            if v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            parts.append(f"{k}={int(v) if isinstance(v, float) and v.is_integer() else v}")
        return ", ".join(parts)

    return models.apply(one, axis=1)


def fidelity_table(t: dict[str, pd.DataFrame], knobs: list[str]) -> str:
    fid, models = t["fidelity"], t["models"].copy()
    models["design"] = design_label(models, knobs)
    wide = fid[fid["where"].isin(["all", "vibrato_depth >= 20", "tremolo_depth >= 0.2"])]
    wide = wide[wide["factor"].isin(FIDELITY)].pivot_table(index="model", columns="factor", values="median")
    bias = fid.groupby("model")["loudness_bias_db"].first().rename("loudness change (dB)")
    wide = wide.join(bias).join(models.set_index("model")["design"])
    out = wide.groupby("design", sort=False).mean().reset_index()
    out = out.rename(columns=FIDELITY)
    cols = ["design", *[FIDELITY[f] for f in FIDELITY if FIDELITY[f] in out], "loudness change (dB)"]
    return markdown(out[cols], 2)


def controls_table(t: dict[str, pd.DataFrame]) -> str:
    """Sensitivity and false-positive rate of the ICV status per intervention family on the study's controls."""
    if "control_rates" not in t:
        return "(this run ran no controls)"
    return markdown(t["control_rates"], 2)


def gate_table(t: dict[str, pd.DataFrame], knobs: list[str]) -> str:
    """Per design: how many trained models passed the fidelity gate, how many did not, and why."""
    models = t["models"]
    models = models[models["kind"] == "family"].copy()
    if models.empty:
        return "(no trained family models)"
    models["design"] = design_label(models, knobs)
    out = models.groupby("design", sort=False).agg(
        models=("model", "size"), passed=("fidelity", lambda s: int((s == "passed").sum())),
        undertrained=("fidelity", lambda s: int((s == "undertrained").sum())),
        why=("fidelity_reason", lambda s: "; ".join(sorted({r for r in s if r})))).reset_index()
    return markdown(out)


def passed_models(t: dict[str, pd.DataFrame]) -> set[str]:
    """Models whose measurements count: pretrained ones, and trained ones that passed the fidelity gate."""
    m = t["models"]
    return set(m.loc[(m["kind"] == "pretrained") | (m["fidelity"] == "passed"), "model"])


def prediction_table(tables: list[dict[str, pd.DataFrame]]) -> tuple[str, str]:
    """Over every counted (model, site, factor) of the runs: the confusion of the prediction (``affords`` or
    ``limited``) against the measured outcome (``icv`` or not), precision and recall of ``affords`` with Wilson
    intervals; and the mispredicted cases, grouped."""
    comp = pd.concat([t["comparison"][t["comparison"]["model"].isin(passed_models(t))] for t in tables],
                     ignore_index=True)
    icv = comp["measured_status"] == "icv"
    aff = comp["prediction"] == "affords"
    tp, fp, fn, tn = int((aff & icv).sum()), int((aff & ~icv).sum()), int((~aff & icv).sum()), int((~aff & ~icv).sum())
    rows = [{"predicted": "affords", "measured icv": tp, "measured not icv": fp},
            {"predicted": "limited", "measured icv": fn, "measured not icv": tn}]
    stats = []
    majority = max(int(icv.sum()), int((~icv).sum()))
    for what, k, n in (("precision of affords", tp, tp + fp), ("recall of affords", tp, tp + fn),
                       ("agreement", tp + tn, len(comp)), ("base rate (majority outcome)", majority, len(comp))):
        lo, hi = wilson_interval(k, n) if n else (np.nan, np.nan)
        stats.append({"measure": what, "value": f"{k}/{n} = {k / n:.3f} [{lo:.3f}, {hi:.3f}]" if n else "n/a"})
    head = markdown(pd.DataFrame(rows)) + "\n\n" + markdown(pd.DataFrame(stats))
    bad = comp[comp["failure"].notna()]
    cases = bad.groupby(["failure", "factor", "predicted_status", "measured_status"]).agg(
        rows=("model", "size"), models=("model", lambda s: ", ".join(sorted(set(s))[:4]) + (" ..." if s.nunique() > 4
                                                                                           else ""))).reset_index()
    return head, markdown(cases.sort_values(["failure", "rows"], ascending=[True, False]))


def score_table(t: dict[str, pd.DataFrame], knobs: list[str]) -> str:
    scores, models, op = t["scores"], t["models"].copy(), t["operational"]
    models["design"] = design_label(models, knobs)
    s = scores.merge(models[["model", "design", "seed"]], on="model")
    icv = op[op["status"] == "icv"].groupby("model").size()
    ent = op[op["status"] == "entangled"].groupby("model").size()
    rows = []
    for design, g in s.groupby("design", sort=False):
        ids = g["model"].unique()
        row = {"design": design, "seeds": len(ids)}
        for kind in KINDS:
            row[f"mean ICV score, {kind}"] = mean_ci(g.loc[g["factor_kind"] == kind, "mean"])
        row["best site, all"] = mean_ci(g.loc[g["factor_kind"] == "all", "best_site"])
        row["icv rows"] = int(icv.reindex(ids).fillna(0).sum())
        row["entangled rows"] = int(ent.reindex(ids).fillna(0).sum())
        rows.append(row)
    return markdown(pd.DataFrame(rows))


def latent_table(t: dict[str, pd.DataFrame], knobs: list[str]) -> str:
    """Per design and factor, the share of the sites analysed whose predicted status is ``affords``."""
    models = t["models"].copy()
    models["design"] = design_label(models, knobs)
    lat = t["latent"].merge(models[["model", "design"]], on="model")
    share = lat.assign(affords=lat["status"] == "affords").groupby(["design", "model", "factor"])["affords"].mean()
    order = list(dict.fromkeys(models["design"]))
    out = share.groupby(["design", "factor"]).mean().unstack("factor").reindex(order).dropna(how="all").reset_index()
    sites = lat.groupby("design", sort=False)["site"].nunique().rename("sites")
    out = out.merge(sites.reset_index(), on="design")
    return markdown(out[["design", "sites", *[c for c in out.columns if c not in ("design", "sites")]]], 2)


def slope_table(t: dict[str, pd.DataFrame], knobs: list[str]) -> str:
    a = t["attribution"]
    a = a[(a["group"] == "pooled") & a["knob"].isin(knobs)]
    out = a.assign(slope_ci=[f"{s:+.4f} [{lo:+.4f}, {hi:+.4f}]" for s, lo, hi in zip(a.slope, a.ci_low, a.ci_high,
                                                                                          strict=True)])
    out = out[["knob", "scale", "factor_kind", "score", "slope_ci", "n_models", "n_seeds"]]
    return markdown(out.rename(columns={"slope_ci": "slope [95% CI]"}))


def factor_table(t: dict[str, pd.DataFrame]) -> str:
    """Per factor, over the counted trained models' (model, site) cells: how many are ICVs, entangled, absent
    (the status of the family that controls the cell best), which families control the ICVs, the median and best
    ICV score, and the median decodability (held-out R² of the site's probe)."""
    comp = t["comparison"]
    trained = set(t["models"].loc[t["models"]["trained"].astype(bool), "model"]) & passed_models(t)
    comp = comp[comp["model"].isin(trained)]
    if comp.empty:
        return "(no trained model passed the fidelity gate)"
    dec = t["operational"].groupby(["model", "site", "factor"])["decodability"].max().rename("decodability")
    comp = comp.join(dec, on=["model", "site", "factor"])
    out = comp.groupby(["factor_kind", "factor"], sort=True).agg(
        cells=("measured_status", "size"), icv=("measured_status", lambda s: int((s == "icv").sum())),
        entangled=("measured_status", lambda s: int((s == "entangled").sum())),
        absent=("measured_status", lambda s: int((s == "absent").sum())),
        icv_families=("intervention", lambda s: ", ".join(f"{k} {v}" for k, v in s[comp.loc[s.index,
                      "measured_status"] == "icv"].value_counts().items())),
        icv_score=("icv_score", "median"), best_icv_score=("icv_score", "max"),
        decodability=("decodability", "median")).reset_index()
    return markdown(out)


def icv_cases(t: dict[str, pd.DataFrame]) -> str:
    """Every counted (model, site, factor) measured an ICV: the family that controls it, its score, what the
    latent ontology predicted; for a modulation, the rate it was imposed at."""
    comp = t["comparison"]
    cases = comp[(comp["measured_status"] == "icv") & comp["model"].isin(passed_models(t))]
    if not len(cases):
        return "(no (model, site, factor) is an ICV)"
    op = t["operational"]
    rate = op.groupby(["model", "site", "factor", "family"])["rate_hz"].max().rename("rate (Hz)").reset_index()
    cases = cases.merge(rate.rename(columns={"family": "intervention"}), how="left",
                        on=["model", "site", "factor", "intervention"])
    cols = ["factor_kind", "factor", "model", "site", "intervention", "rate (Hz)", "icv_score", "predicted_status"]
    return markdown(cases[cols].sort_values(["factor_kind", "factor", "model", "site"]), 2)


def failures(t: dict[str, pd.DataFrame]) -> str:
    comp = t["comparison"]
    comp = comp[comp["trained"].astype(bool) & comp["model"].isin(passed_models(t))]
    g = comp.groupby(["factor", "predicted_status", "measured_status"]).size().rename("rows").reset_index()
    return markdown(g)


def claims(t: dict[str, pd.DataFrame]) -> str:
    return markdown(t["claims"][["claim", "verdict", "numbers"]])


def per_model_factor(t: dict[str, pd.DataFrame], models: list[str]) -> str:
    """Per model and factor: the best cell's measured status, ICV score, the family that controls it and its site
    (the comparison's best family per site, then the best site), beside the best decodability over the sites."""
    comp = t["comparison"]
    comp = comp[comp["model"].isin(models)].sort_values("icv_score", ascending=False, na_position="last")
    best = comp.drop_duplicates(["model", "factor"])
    best = best.assign(cell=[f"{st} {sc:.2f} ({fam} @ {site})" if pd.notna(sc) else st
                             for st, sc, fam, site in zip(best["measured_status"], best["icv_score"],
                                                          best["intervention"], best["site"], strict=True)])
    wide = best.pivot_table(index=["factor_kind", "factor"], columns="model", values="cell", aggfunc="first")
    dec = t["operational"][t["operational"]["model"].isin(models)]
    dec = dec.groupby(["factor_kind", "factor", "model"])["decodability"].max().unstack("model")
    dec.columns = [f"{c} decodability" for c in dec.columns]
    return markdown(wide.join(dec).reset_index(), 2)


def factor_figure(t: dict[str, pd.DataFrame], knobs: list[str], path: Path) -> None:
    """Each factor's per-model mean ICV score against each swept knob, the other knobs at their most common value;
    counted models only (those that passed the fidelity gate), so a knob value none of whose models passed has no
    point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = t["models"]
    models = models[(models["kind"] == "family") & models["trained"].astype(bool)
                    & models["model"].isin(passed_models(t))]
    op = t["operational"].merge(models, on="model")
    per = op.groupby(["model", "factor", "factor_kind", *knobs], dropna=False)["icv_score"].mean().reset_index()
    swept = [k for k in knobs if per[k].nunique() > 1]
    if not swept:  # no knob has two counted values: nothing to draw, and no stale figure left behind
        path.unlink(missing_ok=True)
        return
    fig, axes = plt.subplots(1, len(swept), figsize=(4.2 * len(swept), 3.4), squeeze=False)
    for ax, knob in zip(axes[0], swept, strict=True):
        sub, held = per.dropna(subset=[knob]), []
        for other in (k for k in knobs if k != knob):
            if sub[other].nunique(dropna=False) < 2:
                continue
            mode = sub[other].mode(dropna=False).iloc[0]
            sub = sub[sub[other].isna()] if pd.isna(mode) else sub[sub[other] == mode]
            if not pd.isna(mode):
                held.append(f"{other}={int(mode) if isinstance(mode, float) and mode.is_integer() else mode}")
        ax.set_title(", ".join(held), fontsize=8)
        for (factor, kind), g in sub.groupby(["factor", "factor_kind"]):
            xs, ms, hs = [], [], []
            for value, at in g.groupby(knob, sort=True):
                fit = mean_interval(at["icv_score"].to_numpy(dtype=float))
                xs.append(str(value) if knob in ("antialias", "activation") else float(value))
                ms.append(fit.estimate)
                hs.append(0.0 if np.isnan(fit.ci_high) else fit.ci_high - fit.estimate)
            ax.errorbar(xs, ms, yerr=hs, marker="o", capsize=3, ls="-" if kind == "static" else "--", label=factor)
        if knob not in ("antialias", "activation"):
            ax.set_xscale("log", base=2)
        ax.set_xlabel(knob)
        ax.set_ylabel("ICV score (mean over sites)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center right")
    fig.suptitle("solid: static factors, dashed: oscillatory; bars: 95% t interval over seeds", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.87, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def views_table(run: Path, t: dict[str, pd.DataFrame]) -> str | None:
    """Per model and factor: the best held-out R² of a ridge probe in each view (over the sites), beside the
    best ICV score of the same sites (``scripts/findings_views.py`` writes the probes)."""
    paths = sorted((run / "views").glob("*/probes.parquet"))
    if not paths:
        return None
    probes = pd.concat([pd.read_parquet(p).assign(model=p.parent.name) for p in paths], ignore_index=True)
    probes = probes[probes["probe"] == "ridge"]
    best = probes.loc[probes.groupby(["model", "factor", "view"])["test_r2"].idxmax()]
    wide = best.pivot_table(index=["model", "factor"], columns="view", values="test_r2").add_prefix("R² ")
    top = best.loc[best.groupby(["model", "factor"])["test_r2"].idxmax()].set_index(["model", "factor"])
    wide["best view @ site"] = top["view"] + "@" + top["site"]
    op = t["operational"]
    icv = op[op["model"].isin(probes["model"].unique())].groupby(["model", "factor"])["icv_score"].max()
    wide = wide.join(icv.rename("best ICV score")).reset_index()
    return markdown(wide)


def scale_table(arch: dict[str, pd.DataFrame], scale: dict[str, pd.DataFrame]) -> str:
    """ICV scores at the fixed architecture (total stride 256, compression 16) across width, depth and data: the
    base models of the architecture run beside the scaled ones of the scale run, counted models only."""
    rows = []
    base = arch["models"]
    base = base[(base["kind"] == "family") & (base["total_stride"] == 256) & (base["compression"] == 16)
                & (base["antialias"] == "none") & (base["activation"] == "elu")]
    shape = ", ".join(f"{k} {base[k].iloc[0]}" for k in ("width", "depth") if k in base and len(base))
    groups = [(f"{shape}, every training clip (base)", arch, base["model"].tolist())]
    sm = scale["models"]
    sm = sm[sm["kind"] == "family"]
    for design, g in sm.groupby(design_label(sm, ["width", "depth", "data_size"]), sort=False):
        groups.append((design, scale, g["model"].tolist()))
    for design, t, ids in groups:
        ok = [m for m in ids if m in passed_models(t)]
        sc = t["scores"][t["scores"]["model"].isin(ok)]
        row = {"design": design, "models": len(ids), "passed": len(ok)}
        for kind in KINDS:
            row[f"mean ICV score, {kind}"] = mean_ci(sc.loc[sc["factor_kind"] == kind, "mean"])
        op = t["operational"][t["operational"]["model"].isin(ok)]
        row["icv rows"] = int((op["status"] == "icv").sum())
        rows.append(row)
    return markdown(pd.DataFrame(rows))


def print_run(path: Path, t: dict[str, pd.DataFrame], knobs: list[str], figures: Path | None) -> None:
    """Every table of one run, each under its heading (a table with no rows to show says so)."""

    def show(title: str, needs: tuple[str, ...], fn: Callable[[], str | None]) -> None:
        missing = [n for n in needs if n not in t or t[n].empty]
        body = f"(nothing to show: no {', '.join(missing)} rows)" if missing else fn()
        if body is not None:
            print(f"## {title}\n")
            print(body, "\n")

    print(f"# {path.name}\n")
    show("fidelity gate", ("models",), lambda: gate_table(t, knobs))
    if "fidelity" in t:
        clips = {"all": "every clip of the study", "held_out": "the held-out clips"}.get(
            t["fidelity"]["clips"].iloc[0] if "clips" in t["fidelity"] and len(t["fidelity"]) else "held_out")
        show(f"reconstruction fidelity (median over {clips}, the gate's clips; mean over seeds)", ("fidelity",),
             lambda: fidelity_table(t, knobs))
    show("latent ontology: share of sites that afford each factor (mean over seeds)", ("latent",),
         lambda: latent_table(t, knobs))
    show("ICV scores per design, counted models (mean over seeds, 95% t interval)", ("scores",),
         lambda: score_table(t, knobs))
    show("knob slopes (pooled within-group estimate)", ("attribution",), lambda: slope_table(t, knobs))
    show("per factor, trained models", ("operational",), lambda: factor_table(t))
    show("ICV cases (counted models)", ("comparison",), lambda: icv_cases(t))
    show("prediction: outcomes per factor", ("comparison",), lambda: failures(t))
    show("claims", ("claims",), lambda: claims(t))
    show("decodability by view (ridge, best site) against the best ICV score", ("operational",),
         lambda: views_table(path, t))
    if figures is not None and "scores" in t and not t["scores"].empty:
        factor_figure(t, knobs, figures / f"{path.name}.png")
    pre = t["models"].loc[t["models"]["kind"] == "pretrained", "model"].tolist()
    if pre:
        show("pretrained models: best ICV score and best decodability per factor", ("operational",),
             lambda: per_model_factor(t, pre))


def main(argv: list[str]) -> None:
    arch_knobs = ["total_stride", "compression", "antialias", "activation"]
    scale_knobs = ["width", "depth", "data_size"]
    figures = None
    if "--figures" in argv:
        i = argv.index("--figures")
        figures = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    runs = {Path(r).name: load(Path(r)) for r in argv}
    print("# controls (sensitivity and false-positive rate of the ICV status per intervention family)\n")
    for name, t in runs.items():
        if "control_rates" in t:
            print(f"## {name}\n")
            print(controls_table(t), "\n")
    for path, (name, t) in zip(argv, runs.items(), strict=True):
        print_run(Path(path), t, scale_knobs if "scale" in name else arch_knobs, figures)
    arch = next((t for n, t in runs.items() if "arch" in n), None)
    scale = next((t for n, t in runs.items() if "scale" in n), None)
    if arch is not None and scale is not None:
        print("# scale at the fixed architecture (base from the architecture run)\n")
        print(scale_table(arch, scale), "\n")
    head, cases = prediction_table(list(runs.values()))
    print("# prediction over every counted (model, site, factor) of the runs\n")
    print(head, "\n")
    print("## mispredicted cases\n")
    print(cases, "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
