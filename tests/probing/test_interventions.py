"""The intervention layer: each family's edit checked against what it must do to a known signal."""

import numpy as np
import pytest
import torch

from ontoscope.descriptors import measure
from ontoscope.errors import ConfigError
from ontoscope.models.controls import WaveformControl
from ontoscope.probing.interventions import (
    Additive,
    Gain,
    Interchange,
    Modulation,
    PlaceAxis,
    PlaceShift,
    TimeWarp,
    ratio,
    run_interventions,
)
from ontoscope.stimuli import FactorSpace, render

SR = 16000


@pytest.fixture(scope="module")
def tones():
    """Four synthesized tones with vibrato, as a [B, 1, N] waveform site."""
    space = FactorSpace.create(["f0", "loudness", "vibrato_rate", "vibrato_depth"])
    table = space.sample(4, seed=0)
    return table, render(table, sr=SR, seconds=1.0)[:, None]


def test_ratio_is_log_symmetric():
    for m in (0.05, 0.5, 3.0):
        assert ratio(m) * ratio(-m) == pytest.approx(1.0) and ratio(m) == 1 + m
    assert ratio(0.0) == 1.0


@pytest.mark.slow
def test_gain_scales_the_level_exactly_and_leaves_pitch(tones):
    table, x = tones
    before = measure(x[:, 0], SR)
    after = measure(Gain(1.0)(x)[:, 0], SR)  # ratio 2: +6.02 dB
    np.testing.assert_allclose(after["loudness"] - before["loudness"], 20 * np.log10(2), atol=0.02)
    np.testing.assert_allclose(after["f0"], before["f0"], rtol=1e-3)
    # only the span of the basis is scaled: a zero-width one (a direction orthogonal to the single channel)
    np.testing.assert_allclose(Gain(1.0, basis=np.zeros((1, 1)))(x), x)


@pytest.mark.slow
def test_time_warp_scales_pitch_and_rates_by_the_ratio_and_keeps_the_level(tones):
    _, x = tones
    before = measure(x[:, 0], SR)
    for m in (0.06, -0.06, 0.25):
        after = measure(TimeWarp(m)(x)[:, 0], SR)
        np.testing.assert_allclose(after["f0"] / before["f0"], ratio(m), rtol=0.005)
        rates = (after["vibrato_rate"] / before["vibrato_rate"]).dropna()  # NaN where a depth is too small to read
        assert len(rates) >= 2
        np.testing.assert_allclose(rates, ratio(m), rtol=0.03)
        np.testing.assert_allclose(after["loudness"], before["loudness"], atol=0.2)


@pytest.mark.parametrize("frames", [99, 100, 1000, 16000])
def test_a_time_warp_of_dose_zero_reads_every_frame_where_it_is(frames):
    # an even number of frames puts the clip's middle between two frames: a warp centred on a frame there
    # read everything half a frame off, a low-pass that took 98 % of a waveform site's content above 6 kHz
    a = torch.randn(2, 3, frames, generator=torch.Generator().manual_seed(frames))
    np.testing.assert_allclose(TimeWarp(0.0)(a), a, atol=5e-3 if frames > 1000 else 1e-4)


@pytest.mark.parametrize("relative", [0.1, 0.25, 0.4])
def test_a_time_warp_keeps_the_level_of_fast_components(relative):
    # a sinusoid at a fraction of the frame rate, warped by 3 %: its frequency scales by the ratio and its
    # amplitude stays (band-limited interpolation; the cubic kernel used before kept 0.79 of it at 0.4)
    frames = 4000
    t = torch.arange(frames, dtype=torch.float64)
    a = torch.sin(2 * torch.pi * relative * t)[None, None]
    y = TimeWarp(0.03)(a)[0, 0, 200:-200]  # away from the reflected ends
    spec = torch.fft.rfft(y * torch.hann_window(y.shape[0], dtype=torch.float64))
    peak = int(spec.abs().argmax())
    assert peak / y.shape[0] == pytest.approx(relative * 1.03, abs=2 / y.shape[0])
    assert float(y.pow(2).mean().sqrt()) == pytest.approx(np.sqrt(0.5), rel=0.01)


@pytest.mark.slow
def test_modulations_impose_tremolo_and_vibrato_at_their_rate():
    t = torch.arange(SR) / SR
    x = (0.1 * torch.sin(2 * np.pi * 220 * t) + 0.05 * torch.sin(2 * np.pi * 440 * t))[None, None]
    trem = measure(Modulation("gain", 0.5, 5.0, SR)(x)[:, 0], SR).iloc[0]
    # the gain swings between 1.5^-1 and 1.5: a modulation index of about (1.5 - 1/1.5) / (1.5 + 1/1.5) = 0.38
    assert trem["tremolo_rate"] == pytest.approx(5.0, abs=0.1) and 0.33 < trem["tremolo_depth"] < 0.45
    vib = measure(Modulation("time_warp", 0.03, 5.0, SR)(x)[:, 0], SR).iloc[0]
    # the instantaneous ratio swings by 1.03^±1: ±51 cents
    assert vib["vibrato_rate"] == pytest.approx(5.0, abs=0.1) and vib["vibrato_depth"] == pytest.approx(51.2, rel=0.1)
    with pytest.raises(ConfigError, match="Nyquist"):
        Modulation("gain", 0.5, 30.0, 50.0)(torch.ones(1, 1, 50))
    with pytest.raises(ConfigError, match="unknown modulation"):
        Modulation("interchange", 0.5, 5.0, 100.0)


def test_place_shift_rolls_the_ordered_slice_and_fills_with_its_minimum():
    a = torch.arange(12, dtype=torch.float32).reshape(1, 12, 1) + 1
    axis = PlaceAxis("channels", 2, 10)
    up = PlaceShift(3, axis)(a)[0, :, 0].tolist()
    assert up == [1, 2, 3, 3, 3, 3, 4, 5, 6, 7, 11, 12]
    down = PlaceShift(-2, axis)(a)[0, :, 0].tolist()
    assert down == [1, 2, 5, 6, 7, 8, 9, 10, 3, 3, 11, 12]
    with pytest.raises(ConfigError, match="freq"):
        PlaceShift(1, PlaceAxis("freq", 0, 4))(a)


def test_interchange_over_a_full_basis_is_the_source_and_over_none_is_the_base():
    gen = torch.Generator().manual_seed(0)
    base, source = torch.randn(2, 4, 5, generator=gen), torch.randn(2, 4, 5, generator=gen)
    torch.testing.assert_close(Interchange(np.eye(4))(base, source), source)
    e0 = np.eye(4)[:, :1]
    out = Interchange(e0)(base, source)
    torch.testing.assert_close(out[:, 0], source[:, 0])
    torch.testing.assert_close(out[:, 1:], base[:, 1:])
    with pytest.raises(ConfigError, match="source"):
        Interchange(e0)(base)


@pytest.mark.slow
def test_run_interventions_batches_equal_one_at_a_time(tones):
    _, x = tones
    model = WaveformControl(sample_rate=SR, level_db=-20.0)
    acts = model.encode(x[:, 0], "encoder.waveform")
    ivs = [Gain(0.5), TimeWarp(0.1), Additive(np.ones(1), 0.01), Gain(-0.3)]
    batched = run_interventions(model, acts, "encoder.waveform", ivs, max_rows=8)
    assert batched.shape == (4, 4, SR)
    for k, iv in enumerate(ivs):
        torch.testing.assert_close(batched[k], model.resume(iv(acts), "encoder.waveform"))
    with pytest.raises(ConfigError, match="no interventions"):
        run_interventions(model, acts, "encoder.waveform", [])
    with pytest.raises(ConfigError, match="channels"):
        Additive(np.ones(3), 1.0)(acts)
