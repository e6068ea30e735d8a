"""What each control cell must be, by construction."""

import pandas as pd
import pytest

from ontoscope.errors import ConfigError
from ontoscope.probing.controls import MIN_FIT_R2, control_truth, omitted_factor, unmark_unread
from ontoscope.probing.icv import ICVThresholds
from ontoscope.stimuli import FactorSpace


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


def test_a_waveform_modulation_positive_the_probes_cannot_read_is_left_unmarked():
    rows = pd.DataFrame({"family": ["modulation", "modulation", "modulation", "time_warp"],
                         "decodability": [0.35, 0.90, 0.10, 0.10],
                         "expected": [True, True, False, True]})
    got = unmark_unread(rows, ICVThresholds()).tolist()
    # the unread positive is unmarked; a read one stays positive; a negative stays negative; other families keep
    assert got[0] is None and got[1:] == [True, False, True]
