"""Print the tables of docs/findings.md from finished study runs (their ``tables/`` Parquet files).

    python scripts/findings_tables.py runs/findings_arch runs/findings_scale --figures docs/figures

With ``--figures DIR``, also draws ``DIR/<run>.png``: each factor's ICV score (mean over a model's
sites, then over seeds, with a 95% t interval) against each swept knob.

Every table is a view of what the study wrote; nothing here is computed that the study did not compute,
apart from means over seeds and counts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ontoscope.ontology.stats import mean_interval

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
    op = t["operational"]
    trained = set(t["models"].loc[t["models"]["trained"].astype(bool), "model"])
    op = op[op["model"].isin(trained)]
    g = op.groupby(["factor_kind", "factor", "kind"], sort=True)
    out = g.agg(rows=("status", "size"), icv=("status", lambda s: int((s == "icv").sum())),
                entangled=("status", lambda s: int((s == "entangled").sum())),
                absent=("status", lambda s: int((s == "absent").sum())),
                decodability=("decodability", "median"), efficacy=("efficacy", "median"),
                specificity=("specificity", "median"), iia=("iia", "median"),
                erasure_drop=("erasure_drop", "median"), icv_score=("icv_score", "median"),
                best_icv_score=("icv_score", "max")).reset_index()
    return markdown(out)


def icv_cases(t: dict[str, pd.DataFrame]) -> str:
    comp = t["comparison"]
    cases = comp[comp["measured_status"] == "icv"]
    if not len(cases):
        return "(no (model, site, factor) is an ICV)"
    cols = ["model", "site", "factor", "intervention", "icv_score", "predicted_status", "reason"]
    return markdown(cases[cols].sort_values(["factor", "model", "site"]))


def confusion(t: dict[str, pd.DataFrame]) -> str:
    return markdown(t["confusion"])


def failures(t: dict[str, pd.DataFrame]) -> str:
    comp = t["comparison"]
    comp = comp[comp["trained"].astype(bool)]
    g = comp.groupby(["factor", "predicted_status", "measured_status"]).size().rename("rows").reset_index()
    return markdown(g)


def claims(t: dict[str, pd.DataFrame]) -> str:
    return markdown(t["claims"][["claim", "verdict", "numbers"]])


def per_model_factor(t: dict[str, pd.DataFrame], models: list[str]) -> str:
    op = t["operational"]
    op = op[op["model"].isin(models)]
    best = op.groupby(["model", "factor", "kind"])["icv_score"].max().unstack("model").reset_index()
    dec = op.groupby(["model", "factor", "kind"])["decodability"].max().unstack("model")
    dec.columns = [f"{c} decodability" for c in dec.columns]
    return markdown(best.merge(dec.reset_index(), on=["factor", "kind"]))


def factor_figure(t: dict[str, pd.DataFrame], knobs: list[str], path: Path) -> None:
    """Each factor's per-model mean ICV score against each swept knob, the other knobs at their most common value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = t["models"]
    models = models[(models["kind"] == "family") & models["trained"].astype(bool)]
    op = t["operational"].merge(models, on="model")
    per = op.groupby(["model", "factor", "factor_kind", *knobs], dropna=False)["icv_score"].mean().reset_index()
    swept = [k for k in knobs if per[k].nunique() > 1]
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
                xs.append(str(value) if knob == "antialias" else float(value))
                ms.append(fit.estimate)
                hs.append(0.0 if np.isnan(fit.ci_high) else fit.ci_high - fit.estimate)
            ax.errorbar(xs, ms, yerr=hs, marker="o", capsize=3, ls="-" if kind == "static" else "--", label=factor)
        if knob != "antialias":
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


def main(argv: list[str]) -> None:
    arch_knobs = ["total_stride", "compression", "antialias"]
    scale_knobs = ["width", "depth", "data_size"]
    figures = None
    if "--figures" in argv:
        i = argv.index("--figures")
        figures = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    pooled = []
    for run in map(Path, argv):
        t = load(run)
        knobs = scale_knobs if "scale" in run.name else arch_knobs
        print(f"# {run.name}\n")
        if "fidelity" in t:
            print("## reconstruction fidelity (median over held-out clips, mean over seeds)\n")
            print(fidelity_table(t, knobs), "\n")
        print("## latent ontology: share of sites that afford each factor (mean over seeds)\n")
        print(latent_table(t, knobs), "\n")
        print("## ICV scores per design (mean over seeds, 95% t interval)\n")
        print(score_table(t, knobs), "\n")
        print("## knob slopes (pooled within-group estimate)\n")
        print(slope_table(t, knobs), "\n")
        print("## per factor, trained models\n")
        print(factor_table(t), "\n")
        print("## ICV cases\n")
        print(icv_cases(t), "\n")
        print("## prediction: confusion\n")
        print(confusion(t), "\n")
        pooled.append(t["confusion"])
        print("## prediction: outcomes per factor\n")
        print(failures(t), "\n")
        print("## claims\n")
        print(claims(t), "\n")
        views = views_table(run, t)
        if views is not None:
            print("## decodability by view (ridge, best site) against the best ICV score\n")
            print(views, "\n")
        if figures is not None:
            factor_figure(t, knobs, figures / f"{run.name}.png")
        pre = t["models"].loc[t["models"]["kind"] == "pretrained", "model"].tolist()
        if pre:
            print("## pretrained models: best ICV score and best decodability per factor\n")
            print(per_model_factor(t, pre), "\n")
    if len(pooled) > 1:
        print("# every run: prediction confusion (counts added)\n")
        both = pd.concat(pooled).groupby(["predicted_status", "prediction"], sort=False).sum().reset_index()
        print(markdown(both), "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
