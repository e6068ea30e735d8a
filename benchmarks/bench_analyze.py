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

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
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


@contextlib.contextmanager
def _before_tree() -> Iterator[tuple[Path, Path]]:
    """A scratch directory and the ``src`` of revision ``BEFORE`` checked out in a worktree inside it."""
    with tempfile.TemporaryDirectory(prefix="ontoscope-bench-") as tmp:
        tree = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), BEFORE], check=True,
                       capture_output=True)
        try:
            yield Path(tmp), tree / "src"
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def _both(ref: str, tmp: Path, src: Path, key: str) -> tuple[dict | None, dict | None, dict]:
    """``analyze(ref)`` after and before; the two runs and the status comparison (``same_status``, ``changed``)."""
    res = {}
    for label, where in (("after", None), ("before", src)):
        out = tmp / f"{label}-{key}"
        out.mkdir()
        res[label] = _run(ref, where, out)
        print(f"  {ref} {label}: {res[label]['seconds'] if res[label] else 'timed out'}", flush=True)
    a, b = res["after"], res["before"]
    if not (a and b):
        return a, b, {"same_status": "–", "changed": f"timed out after {TIMEOUT_S} s"}
    before = {(r["site"], r["factor"]): r["status"] for r in b["factors"]}
    after = {(r["site"], r["factor"]): r["status"] for r in a["factors"]}
    diff = [k for k in before if after.get(k) != before[k]]
    return a, b, {"same_status": f"{len(before) - len(diff)} of {len(before)}",
                  "changed": "; ".join(f"{s}/{f}: {before[s, f]} -> {after.get((s, f))}" for s, f in diff) or "none"}


#: The demo's family models at initialisation (``configs/demo.yaml``): their statuses, before against after.
FAMILY = [dict(family="conv_ae", width=8, depth=0, strides=st, bottleneck=b)
          for st in ([2, 2, 2, 2], [4, 4, 4, 4], [4, 4, 4, 8]) for b in (4, 16)] + [
          dict(family="tcn", width=8, depth=2)]


def family() -> list[dict]:
    """The statuses of the demo's family models (as spec files, at initialisation) before and after."""
    import yaml

    rows = []
    with _before_tree() as (tmp, src):
        for i, spec in enumerate(FAMILY):
            path = tmp / f"spec{i}.yaml"
            path.write_text(yaml.safe_dump(spec))
            a, b, same = _both(str(path), tmp, src, str(i))
            name = spec["family"] + (f" strides {spec['strides']} bottleneck {spec['bottleneck']}"
                                     if "strides" in spec else "")
            rows.append({"model": name, "before_s": b["seconds"] if b else float("nan"),
                         "after_s": a["seconds"] if a else float("nan"), **same})
    return rows


def run() -> list[dict]:
    rows = []
    with _before_tree() as (tmp, src):
        for ref in MODELS:
            fwd = _forward_seconds(ref)
            a, b, same = _both(ref, tmp, src, ref.replace(":", "_"))
            before_s = b["seconds"] if b else float("nan")
            rows.append({"model": ref, "forward_1s_s": fwd, "before_s": before_s, "after_s": a["seconds"],
                         "before_passes": before_s / fwd, "after_passes": a["seconds"] / fwd,
                         "speedup": before_s / a["seconds"], "initialisations_after": a["seeds_run"],
                         "swept_after": f"{a['swept']} of {a['sites']}", **same})
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
