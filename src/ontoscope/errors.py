"""User-facing errors.

Every error a user can cause (bad config, bad audio, unknown factor or site)
is an :class:`OntoscopeError` whose message says what was wrong and how to fix
it. The command line prints that one line, without a traceback, and exits
non-zero.
"""

from __future__ import annotations


class OntoscopeError(Exception):
    """Base class of every error a user can cause."""


class ConfigError(OntoscopeError, ValueError):
    """A configuration, factor space or argument is invalid."""


class FactorError(ConfigError):
    """An unknown factor name, or a range or value a factor cannot take."""


class AudioError(OntoscopeError, ValueError):
    """Audio that cannot be analysed: NaN/inf samples, empty, wrong shape, unreadable file."""


class SampleRateError(AudioError):
    """A sample rate too low for what is asked of it (e.g. an f0 range above Nyquist)."""


class StimulusSetError(OntoscopeError):
    """A stimulus set directory that is missing, incomplete or corrupt."""
