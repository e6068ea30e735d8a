"""The factor canon: the features of sound whose values ontoscope controls and measures.

A :class:`Factor` is one controllable feature (``f0``, ``vibrato_depth``, ...)
with its unit, range, scale and kind. A :class:`FactorSpace` is the set of
factors a study varies, with their ranges, and the values the others are held
at; it samples factor tables (one row per clip) that the synthesizer renders.
What each factor means, exactly, is the signal model in ``docs/synthesis.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
import torch
from scipy.stats import qmc

from ontoscope.errors import FactorError, SampleRateError

Scale = Literal["linear", "log"]
Kind = Literal["static", "oscillatory"]

#: Fade-out applied to the end of every clip, in seconds (see docs/synthesis.md).
FADE_SECONDS = 0.01


@dataclass(frozen=True)
class Factor:
    """One controllable feature of a sound.

    Parameters
    ----------
    name : str
        Canonical name, used as a column name everywhere (``f0``, ``loudness``, ...).
    unit : str
        Natural unit of the values (Hz, dB, cents, s, ...).
    low, high : float
        Default sampling range, in ``unit``; ``low < high``.
    scale : {"linear", "log"}
        Scale on which the factor is sampled and normalised: a log factor is
        uniform in ``log(value)``.
    kind : {"static", "oscillatory"}
        Oscillatory factors describe a modulation (vibrato, tremolo, beating).
    default : float
        Value held when the factor is not varied. For a modulation depth it is 0
        (no modulation); for ``inharmonicity`` 0 (a harmonic tone).
    rate : str or None
        For oscillatory factors, the name of the factor that is their modulation rate.
    depth : str or None
        For a modulation rate, the name of the depth that gates it: the rate is
        meaningless where that depth is 0.
    bounds : (float, float)
        Physical limits no value may leave (e.g. a depth cannot be negative).
    description : str
        One line saying what the factor is.
    """

    name: str
    unit: str
    low: float
    high: float
    scale: Scale
    kind: Kind
    default: float
    rate: str | None = None
    depth: str | None = None
    bounds: tuple[float, float] = (-math.inf, math.inf)
    description: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise FactorError(
                f"factor {self.name!r}: range [{self.low}, {self.high}] is out of order or not "
                "finite; give low < high"
            )
        if self.scale == "log" and self.low <= 0:
            raise FactorError(
                f"factor {self.name!r}: a log-scale range must be positive, got low={self.low}"
            )
        lo, hi = self.bounds
        if self.low < lo or self.high > hi:
            raise FactorError(
                f"factor {self.name!r}: range [{self.low}, {self.high}] leaves the physical "
                f"limits [{lo}, {hi}] ({self.unit})"
            )

    @property
    def is_rate(self) -> bool:
        """True for a modulation rate (``vibrato_rate``, ...)."""
        return self.depth is not None

    def with_range(self, low: float, high: float) -> Factor:
        """The same factor with another sampling range (validated)."""
        return replace(self, low=float(low), high=float(high))

    def normalize(self, values: np.ndarray | float) -> np.ndarray:
        """Map values in ``unit`` to [0, 1] over the range, on the factor's scale."""
        v = np.asarray(values, dtype=np.float64)
        if self.scale == "log":
            with np.errstate(divide="ignore", invalid="ignore"):
                return (np.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def denormalize(self, u: np.ndarray | float | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Inverse of :meth:`normalize`: map [0, 1] to values in ``unit``.

        A tensor stays a tensor (differentiably, on its device and dtype); anything else becomes float64 numpy.
        """
        if isinstance(u, torch.Tensor):
            if self.scale == "log":
                return torch.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
            return self.low + u * (self.high - self.low)
        u = np.asarray(u, dtype=np.float64)
        if self.scale == "log":
            return np.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


def _canon() -> dict[str, Factor]:
    inf = math.inf
    facs = [
        Factor("f0", "Hz", 110.0, 880.0, "log", "static", 220.0, bounds=(1e-3, inf),
               description="fundamental frequency (centre of any vibrato)"),
        Factor("loudness", "dBFS", -40.0, -10.0, "linear", "static", -20.0, bounds=(-inf, 0.0),
               description="RMS level of the whole clip"),
        Factor("brightness", "dB/oct", -12.0, -3.0, "linear", "static", -6.0,
               description="spectral tilt: level of partial k is tilt * log2(k) dB"),
        Factor("odd_even", "dB", -10.0, 10.0, "linear", "static", 0.0,
               description="level of odd partials over even partials"),
        Factor("inharmonicity", "B", 1e-5, 1e-3, "log", "static", 0.0, bounds=(0.0, 0.1),
               description="stiff-string coefficient: partial k at k f0 sqrt(1 + B k^2)"),
        Factor("noise", "dB", 0.0, 40.0, "linear", "static", 60.0,
               description="harmonic-to-noise ratio (white noise)"),
        Factor("attack", "s", 0.005, 0.2, "log", "static", 0.01, bounds=(1e-4, inf),
               description="10%-90% rise time of the amplitude envelope"),
        Factor("vibrato_rate", "Hz", 3.0, 9.0, "linear", "oscillatory", 5.5,
               rate="vibrato_rate", depth="vibrato_depth", bounds=(1e-3, inf),
               description="rate of the frequency modulation"),
        Factor("vibrato_depth", "cents", 0.0, 100.0, "linear", "oscillatory", 0.0,
               rate="vibrato_rate", bounds=(0.0, 1200.0),
               description="peak deviation of the frequency modulation"),
        Factor("tremolo_rate", "Hz", 3.0, 12.0, "linear", "oscillatory", 5.0,
               rate="tremolo_rate", depth="tremolo_depth", bounds=(1e-3, inf),
               description="rate of the amplitude modulation"),
        Factor("tremolo_depth", "index", 0.0, 1.0, "linear", "oscillatory", 0.0,
               rate="tremolo_rate", bounds=(0.0, 1.0),
               description="amplitude modulation index m: envelope 1 + m sin(2 pi r t)"),
        Factor("beat_rate", "Hz", 15.0, 80.0, "linear", "oscillatory", 30.0,
               rate="beat_rate", depth="beat_depth", bounds=(1e-3, inf),
               description="detuning of a copy of every partial: the beating (roughness) rate"),
        Factor("beat_depth", "index", 0.0, 1.0, "linear", "oscillatory", 0.0,
               rate="beat_rate", bounds=(0.0, 1.0),
               description="relative amplitude of the detuned copy: envelope modulation index"),
    ]
    return {f.name: f for f in facs}


#: The canon of factors, in canonical order.
CANON: Mapping[str, Factor] = _canon()

#: Names of the canon's factors, in canonical order.
FACTOR_NAMES: tuple[str, ...] = tuple(CANON)


@dataclass(frozen=True)
class CategoricalFactor:
    """A factor whose values are labels, not magnitudes: it has levels, no range or scale.

    Parameters
    ----------
    name : str
        Column name (``instrument``).
    unit : str
        What a level is (``GM program``).
    levels : tuple of int
        Every value the factor can take.
    description : str
        One line saying what the factor is.

    Categorical factors are not in :data:`CANON` (whose factors are continuous and
    normalised on a scale); a source that controls one samples its levels itself
    (``ontoscope.stimuli.soundfont_set``).
    """

    name: str
    unit: str
    levels: tuple[int, ...]
    description: str = ""


#: The instrument of a recorded note: its General MIDI program (0-127), e.g. 40 violin, 73 flute.
INSTRUMENT = CategoricalFactor("instrument", "GM program", tuple(range(128)),
                               "General MIDI program whose recorded samples play the note")


def get_factor(name: str) -> Factor:
    """The canon's factor called ``name``; a clear error for an unknown name."""
    try:
        return CANON[name]
    except KeyError:
        raise FactorError(
            f"unknown factor {name!r}; known factors: {', '.join(FACTOR_NAMES)}"
        ) from None


def rate_defined(table: pd.DataFrame, rate: str) -> np.ndarray:
    """Boolean mask of the rows where modulation rate ``rate`` means something (depth > 0)."""
    depth = get_factor(rate).depth
    assert depth is not None
    return np.asarray(table[depth].to_numpy(dtype=np.float64) > 0)


@dataclass(frozen=True)
class FactorSpace:
    """The factors a study varies, their ranges, and the values of the others.

    Parameters
    ----------
    factors : tuple of Factor
        The varied factors, in canonical order.
    fixed : dict
        Values (in natural units) of every canon factor that is not varied.

    Build one with :meth:`FactorSpace.create`, which validates names and ranges.
    """

    factors: tuple[Factor, ...]
    fixed: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        names: Iterable[str] | None = None,
        ranges: Mapping[str, tuple[float, float]] | None = None,
        fixed: Mapping[str, float] | None = None,
    ) -> FactorSpace:
        """Validated factor space.

        Parameters
        ----------
        names : iterable of str, optional
            Factors to vary; default every canon factor except ``inharmonicity``
            (whose default 0 keeps tones harmonic).
        ranges : dict, optional
            ``{name: (low, high)}`` overriding the canon's ranges for varied factors.
        fixed : dict, optional
            ``{name: value}`` overriding the canon's defaults for factors held fixed.
        """
        if names is None:
            names = [n for n in FACTOR_NAMES if n != "inharmonicity"]
        names = list(dict.fromkeys(names))
        if not names:
            raise FactorError("a factor space needs at least one factor to vary")
        for n in names:
            get_factor(n)
        ranges = dict(ranges or {})
        fixed = dict(fixed or {})
        for n in ranges:
            get_factor(n)
            if n not in names:
                raise FactorError(f"a range is given for {n!r}, which is not varied; add it to names")
        facs = []
        for n in FACTOR_NAMES:
            if n in names:
                f = get_factor(n)
                if n in ranges:
                    lo, hi = ranges[n]
                    f = f.with_range(lo, hi)
                facs.append(f)
        values = {n: CANON[n].default for n in FACTOR_NAMES if n not in names}
        for n, v in fixed.items():
            f = get_factor(n)
            if n in names:
                raise FactorError(f"{n!r} is both varied and fixed; keep one")
            v = float(v)
            lo, hi = f.bounds
            if not (lo <= v <= hi):
                raise FactorError(f"fixed value {n}={v} leaves the limits [{lo}, {hi}] ({f.unit})")
            values[n] = v
        space = cls(tuple(facs), values)
        for f in space.factors:
            if f.is_rate and f.depth not in names and values.get(f.depth, 0.0) == 0.0:
                raise FactorError(
                    f"{f.name} is varied but {f.depth} is fixed at 0, so the rate is meaningless; "
                    f"vary {f.depth} too, or fix it above 0"
                )
        return space

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the varied factors, in canonical order."""
        return tuple(f.name for f in self.factors)

    def __getitem__(self, name: str) -> Factor:
        for f in self.factors:
            if f.name == name:
                return f
        if name in CANON:
            return CANON[name]
        return get_factor(name)

    def max_frequency(self) -> float:
        """Highest instantaneous frequency of the fundamental the space can ask for, in Hz."""
        f0 = self._hi("f0")
        cents = self._hi("vibrato_depth")
        beat = self._hi("beat_rate") if self._hi("beat_depth") > 0 else 0.0
        return f0 * 2.0 ** (cents / 1200.0) + beat

    def _hi(self, name: str) -> float:
        return self[name].high if name in self.names else float(self.fixed[name])

    def check_sample_rate(self, sr: int) -> None:
        """Raise :class:`SampleRateError` if ``sr`` cannot carry the space's fundamental."""
        if sr <= 0:
            raise SampleRateError(f"sample rate must be positive, got {sr}")
        top = self.max_frequency()
        if top >= sr / 2:
            raise SampleRateError(
                f"sample rate {sr} Hz cannot carry this factor space: its fundamental "
                f"(with vibrato and beating) reaches "
                f"{top:.0f} Hz, above Nyquist ({sr / 2:.0f} Hz); raise the sample rate above "
                f"{2 * top:.0f} Hz or lower the f0 range"
            )

    def check_duration(self, seconds: float) -> None:
        """Raise :class:`FactorError` if clips of ``seconds`` cannot hold the attack range."""
        if not (math.isfinite(seconds) and seconds > 0):
            raise FactorError(f"duration must be a positive number of seconds, got {seconds}")
        attack = self._hi("attack")
        if attack / 0.8 + FADE_SECONDS >= seconds:
            raise FactorError(
                f"clips of {seconds} s are too short for attacks up to {attack} s; "
                f"lengthen them beyond {attack / 0.8 + FADE_SECONDS:.3f} s or shorten the attack range"
            )

    def sample(
        self, n: int, seed: int = 0, method: Literal["uniform", "grid", "lhs"] = "uniform"
    ) -> pd.DataFrame:
        """Sample a factor table.

        Parameters
        ----------
        n : int
            Number of clips. For ``method="grid"``, each varied factor gets
            ``max(2, round(n ** (1 / k)))`` levels and the table has
            ``levels ** k`` rows (``k`` varied factors).
        seed : int
            Seed of the sampler; the same seed gives the same table.
        method : {"uniform", "grid", "lhs"}
            Independent uniform sampling on each factor's scale, a full grid,
            or a Latin hypercube (``scipy.stats.qmc``).

        Returns
        -------
        pandas.DataFrame
            One row per clip: ``clip`` (int), ``seed`` (per-clip synthesis seed),
            one column per canon factor in natural units, and
            ``rate_defined_<rate>`` for each modulation rate; a rate whose depth
            is 0 is NaN.
        """
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise FactorError(f"number of clips must be a positive integer, got {n!r}")
        k = len(self.factors)
        rng = np.random.default_rng(seed)
        if method == "uniform":
            u = rng.random((n, k))
        elif method == "lhs":
            u = qmc.LatinHypercube(d=k, seed=rng).random(n)
        elif method == "grid":
            levels = max(2, int(round(n ** (1.0 / k))))
            axes = np.linspace(0.0, 1.0, levels)
            u = np.stack(np.meshgrid(*([axes] * k), indexing="ij"), -1).reshape(-1, k)
        else:
            raise FactorError(f"unknown sampling method {method!r}; use uniform, grid or lhs")
        rows = u.shape[0]
        table = pd.DataFrame({"clip": np.arange(rows, dtype=np.int64)})
        table["seed"] = clip_seeds(seed, rows)
        for name in FACTOR_NAMES:
            if name in self.names:
                j = self.names.index(name)
                table[name] = self[name].denormalize(u[:, j])
            else:
                table[name] = float(self.fixed[name])
        return mark_rates(table)


def mark_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Set each modulation rate to NaN where its depth is 0, and add ``rate_defined_<rate>``."""
    table = table.copy()
    for f in CANON.values():
        if f.is_rate and f.name in table and f.depth in table:
            defined = table[f.depth].to_numpy(dtype=np.float64) > 0
            table[f"rate_defined_{f.name}"] = defined
            table.loc[~defined, f.name] = np.nan
    return table


def clip_seeds(seed: int, n: int, start: int = 0) -> np.ndarray:
    """Per-clip synthesis seeds, independent of how clips are later chunked.

    Clip ``i`` of a set with seed ``seed`` always gets the same seed, drawn from
    ``numpy.random.SeedSequence((seed, i))``.
    """
    return np.array(
        [np.random.SeedSequence((int(seed), i)).generate_state(1, np.uint32)[0] & 0x7FFFFFFF
         for i in range(start, start + n)],
        dtype=np.int64,
    )
