"""Latent ontology: feature Jacobians by forward mode, strided conv spectra."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import best_of
from ontoscope.models.family import build
from ontoscope.models.spec import parse_spec
from ontoscope.operators import conv_matrix, conv_singular_values, feature_jacobians, stimulus_batch

TITLE = "Latent ontology operators on CPU"
NOTES = ("Jacobians: 12 factors, 4 stimuli of 0.5 s at 16 kHz through the synthesizer and the default conv_ae "
         "(strides 2,4,4,8; width 16), all encoder sites and the bottleneck. Ours: forward mode (the synthesizer's "
         "factor tangents batched in one `jvp`, the model's `jvp` vmapped over factors), float32; reference: "
         "central finite differences of the whole chain (2k + 1 passes), float32, step 1e-4; the two are timed "
         "interleaved, best of 5. The error column "
         "is ours against central differences with a float64 model at the better of steps 1e-4 and 1e-5 per "
         "factor (the synthesizer renders float32, so finite differences are only good to ~1e-3 themselves). "
         "Spectra: a conv layer with stride 4 on circular signals; ours: per-frequency polyphase matrices "
         "(Sedghi et al. 2019, strided); reference: `numpy.linalg.svd` of the explicit operator matrix. "
         "The whole analysis of published architectures is timed in its own section (`bench_analyze.py`).")


def _jacobian_rows() -> list[dict]:
    spec = parse_spec(dict(family="conv_ae"))
    model = build(spec, 0).eval()
    batch = stimulus_batch(None, 4, sample_rate=16000, seconds=0.5, seed=0, max_partials=32)
    sites = [s.name for s in model.sites() if s.role in ("encoder", "bottleneck")]

    def ours():
        return feature_jacobians(model, batch, sites, use_vmap=True)

    def fd():
        return feature_jacobians(model, batch, sites, method="fd", fd_step=1e-4)

    ours(), fd()  # warm-up
    t_ours, t_fd = [], []
    for _ in range(5):  # interleaved, so that a burst of load on the machine hits both alike
        t_ours.append(best_of(ours, repeat=1, warmup=0))
        t_fd.append(best_of(fd, repeat=1, warmup=0))
    t_ours, t_fd = min(t_ours), min(t_fd)
    jac, _, used = ours()
    m64 = build(spec, 0).eval().double()
    best = None
    for h in (1e-4, 1e-5):
        ref, _, _ = feature_jacobians(m64, batch, ["bottleneck"], method="fd", fd_step=h)
        a, b = jac["bottleneck"].double().flatten(1), ref["bottleneck"].flatten(1)
        err = ((a - b).norm(dim=1) / b.norm(dim=1)).numpy()
        best = err if best is None else np.minimum(best, err)
    return [{"benchmark": f"feature Jacobians ({used}), {len(sites)} sites", "ours_s": t_ours, "reference_s": t_fd,
             "speedup": t_fd / t_ours, "agreement": f"rel. err median {np.median(best):.1e}, max {best.max():.1e}"}]


def _spectra_rows() -> list[dict]:
    rows = []
    g = torch.Generator().manual_seed(0)
    for c_out, c_in, k, n in ((16, 8, 8, 128), (32, 16, 8, 256)):
        w = torch.randn(c_out, c_in, k, generator=g, dtype=torch.float64)
        t_ours = best_of(lambda w=w, n=n: conv_singular_values(w, n, 4), repeat=3)
        mat = conv_matrix(w, n, 4).numpy()
        t_ref = best_of(lambda mat=mat: np.linalg.svd(mat, compute_uv=False), repeat=1, warmup=0)
        ours = np.sort(conv_singular_values(w, n, 4).reshape(-1).numpy())[::-1]
        ref = np.linalg.svd(mat, compute_uv=False)
        shape = f"{mat.shape[0]}x{mat.shape[1]}"
        rows.append({"benchmark": f"conv SVD {c_out}x{c_in}x{k}, stride 4, n={n} (explicit matrix {shape})",
                     "ours_s": t_ours, "reference_s": t_ref, "speedup": t_ref / t_ours,
                     "agreement": f"max |diff| {np.abs(ours - ref).max():.1e}"})
    return rows


def run() -> list[dict]:
    torch.set_num_threads(2)
    return _jacobian_rows() + _spectra_rows()


if __name__ == "__main__":
    for r in run():
        print(r)
