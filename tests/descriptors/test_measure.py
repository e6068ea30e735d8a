"""measure(): the whole descriptor set, round-tripped through the synthesizer, with reasons for what is undefined."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from ontoscope.descriptors import FACTOR_COLUMNS, SPECTRAL_COLUMNS, measure
from ontoscope.descriptors.accuracy import CRITERIA, Criterion, round_trip_errors
from ontoscope.descriptors.estimate import Estimate
from ontoscope.descriptors.pitch import f0_track
from ontoscope.errors import AudioError, ConfigError, OntoscopeError, SampleRateError
from ontoscope.models.adapters.pesto import pesto_f0_track
from ontoscope.stimuli import FactorSpace, render

SR = 16000


@pytest.fixture(scope="module")
def round_trip():
    table = FactorSpace.create().sample(96, seed=11)
    audio = render(table, sr=SR, seconds=1.0)
    measured = measure(audio, SR)
    measured.insert(0, "clip", table["clip"].to_numpy())
    return table, measured


def test_columns_and_one_row_per_clip(round_trip):
    table, measured = round_trip
    assert len(measured) == len(table)
    assert list(measured.columns) == ["clip", *FACTOR_COLUMNS, *SPECTRAL_COLUMNS, "voiced", "reason"]
    assert measured["voiced"].median() > 0.95 and measured["voiced"].min() > 0.25  # noisy clips: fewer


def test_round_trip_meets_every_accuracy_target(round_trip):
    """The issue's targets on random canon stimuli (every factor but inharmonicity varied at once)."""
    table, measured = round_trip
    acc = round_trip_errors(table, measured).set_index("factor")
    scored = acc[acc["met"] != ""]
    assert len(scored) >= 10
    assert (scored["met"] == "yes").all(), acc.to_string()
    assert (acc.loc[acc["n"] > 0, "defined"] > 0.95).all(), acc.to_string()
    assert acc.loc["f0", "p95"] <= 20.0


def test_inharmonicity_round_trip():
    space = FactorSpace.create(["f0", "loudness", "brightness", "inharmonicity", "noise"])
    table = space.sample(24, seed=2)
    measured = measure(render(table, sr=SR, seconds=1.0), SR)
    rel = np.abs(measured["inharmonicity"] - table["inharmonicity"]) / table["inharmonicity"]
    assert np.nanmedian(rel) < 0.05
    assert np.isfinite(rel).mean() > 0.9


def test_round_trip_errors_flags_a_missed_target():
    truth = pd.DataFrame({"clip": [0, 1, 2], "loudness": [-20.0, -20.0, -20.0]})
    off = truth.assign(loudness=[-19.0, -19.0, -19.0])
    acc = round_trip_errors(truth, off, (Criterion("loudness", "abs", "dB", 0.5),))
    assert acc.loc[0, "median"] == pytest.approx(1.0) and acc.loc[0, "met"] == "no"
    acc = round_trip_errors(truth, truth, CRITERIA)
    assert acc.loc[acc["factor"] == "loudness", "met"].item() == "yes"


def test_undefined_values_are_nan_with_a_reason():
    t = np.arange(SR) / SR
    steady = 0.1 * np.sin(2 * np.pi * 220 * t)
    noise = 0.1 * np.random.default_rng(0).standard_normal(SR)
    silence = np.zeros(SR)
    m = measure(np.stack([steady, noise, silence]).astype(np.float32), SR)
    # a steady tone: pitch defined, no vibrato / tremolo / beating
    assert m.loc[0, "f0"] == pytest.approx(220.0, rel=1e-3)
    assert np.isnan(m.loc[0, "vibrato_rate"]) and "vibrato_rate:" in m.loc[0, "reason"]
    assert np.isnan(m.loc[0, "tremolo_rate"]) and "tremolo_rate:" in m.loc[0, "reason"]
    # white noise: no pitch
    assert np.isnan(m.loc[1, "f0"]) and "f0: unvoiced" in m.loc[1, "reason"]
    assert np.isfinite(m.loc[1, "loudness"])
    # silence: nothing is made up
    assert np.isnan(m.loc[2, ["f0", "loudness", "brightness"]].astype(float)).all()
    assert "loudness:" in m.loc[2, "reason"]
    for i in range(3):  # every NaN factor has its reason
        row = m.iloc[i]
        for col in (*FACTOR_COLUMNS, *SPECTRAL_COLUMNS):
            assert np.isfinite(row[col]) or f"{col}:" in row["reason"], (i, col, row["reason"])


def test_same_input_same_result_and_chunks_change_little(round_trip):
    """Deterministic; chunking moves f0 by under 2 cents (the f0 track pads the frames of similar clips together,
    so the FFT sizes depend on a chunk's clips)."""
    table, measured = round_trip
    audio = render(table.iloc[:10], sr=SR, seconds=1.0)
    whole = measure(audio, SR)
    pd.testing.assert_frame_equal(measure(audio, SR), whole)
    m = measure(audio, SR, chunk=3)
    assert (1200 * np.abs(np.log2(m["f0"] / whole["f0"]))).max() < 2.0
    np.testing.assert_allclose(m["loudness"], whole["loudness"], atol=1e-4)
    np.testing.assert_allclose(m["centroid"], whole["centroid"], rtol=1e-4)


def test_a_tracker_returns_an_estimate_or_a_triple():
    """An f0 tracker may return the Estimate f0_track does, or (f0, confidence, times): the same table."""
    table = FactorSpace.create(["f0", "loudness", "vibrato_rate", "vibrato_depth"]).sample(3, seed=1)
    audio = render(table, sr=SR, seconds=1.0)

    def as_triple(x, sr):
        track = f0_track(x, sr)
        return track.value, track.confidence, track.times

    yin = measure(audio, SR)
    pd.testing.assert_frame_equal(measure(audio, SR, f0_method=f0_track), yin)
    pd.testing.assert_frame_equal(measure(audio, SR, f0_method=as_triple), yin)

    def no_times(x, sr):
        return dataclasses.replace(f0_track(x, sr), times=None)

    with pytest.raises(ConfigError, match="frame times"):
        measure(audio, SR, f0_method=no_times)


def test_the_estimate_type():
    e = Estimate(torch.tensor([1.0, float("nan")]), "Hz", ["", "unvoiced"])
    assert e.reason == ("", "unvoiced") and len(e) == 2
    assert e.to(torch.float64).value.dtype == torch.float64 and e.to(torch.float64).reason == e.reason
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.unit = "cents"
    with pytest.raises(ValueError, match="reasons"):
        Estimate(torch.zeros(3), "Hz", ("",) * 2)
    with pytest.raises(TypeError):
        Estimate(torch.zeros(1), "Hz", (None,))


@pytest.mark.slow
def test_pesto_is_a_second_f0_method():
    table = FactorSpace.create(["f0", "loudness"]).sample(6, seed=4)
    m = measure(render(table, sr=SR, seconds=0.5), SR, f0_method=pesto_f0_track)
    cents = 1200 * np.abs(np.log2(m["f0"] / table["f0"]))
    assert np.nanmedian(cents) < 20.0 and np.isfinite(cents).all()


@pytest.mark.parametrize(
    ("audio", "kwargs", "error", "text"),
    [
        (np.full((2, SR), np.nan, dtype=np.float32), {}, AudioError, "NaN or infinite"),
        (np.zeros((0, SR), dtype=np.float32), {}, AudioError, "empty"),
        (np.zeros((2, 2, SR), dtype=np.float32), {}, AudioError, "shape"),
        (np.zeros(100, dtype=np.float32), {}, AudioError, "too short"),
        (np.zeros(SR, dtype=np.float32), {"fmax": 9000.0}, SampleRateError, "Nyquist"),
        (np.zeros(SR, dtype=np.float32), {"f0_method": "crepe"}, ConfigError, "unknown f0 method"),
    ],
)
def test_bad_input_is_a_clear_error(audio, kwargs, error, text):
    with pytest.raises(error, match=text) as e:
        measure(audio, SR, **kwargs)
    assert isinstance(e.value, OntoscopeError) and "\n" not in str(e.value)


def test_torch_and_numpy_input_agree():
    table = FactorSpace.create(["f0", "loudness"]).sample(3, seed=0)
    audio = render(table, sr=SR, seconds=0.5)
    a = measure(audio, SR)
    b = measure(audio.numpy().astype(np.float64), SR)
    pd.testing.assert_frame_equal(a, b)


def test_quantised_pure_tones_in_a_batch_keep_their_pitch():
    """16-bit rounding of a sine leaves spurs 80-90 dB down; they must not pull the harmonic correction."""
    sr = 8000
    t = np.arange(sr) / sr
    x = np.stack([np.sin(2 * np.pi * f * t) for f in (220.0, 330.0)]) * 0.1
    x = (np.round(x * 32767) / 32767).astype(np.float32)
    m = measure(x, sr)
    np.testing.assert_allclose(m["f0"], [220.0, 330.0], rtol=1e-4)
