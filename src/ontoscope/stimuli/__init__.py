"""Stimuli: the factor canon, a differentiable synthesizer, stimulus sets and audio I/O."""

from ontoscope.stimuli.factors import CANON, FACTOR_NAMES, Factor, FactorSpace, get_factor
from ontoscope.stimuli.synth import Nuisance, render, synthesize

__all__ = [
    "CANON",
    "FACTOR_NAMES",
    "Factor",
    "FactorSpace",
    "Nuisance",
    "get_factor",
    "render",
    "synthesize",
]
