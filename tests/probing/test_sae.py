"""Sparse autoencoders against known truth: a planted dictionary, spread and axis-aligned factors, a planted model."""

import numpy as np
import pandas as pd
import pytest
import torch

from ontoscope.errors import ConfigError
from ontoscope.models.planted import PlantedModel
from ontoscope.probing.capture import capture
from ontoscope.probing.decodability import factor_targets
from ontoscope.probing.metrics import mcc
from ontoscope.probing.sae import fit_sae, pool_by_clip, sae_factor_table, sae_site_analysis
from ontoscope.stimuli import FactorSpace
from ontoscope.stimuli.dataset import StimulusSet

SR = 16000
#: 4 x 4 Hadamard matrix over 2: orthogonal, every entry ±1/2.
HADAMARD = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2.0


def planted_sparse(n: int, d: int, atoms: int, k: int, noise: float, seed: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames ``A D + noise`` ``[n, d]``: each row has ``k`` of ``atoms`` unit atoms active, amplitudes U(0.5, 1.5)."""
    rng = np.random.default_rng(seed)
    dic = rng.standard_normal((atoms, d))
    dic /= np.linalg.norm(dic, axis=1, keepdims=True)
    amp = np.zeros((n, atoms))
    active = np.argsort(rng.random((n, atoms)), axis=1)[:, :k]
    np.put_along_axis(amp, active, rng.uniform(0.5, 1.5, (n, k)), axis=1)
    return amp @ dic + noise * rng.standard_normal((n, d)), dic, amp


@pytest.fixture(scope="module")
def sparse_fit():
    x, dic, amp = planted_sparse(4096, 32, 32, 3, 0.01, seed=0)
    return x, dic, amp, fit_sae(x, 64, 3, steps=600, seed=0)


def test_planted_dictionary_is_recovered(sparse_fit):
    x, dic, _, sae = sparse_fit
    assert sae.W_dec.shape == (32, 64) and sae.W_enc.shape == (64, 32)
    np.testing.assert_allclose(sae.W_dec.norm(dim=0).numpy(), 1.0, atol=1e-5)
    cos = np.abs(dic @ sae.W_dec.numpy())  # [true atoms, latents]
    assert cos.max(1).mean() > 0.9 and cos.max(1).min() > 0.8, cos.max(1)
    # 3 active latents per frame explain far more than the best 3-dimensional linear reconstruction (PCA)
    xc = x - x.mean(0)
    s = np.linalg.svd(xc, compute_uv=False)
    pca_fvu = float((s[3:] ** 2).sum() / (s**2).sum())
    assert sae.fvu < 0.05 and sae.fvu < pca_fvu / 20, (sae.fvu, pca_fvu)
    codes = sae.encode(x)
    assert codes.shape == (4096, 64) and codes.min() >= 0 and ((codes > 0).sum(1) <= 3).all()
    fvu = ((x - sae.decode(codes)) ** 2).sum() / (xc**2).sum()
    assert fvu == pytest.approx(sae.fvu, rel=1e-3)
    assert sae.dead_fraction == pytest.approx(np.mean(sae.frequency == 0))
    # twice as many latents as atoms: the spare ones die, but every atom keeps a living latent
    assert 0.0 < sae.dead_fraction and (1 - sae.dead_fraction) * 64 >= 32


def test_latents_track_sparse_factors_but_not_dense_rotations_of_them(sparse_fit):
    """The amplitudes of the planted atoms are tracked one latent each; rotating four of them by a Hadamard
    matrix spreads each factor over four latents, so the best single latent reaches only about 1/2."""
    x, _, amp, sae = sparse_fit
    codes = sae.encode(x)
    t = sae_factor_table(codes, pd.DataFrame(amp))
    assert t["best_corr"].mean() > 0.95 and t["best_corr"].min() > 0.8 and t["mcc"].iloc[0] > 0.95, t
    assert t["best_latent"].nunique() == 32 and (t["best_sign"] == 1).all()
    spread = pd.DataFrame(amp[:, :4] @ HADAMARD.T, columns=list("abcd"))
    t = sae_factor_table(codes, spread)
    assert t["best_corr"].between(0.4, 0.6).all() and t["mcc"].iloc[0] < 0.6, t


def test_factor_table_known_correlations(rng):
    """Codes that are a Hadamard rotation of independent factors correlate ±1/2 with each; an axis-aligned
    sparse code (each factor on its own latent, among dead and noise latents) correlates 1."""
    n = 4000
    f = rng.standard_normal((n, 4))
    y = pd.DataFrame(f, columns=["p", "q", "r", "s"])
    t = sae_factor_table(f @ HADAMARD.T, y)
    np.testing.assert_allclose(t["best_corr"], 0.5, atol=0.05)
    assert t["mcc"].iloc[0] == pytest.approx(0.5, abs=0.05)
    assert t["mcc"].iloc[0] == pytest.approx(mcc(f @ HADAMARD.T, f), abs=1e-12)

    amp = np.where(rng.random((n, 4)) < 0.2, rng.uniform(0.5, 1.5, (n, 4)), 0.0)
    perm = [5, 2, 7, 0]
    codes = np.zeros((n, 8))
    codes[:, perm] = amp
    codes[:, [1, 3]] = np.abs(rng.standard_normal((n, 2)))  # latents 4 and 6 stay dead
    t = sae_factor_table(codes, pd.DataFrame(amp, columns=["p", "q", "r", "s"]))
    assert t["best_latent"].tolist() == perm and t["matched_latent"].tolist() == perm
    np.testing.assert_allclose(t["best_corr"], 1.0)
    assert t["mcc"].iloc[0] == pytest.approx(1.0)


def test_factor_table_drops_undefined_rows_and_pools_clips(rng):
    n = 300
    f = rng.uniform(size=(n, 2))
    codes = np.abs(np.column_stack([f[:, 0], f[:, 1] ** 2, rng.standard_normal(n)]) + 0.1 * rng.random((n, 3)))
    y = pd.DataFrame(f, columns=["a", "b"])
    y.loc[:49, "b"] = np.nan
    t = sae_factor_table(codes, y).set_index("factor")
    assert t.loc["a", "n"] == 300 and t.loc["b", "n"] == 250
    ref = abs(np.corrcoef(codes[50:, 1], f[50:, 1])[0, 1])
    assert t.loc["b", "best_latent"] == 1 and t.loc["b", "best_corr"] == pytest.approx(ref, abs=1e-12)
    spearman = sae_factor_table(codes, y, method="spearman").set_index("factor")
    assert spearman.loc["b", "best_corr"] > t.loc["b", "best_corr"]  # a monotone map is tracked exactly
    # per frame, the clip's factor value repeated: pooling per clip averages the codes and keeps the values
    clip = np.repeat(np.arange(60), 5)
    g = rng.uniform(size=60)
    frames = np.abs(np.column_stack([g[clip], rng.standard_normal(300)]) + 0.3 * rng.standard_normal((300, 2)))
    pooled = sae_factor_table(frames, pd.DataFrame({"a": g[clip]}), clip=clip)
    ids, mean_codes = pool_by_clip(frames, clip)
    assert ids.tolist() == list(range(60)) and pooled["n"].iloc[0] == 60
    np.testing.assert_allclose(mean_codes[3], frames[15:20].mean(0))
    ref = abs(np.corrcoef(mean_codes[:, 0], g)[0, 1])
    assert pooled["best_latent"].iloc[0] == 0 and pooled["best_corr"].iloc[0] == pytest.approx(ref, abs=1e-12)
    assert ref > abs(np.corrcoef(frames[:, 0], g[clip])[0, 1])  # averaging frames removes their noise


def test_same_seed_same_autoencoder(rng):
    x = planted_sparse(512, 8, 12, 2, 0.05, seed=3)[0]
    a, b = fit_sae(x, 16, 2, steps=60, seed=7), fit_sae(x, 16, 2, steps=60, seed=7)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec", "mean", "scale"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.fvu == b.fvu and np.array_equal(a.encode(x), b.encode(x))
    assert not torch.equal(a.W_dec, fit_sae(x, 16, 2, steps=60, seed=8).W_dec)
    # per-channel scaling: each channel of the standardised frames has unit variance
    c = fit_sae(x * np.arange(1, 9), 16, 2, steps=20, scale="channel", seed=0)
    np.testing.assert_allclose(c.scale.numpy(), (x * np.arange(1, 9)).std(0), rtol=1e-4)
    assert torch.unique(a.scale).numel() == 1


def test_bad_input_raises_config_error(rng):
    x = rng.standard_normal((100, 4))
    with pytest.raises(ConfigError, match="cannot exceed n_latents"):
        fit_sae(x, 8, 9)
    bad = x.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ConfigError, match="NaN or infinite values in 1 rows"):
        fit_sae(bad, 8, 2)
    with pytest.raises(ConfigError, match="at least 64 frames"):
        fit_sae(x[:10], 8, 2)
    with pytest.raises(ConfigError, match="2-D"):
        fit_sae(x[:, 0], 8, 2)
    with pytest.raises(ConfigError, match="constant"):
        fit_sae(np.ones((100, 4)), 8, 2)
    with pytest.raises(ConfigError, match="unknown scale"):
        fit_sae(x, 8, 2, scale="robust")
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        fit_sae(x, 8, 0)
    y = pd.DataFrame({"a": rng.standard_normal(100)})
    with pytest.raises(ConfigError, match="rows but Y has"):
        sae_factor_table(x, y.iloc[:50])
    with pytest.raises(ConfigError, match="is constant"):
        sae_factor_table(x, pd.DataFrame({"a": np.ones(100)}))
    with pytest.raises(ConfigError, match="defined on 5 rows"):
        sae_factor_table(x, pd.DataFrame({"a": np.r_[np.arange(5.0), np.full(95, np.nan)]}))
    with pytest.raises(ConfigError, match="DataFrame"):
        sae_factor_table(x, y.to_numpy())


def test_sae_site_analysis_on_a_planted_capture(tmp_path):
    names = ["f0", "loudness", "brightness", "odd_even"]
    space = FactorSpace.create(names)
    ds = StimulusSet.synthesize(tmp_path / "set", space, 24, SR, 0.5, seed=4, progress=False)
    cap = capture(PlantedModel(space, angle=0.0, sample_rate=SR), ds, tmp_path / "cap", views=["frames"],
                  progress=False)
    targets = factor_targets(ds.factors, space)
    t = sae_site_analysis(cap, "bottleneck", targets, n_latents=16, k=4, max_frames=150, steps=150, seed=0)
    assert t["factor"].tolist() == names and t["site"].eq("bottleneck").all()
    assert {"best_latent", "best_corr", "mcc", "fvu", "dead_fraction", "n_latents", "k"} <= set(t.columns)
    assert (t["n"] == 24).all() and (t["frames"] == 150).all() and (t["of"] == 24 * 8).all()
    assert (t["n_latents"] == 16).all() and (t["k"] == 4).all() and t["fvu"].iloc[0] < 0.2
    assert t["best_corr"].between(0, 1).all() and t["mcc"].nunique() == 1
    # the same table from the parts, by hand
    x, clips = cap.features("bottleneck", "frames")
    train = np.sort(np.random.default_rng(0).choice(len(x), 150, replace=False))
    sae = fit_sae(x[train], 16, 4, steps=150, seed=0)
    ref = sae_factor_table(sae.encode(x), targets.loc[clips].reset_index(drop=True), clip=clips)
    np.testing.assert_allclose(t["best_corr"], ref["best_corr"])
    assert t["fvu"].iloc[0] == sae.fvu
    with pytest.raises(ConfigError, match="no row for 24 captured clips"):
        sae_site_analysis(cap, "bottleneck", targets.set_index(targets.index + 100), steps=5)
