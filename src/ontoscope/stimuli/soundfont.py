"""Recorded instruments: General MIDI SoundFonts rendered through libfluidsynth into arrays.

A :class:`SoundFont` is one SoundFont 2 bank loaded in a fluidsynth synthesizer
at one sample rate. :meth:`SoundFont.render_note` plays one note of a General
MIDI program and returns the dry mono signal, with the controls ontoscope puts
on top of the recorded samples:

- **pitch**: the MIDI key plus a fine pitch bend in cents, with the bend range
  set explicitly by RPN 0 (pitch-bend sensitivity) on every note;
- **level**: the note-on velocity and the expression controller (CC 11);
- **vibrato**: a sinusoidal pitch-bend LFO, ``bend + D sin(2π r t + φ)`` cents;
- **tremolo**: a sinusoidal expression LFO, amplitude gain ``g (1 + m sin(2π r t + φ))``;
- **attack**: the volume envelope's attack time (SoundFont generator 34), set by
  offsetting the bank's own value on the channel, as an NRPN does.

The LFOs are updated once per fluidsynth block of :data:`BLOCK` samples (at least
125 Hz, since fluidsynth runs at 8 kHz or more): the bend is evaluated at the
middle of each block, where fluidsynth holds the pitch for the whole block, and
the gain at its end, which fluidsynth ramps to linearly across the block. The
modulation wheel (CC 1) stays at 0: its LFO rate is fixed by the bank. Reverb
and chorus are off, so a clip is the dry voice; the left and right outputs are
averaged to mono. Nothing is random: the same controls give the same samples.

The level laws are those of the SoundFont 2.01 default modulators, which
fluidsynth implements: velocity ``v`` and expression ``e`` attenuate by
``40 log10(v / 127)`` and ``40 log10(e / 127)`` dB, so the amplitude gain of
expression ``e`` is ``(e / 127)²`` (:func:`expression_value` inverts it).

Install the library and the bank with ``apt-get install fluidsynth
fluid-soundfont-gm`` (Debian, Ubuntu) and the binding with ``pip install
pyfluidsynth`` (``pip install 'ontoscope[soundfont]'``); :func:`find_bank`
locates the bank (the ``ONTOSCOPE_SOUNDFONT`` environment variable overrides).
"""

from __future__ import annotations

import ctypes
import math
import os
import struct
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ontoscope.errors import ConfigError

#: Environment variable naming the SoundFont bank to use (overrides the standard places).
BANK_ENV = "ONTOSCOPE_SOUNDFONT"
#: Where a General MIDI bank is looked for, in order (Debian's ``fluid-soundfont-gm`` first).
BANK_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
#: How to install what SoundFont stimuli need.
INSTALL_HINT = ("install it with `apt-get install fluidsynth fluid-soundfont-gm` (Debian/Ubuntu), or set "
                f"{BANK_ENV} to a General MIDI .sf2 file")
#: Samples per fluidsynth block: controls change once per block.
BLOCK = 64
#: Sample rates fluidsynth renders at, Hz.
SR_RANGE = (8000, 96000)
#: Default pitch-bend range, semitones (RPN 0).
BEND_RANGE = 2
#: SoundFont 2.01 generator number of the volume envelope's attack time (timecents).
GEN_ATTACK = 34

_CHAN = 0
_CC_VOLUME, _CC_EXPRESSION, _CC_MODWHEEL, _CC_SUSTAIN = 7, 11, 1, 64


def find_bank(path: str | os.PathLike | None = None) -> Path:
    """The SoundFont bank to render with.

    Parameters
    ----------
    path : path, optional
        A ``.sf2`` file; default the ``ONTOSCOPE_SOUNDFONT`` environment variable,
        else the first of :data:`BANK_PATHS` that exists.

    Raises
    ------
    ConfigError
        If the bank is missing or unreadable.
    """
    if path is None:
        env = os.environ.get(BANK_ENV)
        if env:
            return check_bank(env)
        for p in BANK_PATHS:
            if Path(p).is_file():
                return check_bank(p)
        raise ConfigError(f"no General MIDI SoundFont bank found; {INSTALL_HINT}")
    return check_bank(path)


def check_bank(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`Path` if it is a readable SoundFont 2 file, else a clear :class:`ConfigError`.

    Checks the RIFF ``sfbk`` header and that the three top-level lists a bank needs
    (``INFO``, ``sdta``, ``pdta``) are there and fit in the file.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"SoundFont bank {p} does not exist; give the path of a .sf2 file, or {INSTALL_HINT}")
    if not p.is_file():
        raise ConfigError(f"SoundFont bank {p} is not a file; give the path of a .sf2 file")
    try:
        with open(p, "rb") as f:
            head = f.read(12)
            size = p.stat().st_size
            lists = []
            pos = 12
            while pos + 12 <= size and len(lists) < 8:
                f.seek(pos)
                tag, length, kind = struct.unpack("<4sI4s", f.read(12))
                if tag == b"LIST":
                    lists.append(kind)
                pos += 8 + length + (length & 1)
    except OSError as e:
        raise ConfigError(f"SoundFont bank {p} cannot be read ({e.strerror}); check its permissions") from None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise ConfigError(f"{p} is not a SoundFont 2 bank (no RIFF sfbk header); give a .sf2 file")
    if pos > size or not {b"INFO", b"sdta", b"pdta"} <= set(lists):
        raise ConfigError(f"SoundFont bank {p} is damaged (truncated, or missing its INFO, sdta or pdta list); "
                          "download or install it again")
    return p


def fluidsynth_module() -> ModuleType:
    """The ``fluidsynth`` binding, or a :class:`ConfigError` saying how to install it and libfluidsynth."""
    try:
        import fluidsynth  # noqa: PLC0415  # optional: pyfluidsynth (the soundfont extra) and libfluidsynth
    except ImportError as e:
        if "FluidSynth library" in str(e) or "libfluidsynth" in str(e):
            raise ConfigError("libfluidsynth is not installed; install it with `apt-get install fluidsynth` "
                              "(Debian/Ubuntu)") from None
        raise ConfigError("the fluidsynth binding is not installed; install it with `pip install pyfluidsynth` "
                          "(or `pip install 'ontoscope[soundfont]'`)") from None
    return fluidsynth


def soundfont_available(path: str | os.PathLike | None = None) -> str | None:
    """``None`` if SoundFont stimuli can be rendered here, else the one line saying what is missing."""
    try:
        fluidsynth_module()
        find_bank(path)
    except ConfigError as e:
        return str(e)
    return None


def expression_value(gain: float | np.ndarray) -> np.ndarray:
    """CC 11 values (0-127, int) whose amplitude gain ``(e / 127)²`` is nearest ``gain`` (0-1)."""
    g = np.clip(np.asarray(gain, dtype=np.float64), 0.0, 1.0)
    return np.rint(127.0 * np.sqrt(g)).astype(np.int64)


def expression_gain(value: int | np.ndarray) -> np.ndarray:
    """Amplitude gain of CC 11 value(s) ``e``: ``(e / 127)²``."""
    return (np.asarray(value, dtype=np.float64) / 127.0) ** 2


def velocity_gain_db(velocity: int | np.ndarray) -> np.ndarray:
    """Level change of note-on velocity ``v`` relative to 127, dB: ``40 log10(v / 127)``."""
    return 40.0 * np.log10(np.asarray(velocity, dtype=np.float64) / 127.0)


def note_name(key: int) -> str:
    """Scientific pitch name of a MIDI key (60 is ``C4``)."""
    names = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
    return f"{names[key % 12]}{key // 12 - 1}"


def key_frequency(key: float | np.ndarray) -> np.ndarray:
    """Equal-tempered frequency of MIDI key(s), Hz (key 69 is 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(key, dtype=np.float64) - 69.0) / 12.0)


class SoundFont:
    """A SoundFont 2 bank loaded in a fluidsynth synthesizer at one sample rate.

    Parameters
    ----------
    bank : path, optional
        The ``.sf2`` file (default :func:`find_bank`).
    sr : int
        Sample rate of the rendered audio, Hz, within :data:`SR_RANGE`.
    bend_range : int
        Pitch-bend range in semitones, set by RPN 0 before every note; bends and
        vibrato may reach ``± 100 · bend_range`` cents.

    Notes
    -----
    Open banks are cached: :func:`open_soundfont` returns the same instance for
    the same bank, rate and bend range. Every note starts from silence and a
    full reset of the synthesizer, after two blocks of the same note that leave
    fluidsynth's voices in the same state, so a note renders identically
    whatever was rendered before it.
    """

    def __init__(self, bank: str | os.PathLike | None = None, sr: int = 16000, bend_range: int = BEND_RANGE) -> None:
        lo, hi = SR_RANGE
        if not (isinstance(sr, (int, np.integer)) and lo <= sr <= hi):
            raise ConfigError(f"SoundFont stimuli render at {lo}-{hi} Hz (fluidsynth's range), got sr={sr}; "
                              "choose a sample rate in that range")
        if not (isinstance(bend_range, (int, np.integer)) and 1 <= bend_range <= 24):
            raise ConfigError(f"the pitch-bend range must be 1-24 semitones, got {bend_range!r}")
        self.bank = find_bank(bank)
        self.sr = int(sr)
        self.bend_range = int(bend_range)
        fs = fluidsynth_module()
        _quiet(fs)
        self._fs = fs
        self._synth = fs.Synth(gain=1.0, samplerate=float(sr), channels=16,
                               **{"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.cpu-cores": 1})
        self._sfid = self._synth.sfload(str(self.bank))
        if self._sfid < 0:
            self._synth.delete()
            raise ConfigError(f"fluidsynth cannot load SoundFont bank {self.bank}; the file is damaged or not a "
                              "SoundFont 2 bank")
        self._c = _bind(fs)
        self._ranges: dict[int, tuple[int, int]] = {}
        self._attacks: dict[tuple[int, int, int], float] = {}

    def __repr__(self) -> str:
        return f"SoundFont({str(self.bank)!r}, sr={self.sr}, bend_range={self.bend_range})"

    # -- the bank --------------------------------------------------------------------------
    def preset_name(self, program: int, bank: int = 0) -> str | None:
        """Name of GM ``program`` (0-127) in MIDI bank ``bank``, or ``None`` if the bank lacks it."""
        if not (0 <= int(program) <= 127):
            return None
        name = self._synth.sfpreset_name(self._sfid, int(bank), int(program))
        return None if name is None else str(name).strip()

    def programs(self) -> dict[int, str]:
        """Every melodic program of the bank (MIDI bank 0): ``{program: name}``."""
        out = {}
        for p in range(128):
            name = self.preset_name(p)
            if name is not None:
                out[p] = name
        return out

    def check_program(self, program: int) -> str:
        """The name of ``program``, or a :class:`ConfigError` if the bank lacks it."""
        if isinstance(program, bool) or not isinstance(program, (int, np.integer)) or not 0 <= program <= 127:
            raise ConfigError(f"GM program {program!r} is not a number 0-127; give General MIDI program numbers, "
                              "e.g. 40 (violin) or 73 (flute)")
        name = self.preset_name(int(program))
        if name is None:
            raise ConfigError(f"SoundFont bank {self.bank.name} has no program {program} in bank 0; choose one of "
                              f"{_ranges_text(sorted(self.programs()))}")
        return name

    def key_range(self, program: int, velocity: int = 100) -> tuple[int, int]:
        """Lowest and highest MIDI key that sounds on ``program`` (at ``velocity``), from the bank's zones."""
        self.check_program(program)
        cache = (int(program) << 8) | int(velocity)
        if cache not in self._ranges:
            s = self._synth
            self._reset(int(program))
            keys = []
            for k in range(128):
                s.noteon(_CHAN, k, int(velocity))
                if s.get_active_voice_count() > 0:
                    keys.append(k)
                self._silence()
            if not keys:
                raise ConfigError(f"program {program} ({self.preset_name(program)}) of {self.bank.name} has no "
                                  f"samples at velocity {velocity}")
            self._ranges[cache] = (min(keys), max(keys))
        return self._ranges[cache]

    def check_key(self, program: int, key: int, velocity: int = 100) -> None:
        """Raise a :class:`ConfigError` if ``key`` lies outside ``program``'s range."""
        lo, hi = self.key_range(program, velocity)
        if not lo <= key <= hi:
            f_lo, f_hi, f = key_frequency([lo - 0.5, hi + 0.5, key])
            raise ConfigError(
                f"note {key} ({note_name(key)}, {f:.0f} Hz) is outside the range of program {program} "
                f"({self.preset_name(program)}): notes {lo}-{hi} ({note_name(lo)}-{note_name(hi)}, "
                f"{f_lo:.0f}-{f_hi:.0f} Hz); narrow the f0 range or choose another program")

    def bank_attack(self, program: int, key: int, velocity: int = 100) -> float:
        """The bank's own attack time of the note's volume envelope, timecents (``1200 log2(seconds)``).

        Where the note sounds several voices (stereo pairs, layers) it is the longest of theirs.
        """
        cache = (int(program), int(key), int(velocity))
        if cache not in self._attacks:
            self._reset(int(program))
            self._synth.noteon(_CHAN, int(key), int(velocity))
            values = [self._c.voice_gen_get(v, GEN_ATTACK) for v in self._voices()]
            if not values:
                raise ConfigError(f"program {program} ({self.preset_name(program)}) has no sample for note {key} "
                                  f"at velocity {velocity}; choose another velocity range or program")
            self._attacks[cache] = float(max(values))
        return self._attacks[cache]

    # -- rendering -------------------------------------------------------------------------
    def render_note(
        self,
        program: int,
        key: int,
        velocity: int = 100,
        seconds: float = 1.0,
        *,
        bend: float = 0.0,
        expression: float = 1.0,
        vibrato_rate: float = 0.0,
        vibrato_depth: float = 0.0,
        vibrato_phase: float = 0.0,
        tremolo_rate: float = 0.0,
        tremolo_depth: float = 0.0,
        tremolo_phase: float = 0.0,
        attack: float | None = None,
    ) -> np.ndarray:
        """Play one note, held for the whole clip, and return the dry mono signal.

        Parameters
        ----------
        program : int
            General MIDI program (0-127) of MIDI bank 0.
        key : int
            MIDI key (60 is C4); must lie in the program's range (:meth:`key_range`).
        velocity : int
            Note-on velocity, 1-127.
        seconds : float
            Duration of the clip; the note is not released within it.
        bend : float
            Fine pitch bend, cents (the centre of any vibrato).
        expression : float
            Amplitude gain of the expression controller, 0-1 (the centre of any
            tremolo); sent as CC 11 values ``127 sqrt(gain)``.
        vibrato_rate, vibrato_depth, vibrato_phase : float
            Pitch-bend LFO: rate (Hz), peak deviation (cents) and initial phase
            (radians); the bend is ``bend + depth sin(2π rate t + phase)``.
        tremolo_rate, tremolo_depth, tremolo_phase : float
            Expression LFO: rate (Hz), modulation index ``m`` (0-1) and initial
            phase (radians); the gain is ``expression (1 + m sin(2π rate t + phase))``
            and its peak ``expression (1 + m)`` must not exceed 1.
        attack : float, optional
            Attack time of the volume envelope, seconds (a linear rise in
            amplitude, so the 10 %-90 % rise of the envelope is ``0.8 attack``);
            default the bank's own.

        Returns
        -------
        ndarray ``[round(seconds · sr)]`` float32
            Full scale 1; the mean of fluidsynth's left and right outputs.
        """
        n = int(round(float(seconds) * self.sr))
        if n < 1:
            raise ConfigError(f"a note needs a positive duration, got {seconds} s")
        if not 1 <= int(velocity) <= 127:
            raise ConfigError(f"velocity must be 1-127, got {velocity}")
        reach = abs(bend) + abs(vibrato_depth)
        if reach > 100 * self.bend_range:
            raise ConfigError(f"a bend of {bend:+.1f} cents with {vibrato_depth:.1f} cents of vibrato exceeds the "
                              f"pitch-bend range of {self.bend_range} semitones; raise bend_range")
        if not 0.0 <= tremolo_depth <= 1.0 or expression * (1.0 + tremolo_depth) > 1.0 + 1e-9 or expression < 0:
            raise ConfigError(f"expression {expression:.3f} with tremolo depth {tremolo_depth:.3f} leaves the "
                              "controller's range; keep expression (1 + depth) <= 1")
        self.check_key(program, int(key))
        if attack is not None and not (math.isfinite(attack) and attack > 0):
            raise ConfigError(f"attack must be a positive number of seconds, got {attack}")
        offset = 0.0 if attack is None else 1200.0 * math.log2(attack) - self.bank_attack(program, key, velocity)
        s = self._synth
        # fluidsynth's voices keep a little state from the note they last played; the same short note
        # first leaves them as this note finds them every time, whatever was rendered before
        self._reset(int(program))
        s.noteon(_CHAN, int(key), int(velocity))
        self._write(2 * BLOCK)
        self._reset(int(program))
        self._c.set_gen(s.synth, _CHAN, GEN_ATTACK, offset)
        n_blocks = -(-n // BLOCK)
        t = np.arange(n_blocks, dtype=np.float64) * BLOCK / self.sr
        cents = bend + vibrato_depth * np.sin(2 * math.pi * vibrato_rate * (t + 0.5 * BLOCK / self.sr) + vibrato_phase)
        wheel = np.clip(np.rint(8192 + cents / (100.0 * self.bend_range) * 8192), 0, 16383).astype(np.int64)
        gain = expression * (1 + tremolo_depth * np.sin(2 * math.pi * tremolo_rate * (t + BLOCK / self.sr)
                                                         + tremolo_phase))
        cc11 = expression_value(gain)
        self._c.pitch_bend(s.synth, _CHAN, int(wheel[0]))
        s.cc(_CHAN, _CC_EXPRESSION, int(expression_value(expression)))
        s.noteon(_CHAN, int(key), int(velocity))
        if not self._voices():
            raise ConfigError(f"program {program} ({self.preset_name(program)}) has no sample for note {key} at "
                              f"velocity {velocity}; choose another velocity range or program")
        out = np.empty(n_blocks * BLOCK, dtype=np.float32)
        if vibrato_depth == 0 and tremolo_depth == 0:
            out[:] = self._write(n_blocks * BLOCK)
        else:
            last_w, last_e = int(wheel[0]), int(expression_value(expression))
            for b in range(n_blocks):
                if wheel[b] != last_w:
                    last_w = int(wheel[b])
                    self._c.pitch_bend(s.synth, _CHAN, last_w)
                if cc11[b] != last_e:
                    last_e = int(cc11[b])
                    s.cc(_CHAN, _CC_EXPRESSION, last_e)
                out[b * BLOCK:(b + 1) * BLOCK] = self._write(BLOCK)
        return out[:n]

    def pitch_wheel_sensitivity(self) -> float:
        """The pitch-bend range fluidsynth applies to every note, in semitones: a check that RPN 0 took effect."""
        self._reset(0 if self.preset_name(0) is not None else min(self.programs()))
        v = ctypes.c_int()
        self._c.get_pitch_wheel_sens(self._synth.synth, _CHAN, ctypes.byref(v))
        return float(v.value)

    def close(self) -> None:
        """Free the synthesizer and the loaded bank."""
        if getattr(self, "_synth", None) is not None:
            self._synth.delete()
            self._synth = None

    # -- internals -------------------------------------------------------------------------
    def _silence(self) -> None:
        """Stop every voice and render until none is left: the next note starts from silence."""
        s = self._synth
        s.all_sounds_off(_CHAN)
        for _ in range(1024):
            if s.get_active_voice_count() == 0:
                break
            self._write(BLOCK)
        self._write(2 * BLOCK)

    def _reset(self, program: int) -> None:
        s = self._synth
        self._silence()
        s.system_reset()
        if s.program_select(_CHAN, self._sfid, 0, program) != 0:
            raise ConfigError(f"SoundFont bank {self.bank.name} has no program {program} in bank 0")
        for cc, value in ((_CC_VOLUME, 127), (_CC_EXPRESSION, 127), (_CC_MODWHEEL, 0), (_CC_SUSTAIN, 0),
                          (101, 0), (100, 0), (6, self.bend_range), (38, 0), (101, 127), (100, 127)):
            s.cc(_CHAN, cc, value)  # RPN 0 (pitch-bend sensitivity), then the null RPN

    def _write(self, n: int) -> np.ndarray:
        left = np.zeros(n, dtype=np.float32)
        right = np.zeros(n, dtype=np.float32)
        if self._c.write_float(self._synth.synth, n, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1) != 0:
            raise ConfigError("fluidsynth failed to render; check that the bank loads with the `fluidsynth` command")
        return 0.5 * (left + right)

    def _voices(self) -> list[int]:
        buf = (ctypes.c_void_p * 64)()
        self._c.get_voicelist(self._synth.synth, buf, 64, -1)
        return [v for v in buf if v]


class _Bindings:
    """The libfluidsynth calls the Python binding does not wrap (float output, generators, voices)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        p, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        self.write_float = _fn(lib, "fluid_synth_write_float", i, p, i, p, i, i, p, i, i)
        self.pitch_bend = _fn(lib, "fluid_synth_pitch_bend", i, p, i, i)
        self.get_pitch_wheel_sens = _fn(lib, "fluid_synth_get_pitch_wheel_sens", i, p, i, ctypes.POINTER(i))
        self.get_voicelist = _fn(lib, "fluid_synth_get_voicelist", None, p, ctypes.POINTER(p), i, i)
        self.set_gen = _fn(lib, "fluid_synth_set_gen", i, p, i, i, f)
        self.voice_gen_get = _fn(lib, "fluid_voice_gen_get", f, p, i)


def _fn(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> Any:
    try:
        fn = getattr(lib, name)
    except AttributeError:
        raise ConfigError(f"libfluidsynth lacks {name}; install fluidsynth 2.x (`apt-get install fluidsynth`)"
                          ) from None
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


@lru_cache(maxsize=1)
def _bind(fs: ModuleType) -> _Bindings:
    return _Bindings(fs._fl)


@lru_cache(maxsize=1)
def _quiet(fs: ModuleType) -> None:
    """Silence fluidsynth's own log lines: ontoscope reports every problem itself."""
    set_log = fs._fl.fluid_set_log_function
    set_log.restype = ctypes.c_void_p
    set_log.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    for level in range(5):  # panic, error, warning, info, debug
        set_log(level, None, None)


@lru_cache(maxsize=2)
def _open(bank: Path, sr: int, bend_range: int) -> SoundFont:
    return SoundFont(bank, sr, bend_range)


def open_soundfont(bank: str | os.PathLike | None = None, sr: int = 16000, bend_range: int = BEND_RANGE
                   ) -> SoundFont:
    """A cached :class:`SoundFont` for ``(bank, sr, bend_range)``: a bank is loaded once per process."""
    return _open(find_bank(bank).resolve(), int(sr), int(bend_range))


def _ranges_text(values: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``"0-2, 5"``."""
    parts: list[str] = []
    for v in values:
        if parts and parts[-1].split("-")[-1] == str(v - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{v}"
        else:
            parts.append(str(v))
    return ", ".join(parts) if parts else "none"
