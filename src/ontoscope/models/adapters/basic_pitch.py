"""Basic Pitch note and multipitch transcriber (Bittner, Bosch, Rubinstein, Meseguer-Brocal & Ewert 2022,
"A Lightweight Instrument-Agnostic Model for Polyphonic Note Transcription and Multipitch Estimation",
ICASSP), with the published ``icassp_2022`` weights.

What is computed, frame by frame (22 050 Hz input, hop 256 samples, about 86.13 frames/s; ``T = 1 + N // 256``):

1. A constant-Q transform in the style of nnAudio's ``CQT2010v2``: 309 bins, 36 per octave (3 per
   semitone) from 27.5 Hz (A0). One set of 36 complex kernels (256 taps, Hann-windowed, L1-normalised,
   built for the top octave at 22 050 Hz) is applied to the audio and to eight successively decimated
   copies of it: each decimation is a 256-tap FIR low-pass at half the current Nyquist (transition band
   0.1 %, far narrower than 256 taps can realise, so some aliasing passes) followed by keeping every other
   sample; the hop halves with the rate, so every octave gives the same frames. The octaves are stacked
   lowest first, the bottom 15 bins dropped, each bin scaled by the square root of its kernel length
   (librosa's scaling) and turned into power in dB, ``10 log10(|X|^2 + 1e-10)``.
2. The clip's dB values are scaled to [0, 1] by their minimum and maximum over all bins and frames (the
   package's ``NormalizedLog``; it runs 2 s windows, so there the statistics are per window), then a
   batch norm with one channel, then *harmonic stacking*: eight copies of the spectrum shifted down by
   ``round(36 log2 h)`` bins for ``h = 0.5, 1, 2, ..., 7`` (so bin ``k`` of copy ``h`` holds the energy at
   ``h`` times bin ``k``'s frequency), cropped to the 264 bins of 88 piano keys (3 per semitone).
3. Contour branch: a 3-frame by 39-bin convolution to 8 channels (batch norm folded in) and ReLU, then a
   5 x 5 convolution to one channel and a sigmoid: the *contour* posteriorgram, 264 bins. The trained network
   puts a tone of ``f`` Hz at contour bin ``1 + 36 log2(f / 27.5)``: bin ``3m + 1`` is the centre of key ``m``
   (the annotation convention ``constants.py`` describes), one bin above the CQT bin of the same frequency
   and above the package's ``FREQ_BINS_CONTOURS`` table. Harmonic tones from 55 Hz to 1.5 kHz peak there.
4. Note branch: on the contour, a 7 x 7 convolution with frequency stride 3 to 32 channels and ReLU, then a
   7-frame by 3-bin convolution to one channel and a sigmoid: the *note* posteriorgram, 88 keys (MIDI 21-108).
5. Onset branch: on the harmonic stack, a 5 x 5 convolution with frequency stride 3 to 32 channels (batch
   norm folded in) and ReLU; concatenated with the note posteriorgram, a 3 x 3 convolution and a sigmoid:
   the *onset* posteriorgram, 88 keys.

Sites (``stride`` 256 samples at every site: 86.13 frames/s at 22 050 Hz)
-------------------------------------------------------------------------
The graph branches (the note branch reads the contour, the onset branch reads the harmonic stack), so each
site is one tensor that carries what later stages read, concatenated along channels; ``notes["blocks"]``
names the channel ranges. Where a 264-bin plane is carried at an 88-key site, it is folded: fine bin
``3k + j`` of plane ``p`` sits at key ``k`` in channel ``start + 3p + j``.

* ``encoder.cqt``: ``BCFT`` ``[B, 1, 309, T]``, power in dB; bin ``k`` at ``27.5 * 2 ** (k / 36)`` Hz.
  ``notes["octaves"]`` gives each octave's bins, decimations, sample rate and hop at that rate.
* ``encoder.harmonic_stack``: ``BCFT`` ``[B, 8, 264, T]``, channel ``c`` the copy for harmonic ``(0.5, 1, ..., 7)[c]``.
* ``encoder.contour_conv``: ``BCFT`` ``[B, 16, 264, T]``: 0-7 the contour features, 8-15 the harmonic stack.
* ``encoder.contour``: ``BCFT`` ``[B, 9, 264, T]``: 0 the contour posteriorgram, 1-8 the harmonic stack; a place
  axis along frequency (``notes["place"]``, 33.3 cents per bin).
* ``encoder.note_conv``: ``BCFT`` ``[B, 59, 88, T]``: 0-31 the note features, 32-34 the contour, 35-58 the stack
  (folded).
* ``encoder.note``: ``BCFT`` ``[B, 28, 88, T]``: 0 the note posteriorgram, 1-3 the contour, 4-27 the stack (folded).
* ``encoder.onset_conv``: ``BCFT`` ``[B, 36, 88, T]``: 0-31 the onset features, 32 the note posteriorgram, 33-35 the
  contour (folded).
* ``head``: ``BCT`` ``[B, 440, T]``: channels 0-263 contour, 264-351 note, 352-439 onset posteriorgrams.

Receptive fields (input samples, the conv path; ``Site.receptive_field``): the CQT's lowest kept bin reads
eight cascaded low-pass filters (``1 + 255 * 255`` samples) and a 161-tap kernel at stride 256, in all
105 986 samples (4.81 s; the top octave's bins read 109 to 215 samples); every later site adds
``256 * (k - 1)`` for each time kernel ``k`` on its longest path: contour_conv 106 498, contour 107 522,
note_conv 109 058, note and onset_conv 110 594, output 111 106. (The onset branch runs beside the note
branch; a trace of the chain that adds its 5-frame kernel in series gives 1 024 more at ``encoder.onset_conv``
and ``head``.) The per-clip normalisation also lets every frame see the whole clip a little (its
minimum and maximum), which the receptive field leaves out.

``resume`` returns ``[B, 2, T]``: the f0 in Hz, from the contour by a local weighted argmax (the salience-
weighted mean bin of the bins less than a semitone from the peak, ``27.5 * 2 ** ((bin - 1) / 36)`` Hz), and
the peak contour salience as confidence. On steady harmonic tones from 55 Hz to 1 kHz the f0 is within
8 cents, tones between bins included. :meth:`BasicPitchModel.posteriorgrams` gives the three posteriorgrams.

Clips shorter than the published window, ``AUDIO_N_SAMPLES`` = 43 844 samples (2 s less one hop, 172 frames,
the only length the ONNX graph takes), are zero-filled to it on the right before the CQT, as the package fills
its last window, and the frames are cropped back to ``1 + N // 256``, so the network reads the clip's frames
only (the package's per-window normalisation and 2-D convolutions also see the silence after a short clip, which
moves its posteriorgrams by up to about 1e-3). The fill is needed because the lowest octave runs at 1/256 of the
rate and its reflect padding (128 samples there) needs at least ``MIN_SAMPLES`` = 33 024 input samples.
Longer clips run whole (the package would cut them into overlapping windows). The CQT runs in
:meth:`BasicPitchModel.preprocess`, so the ``encoder.cqt`` site already has the cropped frames. The weights are
read from the ONNX graph ``basic_pitch/saved_models/icassp_2022/nmp.onnx`` of the installed package
(``pip install --no-deps basic-pitch==0.4.0``), located without importing it (its ``__init__`` wants
tensorflow), by a small protobuf reader: the ``onnx`` package is not needed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ontoscope.errors import ConfigError
from ontoscope.models.adapters._common import Step, check_clips, freeze, package_file
from ontoscope.models.adapters._onnx import read_onnx
from ontoscope.models.protocol import Site, StagedModel

__all__ = ["AUDIO_N_SAMPLES", "CONTOUR_FMIN", "MIN_SAMPLES", "BasicPitchModel", "basic_pitch_onnx",
           "load_basic_pitch"]

SAMPLE_RATE = 22050
HOP = 256
AUDIO_N_SAMPLES = 2 * SAMPLE_RATE - HOP  # the package's window: 43 844 samples, 172 frames
FMIN = 27.5
BINS_PER_SEMITONE = 3
BINS_PER_OCTAVE = 12 * BINS_PER_SEMITONE
N_CQT_BINS = 309  # 103 semitones: 88 keys + 36 bins for the harmonics, capped below Nyquist
N_OCTAVES = 9
N_CONTOUR_BINS = 264
N_KEYS = 88
HARMONICS = (0.5, 1, 2, 3, 4, 5, 6, 7)
TAPS = 256  # CQT kernel and decimation filter length
MIN_SAMPLES = (TAPS // 2 + 1) * 2 ** (N_OCTAVES - 1)  # 33 024
CONTOUR_FMIN = FMIN * 2.0 ** (-1 / BINS_PER_OCTAVE)  # what the trained contour's bin 0 means (26.97 Hz)
_LOG10_E = 0.4342944622039795
_EPS = 1e-10
_FIX = "pip install --no-deps basic-pitch==0.4.0"


# ----------------------------------------------------------------- weights
def basic_pitch_onnx() -> Path:
    """Path of ``saved_models/icassp_2022/nmp.onnx`` inside the installed ``basic_pitch`` package (not imported)."""
    return package_file("basic_pitch", "saved_models/icassp_2022/nmp.onnx", what="Basic Pitch weights",
                        install=_FIX)


def _weights(nodes: list[dict], inits: dict[str, np.ndarray]) -> dict[str, dict]:
    """The named layers of the Basic Pitch graph, found by their role in it (shapes and what reads them)."""
    readers: dict[str, list[dict]] = {}
    for n in nodes:
        for name in n["inputs"]:
            readers.setdefault(name, []).append(n)
    out: dict[str, dict] = {}
    conv2d = {(8, 8, 3, 39): "contour_conv", (1, 8, 5, 5): "contour", (32, 1, 7, 7): "note_conv",
              (1, 32, 7, 3): "note", (32, 8, 5, 5): "onset_conv", (1, 33, 3, 3): "onset"}
    for n in nodes:
        if n["op"] == "Conv":
            w = inits.get(n["inputs"][1])
            b = inits.get(n["inputs"][2]) if len(n["inputs"]) > 2 else None
            if w is None or b is None:
                continue
            layer = {"weight": w, "bias": b, "strides": n["attrs"].get("strides"), "pads": n["attrs"].get("pads")}
            if w.shape == (1, 1, 1, TAPS):
                out["lowpass"] = layer
            elif w.shape == (BINS_PER_OCTAVE, 1, 1, TAPS):
                negated = any(r["op"] == "Neg" for r in readers.get(n["outputs"][0], []))
                out["cqt_imag" if negated else "cqt_real"] = layer
            elif tuple(w.shape) in conv2d:
                out[conv2d[tuple(w.shape)]] = layer
        elif n["op"] == "Mul":
            consts = [inits[i] for i in n["inputs"] if i in inits]
            if consts and consts[0].shape == (N_CQT_BINS, 1, 1):
                out["cqt_scale"] = {"weight": consts[0]}
            elif consts and consts[0].shape == (1,) and consts[0].dtype == np.float32:
                add = next((r for r in readers.get(n["outputs"][0], []) if r["op"] == "Add"), None)
                shift = [inits[i] for i in add["inputs"] if i in inits] if add is not None else []
                if shift:
                    out["batch_norm"] = {"weight": consts[0], "bias": shift[0]}
    need = {"lowpass", "cqt_real", "cqt_imag", "cqt_scale", "batch_norm", *conv2d.values()}
    if not need <= out.keys():
        raise ConfigError(f"the Basic Pitch ONNX file lacks {sorted(need - out.keys())}; reinstall it with `{_FIX}`")
    return out


# ----------------------------------------------------------------- the network
def _fold(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, 264, T]`` -> ``[B, 3C, 88, T]``: fine bin ``3k + j`` of plane ``c`` to key ``k``, channel ``3c + j``."""
    b, c, f, t = x.shape
    return x.reshape(b, c, f // 3, 3, t).permute(0, 1, 3, 2, 4).reshape(b, 3 * c, f // 3, t)


def _unfold(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_fold`: ``[B, 3C, 88, T]`` -> ``[B, C, 264, T]``."""
    b, c3, k, t = x.shape
    return x.reshape(b, c3 // 3, 3, k, t).permute(0, 1, 3, 2, 4).reshape(b, c3 // 3, 3 * k, t)


class _MultiRateCQT(nn.Module):
    """Audio ``[B, 1, N]`` -> dB power ``[B, 1, 309, 1 + N // 256]`` (nnAudio ``CQT2010v2`` as Basic Pitch runs it).

    ``hop`` and ``lengths`` (each bin's support in input samples, decimation chain included) are the
    front-end geometry the operator analysis reads.
    """

    def __init__(self, w: dict[str, dict]) -> None:
        super().__init__()
        real, imag = w["cqt_real"]["weight"][:, 0, 0], w["cqt_imag"]["weight"][:, 0, 0]  # [36, 256]
        kernels = torch.from_numpy(np.concatenate([real, imag])).float().unsqueeze(1)
        bias = torch.from_numpy(np.concatenate([w["cqt_real"]["bias"], w["cqt_imag"]["bias"]])).float()
        self.register_buffer("kernels", kernels, persistent=False)
        self.register_buffer("kernel_bias", bias, persistent=False)
        self.register_buffer("lowpass", torch.from_numpy(w["lowpass"]["weight"][0, 0, 0]).float().view(1, 1, -1),
                             persistent=False)
        self.register_buffer("lowpass_bias", torch.from_numpy(w["lowpass"]["bias"]).float(), persistent=False)
        self.register_buffer("scale", torch.from_numpy(w["cqt_scale"]["weight"].reshape(-1)).float().view(1, -1, 1),
                             persistent=False)
        self.hop = HOP
        self.n_bins = N_CQT_BINS
        spans = np.array([np.ptp(np.flatnonzero(np.abs(real[j]) + np.abs(imag[j]))) + 1 for j in range(len(real))])
        lengths = []
        for octave in range(N_OCTAVES):  # lowest first
            d = N_OCTAVES - 1 - octave  # decimations
            lengths += [1 + (TAPS - 1) * (2 ** d - 1) + (int(s) - 1) * 2 ** d for s in spans]
        self.lengths = np.asarray(lengths[-N_CQT_BINS:])
        self.octaves = self._octave_notes()

    def _octave_notes(self) -> list[dict]:
        """Per octave, lowest first: its bins ``[lo, hi)``, decimations, sample rate, hop there, bin supports."""
        drop = N_OCTAVES * BINS_PER_OCTAVE - N_CQT_BINS
        out = []
        for octave in range(N_OCTAVES):
            d = N_OCTAVES - 1 - octave
            lo = max(octave * BINS_PER_OCTAVE - drop, 0)
            hi = (octave + 1) * BINS_PER_OCTAVE - drop
            out.append({"bins": [lo, hi], "decimations": d, "sample_rate": SAMPLE_RATE / 2 ** d,
                        "decimation_stride": 2 ** d, "hop_at_rate": HOP // 2 ** d, "stride": HOP,
                        "support_samples": [int(self.lengths[lo:hi].min()), int(self.lengths[lo:hi].max())]})
        return out

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        pad = TAPS // 2
        reals, imags = [], []
        x = audio
        for d in range(N_OCTAVES):
            if d:
                x = F.conv1d(F.pad(x, ((TAPS - 1) // 2, (TAPS - 1) // 2)), self.lowpass, self.lowpass_bias, stride=2)
            c = F.conv1d(F.pad(x, (pad, pad), mode="reflect"), self.kernels, self.kernel_bias, stride=HOP >> d)
            reals.insert(0, c[:, :BINS_PER_OCTAVE])
            imags.insert(0, c[:, BINS_PER_OCTAVE:])
        re = torch.cat(reals, 1)[:, -N_CQT_BINS:] * self.scale
        im = torch.cat(imags, 1)[:, -N_CQT_BINS:] * self.scale
        power = re * re + im * im
        return (torch.log(power + _EPS) * _LOG10_E * 10.0).unsqueeze(1)


def _conv2d(layer: dict) -> nn.Conv2d:
    """An ONNX ``Conv`` over ``[B, C, T, F]`` as an ``nn.Conv2d`` over ``[B, C, F, T]`` (kernel, stride, pads swapped).
    """
    w = torch.from_numpy(layer["weight"]).float().transpose(2, 3).contiguous()
    st, sf = layer["strides"] or (1, 1)
    pt0, pf0, pt1, pf1 = layer["pads"] or (0, 0, 0, 0)
    if (pt0, pf0) != (pt1, pf1):
        raise ConfigError(f"the Basic Pitch ONNX file has an asymmetric convolution padding; reinstall it with "
                          f"`{_FIX}`")
    conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=(sf, st), padding=(pf0, pt0))
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(torch.from_numpy(layer["bias"]).float())
    return conv


def _shifts() -> list[int]:
    return [int(round(BINS_PER_OCTAVE * math.log2(h))) for h in HARMONICS]


def _local_argmax(salience: torch.Tensor, radius: int) -> torch.Tensor:
    """Salience-weighted mean bin ``[B, T]`` of the bins within ``radius`` of the peak of ``[B, K, T]``."""
    k = salience.shape[1]
    centre = salience.argmax(dim=1, keepdim=True)
    offsets = torch.arange(-radius, radius + 1, device=salience.device).view(1, -1, 1)
    idx = centre + offsets
    valid = (idx >= 0) & (idx < k)
    w = salience.gather(1, idx.clamp(0, k - 1)) * valid
    return (w * idx.to(salience.dtype)).sum(1) / w.sum(1).clamp_min(1e-12)


class BasicPitchModel(StagedModel):
    """Basic Pitch as an :class:`AudioModel`; see the module docstring for sites and outputs.

    Built from the layers of the published ONNX graph (:func:`read_onnx`); use :func:`load_basic_pitch`.
    ``encode`` takes ``[B, N]`` audio at 22 050 Hz (any ``N >= 1``) and gives ``T = 1 + N // 256`` frames.
    """

    sample_rate = SAMPLE_RATE
    output = "pitch"

    def __init__(self, weights: dict[str, dict]) -> None:
        cqt = _MultiRateCQT(weights)
        convs = nn.ModuleDict({name: _conv2d(weights[name]) for name in
                               ("contour_conv", "contour", "note_conv", "note", "onset_conv", "onset")})
        bn = weights["batch_norm"]
        shifts = _shifts()
        rf0 = int(cqt.lengths.max())
        place_fine = {"dim": "freq", "start": 0, "stop": N_CONTOUR_BINS, "cents_per_step": 100 / BINS_PER_SEMITONE}
        place_keys = {"dim": "freq", "start": 0, "stop": N_KEYS, "cents_per_step": 100.0}
        norm_note = ("every clip is scaled by its own dB minimum and maximum over all bins and frames, so each "
                     "frame also depends a little on the whole clip; receptive_field is the conv path's")
        branches = ("the onset features read the harmonic stack beside the note branch; receptive_field is the "
                    "longest path, not the chain's sum")
        fold_note = "a 264-bin plane p in a block starting at channel s: fine bin 3k + j at key k, channel s + 3p + j"

        def site(name: str, layout: str, channels: int, frames: int, freq: int | None, **notes: object) -> Site:
            return Site(name if name == "head" else f"encoder.{name}", layout, channels,
                        role="head" if name == "head" else "encoder", stride=HOP,
                        receptive_field=rf0 + HOP * frames, freq_bins=freq, notes=dict(notes))

        def harmonic_stack(db: torch.Tensor) -> torch.Tensor:
            lo = db.amin(dim=(1, 2, 3), keepdim=True)
            offset = db - lo
            hi = offset.amax(dim=(1, 2, 3), keepdim=True)
            x = torch.where(hi == 0, torch.zeros_like(offset), offset / torch.where(hi == 0, torch.ones_like(hi), hi))
            x = x * self.bn_scale + self.bn_shift
            planes = []
            for s in shifts:
                if s > 0:
                    planes.append(F.pad(x[:, :, s:], (0, 0, 0, s)))
                elif s < 0:
                    planes.append(F.pad(x[:, :, :s], (0, 0, -s, 0)))
                else:
                    planes.append(x)
            return torch.cat(planes, 1)[:, :, :N_CONTOUR_BINS]

        def contour_conv(h: torch.Tensor) -> torch.Tensor:
            return torch.cat([F.relu(convs["contour_conv"](h)), h], 1)

        def contour(z: torch.Tensor) -> torch.Tensor:
            return torch.cat([torch.sigmoid(convs["contour"](z[:, :8])), z[:, 8:]], 1)

        def note_conv(z: torch.Tensor) -> torch.Tensor:
            return torch.cat([F.relu(convs["note_conv"](z[:, :1])), _fold(z[:, :1]), _fold(z[:, 1:])], 1)

        def note(z: torch.Tensor) -> torch.Tensor:
            return torch.cat([torch.sigmoid(convs["note"](z[:, :32])), z[:, 32:]], 1)

        def onset_conv(z: torch.Tensor) -> torch.Tensor:
            return torch.cat([F.relu(convs["onset_conv"](_unfold(z[:, 4:]))), z[:, :4]], 1)

        def output(z: torch.Tensor) -> torch.Tensor:
            onset = torch.sigmoid(convs["onset"](torch.cat([z[:, 32:33], z[:, :32]], 1)))
            return torch.cat([_unfold(z[:, 33:36])[:, 0], z[:, 32], onset[:, 0]], 1)

        octaves = cqt.octaves
        stages = [
            (site("cqt", "BCFT", 1, 0, N_CQT_BINS, units="dB, 10 log10(|X|^2 + 1e-10)", fmin_hz=FMIN,
                  bins_per_octave=BINS_PER_OCTAVE, octaves=octaves, kernel_taps=TAPS, lowpass_taps=TAPS,
                  lowpass="FIR, cutoff at half the current Nyquist, transition band 0.1 %, then every other sample",
                  decimation_rates=[o["sample_rate"] for o in octaves],
                  place={"dim": "freq", "start": 0, "stop": N_CQT_BINS, "cents_per_step": 100 / BINS_PER_SEMITONE}),
             nn.Identity()),
            (site("harmonic_stack", "BCFT", 8, 0, N_CONTOUR_BINS, harmonics=list(HARMONICS), shifts=shifts,
                  fmin_hz=FMIN, bins_per_octave=BINS_PER_OCTAVE, clip_normalised=norm_note, place=place_fine),
             Step(harmonic_stack, "normalise, batch norm, harmonic stacking")),
            (site("contour_conv", "BCFT", 16, 2, N_CONTOUR_BINS, blocks={"contour_conv": [0, 8],
                  "harmonic_stack": [8, 16]}, fmin_hz=FMIN, bins_per_octave=BINS_PER_OCTAVE,
                  clip_normalised=norm_note, place=place_fine), Step(contour_conv, "3 x 39 conv, ReLU")),
            (site("contour", "BCFT", 9, 6, N_CONTOUR_BINS, blocks={"contour": [0, 1], "harmonic_stack": [1, 9]},
                  units="channel 0: sigmoid contour salience, bin i at 27.5 * 2 ** ((i - 1) / 36) Hz",
                  fmin_hz=CONTOUR_FMIN,
                  bins_per_octave=BINS_PER_OCTAVE, clip_normalised=norm_note, place=place_fine),
             Step(contour, "5 x 5 conv, sigmoid")),
            (site("note_conv", "BCFT", 59, 12, N_KEYS, blocks={"note_conv": [0, 32], "contour": [32, 35],
                  "harmonic_stack": [35, 59]}, folding=fold_note, fmin_hz=FMIN, bins_per_octave=12,
                  clip_normalised=norm_note, place=place_keys), Step(note_conv, "7 x 7 conv, stride 3 in freq, ReLU")),
            (site("note", "BCFT", 28, 18, N_KEYS, blocks={"note": [0, 1], "contour": [1, 4], "harmonic_stack": [4, 28]},
                  folding=fold_note, units="channel 0: sigmoid note salience, key k is MIDI 21 + k", fmin_hz=FMIN,
                  bins_per_octave=12, clip_normalised=norm_note, place=place_keys),
             Step(note, "3 x 7 conv, sigmoid")),
            (site("onset_conv", "BCFT", 36, 18, N_KEYS, blocks={"onset_conv": [0, 32], "note": [32, 33],
                  "contour": [33, 36]}, folding=fold_note, fmin_hz=FMIN, bins_per_octave=12,
                  onset_conv_receptive_field=rf0 + 4 * HOP, clip_normalised=norm_note, branches=branches,
                  place=place_keys),
             Step(onset_conv, "5 x 5 conv on the harmonic stack, stride 3 in freq, ReLU")),
            (site("head", "BCT", N_CONTOUR_BINS + 2 * N_KEYS, 20, None,
                  blocks={"contour": [0, N_CONTOUR_BINS], "note": [N_CONTOUR_BINS, N_CONTOUR_BINS + N_KEYS],
                          "onset": [N_CONTOUR_BINS + N_KEYS, N_CONTOUR_BINS + 2 * N_KEYS]},
                  units="sigmoid posteriorgrams: contour bin i at 27.5 * 2 ** ((i - 1) / 36) Hz, note and onset "
                        "key k MIDI 21 + k", fmin_hz=CONTOUR_FMIN, clip_normalised=norm_note, branches=branches,
                  place={"dim": "channels", "start": 0, "stop": N_CONTOUR_BINS,
                         "cents_per_step": 100 / BINS_PER_SEMITONE}),
             Step(output, "3 x 3 conv on note and onset features, sigmoid")),
        ]
        super().__init__(stages)
        self.cqt = cqt
        self.convs = convs
        self.register_buffer("bn_scale", torch.from_numpy(bn["weight"]).float().view(1, 1, 1, 1))
        self.register_buffer("bn_shift", torch.from_numpy(bn["bias"]).float().view(1, 1, 1, 1))
        self.hop = HOP

    def preprocess(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, N]`` at 22 050 Hz -> the dB CQT ``[B, 1, 309, 1 + N // 256]``, the clip zero-filled to
        ``AUDIO_N_SAMPLES`` first when shorter; a one-line :class:`AudioError` for a bad shape or an empty clip."""
        check_clips(audio, min_samples=1, who="Basic Pitch", sample_rate=SAMPLE_RATE)
        n = audio.shape[-1]
        padded = F.pad(audio, (0, max(0, AUDIO_N_SAMPLES - n)))
        return self.cqt(padded.unsqueeze(1))[..., : 1 + n // HOP]

    def postprocess(self, out: torch.Tensor) -> torch.Tensor:
        """Posteriorgrams ``[B, 440, T]`` -> ``[B, 2, T]``: f0 in Hz from the contour, and its peak salience."""
        contour = out[:, :N_CONTOUR_BINS]
        bins = _local_argmax(contour, BINS_PER_SEMITONE - 1)
        f0 = CONTOUR_FMIN * 2.0 ** (bins / BINS_PER_OCTAVE)
        return torch.stack([f0, contour.amax(dim=1)], dim=1)

    @staticmethod
    def split_output(out: torch.Tensor) -> dict[str, torch.Tensor]:
        """The ``head`` site ``[B, 440, T]`` as ``contour`` ``[B, 264, T]``, ``note`` and ``onset`` ``[B, 88, T]``."""
        return {"contour": out[:, :N_CONTOUR_BINS], "note": out[:, N_CONTOUR_BINS:N_CONTOUR_BINS + N_KEYS],
                "onset": out[:, N_CONTOUR_BINS + N_KEYS:]}

    def posteriorgrams(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """The package's three outputs for ``audio`` ``[B, N]``: ``contour`` ``[B, 264, T]``, ``note`` and
        ``onset`` ``[B, 88, T]`` (channels first; the package gives ``[B, T, bins]``)."""
        return self.split_output(self.encode(audio, "head"))


def load_basic_pitch(*, path: str | Path | None = None) -> BasicPitchModel:
    """Basic Pitch with the published ``icassp_2022`` weights (or the ONNX graph at ``path``), frozen, in eval mode."""
    onnx_path = basic_pitch_onnx() if path is None else Path(path)
    if not onnx_path.is_file():
        raise ConfigError(f"no Basic Pitch ONNX graph at {onnx_path}")
    nodes, inits = read_onnx(onnx_path)
    return freeze(BasicPitchModel(_weights(nodes, inits)))

