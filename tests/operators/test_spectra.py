"""Conv singular values by the per-frequency (polyphase) method against the SVD of the explicit operator."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ontoscope.operators import conv_matrix, conv_singular_values, conv_transpose_matrix, layer_spectra


def _sorted(sv: torch.Tensor) -> np.ndarray:
    return np.sort(sv.reshape(-1).numpy())[::-1]


def _explicit(m: torch.Tensor) -> np.ndarray:
    return np.linalg.svd(m.numpy(), compute_uv=False)  # numpy's LAPACK, independent of torch


CASES = [  # weight shape, n, stride, dilation, groups
    ((3, 2, 5), 12, 1, 1, 1),
    ((3, 2, 5), 12, 3, 1, 1),
    ((4, 3, 4), 16, 2, 1, 1),
    ((3, 2, 3), 12, 2, 2, 1),
    ((4, 1, 4), 12, 2, 1, 2),
    ((2, 5, 7), 16, 4, 1, 1),  # wide: fewer outputs than inputs x stride
    ((6, 1, 9), 12, 3, 1, 2),  # kernel longer than n / s: taps wrap around
    ((3, 2, 3, 3), (6, 6), (2, 1), (1, 1), 1),
    ((3, 2, 3, 3), (6, 8), (2, 2), (1, 2), 1),
]


@pytest.mark.parametrize("shape, n, stride, dilation, groups", CASES)
def test_strided_svd_equals_explicit_matrix_svd(shape, n, stride, dilation, groups):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    ours = _sorted(conv_singular_values(w, n, stride, dilation, groups))
    ref = _explicit(conv_matrix(w, n, stride, dilation, groups))
    assert ours.size == ref.size
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape, n, stride, groups", [((3, 2, 4), 12, 2, 1), ((4, 1, 4), 12, 2, 2),
                                                      ((3, 2, 2, 4), (4, 8), (2, 2), 1)])
def test_transposed_conv_has_its_adjoints_values(shape, n, stride, groups):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    tmat = conv_transpose_matrix(w, n, stride, groups=groups)
    ours = _sorted(conv_singular_values(w, n, stride, groups=groups, transposed=True))
    np.testing.assert_allclose(ours, _explicit(tmat), rtol=1e-10, atol=1e-10)
    # the transposed conv is the adjoint of the conv with the same weight: same matrix, transposed
    if groups == 1:
        np.testing.assert_allclose(tmat.numpy(), conv_matrix(w, n, stride).numpy().T, atol=1e-12)


def test_explicit_matrix_is_the_circular_conv():
    w = torch.randn(3, 2, 4, dtype=torch.float64)
    x = torch.randn(1, 2, 12, dtype=torch.float64)
    y = F.conv1d(F.pad(x, (0, 3), mode="circular"), w, stride=2)
    np.testing.assert_allclose((conv_matrix(w, 12, 2) @ x.reshape(-1)).numpy(), y.reshape(-1).numpy(), atol=1e-12)


def test_layer_spectra_of_a_module():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(2, 3, 4, stride=2), nn.ReLU(), nn.ConvTranspose1d(3, 2, 4, stride=2),
                        nn.Conv2d(1, 2, 3))
    summ, vals = layer_spectra(net, n_freq=6, n_freq_2d=4)
    assert list(summ["layer"]) == ["0", "2", "3"]
    assert list(summ["kind"]) == ["conv", "transposed", "conv"]
    ref = _explicit(conv_matrix(net[0].weight, 12, 2))
    row = summ.iloc[0]
    assert row["spectral_norm"] == pytest.approx(ref[0]) and row["sigma_min"] == pytest.approx(ref[-1])
    assert row["stable_rank"] == pytest.approx((ref ** 2).sum() / ref[0] ** 2)
    assert row["condition_number"] == pytest.approx(ref[0] / ref[-1])
    assert row["n_singular"] == ref.size
    tref = _explicit(conv_transpose_matrix(net[2].weight, 12, 2))
    assert summ.iloc[1]["spectral_norm"] == pytest.approx(tref[0])
    q = vals[vals["layer"] == "0"]
    assert q["sigma"].iloc[0] == pytest.approx(ref[0]) and q["sigma"].iloc[-1] == pytest.approx(ref[-1])
    assert q["sigma"].is_monotonic_decreasing


def test_orthogonal_haar_analysis_bank_has_unit_singular_values():
    # the two-channel Haar filter bank at stride 2 is an orthogonal operator: every singular value is 1
    h = np.sqrt(0.5)
    w = torch.tensor([[[h, h]], [[h, -h]]], dtype=torch.float64)
    np.testing.assert_allclose(conv_singular_values(w, 32, 2).numpy(), 1.0, atol=1e-12)


@pytest.mark.parametrize("shape, n, stride, dilation, groups", CASES)
def test_gram_method_equals_the_svd(shape, n, stride, dilation, groups):
    # the Gram route (per frequency, or through the lag matrices of a 1-D symbol) against LAPACK's SVD
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref = conv_singular_values(w, n, stride, dilation, groups, method="svd")
    got = conv_singular_values(w, n, stride, dilation, groups, method="gram")
    assert got.shape == ref.shape
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-7 * float(ref.max()))


def test_wide_strided_layer_by_the_gram_route_matches_the_explicit_operator():
    # a layer past the "auto" switch (more than 64 rows): Gram eigenvalues, every frequency but the conjugates
    w = torch.randn(72, 40, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    got = _sorted(conv_singular_values(w, 16, 4))
    np.testing.assert_allclose(got, _explicit(conv_matrix(w, 16, 4)), atol=1e-8 * got[0])
    with pytest.raises(Exception, match="unknown method"):
        conv_singular_values(w, 16, 4, method="qr")
