"""PESTO pitch estimator (Riou, Lattner, Hadjeres & Peeters 2023, "PESTO: Pitch Estimation with
Self-supervised Transposition-equivariant Objective", ISMIR), with the published ``mir-1k_g7`` weights.

What is computed, frame by frame (10 ms hop, no temporal downsampling):

1. A constant-Q transform (CQT; 3 bins per semitone from 27.5 Hz, 251 bins,
   variable-Q with ``gamma = 7``), its log power ``ln |X|^2`` cropped to the
   219 bins the encoder reads. Each frame's CQT spans the longest kernel,
   about 2100 samples (130 ms) at 16 kHz.
2. An encoder that works along frequency only: layer norm over the 219 bins,
   a convolution of 39 bins to 40 channels, two residual convolutions of 39
   bins, four 1x1 convolutions (40 -> 30 -> 30 -> 10 -> 3 channels), all with
   leaky ReLU (slope 0.3); then a Toeplitz (frequency-convolutional) linear
   layer to 384 bins and a softmax: a distribution over pitch, 3 bins per
   semitone, shifted by the constant learnt in training so that bin ``i``
   means MIDI pitch ``i / 3``.
3. The pitch: argmax-local weighted average of that distribution (the bins
   less than a semitone from the peak), in semitones, converted to Hz. On a
   steady synthetic tone the distribution is so peaked that the estimate
   snaps to the nearest bin (a third of a semitone), so it can be off by up
   to about 17 cents between bins.

Sites (all with ``stride`` = hop = 160 samples at 16 kHz)
---------------------------------------------------------
* ``encoder.cqt``: ``BCFT`` ``[B, 1, 219, T]``, the encoder's input (natural-log power).
* ``encoder.conv1``, ``encoder.prefilt1``, ``encoder.prefilt2``: ``BCFT`` ``[B, 40, 219, T]``.
* ``encoder.pointwise1`` ... ``encoder.pointwise4``: ``BCFT`` ``[B, 30|30|10|3, 219, T]``.
* ``head``: ``BCT`` ``[B, 384, T]``, the softmax pitch distribution (before the shift).

The ``F`` axis is a true log-frequency axis: bin ``k`` is centred on
``notes["fmin_hz"] * 2 ** (k / 36)`` Hz. ``resume`` returns ``[B, 2, T]``:
f0 in Hz and a confidence, the peak probability of the distribution (PESTO's
own voicing classifier reads the uncropped CQT rather than a site, so it is
offered separately as :meth:`PestoModel.voicing`).

The CQT and network are rebuilt here, since importing ``pesto`` pulls in
torchaudio; the weights come from ``pesto/weights/mir-1k_g7.ckpt`` in the
installed package (``pip install --no-deps pesto-pitch==2.0.1``), unpickled
with ``torch.load(weights_only=True)`` allowing only omegaconf's container
classes (``pip install omegaconf``).
"""

from __future__ import annotations

import collections
import functools
import math
import typing
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import get_window
from torch import nn

from ontoscope.descriptors.validate import as_audio_batch
from ontoscope.errors import AudioError, ConfigError
from ontoscope.models.adapters._common import check_clips, freeze, package_file
from ontoscope.models.protocol import Site, StagedModel
from ontoscope.models.resample import prepare

__all__ = ["PestoModel", "cqt_kernels", "load_pesto", "pesto_checkpoint", "pesto_f0_track", "read_checkpoint"]

SAMPLE_RATE = 16000


def pesto_checkpoint(name: str = "mir-1k_g7") -> Path:
    """Path of a checkpoint shipped inside the installed ``pesto`` package (found without importing it)."""
    return package_file("pesto", f"weights/{name}.ckpt", what="PESTO weights",
                        install="pip install --no-deps pesto-pitch==2.0.1")


def read_checkpoint(path: str | Path) -> dict:
    """A PESTO checkpoint as plain containers, unpickled with ``weights_only=True``.

    Only omegaconf's config classes (and the builtins they hold) are allowed
    besides tensors; anything else in the pickle makes loading fail.
    """
    try:  # optional: omegaconf (the adapters extra), only to read PESTO's checkpoint
        from omegaconf import DictConfig, ListConfig  # noqa: PLC0415  # optional: omegaconf
        from omegaconf.base import ContainerMetadata, Metadata  # noqa: PLC0415  # optional: omegaconf
        from omegaconf.nodes import AnyNode  # noqa: PLC0415  # optional: omegaconf
    except ImportError as e:
        raise ConfigError("reading PESTO checkpoints needs omegaconf: `pip install omegaconf`") from e
    allowed = [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode, typing.Any,
               collections.defaultdict, dict, list, int]
    with torch.serialization.safe_globals(allowed):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return _plain(ckpt)


def _plain(obj: typing.Any) -> typing.Any:
    try:  # optional: omegaconf (the adapters extra), only to read PESTO's checkpoint
        from omegaconf import DictConfig, ListConfig, OmegaConf  # noqa: PLC0415  # optional: omegaconf
    except ImportError:  # pragma: no cover
        return obj
    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=True)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def cqt_kernels(sr: int, fmin: float, n_bins: int, bins_per_octave: int, gamma: float = 0.0,
                filter_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time-domain CQT kernels (the nnAudio construction PESTO uses).

    Bin ``k`` is a Hann-windowed complex exponential at ``fmin * 2**(k / bins_per_octave)``
    Hz, of length ``ceil(Q * sr / (f_k + gamma / alpha))`` samples (variable-Q
    when ``gamma > 0``), L1-normalised and centred in a window of the next
    power of two above the longest kernel.

    Returns ``(kernels [n_bins, width] complex64, lengths [n_bins], freqs [n_bins])``.
    """
    alpha = 2.0 ** (1.0 / bins_per_octave) - 1.0
    q = float(filter_scale) / alpha
    freqs = fmin * 2.0 ** (np.arange(n_bins) / bins_per_octave)
    if freqs.max() > sr / 2:
        raise ConfigError(f"the top CQT bin ({freqs.max():.0f} Hz) is above Nyquist at {sr} Hz")
    lengths = np.ceil(q * sr / (freqs + gamma / alpha))
    width = int(2 ** np.ceil(np.log2(lengths.max())))
    kernels = np.zeros((n_bins, width), dtype=np.complex64)
    for k, (f, n) in enumerate(zip(freqs, lengths, strict=True)):
        n_int = int(n)
        start = int(np.ceil(width / 2.0 - n / 2.0)) - (1 if n_int % 2 == 1 else 0)
        t = np.arange(-(n_int // 2) - (n_int % 2), n_int // 2)  # numpy's r_[-n//2 : n//2] for float n
        sig = get_window("hann", n_int, fftbins=True) * np.exp(1j * 2 * np.pi * f * t / sr) / n
        kernels[k, start:start + n_int] = sig / np.linalg.norm(sig, 1)
    return kernels, lengths, freqs


class _CQT(nn.Module):
    """Audio ``[B, N]`` -> complex CQT as (real, imag) ``[B, 2, n_bins, T]``, centred frames, reflect padding."""

    def __init__(self, sr: int, hop: int, fmin: float, n_bins: int, bins_per_octave: int, gamma: float) -> None:
        super().__init__()
        kernels, lengths, freqs = cqt_kernels(sr, fmin, n_bins, bins_per_octave, gamma)
        weight = torch.from_numpy(np.concatenate([kernels.real, -kernels.imag])).unsqueeze(1)
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("scale", torch.from_numpy(np.sqrt(lengths)).float().view(1, 1, -1, 1),
                             persistent=False)
        self.hop = hop
        self.width = kernels.shape[1]
        self.n_bins = n_bins
        self.freqs = freqs
        self.lengths = lengths

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        pad = self.width // 2
        if audio.shape[-1] <= pad:
            raise AudioError(f"PESTO needs clips longer than {pad} samples ({pad / SAMPLE_RATE * 1000:.0f} ms at "
                             f"16 kHz) for its reflect-padded CQT, got {audio.shape[-1]}")
        x = F.pad(audio.unsqueeze(1), (pad, pad), mode="reflect")
        y = F.conv1d(x, self.weight, stride=self.hop)
        return y.view(audio.shape[0], 2, self.n_bins, -1) * self.scale


class _FrameNet(nn.Module):
    """Apply a per-frame network ``[N, C, F] -> [N, C', F']`` to ``[B, C, F, T]`` (frames folded into the batch)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        y = self.net(x.permute(0, 3, 1, 2).reshape(b * t, c, f))
        return y.reshape(b, t, *y.shape[1:]).permute(0, *range(2, y.ndim + 1), 1)


class _Residual(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + x


class _Toeplitz(nn.Module):
    """PESTO's Toeplitz linear layer: a 1-channel convolution along the flattened features, then softmax."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, n_in + n_out - 1, padding=n_out - 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.conv(x.flatten(1).unsqueeze(1)).squeeze(1), dim=-1)


def _alwa(probs: torch.Tensor, bins_per_semitone: int) -> torch.Tensor:
    """Argmax-local weighted average over ``[B, K, T]``: pitch in semitones ``[B, T]``."""
    k = probs.shape[1]
    centre = probs.argmax(dim=1, keepdim=True)
    offsets = torch.arange(1 - bins_per_semitone, bins_per_semitone, device=probs.device).view(1, -1, 1)
    idx = (centre + offsets).clamp(0, k - 1)
    w = probs.gather(1, idx)
    return (w * idx.to(probs.dtype) / bins_per_semitone).sum(1) / w.sum(1).clamp_min(1e-12)


class PestoModel(StagedModel):
    """PESTO as an :class:`AudioModel`; see the module docstring for sites and outputs.

    Built from a checkpoint's ``hparams`` and ``hcqt_params``; use
    :func:`load_pesto` for the published one. ``hop`` is in samples at 16 kHz.
    """

    sample_rate = SAMPLE_RATE
    output = "pitch"

    def __init__(self, hparams: dict, hcqt: dict, hop: int = 160) -> None:
        enc = dict(hparams["encoder"])
        if list(hcqt.get("harmonics", [1])) != [1]:
            raise ConfigError("only single-harmonic PESTO checkpoints are supported")
        if enc.get("activation_fn", "leaky") != "leaky" or not enc.get("residual", False):
            raise ConfigError("only PESTO encoders with leaky ReLU and residual prefiltering are supported")
        bps = int(hcqt["bins_per_semitone"])
        fmin = float(hcqt["fmin"])
        if hcqt.get("center_bins", True):
            fmin = fmin / 2 ** ((bps - 1) / (24 * bps))
        cqt = _CQT(SAMPLE_RATE, hop, fmin, int(hcqt["n_bins"]), 12 * bps, float(hcqt.get("gamma", 0)))
        crop = hparams["pitch_shift"]
        lo, hi = int(crop["max_steps"]), int(hcqt["n_bins"]) + int(crop["min_steps"])
        n_in = int(enc["n_bins_in"])
        if hi - lo != n_in:
            raise ConfigError(f"CQT crop [{lo}:{hi}] does not give the encoder's {n_in} bins")
        chans = list(enc["n_chan_layers"])
        kernel = int(enc["prefilt_kernel_size"])
        slope = float(enc.get("a_lrelu", 0.3))

        def act() -> nn.Module:
            return nn.LeakyReLU(slope)

        rf_t = int(cqt.lengths.max())
        common = {"stride": hop, "receptive_field": rf_t, "freq_bins": n_in}
        fmin_crop = float(cqt.freqs[lo])

        def note(rf_f: int) -> dict:
            return {"fmin_hz": fmin_crop, "bins_per_octave": 12 * bps, "freq_rf_bins": rf_f, "hop": hop}

        stages: list[tuple[Site, nn.Module]] = []
        stages.append((Site("encoder.cqt", "BCFT", 1, role="encoder", **common, notes=note(1)), nn.Identity()))
        first = nn.Sequential(nn.LayerNorm([int(enc.get("n_chan_input", 1)), n_in]),
                              nn.Conv1d(1, chans[0], kernel, padding=kernel // 2), act())
        rf_f = kernel
        stages.append((Site("encoder.conv1", "BCFT", chans[0], role="encoder", **common, notes=note(rf_f)),
                       _FrameNet(first)))
        for i in range(int(enc["n_prefilt_layers"]) - 1):
            rf_f += kernel - 1
            layer = _Residual(nn.Sequential(nn.Conv1d(chans[0], chans[0], kernel, padding=kernel // 2), act()))
            stages.append((Site(f"encoder.prefilt{i + 1}", "BCFT", chans[0], role="encoder", **common,
                                notes=note(rf_f)), _FrameNet(layer)))
        for i in range(len(chans) - 1):
            layer = nn.Sequential(nn.Conv1d(chans[i], chans[i + 1], 1), act())
            stages.append((Site(f"encoder.pointwise{i + 1}", "BCFT", chans[i + 1], role="encoder", **common,
                                notes=note(rf_f)), _FrameNet(layer)))
        n_out = int(enc["output_dim"])
        head = Site("head", "BCT", n_out, role="head", stride=hop, receptive_field=rf_t,
                    notes={"units": f"softmax over {n_out} pitch bins, {bps} per semitone",
                           "place": {"dim": "channels", "start": 0, "stop": n_out, "cents_per_step": 100 / bps}})
        stages.append((head, _FrameNet(_Toeplitz(n_in * chans[-1], n_out))))
        super().__init__(stages)
        self.cqt = cqt
        self.crop = (lo, hi)
        self.bins_per_semitone = bps
        self.hop = hop
        self.confidence_conv = nn.Conv1d(1, 1, 39, stride=3)
        self.confidence_linear = nn.Linear(72, 1)
        self.register_buffer("shift", torch.zeros(()))

    def _log_power(self, audio: torch.Tensor) -> torch.Tensor:
        """Uncropped ``ln |X|^2`` ``[B, n_bins, T]`` (PESTO's 20 log10 |X| dB times ln(10) / 10)."""
        check_clips(audio, min_samples=1, who="PESTO", sample_rate=SAMPLE_RATE)
        c = self.cqt(audio)
        mag = torch.sqrt(c[:, 0] ** 2 + c[:, 1] ** 2)
        db = 20.0 * torch.log10(mag.clamp_min(torch.finfo(torch.float32).eps))
        return db * (math.log(10.0) / 10.0)

    def preprocess(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, N]`` at 16 kHz -> cropped log-power CQT ``[B, 1, 219, 1 + N // hop]``."""
        lo, hi = self.crop
        return self._log_power(audio)[:, lo:hi].unsqueeze(1)

    def postprocess(self, out: torch.Tensor) -> torch.Tensor:
        """Distribution ``[B, 384, T]`` -> ``[B, 2, T]``: f0 in Hz and the peak probability."""
        probs = out.roll(-round(float(self.shift) * self.bins_per_semitone), dims=1)
        semitones = _alwa(probs, self.bins_per_semitone)
        f0 = 440.0 * 2.0 ** ((semitones - 69.0) / 12.0)
        return torch.stack([f0, probs.amax(dim=1)], dim=1)

    def voicing(self, audio: torch.Tensor) -> torch.Tensor:
        """PESTO's voicing confidence in [0, 1], ``[B, T]``, from the CQT energy (not from a site)."""
        energy = self._log_power(audio).exp()  # |X|^2, [B, n_bins, T]
        b, k, t = energy.shape
        e = energy.permute(0, 2, 1).reshape(b * t, k)
        flatness = e.log().mean(-1, keepdim=True).exp() / e.mean(-1, keepdim=True).clamp_min(1e-8)
        h = F.relu(self.confidence_conv(e.unsqueeze(1)).squeeze(1))
        conf = torch.sigmoid(self.confidence_linear(torch.cat([h, flatness], dim=-1))).squeeze(-1)
        return conf.view(b, t)

    def load_pesto_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load the ``state_dict`` of a PESTO checkpoint (``encoder.*``, ``confidence.*``, ``shift``)."""
        n_pre = sum(1 for s in self._sites if s.name.startswith("encoder.prefilt"))
        n_pw = sum(1 for s in self._sites if s.name.startswith("encoder.pointwise"))
        mine = {"shift": state["shift"],
                "confidence_conv.weight": state["confidence.conv.weight"],
                "confidence_conv.bias": state["confidence.conv.bias"],
                "confidence_linear.weight": state["confidence.linear.weight"],
                "confidence_linear.bias": state["confidence.linear.bias"]}
        for key in ("weight", "bias"):
            mine[f"stages.1.net.0.{key}"] = state[f"encoder.layernorm.{key}"]
            mine[f"stages.1.net.1.{key}"] = state[f"encoder.conv1.0.{key}"]
            for i in range(n_pre):
                mine[f"stages.{2 + i}.net.net.0.{key}"] = state[f"encoder.prefilt_layers.{i}.0.{key}"]
            for i in range(n_pw):
                mine[f"stages.{2 + n_pre + i}.net.0.{key}"] = state[f"encoder.conv_layers.{3 * i}.{key}"]
        mine[f"stages.{2 + n_pre + n_pw}.net.conv.weight"] = state["encoder.fc.weight"]
        self.load_state_dict(mine, strict=True)


def load_pesto(checkpoint: str | Path | None = None, hop: int = 160) -> PestoModel:
    """PESTO with published weights (default ``mir-1k_g7``, or a checkpoint path), frozen, in eval mode."""
    path = pesto_checkpoint() if checkpoint is None else Path(checkpoint)
    if not path.is_file():
        raise ConfigError(f"no PESTO checkpoint at {path}")
    ckpt = read_checkpoint(path)
    model = PestoModel(ckpt["hparams"], ckpt["hcqt_params"], hop=hop)
    model.load_pesto_state(ckpt["state_dict"])
    return freeze(model)


def pesto_f0_track(
    audio: np.ndarray | torch.Tensor,
    sr: int,
    voicing_threshold: float = 0.5,
    chunk: int = 64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frame-wise f0 by PESTO, a pretrained neural pitch estimator (Riou et al. 2023).

    The second f0 tracker of :func:`ontoscope.descriptors.measure`
    (``measure(audio, sr, f0_method=pesto_f0_track)``; the descriptors sit below
    the models, so the caller passes it in). The audio is resampled to PESTO's
    16 kHz; the network's published ``mir-1k_g7`` weights ship inside the
    ``pesto-pitch`` package and are loaded by :func:`load_pesto` (nothing is
    downloaded). Frames every 10 ms, centred (frame ``t`` at
    ``t * 0.01`` s). PESTO's pitch bins are a third of a semitone apart; its
    weighted average around the peak interpolates between them. PESTO's voicing
    confidence follows the level of the CQT, so every clip is first scaled to
    -20 dBFS RMS (pitch does not depend on level; silence stays silent).

    Parameters
    ----------
    audio : array or tensor, ``[N]`` or ``[B, N]``
    sr : int
        Sample rate, Hz (any: resampled to 16 kHz).
    voicing_threshold : float
        Frames whose PESTO confidence is below it are unvoiced (NaN).
    chunk : int
        Clips per forward pass.

    Returns
    -------
    f0 : Tensor ``[B, T]`` float32, Hz, NaN where unvoiced
    confidence : Tensor ``[B, T]``, PESTO's voicing confidence in [0, 1]
    times : Tensor ``[T]`` float64, s

    References
    ----------
    Riou, A., Lattner, S., Hadjeres, G., & Peeters, G. (2023). PESTO: Pitch
    estimation with self-supervised transposition-equivariant objective. ISMIR.
    """
    x = as_audio_batch(audio, sr)
    rms = x.double().pow(2).mean(-1, keepdim=True).sqrt()
    x = (x * torch.where(rms > 1e-8, 0.1 / rms, torch.zeros_like(rms))).float()
    model = _pesto_model()
    f0s, confs = [], []
    with torch.no_grad():
        for s in range(0, x.shape[0], chunk):
            a = prepare(x[s:s + chunk].float(), sr, model)
            out = model(a)  # [B, 2, T]: f0 (Hz), peak probability
            conf = model.voicing(a)
            f0s.append(torch.where(conf >= voicing_threshold, out[:, 0], torch.full_like(out[:, 0], float("nan"))))
            confs.append(conf)
    f0, conf = torch.cat(f0s).cpu(), torch.cat(confs).cpu()
    times = torch.arange(f0.shape[-1], dtype=torch.float64) * (model.cqt.hop / model.sample_rate)
    return f0, conf, times


@functools.lru_cache(maxsize=1)
def _pesto_model() -> PestoModel:
    return load_pesto()
