"""Reconstruction fidelity against models whose reconstruction is known by construction."""

import numpy as np
import pytest
import torch
from torch import nn

from ontoscope.models.fidelity import reconstruct, reconstruction_fidelity
from ontoscope.models.wrap import wrap
from ontoscope.stimuli.dataset import StimulusSet
from ontoscope.stimuli.factors import FactorSpace

SR = 16000


def _gain_model(gain: float, output: str = "audio"):
    conv = nn.Conv1d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(gain)
    net = nn.Sequential(nn.Unflatten(1, (1, -1)), conv, nn.Flatten(1))
    return wrap(net, sites={"gain": "1"}, sample_rate=SR, output=output)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    space = FactorSpace.create(["f0", "loudness", "brightness"])
    ds = StimulusSet.synthesize(tmp_path_factory.mktemp("fid") / "set", space, 12, SR, 1.0, seed=3, progress=False)
    return ds.audio()


def _row(table, factor):
    return table.set_index("factor").loc[factor]


def test_an_identity_model_keeps_every_factor(clips):
    t = reconstruction_fidelity(_gain_model(1.0), clips, SR)
    assert _row(t, "f0")["median"] < 0.01
    assert _row(t, "loudness")["median"] < 1e-4
    assert _row(t, "brightness")["median"] < 1e-3
    assert abs(t["loudness_bias_db"].iloc[0]) < 1e-4


def test_halving_the_output_costs_six_decibels_and_no_cents(clips):
    t = reconstruction_fidelity(_gain_model(0.5), clips, SR)
    assert t["loudness_bias_db"].iloc[0] == pytest.approx(20 * np.log10(0.5), abs=0.02)
    assert _row(t, "loudness")["median"] == pytest.approx(6.02, abs=0.02)
    assert _row(t, "f0")["median"] < 0.01


def test_a_model_without_audio_has_no_fidelity(clips):
    model = _gain_model(1.0, output="embedding")
    assert reconstruct(model, clips) is None
    assert reconstruction_fidelity(model, clips, SR).empty


def test_the_fidelity_gate_names_every_missed_threshold():
    import pandas as pd

    from ontoscope.models.fidelity import fidelity_gate

    table = pd.DataFrame({"factor": ["f0 (vibrato < 20 cents)", "f0", "loudness", "brightness"],
                          "median": [500.0, 39.0, 2.1, 9.0]})
    assert fidelity_gate(table) == (False, "f0 39 cents > 25; loudness 2.1 dB > 1.5")
    assert fidelity_gate(table, f0_cents=40, loudness_db=3) == (True, "")
    assert fidelity_gate(table, f0_cents=40) == (False, "loudness 2.1 dB > 1.5")
    assert fidelity_gate(table.iloc[:1]) == (True, "")  # no f0 or loudness score: nothing held against it
    assert fidelity_gate(pd.DataFrame()) == (True, "")
