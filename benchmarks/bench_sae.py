"""Sparse autoencoders: the TopK autoencoder against scikit-learn's mini-batch dictionary learning.

Both learn a dictionary from the same planted sparse frames; every row says how long the fit took and how well
each recovered the planted atoms. ``python -m benchmarks.bench_sae [N_FRAMES STEPS EPOCHS]`` runs it on its
own (e.g. ``500 20 1`` for a quick check that it runs).
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import torch

from benchmarks.common import best_of
from ontoscope.probing.sae import fit_sae

TITLE = "Sparse autoencoders (TopK SAE vs MiniBatchDictionaryLearning)"
NOTES = (
    "Planted data: 10,000 frames of 64 dims, each the sum of 4 of 128 random unit atoms with amplitudes "
    "U(0.5, 1.5), plus Gaussian noise of standard deviation 0.01. Ours: `fit_sae` with 256 latents, k = 4, "
    "2000 Adam steps of 256 frames, lr 3e-3, float32 (best of 3 after a warm-up). Reference: scikit-learn's "
    "`MiniBatchDictionaryLearning` with 256 components, alpha 0.2, batches of 256, 5 passes with early stopping "
    "off (timed once), its codes for the FVU by orthogonal matching pursuit with 4 non-zero coefficients, the "
    "same sparsity. Recovery: the mean over the planted atoms of the largest |cosine| with a learned atom (1 is "
    "perfect). FVU: the fraction of the frames' variance left unexplained. Dead: the share of the "
    "autoencoder's latents never active (twice as many latents as atoms, so about half have nothing to do). "
    "`ms_per_step`: our fit time per Adam step."
)

N_DIMS, N_ATOMS, N_LATENTS, K = 64, 128, 256, 4


def planted(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[n, 64]`` (4 of 128 unit atoms each, plus noise) and the atoms ``[128, 64]``."""
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((N_ATOMS, N_DIMS))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    amp = np.zeros((n, N_ATOMS))
    active = np.argsort(rng.random((n, N_ATOMS)), axis=1)[:, :K]
    np.put_along_axis(amp, active, rng.uniform(0.5, 1.5, (n, K)), axis=1)
    return (amp @ atoms + 0.01 * rng.standard_normal((n, N_DIMS))).astype(np.float32), atoms


def recovery(atoms: np.ndarray, learned: np.ndarray) -> float:
    """Mean over the planted atoms ``[A, d]`` of their largest |cosine| with a learned atom (rows of ``[M, d]``)."""
    unit = learned / np.maximum(np.linalg.norm(learned, axis=1, keepdims=True), 1e-12)
    return float(np.abs(atoms @ unit.T).max(1).mean())


def _fvu(x: np.ndarray, recon: np.ndarray) -> float:
    return float(((x - recon) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())


def run(n_frames: int = 10000, steps: int = 2000, epochs: int = 5) -> list[dict]:
    from sklearn.decomposition import MiniBatchDictionaryLearning
    from sklearn.exceptions import ConvergenceWarning

    torch.set_num_threads(2)
    x, atoms = planted(n_frames)

    def ours(device: str = "cpu"):
        return fit_sae(x, N_LATENTS, K, steps=steps, batch=256, seed=0, device=device)

    def reference() -> MiniBatchDictionaryLearning:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return MiniBatchDictionaryLearning(
                n_components=N_LATENTS, alpha=0.2, batch_size=256, max_iter=epochs, tol=0.0,
                max_no_improvement=None, transform_algorithm="omp", transform_n_nonzero_coefs=K,
                random_state=0).fit(x)

    t_ours = best_of(ours, repeat=3)
    sae = ours()
    t0 = time.perf_counter()
    ref = reference()
    t_ref = time.perf_counter() - t0
    ref_fvu = _fvu(x, ref.transform(x) @ ref.components_)
    label = f"{n_frames:,} frames x {N_DIMS} dims, {N_ATOMS} atoms; {N_LATENTS} latents, k = {K}"
    rows = [{"benchmark": f"dictionary fit, {label}", "ours_s": t_ours, "reference_s": t_ref,
             "speedup": t_ref / t_ours, "ms_per_step": 1000 * t_ours / steps,
             "agreement": f"recovery ours {recovery(atoms, sae.W_dec.cpu().numpy().T):.3f}, reference "
                          f"{recovery(atoms, ref.components_):.3f}; FVU ours {sae.fvu:.3f}, reference "
                          f"{ref_fvu:.3f}; dead {sae.dead_fraction:.2f}"}]
    if torch.cuda.is_available():

        def on_cuda() -> None:
            ours("cuda")
            torch.cuda.synchronize()

        t_cuda = best_of(on_cuda, repeat=3)
        gpu = ours("cuda")
        rows.append({"benchmark": f"dictionary fit on CUDA, {label}", "ours_s": t_cuda, "reference_s": t_ref,
                     "speedup": t_ref / t_cuda, "ms_per_step": 1000 * t_cuda / steps,
                     "agreement": f"recovery ours {recovery(atoms, gpu.W_dec.cpu().numpy().T):.3f}; "
                                  f"FVU ours {gpu.fvu:.3f}; CPU time / CUDA time {t_ours / t_cuda:.2f}"})
    return rows


if __name__ == "__main__":
    for r in run(*(int(a) for a in sys.argv[1:])):
        print(r)
