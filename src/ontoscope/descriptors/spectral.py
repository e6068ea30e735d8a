"""Short-time spectral descriptors, batched in torch.

Every function here reproduces its ``librosa.feature`` namesake (librosa 0.11)
with the same parameters: a periodic Hann window, ``center=True`` framing with
zero padding (``pad_mode="constant"``, librosa's default), and the magnitude
spectrogram (not the power spectrogram) as the weighting of centroid, spread
and rolloff. Per-frame values agree with librosa to float32 precision; see
``tests/test_spectral.py``.

Silent frames (a magnitude spectrum that sums to 0) follow librosa's
conventions: centroid, spread and rolloff are 0 Hz, flatness is 1.
:func:`spectral_summary` leaves those frames out of its means, and returns NaN
for a clip with no sounding frame at all.

The per-frame functions return plain Tensors ``[B, T]`` (librosa's frame features);
:func:`spectral_summary`, the per-clip descriptors, returns a dict of
:class:`~ontoscope.descriptors.estimate.Estimate`.

References
----------
Peeters, G. (2004). A large set of audio features for sound description
(similarity and classification) in the CUIDADO project. IRCAM technical report.
"""

from __future__ import annotations

import numpy as np
import torch

from ontoscope.descriptors.estimate import Estimate, reasons_where_undefined
from ontoscope.descriptors.validate import as_audio_batch
from ontoscope.errors import AudioError, ConfigError

_TINY = float(np.finfo(np.float32).tiny)

#: Reason of a clip without a sounding frame.
SILENT = "silent"
#: Unit of each per-clip descriptor of :func:`spectral_summary`.
UNITS = {"centroid": "Hz", "spread": "Hz", "flatness": "ratio", "rolloff": "Hz", "rms": "FS"}


def _check_frames(n_fft: int, hop: int) -> None:
    if isinstance(n_fft, bool) or not isinstance(n_fft, (int, np.integer)) or n_fft < 2:
        raise ConfigError(f"n_fft must be an integer >= 2, got {n_fft!r}")
    if isinstance(hop, bool) or not isinstance(hop, (int, np.integer)) or hop < 1:
        raise ConfigError(f"hop must be a positive integer number of samples, got {hop!r}")


def fft_frequencies(sr: int, n_fft: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Centre frequency of each STFT bin, in Hz: ``[n_fft // 2 + 1]`` from 0 to ``sr / 2``.

    Same as ``librosa.fft_frequencies``.
    """
    return torch.linspace(0.0, sr / 2, n_fft // 2 + 1, device=device, dtype=torch.float32)


def stft_magnitude(
    audio: np.ndarray | torch.Tensor, n_fft: int = 2048, hop: int = 512, power: float = 1.0,
    sr: int = 1,
) -> torch.Tensor:
    """STFT magnitude (``power=1``) or power (``power=2``) spectrogram.

    ``|STFT|**power`` with a periodic Hann window of ``n_fft`` samples, hop ``hop``,
    frames centred on ``t = i * hop / sr`` (the signal is padded with ``n_fft // 2``
    zeros on each side), as ``np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)) ** power``.

    Parameters
    ----------
    audio : array or tensor, ``[N]`` or ``[B, N]``
        Mono audio.
    n_fft : int
        Frame and FFT length, in samples.
    hop : int
        Hop between frames, in samples.
    power : float
        Exponent of the magnitude: 1 for magnitude, 2 for power.
    sr : int
        Sample rate in Hz (only validated; the spectrogram does not depend on it).

    Returns
    -------
    Tensor ``[B, n_fft // 2 + 1, 1 + N // hop]`` float32, on the device of ``audio``.
    """
    _check_frames(n_fft, hop)
    x = as_audio_batch(audio, sr)
    return _frames_magnitude(x, n_fft, hop, power).transpose(1, 2)


def _frames_magnitude(x: torch.Tensor, n_fft: int, hop: int, power: float = 1.0) -> torch.Tensor:
    """``|STFT|**power`` laid out ``[B, T, F]`` (frequency contiguous: fast reductions)."""
    window = torch.hann_window(n_fft, periodic=True, device=x.device, dtype=x.dtype)
    frames = torch.nn.functional.pad(x, (n_fft // 2, n_fft // 2)).unfold(1, n_fft, hop)
    spec = torch.fft.rfft(frames * window, dim=-1)
    mag = spec.abs()
    if power != 1.0:
        mag = mag.pow(power)
    return mag


def stft_power(audio: np.ndarray | torch.Tensor, n_fft: int = 2048, hop: int = 512,
               sr: int = 1) -> torch.Tensor:
    """STFT power spectrogram ``|STFT|**2``, ``[B, n_fft // 2 + 1, 1 + N // hop]``.

    See :func:`stft_magnitude` for the framing (Hann window, centred, zero padded).
    """
    return stft_magnitude(audio, n_fft, hop, power=2.0, sr=sr)


def _magnitude(audio, sr: int, n_fft: int, hop: int, S: torch.Tensor | None) -> torch.Tensor:
    """Magnitude spectrogram laid out ``[B, T, F]``, from audio or from ``S`` ``[B, F, T]``."""
    _check_frames(n_fft, hop)
    if S is not None:
        if not isinstance(S, torch.Tensor):
            S = torch.as_tensor(np.asarray(S))
        if S.ndim == 2:
            S = S.unsqueeze(0)
        if S.ndim != 3 or S.shape[1] != n_fft // 2 + 1:
            raise AudioError(f"S must be a magnitude spectrogram [B, {n_fft // 2 + 1}, T] for "
                             f"n_fft={n_fft}, got shape {tuple(S.shape)}")
        return S.to(torch.float32).transpose(1, 2)
    if audio is None:
        raise AudioError("give audio or a magnitude spectrogram S")
    return _frames_magnitude(as_audio_batch(audio, sr), n_fft, hop)


# The helpers below take magnitudes laid out [B, T, F] and return [B, T].

def _centroid(mag: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    total = mag.sum(-1)
    norm = torch.where(total < _TINY, torch.ones_like(total), total)
    return (mag @ freqs) / norm


def _spread(mag: torch.Tensor, freqs: torch.Tensor, centroid: torch.Tensor) -> torch.Tensor:
    total = mag.sum(-1)
    norm = torch.where(total < _TINY, torch.ones_like(total), total)
    # sum |X| (f - c)^2 = sum |X| f^2 - 2 c sum |X| f + c^2 sum |X|, in float64 (cancellation)
    m1 = (mag @ freqs).double()
    m2 = (mag @ (freqs * freqs)).double()
    c = centroid.double()
    var = (m2 - 2 * c * m1 + c * c * total.double()) / norm.double()
    return var.clamp_(min=0.0).sqrt().float()


def _flatness(mag: torch.Tensor, amin: float = 1e-10) -> torch.Tensor:
    p = torch.clamp(mag * mag, min=amin)
    return torch.exp(torch.log(p).mean(-1)) / p.mean(-1)


def _rolloff(mag: torch.Tensor, freqs: torch.Tensor, roll_percent: float) -> torch.Tensor:
    cum = torch.cumsum(mag, dim=-1)
    thresh = roll_percent * cum[..., -1:]
    idx = torch.searchsorted(cum, thresh)[..., 0].clamp_(max=freqs.shape[0] - 1)
    return freqs[idx]


def spectral_centroid(
    audio: np.ndarray | torch.Tensor | None, sr: int, n_fft: int = 2048, hop: int = 512, *,
    S: torch.Tensor | None = None,
) -> torch.Tensor:
    """Spectral centroid per frame, in Hz.

    The magnitude-weighted mean frequency of each frame,
    ``sum_f f |X(f)| / sum_f |X(f)|`` (Peeters 2004), as
    ``librosa.feature.spectral_centroid``. A silent frame gives 0.

    Parameters
    ----------
    audio : array or tensor ``[N]`` or ``[B, N]``, or None
        Mono audio (ignored when ``S`` is given).
    sr : int
        Sample rate in Hz.
    n_fft, hop : int
        Frame length and hop, in samples (Hann window, centred frames).
    S : Tensor ``[B, n_fft // 2 + 1, T]``, optional
        A precomputed magnitude spectrogram (:func:`stft_magnitude`).

    Returns
    -------
    Tensor ``[B, T]`` float32, Hz.
    """
    mag = _magnitude(audio, sr, n_fft, hop, S)
    return _centroid(mag, fft_frequencies(sr, n_fft, mag.device))


def spectral_spread(
    audio: np.ndarray | torch.Tensor | None, sr: int, n_fft: int = 2048, hop: int = 512, *,
    S: torch.Tensor | None = None,
) -> torch.Tensor:
    """Spectral spread (bandwidth of order 2) per frame, in Hz.

    ``sqrt(sum_f |X(f)| (f - centroid)**2 / sum_f |X(f)|)``, the magnitude-weighted
    standard deviation of frequency around the centroid (Peeters 2004), as
    ``librosa.feature.spectral_bandwidth(p=2)``. A silent frame gives 0.

    Parameters and returns as :func:`spectral_centroid`.
    """
    mag = _magnitude(audio, sr, n_fft, hop, S)
    freqs = fft_frequencies(sr, n_fft, mag.device)
    return _spread(mag, freqs, _centroid(mag, freqs))


def spectral_flatness(
    audio: np.ndarray | torch.Tensor | None, sr: int, n_fft: int = 2048, hop: int = 512, *,
    S: torch.Tensor | None = None, amin: float = 1e-10,
) -> torch.Tensor:
    """Spectral flatness per frame (Wiener entropy), in [0, 1].

    Geometric over arithmetic mean of the power spectrum ``max(|X(f)|**2, amin)``
    (Dubnov 2004; Peeters 2004), as ``librosa.feature.spectral_flatness``: 1 for
    white noise (and for a silent frame), near 0 for a few sinusoids.

    Parameters and returns as :func:`spectral_centroid`; ``amin`` is the power
    floor (librosa's default).
    """
    mag = _magnitude(audio, sr, n_fft, hop, S)
    return _flatness(mag, amin)


def spectral_rolloff(
    audio: np.ndarray | torch.Tensor | None, sr: int, n_fft: int = 2048, hop: int = 512, *,
    S: torch.Tensor | None = None, roll_percent: float = 0.85,
) -> torch.Tensor:
    """Spectral rolloff per frame, in Hz.

    The centre frequency of the lowest bin at which the cumulative magnitude
    spectrum reaches ``roll_percent`` of its total, as
    ``librosa.feature.spectral_rolloff``. A silent frame gives 0.

    Parameters and returns as :func:`spectral_centroid`; ``roll_percent`` in (0, 1).
    """
    if not 0.0 < roll_percent < 1.0:
        raise ConfigError(f"roll_percent must lie in (0, 1), got {roll_percent}")
    mag = _magnitude(audio, sr, n_fft, hop, S)
    return _rolloff(mag, fft_frequencies(sr, n_fft, mag.device), roll_percent)


def rms(audio: np.ndarray | torch.Tensor, sr: int = 1, frame_length: int = 2048,
        hop: int = 512) -> torch.Tensor:
    """Root-mean-square level per frame, linear (full scale = 1).

    ``sqrt(mean(x**2))`` over rectangular frames of ``frame_length`` samples centred
    on ``t = i * hop / sr`` (zero padded at the ends), as ``librosa.feature.rms(y=...)``.

    Returns
    -------
    Tensor ``[B, 1 + N // hop]`` float32.
    """
    _check_frames(frame_length, hop)
    return _rms(as_audio_batch(audio, sr), frame_length, hop)


def _rms(x: torch.Tensor, frame_length: int, hop: int) -> torch.Tensor:
    pad = frame_length // 2
    n = x.shape[1]
    n_frames = 1 + (n + 2 * pad - frame_length) // hop
    # running sum of x**2 (float64), differenced at the frame edges
    cs = torch.nn.functional.pad(torch.cumsum(x.double() ** 2, -1), (1, 0))
    start = torch.arange(n_frames, device=x.device) * hop - pad
    lo = start.clamp(0, n)
    hi = (start + frame_length).clamp(0, n)
    power = (cs[:, hi] - cs[:, lo]) / frame_length
    return power.clamp_(min=0.0).sqrt().float()


def spectral_features(
    audio: np.ndarray | torch.Tensor, sr: int, n_fft: int = 2048, hop: int = 512,
    roll_percent: float = 0.85,
) -> dict[str, torch.Tensor]:
    """Every per-frame descriptor of this module from one STFT.

    Returns
    -------
    dict of Tensor ``[B, T]``
        ``centroid``, ``spread``, ``rolloff`` (Hz), ``flatness`` (0-1) and ``rms``
        (linear), each as its own function computes it, plus ``silent`` (bool,
        frames whose magnitude spectrum sums to 0).
    """
    _check_frames(n_fft, hop)
    if not 0.0 < roll_percent < 1.0:
        raise ConfigError(f"roll_percent must lie in (0, 1), got {roll_percent}")
    x = as_audio_batch(audio, sr)
    mag = _frames_magnitude(x, n_fft, hop)
    freqs = fft_frequencies(sr, n_fft, mag.device)
    centroid = _centroid(mag, freqs)
    return {
        "centroid": centroid,
        "spread": _spread(mag, freqs, centroid),
        "flatness": _flatness(mag),
        "rolloff": _rolloff(mag, freqs, roll_percent),
        "rms": _rms(x, n_fft, hop),
        "silent": mag.sum(-1) < _TINY,
    }


def spectral_summary(
    audio: np.ndarray | torch.Tensor, sr: int, n_fft: int = 2048, hop: int = 512,
) -> dict[str, Estimate]:
    """Per-clip means of the per-frame spectral descriptors.

    Parameters
    ----------
    audio : array or tensor, ``[N]`` or ``[B, N]``
        Mono audio.
    sr : int
        Sample rate in Hz.
    n_fft, hop : int
        Frame length and hop in samples (Hann window, centred frames, as librosa).

    Returns
    -------
    dict of str to Estimate
        Each ``[B]`` float32 (units in :data:`UNITS`): ``centroid``, ``spread``,
        ``rolloff`` (``"Hz"``) and ``flatness`` (``"ratio"``, 0-1): means over the
        clip's sounding frames (silent frames, whose values are conventions, are left
        out; NaN with reason ``"silent"`` for a clip that is all silence). ``rms``
        (``"FS"``, linear, full scale 1): mean of the per-frame RMS over all frames.
    """
    feats = spectral_features(audio, sr, n_fft, hop)
    sounding = (~feats["silent"]).to(torch.float32)
    count = sounding.sum(1)
    silent = [SILENT] * count.shape[0]
    out = {}
    for key in ("centroid", "spread", "flatness", "rolloff"):
        mean = (feats[key] * sounding).sum(1) / count.clamp(min=1.0)
        mean = torch.where(count > 0, mean, torch.full_like(mean, float("nan")))
        out[key] = Estimate(mean, UNITS[key], reasons_where_undefined(mean, silent))
    rms_mean = feats["rms"].mean(1)
    out["rms"] = Estimate(rms_mean, UNITS["rms"], reasons_where_undefined(rms_mean, silent))
    return out
