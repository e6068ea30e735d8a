"""Vibrato retention (pitch-benchmark's vibrato readout): known depths, edges, voicing, the stimulus."""

import math

import numpy as np
import pytest
import torch

from ontoscope.descriptors.pitch import f0_track
from ontoscope.descriptors.vibrato_retention import (
    BENCHMARK_DEPTHS,
    BENCHMARK_FRAME_RATE,
    BENCHMARK_SR,
    vibrato_f0,
    vibrato_readout,
    vibrato_retention,
    vibrato_tone,
)
from ontoscope.errors import AudioError, ConfigError

FR = BENCHMARK_FRAME_RATE  # 62.5 frames/s
T = 125  # frames of a 2 s clip on the benchmark's grid


def _curve(depth, frames=T, frame_rate=FR, t0=0.0, cents_offset=0.0):
    t = t0 + np.arange(frames) / frame_rate
    return vibrato_f0(t, depth_semitones=depth) * 2 ** (cents_offset / 1200)


@pytest.mark.parametrize("depth", BENCHMARK_DEPTHS)
@pytest.mark.parametrize("frame_rate", [FR, 100.0, 200.0])
def test_exact_curve_retains_everything(depth, frame_rate):
    f0 = _curve(depth, frames=int(2 * frame_rate), frame_rate=frame_rate)
    r = vibrato_readout(f0, frame_rate=frame_rate, rate_hz=6.0, depth_semitones=depth)
    assert r.depth_ratio == pytest.approx(1.0, abs=1e-9)
    assert r.depth_cents == pytest.approx(100 * depth, abs=1e-7)
    assert r.voiced_fraction == 1.0 and r.score == pytest.approx(1.0)
    assert vibrato_retention(f0, frame_rate=frame_rate, rate_hz=6.0, depth_semitones=depth) == r.depth_ratio


@pytest.mark.parametrize("depth", BENCHMARK_DEPTHS)
def test_half_depth_gives_half(depth):
    f0 = _curve(depth / 2)
    assert vibrato_retention(f0, frame_rate=FR, rate_hz=6.0, depth_semitones=depth) == pytest.approx(0.5, abs=1e-9)


def test_flat_curve_gives_zero(rng):
    flat = np.full(T, 220.0)
    assert vibrato_retention(flat, frame_rate=FR, rate_hz=6.0, depth_semitones=1.0) == pytest.approx(0.0, abs=1e-9)
    # a flat curve with 3 cents of frame noise still keeps almost nothing of a 100-cent vibrato
    noisy = 220.0 * 2 ** (rng.normal(0, 3, T) / 1200)
    assert vibrato_retention(noisy, frame_rate=FR, rate_hz=6.0, depth_semitones=1.0) < 0.02


def test_depth_is_peak_deviation_not_peak_to_peak():
    # ±1 semitone read as a 2-semitone depth keeps half; read as 0.5 semitone, twice
    f0 = _curve(1.0)
    assert vibrato_retention(f0, frame_rate=FR, rate_hz=6.0, depth_semitones=2.0) == pytest.approx(0.5)
    assert vibrato_retention(f0, frame_rate=FR, rate_hz=6.0, depth_semitones=0.5) == pytest.approx(2.0)


def test_blind_to_delay_phase_and_tuning_bias():
    for f0 in (_curve(1.0, t0=0.037), _curve(1.0, cents_offset=-35.0), np.roll(_curve(1.0), 3)):
        assert vibrato_retention(f0, frame_rate=FR, rate_hz=6.0, depth_semitones=1.0) == pytest.approx(1.0, abs=1e-6)
    r = vibrato_readout(_curve(1.0), frame_rate=FR, rate_hz=6.0, depth_semitones=1.0, t0=0.1)
    assert r.depth_ratio == pytest.approx(1.0)


def test_other_rates_are_not_counted():
    t = np.arange(T) / FR
    f0 = 220.0 * 2 ** (np.sin(2 * np.pi * 3.0 * t) / 12)  # a 3 Hz vibrato, 2 s = 6 whole periods
    assert vibrato_retention(f0, frame_rate=FR, rate_hz=6.0, depth_semitones=1.0) < 0.05


def test_edges_are_dropped_eight_frames_at_62_5_fps():
    f0 = _curve(1.0)
    bad = f0.copy()
    bad[:8] *= 2.0  # octave errors in the first and last 128 ms are ignored ...
    bad[-8:] = 0.0
    assert vibrato_retention(bad, frame_rate=FR, rate_hz=6.0, depth_semitones=1.0) == pytest.approx(1.0, abs=1e-9)
    r = vibrato_readout(bad, frame_rate=FR, rate_hz=6.0, depth_semitones=1.0)
    assert r.frames == T - 16 and r.voiced_fraction == 1.0
    bad[8] *= 2.0  # ... the ninth frame is not
    assert vibrato_retention(bad, frame_rate=FR, rate_hz=6.0, depth_semitones=1.0) != pytest.approx(1.0, abs=1e-3)


def test_edge_is_in_seconds_at_other_frame_rates():
    f0 = _curve(1.0, frames=200, frame_rate=100.0)
    r = vibrato_readout(f0, frame_rate=100.0, rate_hz=6.0, depth_semitones=1.0)
    assert r.frames == 200 - 2 * round(0.128 * 100)
    r0 = vibrato_readout(f0, frame_rate=100.0, rate_hz=6.0, depth_semitones=1.0, edge_seconds=0.0)
    assert r0.frames == 200 and r0.depth_ratio == pytest.approx(1.0)
    # a clip no longer than its two edges has no interior
    short = vibrato_readout(f0[:16], frame_rate=FR, rate_hz=6.0, depth_semitones=1.0, min_seconds=0.0)
    assert math.isnan(short.depth_ratio) and short.voiced_fraction == 0.0 and short.score == 0.0


def test_unvoiced_frames_are_left_out_and_counted():
    f0 = _curve(1.0)
    f0[20:40] = np.nan
    f0[50:55] = 0.0
    voiced = np.ones(T, bool)
    voiced[60:70] = False
    f0[60:70] = 440.0  # an f0 the tracker itself calls unvoiced is not used
    r = vibrato_readout(f0, frame_rate=FR, rate_hz=6.0, depth_semitones=1.0, voiced=voiced)
    assert r.depth_ratio == pytest.approx(1.0, abs=1e-9)
    assert r.frames == 109 - 35
    assert r.voiced_fraction == pytest.approx(74 / 109)
    assert r.score == pytest.approx(74 / 109)


def test_too_few_voiced_frames_is_nan_and_scores_zero():
    f0 = np.full(T, np.nan)
    f0[30:60] = _curve(1.0)[30:60]  # exactly 30 voiced interior frames: defined
    r = vibrato_readout(f0, frame_rate=FR, rate_hz=6.0, depth_semitones=1.0)
    assert r.frames == 30 and r.depth_ratio == pytest.approx(1.0)
    f0[30] = np.nan  # 29: undefined
    r = vibrato_readout(f0, frame_rate=FR, rate_hz=6.0, depth_semitones=1.0)
    assert math.isnan(r.depth_ratio) and math.isnan(r.depth_cents) and r.score == 0.0
    assert r.voiced_fraction == pytest.approx(29 / 109)


def test_exaggeration_is_reported_but_clipped_in_the_score():
    r = vibrato_readout(_curve(1.5), frame_rate=FR, rate_hz=6.0, depth_semitones=1.0)
    assert r.depth_ratio == pytest.approx(1.5) and r.score == pytest.approx(1.0)


def test_tensor_and_row_input():
    f0 = _curve(2.0)
    want = vibrato_retention(f0, frame_rate=FR, rate_hz=6.0, depth_semitones=2.0)
    for x in (torch.from_numpy(f0).float(), f0[None]):
        assert vibrato_retention(x, frame_rate=FR, rate_hz=6.0, depth_semitones=2.0) == pytest.approx(want, abs=1e-6)
    v = torch.ones(T, dtype=torch.bool)
    assert vibrato_retention(f0, frame_rate=FR, rate_hz=6.0, depth_semitones=2.0, voiced=v) == pytest.approx(want)


def test_bad_arguments():
    f0 = _curve(1.0)
    with pytest.raises(AudioError):
        vibrato_retention(np.stack([f0, f0]), frame_rate=FR, rate_hz=6.0, depth_semitones=1.0)
    with pytest.raises(AudioError):
        vibrato_retention(f0, frame_rate=FR, rate_hz=6.0, depth_semitones=1.0, voiced=np.ones(T - 1, bool))
    for kw in ({"frame_rate": 0.0}, {"rate_hz": -6.0}, {"depth_semitones": 0.0}):
        args = {"frame_rate": FR, "rate_hz": 6.0, "depth_semitones": 1.0, **kw}
        with pytest.raises(ConfigError):
            vibrato_retention(f0, **args)
    with pytest.raises(ConfigError):
        vibrato_tone(-1.0)


def test_tone_matches_the_benchmark_stimulus():
    x = vibrato_tone(1.0)
    assert x.dtype == np.float32 and x.shape == (2 * BENCHMARK_SR,)
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(0.1, rel=1e-6)
    assert x[0] == 0.0 and abs(x[-1]) < 1e-3  # raised-cosine fades
    # steady tone: partials k = 1..35 (35 * 220 = 7700 Hz < 7900), none at 36 * 220 = 7920 Hz; amplitude 1/k
    s = np.abs(np.fft.rfft(vibrato_tone(0.0).astype(np.float64)))
    f = np.fft.rfftfreq(2 * BENCHMARK_SR, 1 / BENCHMARK_SR)
    level = {k: s[np.argmin(np.abs(f - 220.0 * k))] for k in (1, 2, 35, 36)}
    assert level[2] / level[1] == pytest.approx(0.5, rel=0.01)
    assert level[35] / level[1] == pytest.approx(1 / 35, rel=0.02)
    assert level[36] < 1e-3 * level[35]


def test_yin_keeps_the_vibrato_of_the_tone():
    x = np.stack([vibrato_tone(d) for d in BENCHMARK_DEPTHS])
    track = f0_track(x, BENCHMARK_SR)
    f0, times = track.value, track.times
    rate = 1.0 / float(times[1] - times[0])
    for i, d in enumerate(BENCHMARK_DEPTHS):
        r = vibrato_readout(f0[i], frame_rate=rate, rate_hz=6.0, depth_semitones=d)
        assert r.voiced_fraction == 1.0 and r.depth_ratio == pytest.approx(1.0, abs=0.03)
