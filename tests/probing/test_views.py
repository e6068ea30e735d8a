"""The timing view on trajectories whose peak, spread and envelope are known."""

import math

import numpy as np
import torch

from ontoscope.probing.views import timing_view

FR = 16000.0


def _t() -> torch.Tensor:
    return torch.arange(int(FR), dtype=torch.float64) / FR


def test_a_tone_peaks_at_its_frequency_and_an_am_tone_has_its_envelope_index():
    t = _t()
    tone = torch.sin(2 * math.pi * 220.5 * t)
    am = torch.sin(2 * math.pi * 440 * t) * (1 + 0.5 * torch.sin(2 * math.pi * 5 * t))
    fm = torch.sin(2 * math.pi * (300 * t + 30 / (2 * math.pi * 6) * torch.sin(2 * math.pi * 6 * t)))
    acts = torch.stack([tone, am, fm, torch.zeros_like(t)])[None]  # [1, 4, T]
    v = timing_view(acts, FR)[0].double()
    peaks, spreads, index = v[:4], v[4:8], v[8:]
    # the peak to a tenth of a bin (1 Hz bins), as log2 of Hz
    assert abs(2 ** peaks[0].item() - 220.5) < 0.1 and abs(2 ** peaks[1].item() - 440) < 0.1
    # an FM of ±30 Hz about 300 Hz spreads its power over about ±170 cents; a steady tone over a bin or two
    assert 2 ** spreads[2].item() - 1 > 50 and 2 ** spreads[0].item() - 1 < 10
    # the RMS in 20 ms windows of (1 + 0.5 sin) has std/mean 0.5/√2 (to the window's smoothing of a 5 Hz rate)
    np.testing.assert_allclose(index[1].item(), 0.5 / math.sqrt(2), rtol=0.05)
    assert index[0].item() < 0.01
    assert (v[[3, 7, 11]] == 0).all()  # a silent channel: zeros, not NaNs


def test_short_or_frameless_trajectories_give_no_features():
    assert timing_view(torch.randn(2, 3, 7), 100.0).shape == (2, 0)
    assert timing_view(torch.randn(2, 3, 64), 0.0).shape == (2, 0)
    assert timing_view(torch.randn(2, 3, 64), 100.0).shape == (2, 9)
