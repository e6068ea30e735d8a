"""Probing: ridge CV against scikit-learn, capture throughput, and capture memory against the set size."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import torch

from benchmarks.common import best_of
from ontoscope.probing.probes import DEFAULT_ALPHAS, kfold_indices, ridge_cv

TITLE = "Probing (ridge CV; capture)"
NOTES = (
    "Ridge CV: every site x view of a study-sized probe (8 feature matrices of 512 clips, 32-256 dims) x 12 "
    "factors x 17 penalties, 5 explicit folds. Ours: one SVD per fold for all penalties and factors; reference: "
    "scikit-learn's `RidgeCV(alphas, cv=folds)` fitted per factor (it picks one penalty for all targets when "
    "given folds). Agreement: every chosen penalty equal, and the largest difference of the CV R². The wide row "
    "(more features than clips, as a modulation or timing view of a wide site gives) goes through the Gram "
    "matrix of the clips instead of an SVD of the features. "
    "Capture: a `conv_ae` (width 8, strides 2,4,4,8) over 256 clips of 1 s, all 9 sites, the three default views "
    "(pooled, modulation, timing), against one plain forward pass per chunk; the timing view (an FFT of every "
    "channel's trajectory in float64) is about half of it (5.4 s with it, 2.9 s without, measured apart). "
    "Memory: peak resident set of a fresh process while it captures "
    "1,000 and then 10,000 clips (0.25 s each, all sites and views) in chunks of 64, over its resident set "
    "before the capture (after loading the set and one warm-up pass); the ratio stays near 1 when memory is "
    "bounded by the chunk."
)

_MEMORY = textwrap.dedent("""
    import json, resource, sys, torch
    torch.set_num_threads(2)
    from ontoscope.models.family import build
    from ontoscope.models.spec import parse_spec
    from ontoscope.probing.capture import capture
    from ontoscope.stimuli.dataset import StimulusSet

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    ds = StimulusSet.load(sys.argv[1])
    model = build(parse_spec(dict(family="conv_ae", width=8, strides=[2, 4, 4, 8], bottleneck=16))).eval()
    with torch.no_grad():  # warm-up: the first forward pass allocates the allocator's pools
        model(ds.audio(list(range(64))))
    before = rss_mb()
    capture(model, ds, sys.argv[2], chunk=64, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"growth_mb": peak - before}))
""")


def _ridge_rows() -> list[dict]:
    from sklearn.linear_model import RidgeCV

    rng = np.random.default_rng(0)
    n, k = 512, 12
    mats = []
    for d in (32, 64, 128, 256, 32, 64, 128, 256):
        z = rng.standard_normal((n, 16))
        x = z @ rng.standard_normal((16, d)) + 0.3 * rng.standard_normal((n, d))
        y = z[:, :k] @ rng.standard_normal((k, k)) + rng.standard_normal((n, k)) * np.linspace(0.1, 3, k)
        mats.append((x, y))
    folds = kfold_indices(n, 5, seed=0)
    alphas = np.asarray(DEFAULT_ALPHAS)

    def ours() -> list:
        return [ridge_cv(x, y, alphas, folds=folds) for x, y in mats]

    def reference() -> list:
        return [[RidgeCV(alphas=alphas, cv=folds).fit(x, y[:, j]) for j in range(k)] for x, y in mats]

    t_ours = best_of(ours, repeat=3)
    t_ref = best_of(reference, repeat=1, warmup=0)
    a, b = ours(), reference()
    same = all(float(r.alpha[j]) == float(s[j].alpha_) for r, s in zip(a, b, strict=True) for j in range(k))
    diff = max(abs(float(r.cv_r2[j]) - float(s[j].best_score_)) for r, s in zip(a, b, strict=True) for j in range(k))
    return [{"benchmark": f"ridge CV, 8 matrices x {k} factors x {len(alphas)} penalties, 5 folds",
             "ours_s": t_ours, "reference_s": t_ref, "speedup": t_ref / t_ours,
             "agreement": f"penalties {'all equal' if same else 'DIFFER'}; max |cv R² diff| {diff:.1e}"}]


def _wide_ridge_rows() -> list[dict]:
    """One wide probe, as a modulation or timing view of a wide site gives: 128 clips x 16,384 features."""
    from sklearn.linear_model import RidgeCV

    rng = np.random.default_rng(1)
    n, d, k = 128, 16384, 5
    z = rng.standard_normal((n, 24))
    x = z @ rng.standard_normal((24, d)) + 0.5 * rng.standard_normal((n, d))
    y = z[:, :k] @ rng.standard_normal((k, k)) + rng.standard_normal((n, k)) * np.linspace(0.1, 3, k)
    folds = kfold_indices(n, 5, seed=0)
    alphas = np.asarray(DEFAULT_ALPHAS)
    t_ours = best_of(lambda: ridge_cv(x, y, alphas, folds=folds), repeat=3)
    t_ref = best_of(lambda: [RidgeCV(alphas=alphas, cv=folds).fit(x, y[:, j]) for j in range(k)], repeat=1,
                    warmup=0)
    a = ridge_cv(x, y, alphas, folds=folds)
    b = [RidgeCV(alphas=alphas, cv=folds).fit(x, y[:, j]) for j in range(k)]
    same = all(float(a.alpha[j]) == float(b[j].alpha_) for j in range(k))
    diff = max(abs(float(a.cv_r2[j]) - float(b[j].best_score_)) for j in range(k))
    return [{"benchmark": f"ridge CV, wide: {n} clips x {d} features x {k} factors x {len(alphas)} penalties, 5 folds",
             "ours_s": t_ours, "reference_s": t_ref, "speedup": t_ref / t_ours,
             "agreement": f"penalties {'all equal' if same else 'DIFFER'}; max |cv R² diff| {diff:.1e}"}]


def _capture_rows() -> list[dict]:
    from ontoscope.models.family import build
    from ontoscope.models.resample import prepare
    from ontoscope.models.spec import parse_spec
    from ontoscope.probing.capture import capture
    from ontoscope.stimuli import FactorSpace
    from ontoscope.stimuli.dataset import StimulusSet

    rows = []
    with tempfile.TemporaryDirectory() as d:
        ds = StimulusSet.synthesize(d + "/set", FactorSpace.create(), 256, 16000, 1.0, seed=0, progress=False)
        model = build(parse_spec(dict(family="conv_ae", width=8, strides=[2, 4, 4, 8], bottleneck=16))).eval()

        def plain() -> None:
            with torch.no_grad():
                for _, audio in ds.chunks(64):
                    model(prepare(audio, ds.sr, model))

        counter = iter(range(100))

        def ours() -> None:
            capture(model, ds, f"{d}/cap{next(counter)}", chunk=64, progress=False)

        t_plain = best_of(plain, repeat=2)
        t_ours = best_of(ours, repeat=2)
        rows.append({"benchmark": "capture 256 clips x 9 sites x 3 views (conv_ae width 8)", "ours_s": t_ours,
                     "reference_s": t_plain, "speedup": t_plain / t_ours, "x_real_time": 256 / t_ours})
    growth = {}
    with tempfile.TemporaryDirectory() as d:
        for n in (1000, 10000):
            StimulusSet.synthesize(f"{d}/set{n}", FactorSpace.create(["f0", "loudness"]), n, 16000, 0.25, seed=0,
                                   progress=False)
            r = subprocess.run([sys.executable, "-c", _MEMORY, f"{d}/set{n}", f"{d}/cap{n}"], capture_output=True,
                               text=True, check=True)
            growth[n] = json.loads(r.stdout.strip().splitlines()[-1])["growth_mb"]
    rows.append({"benchmark": "capture memory, 10,000 vs 1,000 clips (chunk 64)", "ours_s": float("nan"),
                 "reference_s": float("nan"), "speedup": float("nan"),
                 "agreement": f"RSS growth {growth[10000]:.0f} MB vs {growth[1000]:.0f} MB "
                              f"(ratio {growth[10000] / max(growth[1000], 1e-9):.2f})"})
    return rows


def run() -> list[dict]:
    torch.set_num_threads(2)
    return _ridge_rows() + _wide_ridge_rows() + _capture_rows()


if __name__ == "__main__":
    for r in run():
        print(r)
