"""What each control cell must be, by construction."""

import numpy as np
import pandas as pd
import pytest

from ontoscope.errors import ConfigError
from ontoscope.models.controls import ControllerModel
from ontoscope.probing.controls import MIN_FIT_R2, control_reads, control_truth, omitted_factor, unmark_unread
from ontoscope.probing.icv import ICVThresholds
from ontoscope.stimuli import FactorSpace
from ontoscope.stimuli.dataset import StimulusSet


def test_a_supervised_control_is_positive_only_where_its_head_learnt_to_read():
    read = {"f0": 0.95, "loudness": MIN_FIT_R2 - 0.01}
    assert control_truth("supervised", "f0", "additive", "pattern", read=read) is True
    assert control_truth("supervised", "f0", "das", "rank2", read=read) is True
    assert control_truth("supervised", "loudness", "interchange", "rank1", read=read) is None  # training fell short
    assert control_truth("supervised", "brightness", "additive", "pattern", read=read) is False  # never read
    assert control_truth("supervised", "f0", "additive", "random", read=read) is False
    assert control_truth("supervised", "f0", "gain", "site", read=read) is False


def test_the_controller_omits_a_static_factor_other_than_pitch_and_level():
    assert omitted_factor(FactorSpace.create(["f0", "loudness", "brightness", "vibrato_depth"])) == "brightness"
    assert omitted_factor(FactorSpace.create(["f0", "loudness", "vibrato_depth"])) == "vibrato_depth"
    assert omitted_factor(FactorSpace.create(["f0"])) is None
    assert control_truth("controller", "brightness", "additive", "pattern", omitted="brightness") is False
    assert control_truth("controller", "f0", "das", "rank1", omitted="brightness") is True
    with pytest.raises(ConfigError, match="unknown control 'mirror'"):
        control_truth("mirror", "f0", "additive", "pattern")


def test_a_controller_is_positive_only_where_it_reads_the_factor_off_these_stimuli():
    read = {"f0": 0.99, "tremolo_rate": MIN_FIT_R2 - 0.2}
    assert control_truth("controller", "f0", "das", "rank1", omitted="brightness", read=read) is True
    assert control_truth("controller", "tremolo_rate", "additive", "pattern", omitted="brightness", read=read) is None
    assert control_truth("controller", "brightness", "additive", "pattern", omitted="brightness", read=read) is False
    assert control_truth("controller", "tremolo_rate", "gain", "site", omitted="brightness", read=read) is False
    assert control_truth("controller", "f0", "additive", "random", read=read) is False


def test_control_reads_are_the_round_trip_and_fall_where_the_labels_do_not_describe_the_audio(tmp_path):
    space = FactorSpace.create(["f0", "loudness", "brightness"])
    ds = StimulusSet.synthesize(tmp_path / "s", space, 48, seconds=0.5, seed=3)
    model = ControllerModel(space, omit=["brightness"], steps=600, seed=0)
    got = control_reads(model, ds)
    assert set(got) == {"f0", "loudness"} and min(got.values()) > 0.98
    # labels that no longer describe the audio (f0 shuffled across clips): the control still carries the audio's
    # f0, so it does not carry the labelled one, and its cells would be left unmarked
    ds.factors["f0"] = ds.factors["f0"].to_numpy()[np.random.default_rng(0).permutation(len(ds))]
    bad = control_reads(model, ds)
    assert bad["f0"] < MIN_FIT_R2 and bad["loudness"] == pytest.approx(got["loudness"])


def test_a_waveform_positive_the_probes_cannot_read_is_left_unmarked():
    rows = pd.DataFrame({"family": ["modulation", "modulation", "modulation", "time_warp", "time_warp"],
                         "decodability": [0.35, 0.90, 0.10, 0.10, 0.99],
                         "expected": [True, True, False, True, True]})
    got = unmark_unread(rows, ICVThresholds()).tolist()
    # an unread positive is unmarked, whatever the family; a read one stays positive; a negative stays negative
    assert got[0] is None and got[3] is None and [got[1], got[2], got[4]] == [True, False, True]
