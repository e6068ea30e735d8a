"""Resemblyzer speaker encoder (Wan, Wang, Papir & Lopez Moreno 2018, "Generalized End-to-End Loss for Speaker
Verification", ICASSP), with the weights packaged in ``resemblyzer`` 0.1.4 (``resemblyzer/pretrained.pt``).

What is computed, frame by frame (16 kHz, 10 ms hop):

1. Optionally (``normalize=True``, the default) the clip's volume normalisation of Resemblyzer's
   ``preprocess_wav``: a gain bringing the clip's RMS up to -30 dBFS, never down (a clip already louder is
   left as it is). This gain is one number per clip, so with it every frame depends a little on the whole
   clip. ``preprocess_wav``'s other step, trimming long silences with a voice activity detector, needs
   ``webrtcvad`` and is data-dependent editing of the waveform; it is left out: give clips without long
   silences.
2. A mel power spectrogram, as librosa's ``melspectrogram`` computes it for Resemblyzer: 400-sample (25 ms)
   periodic Hann window, 160-sample (10 ms) hop, centred frames with zero padding, ``|STFT|^2`` through
   40 Slaney-normalised mel filters from 0 to 8 kHz. It is power, not log power.
3. Three stacked LSTM layers of 256 units, run forward in time (causal: frame ``t`` sees frames ``0..t``).
4. The embedding: the last frame's hidden state of the third layer through a 256 x 256 linear layer and a
   ReLU, then L2 normalisation (so the embedding is non-negative and unit-norm).

Sites (``stride`` = hop = 160 samples at 16 kHz, 100 frames/s; ``T = 1 + N // 160`` for ``N`` samples)
-----------------------------------------------------------------------------------------------------
* ``encoder.mel``: ``BCT`` ``[B, 40, T]``, mel power; frame ``t`` is centred on sample ``160 t`` and reads a
  receptive field of 400 samples (25 ms). ``notes["mel_hz"]`` holds the band centres.
* ``encoder.lstm1``, ``encoder.lstm2``, ``encoder.lstm3``: ``BCT`` ``[B, 256, T]``, each layer's hidden
  state ``h_t``. The receptive field is unbounded (the whole past: the recurrence carries every earlier
  frame); the frame rate is the step rate, 100 steps/s.
* ``head.embedding``: ``BCT`` ``[B, 256, 1]``, ``ReLU(W h_T + b)`` of the last frame of ``encoder.lstm3``,
  before the L2 normalisation. One frame per clip: no stride, and it reads the whole clip.

The model's output (``forward``, ``resume``) is the unit-norm embedding ``[B, 256]``: exactly the
package's ``VoiceEncoder.forward`` applied to the whole clip's mel spectrogram, i.e. the clip taken as a
single partial utterance. The package's ``embed_utterance`` instead cuts the mel spectrogram into
160-frame (1.6 s) partial utterances, embeds each and averages; :meth:`ResemblyzerModel.embed_utterance`
reproduces it with the same modules. The two agree when the clip is one partial long; for other lengths
they are different functions of the clip (the network was trained on 1.6 s partials, so clips of about
that length are where ``forward`` is most like the published use).

The network is rebuilt here, since importing ``resemblyzer`` imports ``webrtcvad``; the weights come from
``resemblyzer/pretrained.pt`` in the installed package (``pip install --no-deps resemblyzer==0.1.4``),
read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import get_window
from torch import nn

from ontoscope.errors import ConfigError
from ontoscope.models.adapters._common import check_clips, freeze, package_file
from ontoscope.models.frontend import hz_to_mel, mel_filterbank, mel_to_hz
from ontoscope.models.protocol import Site, StagedModel

__all__ = ["ResemblyzerModel", "load_resemblyzer", "resemblyzer_weights"]

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
HIDDEN = 256
EMBEDDING = 256
LAYERS = 3
PARTIAL_FRAMES = 160  # 1.6 s
TARGET_DBFS = -30.0


def resemblyzer_weights() -> Path:
    """Path of ``pretrained.pt`` inside the installed ``resemblyzer`` package (found without importing it)."""
    return package_file("resemblyzer", "pretrained.pt", what="Resemblyzer weights",
                        install="pip install --no-deps resemblyzer==0.1.4")


class _MelPower(nn.Module):
    """Audio ``[B, N]`` -> mel power ``[B, 40, 1 + N // 160]`` (librosa's ``melspectrogram`` with its defaults)."""

    def __init__(self) -> None:
        super().__init__()
        self.n_fft = N_FFT
        self.hop = HOP
        window = get_window("hann", N_FFT, fftbins=True)
        self.register_buffer("window", torch.from_numpy(window).float(), persistent=False)
        self.register_buffer("filters", torch.from_numpy(mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS)),
                             persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant",
                          return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2
        return torch.einsum("mf,bft->bmt", self.filters, power)


class _RecurrentLayer(nn.Module):
    """One LSTM layer over ``[B, C, T]`` -> hidden states ``[B, 256, T]``."""

    def __init__(self, n_in: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_in, HIDDEN, 1, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x.transpose(1, 2))
        return y.transpose(1, 2)


class _Embed(nn.Module):
    """The last frame of ``[B, 256, T]`` -> ``ReLU(linear)`` ``[B, 256, 1]`` (before L2 normalisation)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(HIDDEN, EMBEDDING)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.linear(x[:, :, -1])).unsqueeze(-1)


class ResemblyzerModel(StagedModel):
    """Resemblyzer as an :class:`AudioModel`; see the module docstring for sites and outputs.

    ``normalize`` applies ``preprocess_wav``'s increase-only volume normalisation to -30 dBFS before the
    mel spectrogram (in :meth:`forward` and :meth:`embed_utterance` alike). Use :func:`load_resemblyzer`
    for the published weights.
    """

    sample_rate = SAMPLE_RATE
    output = "embedding"

    def __init__(self, *, normalize: bool = True) -> None:
        edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
        mel_notes = {"units": "mel power (|STFT|^2 through Slaney mel filters), not log", "n_fft": N_FFT,
                     "hop": HOP, "window": "hann", "mel_hz": [float(f) for f in edges[1:-1]],
                     "volume_normalisation": f"{TARGET_DBFS:g} dBFS, increase only, per clip" if normalize
                     else "none"}
        rnn = {"stride": HOP, "receptive_field": None, "global_context": True}
        stages: list[tuple[Site, nn.Module]] = [
            (Site("encoder.mel", "BCT", N_MELS, role="encoder", stride=HOP, receptive_field=N_FFT, notes=mel_notes),
             nn.Identity())]
        for i in range(LAYERS):
            notes = {"units": "LSTM hidden state h_t", "causal": True,
                     "receptive_field": "unbounded: the whole past, one step per 10 ms frame"}
            stages.append((Site(f"encoder.lstm{i + 1}", "BCT", HIDDEN, role="encoder", **rnn, notes=notes),
                           _RecurrentLayer(N_MELS if i == 0 else HIDDEN)))
        head_notes = {"units": "ReLU(linear(h_T)) of lstm3's last frame, before L2 normalisation",
                      "frames": "one per clip"}
        stages.append((Site("head.embedding", "BCT", EMBEDDING, role="head", stride=None, receptive_field=None,
                            global_context=True, notes=head_notes), _Embed()))
        super().__init__(stages)
        self.mel = _MelPower()
        self.normalize = bool(normalize)

    # ------------------------------------------------------------------ audio to first stage
    def normalize_volume(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio`` ``[B, N]`` scaled per clip so that its RMS is at least -30 dBFS (``preprocess_wav``'s gain)."""
        rms = audio.pow(2).mean(-1, keepdim=True).sqrt()
        target = 10.0 ** (TARGET_DBFS / 20.0)
        gain = torch.clamp(target / rms.clamp_min(1e-12), min=1.0)
        return audio * gain

    def preprocess(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, N]`` at 16 kHz (N >= 400) -> mel power ``[B, 40, 1 + N // 160]``."""
        check_clips(audio, min_samples=N_FFT, who="Resemblyzer", sample_rate=SAMPLE_RATE)
        if self.normalize:
            audio = self.normalize_volume(audio)
        return self.mel(audio)

    def postprocess(self, out: torch.Tensor) -> torch.Tensor:
        """``[B, 256, 1]`` -> the unit-norm embedding ``[B, 256]``."""
        return F.normalize(out.squeeze(-1), dim=1)

    # ------------------------------------------------------------------ partial utterances
    @staticmethod
    def partial_starts(n_samples: int, *, rate: float = 1.3, min_coverage: float = 0.75) -> list[int]:
        """First mel frame of each 160-frame partial utterance of a clip of ``n_samples`` samples.

        The package's ``VoiceEncoder.compute_partial_slices``: partials every ``round(16000 / rate / 160)``
        frames, the last kept only if the clip covers at least ``min_coverage`` of it (always at least one).
        """
        if not 0 < min_coverage <= 1:
            raise ConfigError(f"min_coverage must be in (0, 1], got {min_coverage}")
        n_frames = math.ceil((n_samples + 1) / HOP)
        frame_step = int(np.round(SAMPLE_RATE / rate / HOP))
        if not 0 < frame_step <= PARTIAL_FRAMES:
            raise ConfigError(f"rate must give a step of 1 to {PARTIAL_FRAMES} frames between partials "
                              f"(rate from {SAMPLE_RATE / HOP / PARTIAL_FRAMES:g} to about 100 per second), "
                              f"got {rate}")
        steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
        starts = list(range(0, steps, frame_step))
        last = starts[-1] * HOP
        coverage = (n_samples - last) / (PARTIAL_FRAMES * HOP)
        if coverage < min_coverage and len(starts) > 1:
            starts = starts[:-1]
        return starts

    def embed_utterance(self, audio: torch.Tensor, *, rate: float = 1.3, min_coverage: float = 0.75,
                        return_partials: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The package's ``embed_utterance`` for each clip of ``audio`` ``[B, N]``: ``[B, 256]``.

        The (volume-normalised) clip is zero-padded to the end of its last partial, its mel spectrogram
        cut into 160-frame partials starting at :meth:`partial_starts`, each embedded by the network
        (``encoder.mel`` site onwards), and the mean of the unit-norm partial embeddings L2-normalised. With
        ``return_partials`` the partial embeddings ``[B, P, 256]`` come too.
        """
        check_clips(audio, min_samples=1, who="Resemblyzer", sample_rate=SAMPLE_RATE)
        n = audio.shape[-1]
        starts = self.partial_starts(n, rate=rate, min_coverage=min_coverage)
        if self.normalize:
            audio = self.normalize_volume(audio)
        stop = (starts[-1] + PARTIAL_FRAMES) * HOP
        audio = F.pad(audio, (0, max(0, stop - n)))
        mel = self.mel(audio)
        parts = torch.stack([mel[:, :, s:s + PARTIAL_FRAMES] for s in starts], dim=1)
        b, p = parts.shape[:2]
        partial = self.resume(parts.reshape(b * p, N_MELS, PARTIAL_FRAMES), "encoder.mel").reshape(b, p, EMBEDDING)
        embed = F.normalize(partial.mean(1), dim=1)
        return (embed, partial) if return_partials else embed

    # ------------------------------------------------------------------ weights
    def load_resemblyzer_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load the package's ``model_state`` (``lstm.*_l{0,1,2}``, ``linear.*``; the GE2E similarity scale
        and bias are training-only and ignored)."""
        mine: dict[str, torch.Tensor] = {}
        for i in range(LAYERS):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                mine[f"stages.{i + 1}.lstm.{kind}_l0"] = state[f"lstm.{kind}_l{i}"]
        for key in ("weight", "bias"):
            mine[f"stages.{LAYERS + 1}.linear.{key}"] = state[f"linear.{key}"]
        self.load_state_dict(mine, strict=True)


def load_resemblyzer(*, normalize: bool = True, weights: str | Path | None = None) -> ResemblyzerModel:
    """Resemblyzer with its packaged weights (or a ``pretrained.pt``-style file), frozen, in eval mode."""
    path = resemblyzer_weights() if weights is None else Path(weights)
    if not path.is_file():
        raise ConfigError(f"no Resemblyzer weights at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("model_state") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"{path} is not a Resemblyzer checkpoint (no model_state)")
    model = ResemblyzerModel(normalize=normalize)
    model.load_resemblyzer_state(state)
    return freeze(model)
