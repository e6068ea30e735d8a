"""`analyze` of published architectures, before and after the cost-driven analysis, on the same machine.

Each architecture is analysed with its defaults twice in one run, in fresh processes: by this tree's
``ontoscope`` ("after") and by the revision ``BEFORE`` checked out in a git worktree ("before", the last
revision whose analysis ran every initialisation, stimulus and sweep at every site). Times are seconds of the
``analyze`` call (loading the model included) and the same in forward passes of one second of audio through
the model (timed in the same run, best of 3). The status of every (site, factor) is compared between the two.

Usage: ``python benchmarks/run.py analyze`` (about an hour on 2 cores, nearly all of it "before"), or
``python benchmarks/bench_analyze.py`` to print the rows; ``python benchmarks/bench_analyze.py --family``
compares the statuses of the demo's family models (at initialisation) the same way. ``ONTOSCOPE_BENCH_BEFORE``
names another revision.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE = os.environ.get("ONTOSCOPE_BENCH_BEFORE", "a309375")
MODELS = ["hf:encodec-24khz", "hf:dac-44khz", "hf:mimi", "hf:wav2vec2-base", "hf:whisper-base", "hf:ast",
          "crepe:full"]
TIMEOUT_S = 1800

TITLE = "Latent ontology of published architectures: analyze before and after"
NOTES = (f"`analyze(ref)` with each revision's defaults, in a fresh process each, on the same machine in the same "
         f"run. Before: revision `{BEFORE}` (5 initialisations, 4 stimuli, every site swept with 192 sines, 32 "
         "frequencies per conv layer, per-frequency SVDs, one eigendecomposition per factor). After: this tree "
         "(initialisations only while a decision is near its threshold, 2 stimuli, the sweep through the last "
         "site where a collapse can decide, 8 frequencies per conv layer by Gram eigenvalues, exact band integrals "
         "for aliasing, forward differences where forward mode is refused). `forward_1s_s`: one forward pass of "
         "1 s of audio (best of 3); the `*_passes` columns are the analysis in those passes. `same_status`: cells "
         "whose predicted status is the same in both.")


def _one(ref: str, out: str) -> None:
    """Run ``analyze(ref)`` in this process and write its factors table and timing to ``out``."""
    warnings.filterwarnings("ignore")
    from ontoscope.operators.latent import analyze

    t = time.perf_counter()
    onto = analyze(ref, progress=False)
    elapsed = time.perf_counter() - t
    onto.factors[["site", "factor", "status"]].to_json(Path(out) / "factors.json", orient="records")
    meta = {"seconds": elapsed, "seeds_run": onto.meta.get("seeds_run", onto.meta.get("seeds")),
            "swept": len(onto.meta.get("swept_sites", onto.sites["site"])), "sites": len(onto.sites)}
    (Path(out) / "meta.json").write_text(json.dumps(meta))


def _forward_seconds(ref: str) -> float:
    import torch

    from benchmarks.common import best_of
    from ontoscope.models.registry import load_model

    model = load_model(ref, seed=0)
    audio = torch.randn(1, int(model.sample_rate), generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        return best_of(lambda: model(audio), repeat=3)


def _run(ref: str, src: Path | None, out: Path) -> dict | None:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, str(Path(__file__)), "--one", ref, str(out)]
    try:
        subprocess.run(cmd, env=env, check=True, timeout=TIMEOUT_S, cwd=ROOT, capture_output=True)
    except subprocess.TimeoutExpired:
        return None
    meta = json.loads((out / "meta.json").read_text())
    meta["factors"] = json.loads((out / "factors.json").read_text())
    return meta


def _worktree(rev: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev], check=True,
                   capture_output=True)
    return where / "src"


#: The demo's family models at initialisation (``configs/demo.yaml``): their statuses, before against after.
FAMILY = [dict(family="conv_ae", width=8, depth=0, strides=st, bottleneck=b)
          for st in ([2, 2, 2, 2], [4, 4, 4, 4], [4, 4, 4, 8]) for b in (4, 16)] + [
          dict(family="tcn", width=8, depth=2)]


def family() -> list[dict]:
    """The statuses of the demo's family models (as spec files, at initialisation) before and after."""
    import yaml

    rows = []
    with tempfile.TemporaryDirectory(prefix="ontoscope-bench-") as tmp:
        tree = Path(tmp) / "before"
        src = _worktree(BEFORE, tree)
        try:
            for i, spec in enumerate(FAMILY):
                path = Path(tmp) / f"spec{i}.yaml"
                path.write_text(yaml.safe_dump(spec))
                res = {}
                for label, where in (("after", None), ("before", src)):
                    out = Path(tmp) / f"{label}-{i}"
                    out.mkdir()
                    res[label] = _run(str(path), where, out)
                before = {(r["site"], r["factor"]): r["status"] for r in res["before"]["factors"]}
                after = {(r["site"], r["factor"]): r["status"] for r in res["after"]["factors"]}
                diff = [k for k in before if after.get(k) != before[k]]
                name = spec["family"] + (f" strides {spec['strides']} bottleneck {spec['bottleneck']}"
                                         if "strides" in spec else "")
                rows.append({"model": name, "before_s": res["before"]["seconds"], "after_s": res["after"]["seconds"],
                             "same_status": f"{len(before) - len(diff)} of {len(before)}",
                             "changed": "; ".join(f"{s}/{f}: {before[s, f]} -> {after.get((s, f))}"
                                                  for s, f in diff) or "none"})
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    return rows


def run() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="ontoscope-bench-") as tmp:
        tree = Path(tmp) / "before"
        src = _worktree(BEFORE, tree)
        try:
            for ref in MODELS:
                fwd = _forward_seconds(ref)
                res = {}
                for label, path in (("after", None), ("before", src)):
                    out = Path(tmp) / f"{label}-{ref.replace(':', '_')}"
                    out.mkdir()
                    res[label] = _run(ref, path, out)
                    print(f"  {ref} {label}: {res[label]['seconds'] if res[label] else 'timed out'}", flush=True)
                a, b = res["after"], res["before"]
                row = {"model": ref, "forward_1s_s": fwd,
                       "before_s": b["seconds"] if b else float("nan"), "after_s": a["seconds"],
                       "before_passes": b["seconds"] / fwd if b else float("nan"), "after_passes": a["seconds"] / fwd}
                row["speedup"] = row["before_s"] / row["after_s"]
                row["initialisations_after"] = a["seeds_run"]
                row["swept_after"] = f"{a['swept']} of {a['sites']}"
                if b:
                    before = {(r["site"], r["factor"]): r["status"] for r in b["factors"]}
                    after = {(r["site"], r["factor"]): r["status"] for r in a["factors"]}
                    diff = [k for k in before if after.get(k) != before[k]]
                    row["same_status"] = f"{len(before) - len(diff)} of {len(before)}"
                    row["changed"] = "; ".join(f"{s}/{f}: {before[s, f]} -> {after.get((s, f))}"
                                               for s, f in diff) or "none"
                else:
                    row["same_status"], row["changed"] = "–", f"before timed out after {TIMEOUT_S} s"
                rows.append(row)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        _one(sys.argv[2], sys.argv[3])
    elif sys.argv[1:] == ["--family"]:
        for r in family():
            print(r)
    else:
        for r in run():
            print(r)
