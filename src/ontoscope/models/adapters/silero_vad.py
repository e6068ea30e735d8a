"""Silero VAD voice activity detector (Silero Team 2024, "Silero VAD: pre-trained enterprise-grade Voice Activity
Detector (VAD), Number Detector and Language Classifier", https://github.com/snakers4/silero-vad), with the weights
of the ``silero-vad`` 6.2.3 package (MIT), 16 kHz model only.

Silero streams audio in chunks of 512 samples (32 ms, 31.25 chunks per
second). Each chunk is read together with the last 64 samples before it
(its *context*; zeros before the first chunk), so the network sees a
576-sample window per chunk. What is computed, chunk by chunk:

1. A short-time Fourier transform as a convolution with the packaged basis
   (periodic Hann window, 256 points, hop 128) over the window reflect-padded
   by 64 samples on the right: 4 sub-frames of 129 bins (62.5 Hz apart),
   magnitude ``sqrt(re^2 + im^2)``. The magnitude's argument is floored at
   1e-20 so that digital silence has a finite gradient (it moves the
   magnitude by at most 1e-10).
2. Four convolutions along the sub-frames (kernel 3, padding 1, strides 1, 2,
   2, 1; 129 -> 128 -> 64 -> 64 -> 128 channels), each followed by ReLU: 4 ->
   4 -> 2 -> 1 -> 1 sub-frames. The convolutions see one chunk at a time.
3. An LSTM cell (128 units) stepped once per chunk; its state carries over
   from chunk to chunk, starting from zeros at the start of the clip.
4. A decoder: ReLU, a 1x1 convolution to one channel, sigmoid: the
   probability that the chunk holds speech.

A whole clip ``[B, N]`` is processed at once: it is zero-padded on the right
to a multiple of 512 samples (as the package's ``get_speech_timestamps`` and
``audio_forward`` pad their last chunk), cut into ``T = ceil(N / 512)``
overlapping windows, and the convolutional part runs on all chunks of all
clips together (chunks folded into the batch); only the LSTM cell steps over
chunks. The result equals the package's own streaming inference
(``model(chunk, 16000)`` per chunk after ``model.reset_states()``). Chunk ``t``
covers samples ``[512 t, 512 t + 512)`` and reads ``[512 t - 64, 512 t + 512)``.

Sites (``stride`` = 512 samples, 31.25 frames per second at 16 kHz)
------------------------------------------------------------------
The convolutional sites keep the within-chunk axis, as CREPE's adapter keeps
its within-frame axis: ``BCFT`` ``[B, C, L, T]`` where ``T`` is the chunk
axis and the third axis, which the ``BCFT`` layout calls frequency, is the
sub-frame inside the chunk (time, not frequency; one step is
``notes["within_chunk_stride"]`` input samples and one position sees
``notes["within_chunk_rf"]`` of them). Each chunk column sees its 576-sample
window (``receptive_field`` = 576) and nothing else.

* ``encoder.stft``: ``BCFT`` ``[B, 129, 4, T]``, STFT magnitude; channel ``k`` is the
  bin at ``k * 62.5`` Hz, sub-frames 128 samples apart, 256 samples each.
* ``encoder.conv1``: ``BCFT`` ``[B, 128, 4, T]`` (within-chunk stride 128, field 512).
* ``encoder.conv2``: ``BCFT`` ``[B, 64, 2, T]`` (stride 256, field the whole window).
* ``encoder.conv3``: ``BCFT`` ``[B, 64, 1, T]`` (stride 512, the whole window).
* ``encoder.conv4``: ``BCFT`` ``[B, 128, 1, T]`` (the whole window).
* ``encoder.lstm``: ``BCT`` ``[B, 128, T]``, the LSTM cell's hidden state ``h`` after
  each chunk. The frame rate is the step rate, one step per chunk; the
  receptive field is unbounded: the whole past of the clip (causal, so no
  future samples). Editing it changes only the decoder's reading of that
  chunk; the recurrence inside the stage runs on the unedited state.
* ``head``: ``BCT`` ``[B, 1, T]``, the speech probability per chunk
  (whole past, like ``encoder.lstm``).

``forward`` and ``resume`` return the ``head`` site's ``[B, 1, T]``
probabilities. Only 16 kHz is supported (the package's 8 kHz model, with
256-sample chunks, is not rebuilt); callers resample.

The package is located without importing it. Its TorchScript and ONNX models
hold the same weights; they are read here from the initialisers of
``silero_vad/data/silero_vad_16k_op15.onnx`` with a small protobuf reader (no
``onnx`` dependency, no unpickling). The package also ships
``silero_vad_16k.safetensors`` with the same layout but *different* weights
which do not reproduce the package's inference; ``load_silero_vad(weights=
"safetensors")`` loads those instead. Install: ``pip install --no-deps
silero-vad==6.2.3``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ontoscope.errors import ConfigError
from ontoscope.models.adapters._common import Step, check_clips, freeze, package_file
from ontoscope.models.adapters._onnx import read_onnx
from ontoscope.models.protocol import Site, StagedModel

__all__ = ["SileroVadModel", "load_silero_vad", "silero_vad_data", "silero_vad_weights"]

SAMPLE_RATE = 16000
CHUNK = 512
CONTEXT = 64
WINDOW = CHUNK + CONTEXT
N_FFT = 256
HOP = 128
N_BINS = N_FFT // 2 + 1
HIDDEN = 128
_POWER_FLOOR = 1e-20
_INSTALL = "pip install --no-deps silero-vad==6.2.3"
_CONVS = ((N_BINS, 128, 1), (128, 64, 2), (64, 64, 2), (64, 128, 1))  # (in, out, stride), kernel 3, padding 1
_ONNX_NAMES = {
    "stft_conv.weight": "model.stft.forward_basis_buffer",
    **{f"conv{i + 1}.{p}": f"model.encoder.{i}.reparam_conv.{p}" for i in range(4) for p in ("weight", "bias")},
    **{f"lstm_cell.{p}": f"model.decoder.rnn.{p}" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
    "final_conv.weight": "model.decoder.decoder.2.weight",
    "final_conv.bias": "model.decoder.decoder.2.bias",
}
_FILES = {"onnx": "silero_vad_16k_op15.onnx", "safetensors": "silero_vad_16k.safetensors"}


def silero_vad_data(filename: str = _FILES["onnx"]) -> Path:
    """Path of a file in ``silero_vad/data`` of the installed ``silero-vad`` package (found without importing it)."""
    return package_file("silero_vad", f"data/{filename}", what="Silero VAD weights", install=_INSTALL)


def silero_vad_weights(weights: Literal["onnx", "safetensors"] = "onnx") -> dict[str, torch.Tensor]:
    """The 16 kHz model's weights, keyed as in ``silero_vad_16k.safetensors`` (``stft_conv.weight``, ``conv1.*``...).

    ``"onnx"``: from ``silero_vad_16k_op15.onnx``, the weights of the
    package's TorchScript and ONNX models; ``"safetensors"``: the packaged
    safetensors file, whose weights differ from those (see the module docstring).
    """
    if weights not in _FILES:
        raise ConfigError(f"weights must be 'onnx' or 'safetensors', got {weights!r}")
    path = silero_vad_data(_FILES[weights])
    if weights == "safetensors":
        return load_file(str(path), device="cpu")
    raw = {name: torch.from_numpy(array) for name, array in read_onnx(path)[1].items()}
    missing = sorted(v for v in _ONNX_NAMES.values() if v not in raw)
    if missing:
        raise ConfigError(f"{path.name} lacks {', '.join(missing)}; reinstall it with `{_INSTALL}`")
    return {k: raw[v] for k, v in _ONNX_NAMES.items()}


def _chunk_note(stride: int, rf: int, extra: dict | None = None) -> dict:
    """Notes of a within-chunk site; ``frame`` and ``hop`` are the chunk windows the operator analysis traces."""
    return {"freq_axis": "sub-frame within the chunk (time, not frequency)", "within_chunk_stride": stride,
            "within_chunk_rf": min(rf, WINDOW), "chunk": CHUNK, "context": CONTEXT, "window": WINDOW,
            "frame": WINDOW, "hop": CHUNK, **(extra or {})}


class _ChunkLSTM(nn.LSTMCell):
    """The LSTM cell stepped over chunks, written out gate by gate (so forward-mode derivatives run on CPU).

    ``[B, H, 1, T]`` chunk features -> hidden states ``[B, H, T]``, from zero state; same weights and state-dict
    keys as ``nn.LSTMCell`` (PyTorch's gate order i, f, g, o)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        inputs = F.linear(x.squeeze(2).permute(2, 0, 1), self.weight_ih, self.bias_ih)  # [T, B, 4H]
        h = inputs.new_zeros(inputs.shape[1], self.hidden_size)
        c = h
        states = []
        for gates_x in inputs.unbind(0):
            gates = gates_x + F.linear(h, self.weight_hh, self.bias_hh)
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            states.append(h)
        return torch.stack(states, dim=2)


class SileroVadModel(StagedModel):
    """Silero VAD (16 kHz) as an :class:`AudioModel`; see the module docstring for sites and outputs.

    Sites ``encoder.stft``, ``encoder.conv1`` ... ``encoder.conv4``, ``encoder.lstm``, ``head``, one
    frame per 512-sample chunk. ``output = "probability"``: ``resume`` and ``forward``
    return the speech probability ``[B, 1, ceil(N / 512)]``. Built with
    random weights; :func:`load_silero_vad` loads the packaged ones.
    """

    sample_rate = SAMPLE_RATE
    output = "probability"

    def __init__(self) -> None:
        common = {"stride": CHUNK, "receptive_field": WINDOW}
        stages: list[tuple[Site, nn.Module]] = [
            (Site("encoder.stft", "BCFT", N_BINS, role="encoder", freq_bins=4, **common,
                  notes=_chunk_note(HOP, N_FFT, {"bin_hz": SAMPLE_RATE / N_FFT, "n_fft": N_FFT, "stft_hop": HOP})),
             Step(self._stft, "reflect pad, STFT conv (256, hop 128), magnitude")),
        ]
        length, w_stride, w_rf = 4, HOP, N_FFT
        for i, (c_in, c_out, s) in enumerate(_CONVS):
            w_rf += 2 * w_stride
            w_stride *= s
            length = (length + 2 - 3) // s + 1
            site = Site(f"encoder.conv{i + 1}", "BCFT", c_out, role="encoder", freq_bins=length, **common,
                        notes=_chunk_note(w_stride, w_rf))
            label = f"conv{i + 1} ({c_in} -> {c_out}, stride {s}), ReLU"
            stages.append((site, Step(functools.partial(self._conv, i), label)))
        recurrent = {"stride": CHUNK, "receptive_field": None, "global_context": True}
        stages.append((Site("encoder.lstm", "BCT", HIDDEN, role="encoder", **recurrent,
                            notes={"causal": True, "state": "LSTM hidden state h after each chunk", "chunk": CHUNK}),
                       Step(self._lstm, "LSTM cell over chunks")))
        stages.append((Site("head", "BCT", 1, role="head", **recurrent,
                            notes={"units": "speech probability per 512-sample chunk", "causal": True,
                                   "chunk": CHUNK}),
                       Step(self._decode, "ReLU, 1x1 conv, sigmoid")))
        super().__init__(stages)
        self.stft_conv = nn.Conv1d(1, 2 * N_BINS, N_FFT, stride=HOP, bias=False)
        self.conv1, self.conv2, self.conv3, self.conv4 = (nn.Conv1d(c_in, c_out, 3, stride=s, padding=1)
                                                          for c_in, c_out, s in _CONVS)
        self.lstm_cell = _ChunkLSTM(HIDDEN, HIDDEN)
        self.final_conv = nn.Conv1d(HIDDEN, 1, 1)

    def preprocess(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, N]`` at 16 kHz -> chunk windows ``[B, 1, 576, ceil(N / 512)]`` (64 context samples + 512).

        The clip is zero-padded on the right to a multiple of 512 samples and
        preceded by 64 zeros, the context of the first chunk.
        """
        check_clips(audio, min_samples=1, who="Silero VAD", sample_rate=SAMPLE_RATE)  # zero-padded to chunks
        padded = F.pad(audio, (CONTEXT, -audio.shape[-1] % CHUNK))
        return padded.unfold(-1, WINDOW, CHUNK).transpose(1, 2).unsqueeze(1)

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        b, _, length, t = x.shape
        frames = x.permute(0, 3, 1, 2).reshape(b * t, 1, length)
        spec = self.stft_conv(F.pad(frames, (0, CONTEXT), mode="reflect"))
        power = spec[:, :N_BINS] ** 2 + spec[:, N_BINS:] ** 2
        mag = torch.sqrt(power.clamp_min(_POWER_FLOOR))
        return mag.reshape(b, t, N_BINS, -1).permute(0, 2, 3, 1)

    def _conv(self, i: int, x: torch.Tensor) -> torch.Tensor:
        conv = getattr(self, f"conv{i + 1}")
        b, c, length, t = x.shape
        y = F.relu(conv(x.permute(0, 3, 1, 2).reshape(b * t, c, length)))
        return y.reshape(b, t, *y.shape[1:]).permute(0, 2, 3, 1)

    def _lstm(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm_cell(x)

    def _decode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.final_conv(F.relu(x)))


def load_silero_vad(*, weights: Literal["onnx", "safetensors"] = "onnx") -> SileroVadModel:
    """Silero VAD 16 kHz with the packaged weights, frozen, in eval mode.

    ``weights="onnx"`` (default) loads the weights of the package's own
    TorchScript and ONNX models; ``"safetensors"`` the differing weights of
    its ``silero_vad_16k.safetensors`` (see the module docstring).
    """
    model = SileroVadModel()
    model.load_state_dict(silero_vad_weights(weights), strict=True)
    return freeze(model)
