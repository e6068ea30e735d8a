"""Recorded-instrument stimuli: SoundFont notes rendered through libfluidsynth, controlled and measured back."""

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ontoscope.cli import app
from ontoscope.descriptors import measure
from ontoscope.descriptors.renders import render_soundfont_set
from ontoscope.errors import ConfigError, FactorError
from ontoscope.stimuli.dataset import set_space
from ontoscope.stimuli.factors import FactorSpace
from ontoscope.stimuli.soundfont import BANK_ENV, check_bank, find_bank, open_soundfont, soundfont_available
from ontoscope.stimuli.soundfont_set import (
    CONTROLLED,
    check_space,
    parse_programs,
    render_clips,
    soundfont_pairs,
    soundfont_table,
)

MISSING = soundfont_available()
needs_bank = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
SR = 16000


# -- a tiny bank written here: one sine preset on keys 48-72 ----------------------------------------


def _chunk(tag: bytes, data: bytes) -> bytes:
    return tag + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, *chunks: bytes) -> bytes:
    body = kind + b"".join(chunks)
    return b"LIST" + struct.pack("<I", len(body)) + body


def _name(text: str) -> bytes:
    return text.encode().ljust(20, b"\0")


def tiny_bank(path: Path, program: int = 5, keys: tuple[int, int] = (48, 72)) -> Path:
    """A valid SoundFont 2 bank with one preset: a looped 440 Hz sine on ``keys``."""
    sr, n = 44000, 1000
    smpl = (0.5 * 32767 * np.sin(2 * np.pi * 440 * np.arange(n) / sr)).astype("<i2").tobytes() + b"\0" * 92
    rec = "<20sIIIIIBbHH"
    pdta = _list(
        b"pdta",
        _chunk(b"phdr", struct.pack("<20sHHHIII", _name("Sine"), program, 0, 0, 0, 0, 0)
               + struct.pack("<20sHHHIII", _name("EOP"), 0, 0, 1, 0, 0, 0)),
        _chunk(b"pbag", struct.pack("<HHHH", 0, 0, 1, 0)),
        _chunk(b"pmod", b"\0" * 10),
        _chunk(b"pgen", struct.pack("<HhHh", 41, 0, 0, 0)),
        _chunk(b"inst", struct.pack("<20sH", _name("Sine"), 0) + struct.pack("<20sH", _name("EOI"), 1)),
        _chunk(b"ibag", struct.pack("<HHHH", 0, 0, 3, 0)),
        _chunk(b"imod", b"\0" * 10),
        _chunk(b"igen", struct.pack("<HBBHhHhHh", 43, keys[0], keys[1], 54, 1, 53, 0, 0, 0)),
        _chunk(b"shdr", struct.pack(rec, _name("sine"), 0, n, 100, 900, sr, 69, 0, 0, 1)
               + struct.pack(rec, _name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    )
    info = _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", b"EMU8000\0"),
                 _chunk(b"INAM", b"tiny\0\0"))
    body = b"sfbk" + info + _list(b"sdta", _chunk(b"smpl", smpl)) + pdta
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


# -- without the bank -------------------------------------------------------------------------------


def test_bank_is_installed_where_required():
    if os.environ.get("ONTOSCOPE_REQUIRE_SOUNDFONT"):
        assert MISSING is None, MISSING


def test_missing_damaged_or_foreign_bank_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*apt-get install fluidsynth fluid-soundfont-gm"):
        check_bank(tmp_path / "nowhere.sf2")
    with pytest.raises(ConfigError, match="is not a file"):
        check_bank(tmp_path)
    (tmp_path / "song.wav").write_bytes(b"RIFF\x24\0\0\0WAVEfmt " + b"\0" * 40)
    with pytest.raises(ConfigError, match="not a SoundFont 2 bank"):
        check_bank(tmp_path / "song.wav")
    good = tiny_bank(tmp_path / "tiny.sf2")
    assert check_bank(good) == good
    (tmp_path / "cut.sf2").write_bytes(good.read_bytes()[:1500])
    with pytest.raises(ConfigError, match="damaged"):
        check_bank(tmp_path / "cut.sf2")


def test_environment_variable_chooses_the_bank(tmp_path, monkeypatch):
    monkeypatch.setenv(BANK_ENV, str(tmp_path / "gone.sf2"))
    with pytest.raises(ConfigError, match="gone.sf2 does not exist"):
        find_bank()
    monkeypatch.setenv(BANK_ENV, str(tiny_bank(tmp_path / "tiny.sf2")))
    assert find_bank() == tmp_path / "tiny.sf2"


def test_programs_and_factors_are_checked():
    assert parse_programs("40, 73,40") == [40, 73]
    assert parse_programs([0, 127]) == [0, 127]
    for text, message in (("40,violin", "not a whole number"), ("200", "outside 0-127"), (" , ", "empty")):
        with pytest.raises(ConfigError, match=message):
            parse_programs(text)
    with pytest.raises(FactorError, match="cannot control brightness"):
        check_space(FactorSpace.create(["f0", "brightness"]))
    check_space(FactorSpace.create(list(CONTROLLED)))


# -- with a bank ------------------------------------------------------------------------------------


@needs_bank
def test_program_the_bank_lacks_and_notes_outside_the_range(tmp_path):
    sf = open_soundfont(tiny_bank(tmp_path / "tiny.sf2"), SR, bend_range=3)
    assert sf.programs() == {5: "Sine"} and sf.key_range(5) == (48, 72)
    assert sf.pitch_wheel_sensitivity() == 3  # RPN 0 sets the bend range
    with pytest.raises(ConfigError, match="has no program 40 in bank 0; choose one of 5"):
        sf.check_program(40)
    with pytest.raises(ConfigError, match=r"note 80 \(G#5, 831 Hz\) is outside the range of program 5 "
                                          r"\(Sine\): notes 48-72"):
        sf.render_note(5, 80)
    x = sf.render_note(5, 69, 100, 0.5)
    assert measure(x, SR)["f0"].iloc[0] == pytest.approx(440, rel=1e-3)
    space = FactorSpace.create(["loudness"], fixed={"f0": 3000.0})
    with pytest.raises(ConfigError, match=r"outside the range of program 40 \(Violin\): notes 0-101"):
        soundfont_table(space, 2, SR, 0.5, programs=[40])
    with pytest.raises(ConfigError, match="has no program 40"):
        soundfont_table(space, 2, SR, 0.5, bank=tmp_path / "tiny.sf2", programs=[40])
    with pytest.raises(ConfigError, match="8000-96000 Hz"):
        open_soundfont(None, 4000)


@needs_bank
def test_violin_bend_vibrato_measures_back_against_its_own_baseline(tmp_path):
    space = FactorSpace.create(["loudness"], ranges={"loudness": (-24, -16)},
                               fixed={"f0": 440.0, "vibrato_rate": 5.5, "vibrato_depth": 25.0})
    ds = render_soundfont_set(tmp_path / "vib", space, 3, SR, 1.5, seed=1, programs=[40])
    t = ds.factors
    assert (t["instrument_name"] == "Violin").all() and t["baseline_vibrato_depth"].gt(3).all()  # its own vibrato
    assert np.abs(t["control_vibrato_rate"] - 5.5).max() < 0.3
    assert np.abs(t["control_vibrato_depth"] - 25.0).max() < 5.0
    assert np.abs(t["measured_loudness"] - t["loudness"]).max() < 1.5


@needs_bank
def test_f0_of_recorded_instruments_has_no_octave_errors():
    """Strings, brass, reeds and flute at 110-880 Hz (the canon's f0 range) read at their key, not at a partial.

    Low viola and violin notes have a fundamental 20-25 dB below their strongest partial, an oboe's and a
    clarinet's high notes a strongest third partial; the bank tunes some samples up to 70 cents off the key.
    """
    sf = open_soundfont(None, SR)
    notes = [(p, k) for p in (40, 41, 42, 56, 60, 68, 71, 73) for k in range(45, 82, 2)
             if sf.key_range(p)[0] <= k <= sf.key_range(p)[1]]
    audio = np.stack([sf.render_note(p, k, 100, 1.0) for p, k in notes])
    cents = 1200 * np.log2(measure(audio, SR)["f0"].to_numpy() / (440.0 * 2 ** ((np.array(notes)[:, 1] - 69) / 12)))
    assert len(notes) >= 140
    assert np.abs(cents).max() < 100, [notes[i] for i in np.flatnonzero(~(np.abs(cents) < 100))]
    assert np.median(np.abs(cents)) < 10


@needs_bank
def test_velocity_steps_move_loudness_monotonically():
    sf = open_soundfont(None, SR)
    velocities = [16, 32, 48, 64, 80, 96, 112, 127]
    for program, key in ((40, 69), (73, 72), (0, 60)):
        audio = np.stack([sf.render_note(program, key, v, 0.5) for v in velocities])
        level = measure(audio, SR)["loudness"].to_numpy()
        assert np.all(np.diff(level) > 0), (program, level)
        # SoundFont 2.01's default velocity law: 40 log10(v / 127) dB
        assert level[-1] - level[3] == pytest.approx(-40 * np.log10(64 / 127), abs=1.0)


@needs_bank
def test_same_seed_renders_the_same_audio(tmp_path):
    space = FactorSpace.create(["f0", "loudness", "vibrato_depth", "tremolo_depth"],
                               ranges={"f0": (200, 600)})
    a = render_soundfont_set(tmp_path / "a", space, 4, SR, 1.0, seed=7, programs="40,73")
    b = render_soundfont_set(tmp_path / "b", space, 4, SR, 1.0, seed=7, programs="40,73")
    c = render_soundfont_set(tmp_path / "c", space, 4, SR, 1.0, seed=8, programs="40,73")
    assert np.array_equal(a.audio().numpy(), b.audio().numpy())
    pd.testing.assert_frame_equal(a.factors, b.factors)
    assert not np.array_equal(a.audio().numpy(), c.audio().numpy())
    # a clip renders the same alone, in any order, as inside its set
    sf = open_soundfont(None, SR)
    alone = render_clips(a.factors.iloc[[3, 0]], sf, 1.0)
    assert np.array_equal(alone, a.audio([3, 0]).numpy())
    # the set is a StimulusSet like a synthetic one, and a second render of it is a no-op
    again = render_soundfont_set(tmp_path / "a", space, 4, SR, 1.0, seed=7, programs=[40, 73])
    assert again.manifest == a.manifest
    meta = a.manifest["meta"]
    assert meta["source"] == "soundfont" and meta["programs"] == [40, 73] and meta["bank"].endswith(".sf2")
    assert {i["instrument"] for i in meta["instruments"]} == set(a.factors["instrument"])
    assert set_space(a).names == space.names
    t = a.factors
    assert t["brightness"].isna().all() and t["measured_brightness"].notna().any()  # the recording's own
    for col in ("measured_f0", "baseline_vibrato_depth", "control_tremolo_depth", "swamped_vibrato"):
        assert col in t
    assert t.loc[t["tremolo_depth"] > 0.2, "control_tremolo_depth"].sub(t["tremolo_depth"]).abs().max() < 0.1


@needs_bank
def test_pairs_change_one_control_on_the_same_note_and_program():
    space = FactorSpace.create(["f0", "loudness", "vibrato_rate", "vibrato_depth"], ranges={"f0": (200, 600)})
    table = soundfont_pairs(space, 3, SR, 0.5, seed=2, programs=[40, 73])
    assert len(table) == 2 * 3 * 4
    for _, pair in table.groupby("pair"):
        base, source = pair.iloc[0], pair.iloc[1]
        assert base["instrument"] == source["instrument"] and base["seed"] == source["seed"]
        f = base["factor"]
        if f != "f0":
            assert (base["note"], base["bend"]) == (source["note"], source["bend"])
        if f != "loudness":
            assert base["velocity"] == source["velocity"]
        changed = [n for n in ("f0", "loudness", "vibrato_rate", "vibrato_depth")
                   if not (base[n] == source[n] or (pd.isna(base[n]) and pd.isna(source[n])))]
        assert changed == [f]


@needs_bank
def test_stimuli_command_with_a_soundfont(tmp_path):
    out = tmp_path / "set"
    r = CliRunner().invoke(app, ["stimuli", str(out), "--source", "soundfont", "--bank", str(find_bank()),
                                 "--programs", "40,73", "--n", "4", "--sr", "16000", "--seconds", "1",
                                 "--seed", "3", "--factors", "f0,loudness"])
    assert r.exit_code == 0, r.output
    assert "4 clips at 16000 Hz" in r.output
    table = pd.read_parquet(out / "factors.parquet")
    assert table["clip"].tolist() == [0, 1, 2, 3] and set(table["instrument"]) == {40, 73}
    assert {"measured_f0", "measured_loudness", "note", "velocity"} <= set(table.columns)
    assert np.all(np.abs(1200 * np.log2(table["measured_f0"] / table["f0"])) < 50)
    r = CliRunner().invoke(app, ["stimuli", str(tmp_path / "bad"), "--programs", "40"])
    assert isinstance(r.exception, ConfigError) and "--source soundfont" in str(r.exception)


@pytest.mark.slow
@needs_bank
def test_stimuli_command_bad_soundfont_input_is_one_line(tmp_path):
    exe = Path(sys.executable).parent / "ontoscope"
    for args, message in ((["--bank", str(tmp_path / "none.sf2")], "does not exist"),
                          (["--factors", "f0,noise"], "cannot control noise"),
                          (["--sr", "4000", "--factors", "loudness"], "8000-96000 Hz")):
        r = subprocess.run([str(exe), "stimuli", str(tmp_path / "out"), "--source", "soundfont", "--n", "2", *args],
                           capture_output=True, text=True, timeout=120)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], r.stderr
