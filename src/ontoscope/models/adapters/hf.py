"""Published audio networks from Hugging Face ``transformers``, behind the :class:`AudioModel` protocol.

``hf:NAME`` builds the network from the configuration values of the
published checkpoint, written out below, with **random weights** drawn from
a seed (nothing is ever downloaded): the architecture alone, which is what
the latent ontology is about. ``hf:PATH`` loads a local directory holding
``config.json`` and weights (as written by ``save_pretrained``) with
``from_pretrained(PATH, local_files_only=True)``; a ``preprocessor_config.json``
there, if any, sets the input normalisation.

* ``hf:encodec-24khz``: EnCodec 24 kHz (Défossez et al. 2022), codec (output audio), latent at 75 Hz.
* ``hf:dac-44khz``: Descript Audio Codec 44.1 kHz (Kumar et al. 2023), codec, latent at 86.1 Hz.
* ``hf:mimi``: Mimi (Défossez et al. 2024, the Moshi codec), codec, latent at 12.5 Hz.
* ``hf:wav2vec2-base``: wav2vec 2.0 base (Baevski et al. 2020), embedding, 50 Hz at 16 kHz.
* ``hf:hubert-base``: HuBERT base (Hsu et al. 2021), embedding, 50 Hz at 16 kHz.
* ``hf:whisper-base``: Whisper base, encoder only (Radford et al. 2022), embedding, 50 Hz over a 30-s window.
* ``hf:ast``: Audio Spectrogram Transformer (Gong et al. 2021), embedding over 12 x 101 patches + 2 tokens.

How sites work
--------------
Each network is cut into stages that call the ``transformers`` submodules the
way the library's own ``forward`` does; a site is a stage's output. So
``encode`` stops at the site and ``resume`` starts from it, and
``resume(encode(x, s), s)`` equals the library's forward pass (the tests
check this for every site). Activations are channels-first: conv sites
``[B, C, T]``, transformer sites ``[B, hidden, T]`` (the library's
``[B, T, hidden]`` transposed), AST's patch embedding ``[B, 768, F, T]``.

Every conv site carries ``stride`` (input samples per frame) and
``receptive_field`` (input samples); transformer and recurrent sites have
``global_context=True`` (and no receptive field). Codec sites: ``bottleneck`` is
the encoder output before the quantizer, ``quantizer`` after it (residual
vector quantization, with a straight-through gradient: its value is the
quantized latent, its gradient w.r.t. the latent is the identity). Decoder
sites follow. Codecs return audio ``[B, T * hop]`` from ``resume``/``decode``;
encoders return the last hidden states ``[B, hidden, T]`` (after the final
layer norm where the network has one).

Sites per network
-----------------
* EnCodec: ``encoder.conv0``, ``encoder.block0..3`` (after each strided conv:
  strides 2, 8, 40, 320 samples), ``encoder.lstm``, ``bottleneck`` (128 ch),
  ``quantizer``, ``decoder.conv0``, ``decoder.lstm``, ``decoder.block0..3``.
  The bandwidth option (default 6 kbps = 8 codebooks) sets the quantizer.
* DAC: ``encoder.conv0``, ``encoder.block0..3`` (strides 2, 8, 64, 512),
  ``bottleneck`` (1024 ch), ``quantizer`` (9 codebooks), ``decoder.conv0``, ``decoder.block0..3``.
* Mimi: ``encoder.conv0``, ``encoder.block0..3`` (strides 4, 20, 120, 960),
  ``encoder.conv_last`` (25 Hz), ``encoder.transformer.layer0..7`` (causal,
  250-frame window), ``bottleneck`` (12.5 Hz), ``quantizer`` (8 of 32 codebooks
  by default, as Moshi uses), ``decoder.upsample``,
  ``decoder.transformer.layer0..7``, ``decoder.conv0``, ``decoder.block0..3``.
* wav2vec 2.0 / HuBERT: ``encoder.conv0..6`` (strides 5 ... 320, receptive field 400
  samples at ``encoder.conv6``), ``encoder.projection`` (768 ch), ``encoder.layer0..11``. Input is
  standardised per clip for wav2vec 2.0 (its published feature extractor), not for HuBERT.
* Whisper: ``encoder.conv1`` (100 Hz), ``encoder.conv2`` (50 Hz), ``encoder.layer0..5``. Every clip is
  zero-padded to 30 s, as Whisper always is: frames past the audio see padding.
* AST: ``encoder.patch_embed`` ``[B, 768, 12, 101]`` (frequency x time patches; a time
  patch every 100 ms, each 16 frames = 2800 samples wide), ``encoder.layer0..11``
  ``[B, 768, 1214]``: tokens (class, distillation, then the patches
  frequency-major), so they have no stride. Clips are padded to 1024 frames (10.24 s).

Random-weight codecs get codebooks drawn from a seeded standard normal (the
library leaves them at zero, which would collapse every code). Written
against ``transformers`` 5.23; the tests compare every site with the
library's forward pass, so a change in the library's internals shows up there.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ontoscope.errors import AudioError, ConfigError
from ontoscope.models.adapters._common import Geometry, Step, check_clips, freeze, seeded
from ontoscope.models.protocol import OutputKind, Site, StagedModel

__all__ = ["HF_REFERENCES", "HFModel", "build_hf", "load_hf", "load_hf_path"]


@dataclass(frozen=True)
class _Ref:
    kind: str  # transformers model_type
    checkpoint: str  # the published checkpoint the values come from
    config: dict[str, Any]
    description: str
    options: dict[str, Any] = field(default_factory=dict)


HF_REFERENCES: dict[str, _Ref] = {
    "encodec-24khz": _Ref(
        "encodec", "facebook/encodec_24khz",
        dict(sampling_rate=24000, audio_channels=1, normalize=False, chunk_length_s=None, overlap=None,
             hidden_size=128, num_filters=32, num_residual_layers=1, upsampling_ratios=[8, 5, 4, 2],
             norm_type="weight_norm", kernel_size=7, last_kernel_size=7, residual_kernel_size=3,
             dilation_growth_rate=2, use_causal_conv=True, pad_mode="reflect", compress=2, num_lstm_layers=2,
             trim_right_ratio=1.0, codebook_size=1024, codebook_dim=128, use_conv_shortcut=True,
             target_bandwidths=[1.5, 3.0, 6.0, 12.0, 24.0]),
        "EnCodec 24 kHz codec (Défossez et al. 2022): SEANet conv + LSTM encoder, RVQ, 75 Hz latent",
        {"bandwidth": 6.0}),
    "dac-44khz": _Ref(
        "dac", "descript/dac_44khz",
        dict(sampling_rate=44100, encoder_hidden_size=64, downsampling_ratios=[2, 4, 8, 8],
             decoder_hidden_size=1536, upsampling_ratios=[8, 8, 4, 2], hidden_size=1024, n_codebooks=9,
             codebook_size=1024, codebook_dim=8, quantizer_dropout=0.0),
        "Descript Audio Codec 44.1 kHz (Kumar et al. 2023): Snake conv encoder, 9-codebook RVQ, 86.1 Hz latent",
        {"n_quantizers": None}),
    "mimi": _Ref(
        "mimi", "kyutai/mimi",
        dict(sampling_rate=24000, frame_rate=12.5, audio_channels=1, hidden_size=512, num_filters=64,
             num_residual_layers=1, upsampling_ratios=[8, 6, 5, 4], kernel_size=7, last_kernel_size=3,
             residual_kernel_size=3, dilation_growth_rate=2, use_causal_conv=True, pad_mode="constant",
             compress=2, trim_right_ratio=1.0, codebook_size=2048, codebook_dim=256, num_quantizers=32,
             use_conv_shortcut=False, vector_quantization_hidden_dimension=256, num_semantic_quantizers=1,
             upsample_groups=512, num_hidden_layers=8, intermediate_size=2048, num_attention_heads=8,
             num_key_value_heads=8, head_dim=64, hidden_act="gelu", max_position_embeddings=8000,
             rope_parameters={"rope_theta": 10000.0, "rope_type": "default"}, sliding_window=250,
             attention_dropout=0.0, layer_scale_initial_scale=0.01, norm_eps=1e-5, use_cache=False,
             attention_bias=False),
        "Mimi codec (Défossez et al. 2024): causal SEANet + transformers, split RVQ, 12.5 Hz latent",
        {"num_quantizers": 8}),
    "wav2vec2-base": _Ref(
        "wav2vec2", "facebook/wav2vec2-base",
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
             hidden_act="gelu", feat_extract_norm="group", feat_extract_activation="gelu",
             conv_dim=[512] * 7, conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_kernel=[10, 3, 3, 3, 3, 2, 2],
             conv_bias=False, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
             do_stable_layer_norm=False, layer_norm_eps=1e-5, add_adapter=False, apply_spec_augment=True),
        "wav2vec 2.0 base (Baevski et al. 2020): 7-layer conv feature encoder (320x), 12-layer transformer",
        {"normalize": True}),
    "hubert-base": _Ref(
        "hubert", "facebook/hubert-base-ls960",
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
             hidden_act="gelu", feat_extract_norm="group", feat_extract_activation="gelu",
             conv_dim=[512] * 7, conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_kernel=[10, 3, 3, 3, 3, 2, 2],
             conv_bias=False, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
             do_stable_layer_norm=False, feat_proj_layer_norm=True, layer_norm_eps=1e-5),
        "HuBERT base (Hsu et al. 2021): wav2vec 2.0 base architecture trained by masked unit prediction",
        {"normalize": False}),
    "whisper-base": _Ref(
        "whisper", "openai/whisper-base",
        dict(vocab_size=51865, num_mel_bins=80, d_model=512, encoder_layers=6, encoder_attention_heads=8,
             encoder_ffn_dim=2048, decoder_layers=6, decoder_attention_heads=8, decoder_ffn_dim=2048,
             max_source_positions=1500, max_target_positions=448, activation_function="gelu",
             scale_embedding=False),
        "Whisper base encoder (Radford et al. 2022): 80-mel log spectrogram, 2 convs (50 Hz), 6-layer transformer"),
    "ast": _Ref(
        "audio-spectrogram-transformer", "MIT/ast-finetuned-audioset-10-10-0.4593",
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
             hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12,
             patch_size=16, qkv_bias=True, frequency_stride=10, time_stride=10, max_length=1024, num_mel_bins=128),
        "Audio Spectrogram Transformer (Gong et al. 2021): 128-mel fbank, 16x16 patches (stride 10), 12 layers"),
}


def _first(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        return out[0]
    return out[0] if hasattr(out, "__getitem__") else out


def _seq(mods: Sequence[nn.Module], label: str) -> Step:
    def run(x: torch.Tensor) -> torch.Tensor:
        for m in mods:
            x = m(x)
        return x

    return Step(run, label)


def _site(name: str, channels: int, role: str, g: Geometry, **kw: Any) -> Site:
    return Site(name, kw.pop("layout", "BCT"), int(channels), role=role, stride=g.stride, receptive_field=g.rf,
                global_context=g.rf is None, **kw)


class HFModel(StagedModel):
    """A ``transformers`` network cut into stages at its sites (see the module docstring).

    Attributes
    ----------
    hf : nn.Module
        The ``transformers`` model (``EncodecModel``, ``WhisperEncoder``...).
    kind : str
        Its ``model_type``.
    frame_rate : float
        Frames per second of the main latent (codec latent, last hidden state).
    """

    def __init__(self, hf: nn.Module, kind: str, sample_rate: int, output: OutputKind,
                 stages: list[tuple[Site, nn.Module]], head: nn.Module | None,
                 pre: Callable[[torch.Tensor], torch.Tensor], frame_rate: float, extra: nn.Module | None = None,
                 min_samples: int = 1) -> None:
        super().__init__(stages, head)
        self.hf = hf
        self.kind = kind
        self.sample_rate = int(sample_rate)
        self.output = output
        self.frame_rate = float(frame_rate)
        self.features = extra if extra is not None else nn.Identity()
        object.__setattr__(self, "_pre", pre)
        self.min_samples = min_samples

    def preprocess(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, samples]`` at ``sample_rate`` -> the first stage's input."""
        check_clips(audio, min_samples=self.min_samples, who=self.kind, sample_rate=self.sample_rate)
        return self._pre(audio)

    def postprocess(self, out: torch.Tensor) -> torch.Tensor:
        """Codecs: ``[B, 1, N]`` -> audio ``[B, N]``; encoders: hidden states unchanged."""
        return out.squeeze(1) if self.output == "audio" and out.ndim == 3 else out


# ---------------------------------------------------------------- features
class LogMel(nn.Module):
    """Whisper's log-mel spectrogram in torch (matches ``WhisperFeatureExtractor``).

    Audio ``[B, N]`` at 16 kHz is zero-padded (or must fit) to ``n_samples``
    (30 s), then: Hann window 400, hop 160, power spectrum, Slaney mel
    (``n_mels`` bands, 0-8 kHz), ``log10`` floored at 1e-10, clipped to 8 (80 dB)
    below each clip's maximum, and mapped by ``(x + 4) / 4``. Output
    ``[B, n_mels, n_samples // 160]``.
    """

    def __init__(self, n_mels: int = 80, n_samples: int = 480000) -> None:
        super().__init__()
        # optional: transformers (the adapters extra, about 1 s to import), only for its hf: models
        from transformers.audio_utils import mel_filter_bank  # noqa: PLC0415

        fb = mel_filter_bank(num_frequency_bins=201, num_mel_filters=n_mels, min_frequency=0.0,
                             max_frequency=8000.0, sampling_rate=16000, norm="slaney", mel_scale="slaney")
        self.register_buffer("filters", torch.from_numpy(np.asarray(fb, dtype=np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(400), persistent=False)
        self.n_samples = n_samples

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        n = audio.shape[-1]
        if n > self.n_samples:
            raise AudioError(f"Whisper reads at most {self.n_samples / 16000:.0f} s ({self.n_samples} samples at "
                             f"16 kHz); got {n}: split the audio into 30-s windows")
        x = F.pad(audio, (0, self.n_samples - n))
        spec = torch.stft(x, 400, 160, window=self.window, center=True, pad_mode="reflect", return_complex=True)
        power = spec[..., :-1].abs() ** 2  # [B, 201, T]
        mel = torch.einsum("bft,fm->bmt", power, self.filters)
        log = mel.clamp_min(1e-10).log10()
        top = log.amax(dim=(1, 2), keepdim=True)
        return (torch.maximum(log, top - 8.0) + 4.0) / 4.0


class KaldiFbank(nn.Module):
    """AST's input: Kaldi-style log mel filterbank in torch (matches ``ASTFeatureExtractor``).

    Frames of 400 samples every 160 (no centring), DC offset removed,
    pre-emphasis 0.97, symmetric Hann window, 512-point power spectrum,
    ``n_mels`` Kaldi-mel bands (20 Hz - 8 kHz), natural log floored at float32
    eps; padded with zeros (or cut) to ``max_length`` frames, then normalised
    by ``(x - mean) / (2 * std)`` (AudioSet statistics). Output ``[B, max_length, n_mels]``.
    """

    def __init__(self, n_mels: int = 128, max_length: int = 1024, mean: float = -4.2677393,
                 std: float = 4.5689974) -> None:
        super().__init__()
        # optional: transformers (the adapters extra, about 1 s to import), only for its hf: models
        from transformers.audio_utils import mel_filter_bank  # noqa: PLC0415

        with warnings.catch_warnings():  # 128 Kaldi bands on a 512-point FFT leave the lowest band empty, as in AST
            warnings.simplefilter("ignore", UserWarning)
            fb = mel_filter_bank(num_frequency_bins=257, num_mel_filters=n_mels, min_frequency=20,
                                 max_frequency=8000, sampling_rate=16000, norm=None, mel_scale="kaldi",
                                 triangularize_in_mel_space=True)
        self.register_buffer("filters", torch.from_numpy(np.asarray(fb, dtype=np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(400, periodic=False), persistent=False)
        self.max_length, self.mean, self.std = max_length, mean, std

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.unfold(-1, 400, 160)  # [B, T, 400]
        frames = frames - frames.mean(dim=-1, keepdim=True)
        frames = torch.cat([frames[..., :1] * (1 - 0.97), frames[..., 1:] - 0.97 * frames[..., :-1]], dim=-1)
        power = torch.fft.rfft(frames * self.window, n=512).abs() ** 2  # [B, T, 257]
        fbank = (power @ self.filters).clamp_min(1.1920928955078125e-07).log()
        t = fbank.shape[1]
        fbank = F.pad(fbank, (0, 0, 0, self.max_length - t)) if t < self.max_length else fbank[:, :self.max_length]
        return (fbank - self.mean) / (2 * self.std)


def _normalise(audio: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per clip (``Wav2Vec2FeatureExtractor(do_normalize=True)``)."""
    return (audio - audio.mean(-1, keepdim=True)) / torch.sqrt(audio.var(-1, keepdim=True, unbiased=False) + 1e-7)


# ------------------------------------------------------------------ builders
def _seanet_encoder(layers: Sequence[nn.Module], n_ratios: int, n_res: int, lstm: bool, g: Geometry,
                    channels: Callable[[int], int]) -> tuple[list[tuple[Site, nn.Module]], Step]:
    """SEANet encoder (EnCodec, Mimi): conv0, then per ratio (res blocks, ELU, strided conv), [LSTM].

    Returns those stages and the last one (ELU + conv), whose site the caller names; ``g`` ends after it.
    """
    out: list[tuple[Site, nn.Module]] = []
    g.module(layers[0])
    out.append((_site("encoder.conv0", channels(0), "encoder", g), _seq([layers[0]], "conv0")))
    i = 1
    for r in range(n_ratios):
        group = list(layers[i:i + n_res + 2])
        for m in group:
            g.module(m)
        out.append((_site(f"encoder.block{r}", channels(r + 1), "encoder", g), _seq(group, f"block{r}")))
        i += n_res + 2
    if lstm:
        g.unbounded()
        out.append((_site("encoder.lstm", channels(n_ratios), "encoder", g), _seq([layers[i]], "lstm")))
        i += 1
    tail = list(layers[i:])
    for m in tail:
        g.module(m)
    return out, _seq(tail, "conv_last")


def _seanet_decoder(layers: Sequence[nn.Module], n_ratios: int, n_res: int, lstm: bool, g: Geometry,
                    channels: Callable[[int], int]) -> tuple[list[tuple[Site, nn.Module]], nn.Module]:
    """SEANet decoder: conv0, [LSTM], per ratio (ELU, transposed conv, res blocks); head ELU + conv."""
    out: list[tuple[Site, nn.Module]] = []
    g.module(layers[0])
    out.append((_site("decoder.conv0", channels(0), "decoder", g), _seq([layers[0]], "conv0")))
    i = 1
    if lstm:
        g.unbounded()
        out.append((_site("decoder.lstm", channels(0), "decoder", g), _seq([layers[1]], "lstm")))
        i = 2
    for r in range(n_ratios):
        group = list(layers[i:i + 2 + n_res])
        for m in group:
            g.module(m)
        out.append((_site(f"decoder.block{r}", channels(r + 1), "decoder", g), _seq(group, f"block{r}")))
        i += 2 + n_res
    return out, _seq(list(layers[i:]), "head")


def _straight_through(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return x + (q - x).detach()


def _build_encodec(hf: nn.Module, bandwidth: float = 6.0) -> HFModel:
    cfg = hf.config
    if cfg.normalize or cfg.chunk_length_s is not None:
        raise ConfigError("only EnCodec models without input normalisation or chunking (e.g. the 24 kHz one) "
                          "are supported")
    if bandwidth not in cfg.target_bandwidths:
        raise ConfigError(f"EnCodec bandwidth must be one of {cfg.target_bandwidths} kbps, got {bandwidth}")
    ratios, n_res, nf = list(cfg.upsampling_ratios), cfg.num_residual_layers, cfg.num_filters
    g = Geometry()
    enc, last = _seanet_encoder(hf.encoder.layers, len(ratios), n_res, True, g, lambda r: nf * 2 ** r)
    enc.append((_site("bottleneck", cfg.hidden_size, "bottleneck", g), last))

    def quantize(x: torch.Tensor) -> torch.Tensor:
        return _straight_through(x, hf.quantizer.decode(hf.quantizer.encode(x, bandwidth)))

    n_q = hf.quantizer.get_num_quantizers_for_bandwidth(bandwidth)
    qsite = _site("quantizer", cfg.hidden_size, "quantizer", g,
                  notes={"codebooks": n_q, "codebook_size": cfg.codebook_size, "bandwidth_kbps": bandwidth})
    top = nf * 2 ** len(ratios)
    dec, head = _seanet_decoder(hf.decoder.layers, len(ratios), n_res, True, g, lambda r: top // 2 ** r)
    hop = int(np.prod(ratios))
    return HFModel(hf, "encodec", cfg.sampling_rate, "audio", [*enc, (qsite, Step(quantize, "rvq")), *dec], head,
                   lambda a: a.unsqueeze(1), cfg.sampling_rate / hop)


def _build_dac(hf: nn.Module, n_quantizers: int | None = None) -> HFModel:
    cfg = hf.config
    g = Geometry()
    stages: list[tuple[Site, nn.Module]] = []
    e = hf.encoder
    g.module(e.conv1)
    stages.append((_site("encoder.conv0", cfg.encoder_hidden_size, "encoder", g), _seq([e.conv1], "conv0")))
    for i, block in enumerate(e.block):
        g.module(block)
        stages.append((_site(f"encoder.block{i}", cfg.encoder_hidden_size * 2 ** (i + 1), "encoder", g),
                       _seq([block], f"block{i}")))
    g.module(e.conv2)
    stages.append((_site("bottleneck", cfg.hidden_size, "bottleneck", g), _seq([e.snake1, e.conv2], "conv_last")))
    n_q = cfg.n_codebooks if n_quantizers is None else int(n_quantizers)
    if not 1 <= n_q <= cfg.n_codebooks:
        raise ConfigError(f"DAC n_quantizers must be between 1 and {cfg.n_codebooks}, got {n_quantizers}")

    def quantize(x: torch.Tensor) -> torch.Tensor:
        return hf.quantizer(x, n_q)[0]  # the library's own straight-through RVQ

    stages.append((_site("quantizer", cfg.hidden_size, "quantizer", g,
                         notes={"codebooks": n_q, "codebook_size": cfg.codebook_size}), Step(quantize, "rvq")))
    d = hf.decoder
    g.module(d.conv1)
    stages.append((_site("decoder.conv0", cfg.decoder_hidden_size, "decoder", g), _seq([d.conv1], "conv0")))
    for i, block in enumerate(d.block):
        g.module(block)
        stages.append((_site(f"decoder.block{i}", cfg.decoder_hidden_size // 2 ** (i + 1), "decoder", g),
                       _seq([block], f"block{i}")))
    head = _seq([d.snake1, d.conv2, d.tanh], "head")
    hop = int(np.prod(cfg.downsampling_ratios))
    return HFModel(hf, "dac", cfg.sampling_rate, "audio", stages, head, lambda a: a.unsqueeze(1),
                   cfg.sampling_rate / hop)


def _transformer_layer(layers: nn.ModuleList, i: int, call: Callable[[nn.Module, torch.Tensor], Any],
                       before: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Step:
    """Stage for transformer layer ``i``: ``[B, C, T]`` -> ``[B, C, T]`` (the library works in ``[B, T, C]``)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        if before is not None:
            h = before(h)
        return _first(call(layers[i], h)).transpose(1, 2)

    return Step(run, f"layer{i}")


def _mimi_layers(tr: nn.Module, prefix: str, role: str, g: Geometry, width: int) -> list[tuple[Site, nn.Module]]:
    # optional: transformers (the adapters extra, about 1 s to import), only for its hf: models
    from transformers.masking_utils import create_sliding_window_causal_mask  # noqa: PLC0415

    def call(layer: nn.Module, h: torch.Tensor) -> Any:
        pos = torch.arange(h.shape[1], device=h.device).unsqueeze(0)
        mask = create_sliding_window_causal_mask(config=tr.config, inputs_embeds=h, attention_mask=None,
                                                 past_key_values=None, position_ids=pos)
        return layer(h, attention_mask=mask, position_ids=pos, past_key_values=None,
                     position_embeddings=tr.rotary_emb(h, pos))

    g.unbounded()
    notes = {"attention": f"causal, sliding window of {tr.config.sliding_window} frames"}
    return [(_site(f"{prefix}.transformer.layer{i}", width, role, g, notes=notes),
             _transformer_layer(tr.layers, i, call)) for i in range(len(tr.layers))]


def _build_mimi(hf: nn.Module, num_quantizers: int = 8) -> HFModel:
    cfg = hf.config
    if not cfg.num_semantic_quantizers <= int(num_quantizers) <= cfg.num_quantizers:
        raise ConfigError(f"Mimi num_quantizers must be between {cfg.num_semantic_quantizers} and "
                          f"{cfg.num_quantizers}, got {num_quantizers}")
    num_quantizers = int(num_quantizers)
    ratios, n_res, nf = list(cfg.upsampling_ratios), cfg.num_residual_layers, cfg.num_filters
    enc, dec = hf.encoder, hf.decoder
    g = Geometry()
    stages, last = _seanet_encoder(enc.encoder_seanet.layers, len(ratios), n_res, False, g, lambda r: nf * 2 ** r)
    stages.append((_site("encoder.conv_last", cfg.hidden_size, "encoder", g), last))
    stages += _mimi_layers(enc.encoder_transformer, "encoder", "encoder", g, cfg.hidden_size)
    if enc.downsample is None:
        raise ConfigError("Mimi models without a downsampling layer are not supported")
    g.module(enc.downsample)
    stages.append((_site("bottleneck", cfg.hidden_size, "bottleneck", g), _seq([enc.downsample], "downsample")))

    def quantize(x: torch.Tensor) -> torch.Tensor:
        codes = hf.quantizer.encode(x, num_quantizers).transpose(0, 1)
        return _straight_through(x, hf.quantizer.decode(codes))

    stages.append((_site("quantizer", cfg.hidden_size, "quantizer", g,
                         notes={"codebooks": num_quantizers, "codebook_size": cfg.codebook_size}),
                   Step(quantize, "split_rvq")))
    g.module(dec.upsample)
    stages.append((_site("decoder.upsample", cfg.hidden_size, "decoder", g), _seq([dec.upsample], "upsample")))
    stages += _mimi_layers(dec.decoder_transformer, "decoder", "decoder", g, cfg.hidden_size)
    top = nf * 2 ** len(ratios)
    dstages, head = _seanet_decoder(dec.decoder_seanet.layers, len(ratios), n_res, False, g, lambda r: top // 2 ** r)
    return HFModel(hf, "mimi", cfg.sampling_rate, "audio", stages + dstages, head, lambda a: a.unsqueeze(1),
                   float(cfg.frame_rate))


def _build_wav2vec2(hf: nn.Module, normalize: bool = False) -> HFModel:
    cfg = hf.config
    if getattr(cfg, "add_adapter", False):
        raise ConfigError("wav2vec 2.0 models with an adapter on top are not supported")
    g = Geometry()
    stages: list[tuple[Site, nn.Module]] = []
    for i, conv in enumerate(hf.feature_extractor.conv_layers):
        g.module(conv)
        stages.append((_site(f"encoder.conv{i}", cfg.conv_dim[i], "encoder", g), _seq([conv], f"conv{i}")))

    def project(x: torch.Tensor) -> torch.Tensor:
        return _first(hf.feature_projection(x.transpose(1, 2))).transpose(1, 2)

    stages.append((_site("encoder.projection", cfg.hidden_size, "encoder", g), Step(project, "feature_projection")))
    encoder = hf.encoder
    stable = bool(cfg.do_stable_layer_norm)

    def embed(h: torch.Tensor) -> torch.Tensor:
        h = h + encoder.pos_conv_embed(h)
        if not stable:
            h = encoder.layer_norm(h)
        return encoder.dropout(h)

    g.unbounded()
    for i in range(len(encoder.layers)):
        step = _transformer_layer(encoder.layers, i, lambda layer, h: layer(h, attention_mask=None),
                                  embed if i == 0 else None)
        stages.append((_site(f"encoder.layer{i}", cfg.hidden_size, "encoder", g), step))
    head = Step(lambda x: encoder.layer_norm(x.transpose(1, 2)).transpose(1, 2), "layer_norm") if stable else None
    hop = int(np.prod(cfg.conv_stride))
    rf0 = stages[len(cfg.conv_kernel) - 1][0].receptive_field or 1  # one frame needs this many samples
    pre = (lambda a: _normalise(a).unsqueeze(1)) if normalize else (lambda a: a.unsqueeze(1))
    return HFModel(hf, cfg.model_type, 16000, "embedding", stages, head, pre, 16000 / hop, min_samples=rf0)


def _build_whisper(encoder: nn.Module) -> HFModel:
    cfg = encoder.config
    n_frames = cfg.max_source_positions * 2
    mel = LogMel(cfg.num_mel_bins, n_frames * 160)
    g = Geometry(stride=160, rf=400)
    stages: list[tuple[Site, nn.Module]] = []
    g.conv(3, 1)
    stages.append((_site("encoder.conv1", cfg.d_model, "encoder", g, notes={"activation": "after GELU"}),
                   Step(lambda x: F.gelu(encoder.conv1(x)), "conv1")))
    g.conv(3, 2)
    stages.append((_site("encoder.conv2", cfg.d_model, "encoder", g, notes={"activation": "after GELU"}),
                   Step(lambda x: F.gelu(encoder.conv2(x)), "conv2")))

    def embed(h: torch.Tensor) -> torch.Tensor:
        if h.shape[1] != encoder.embed_positions.num_embeddings:
            raise ConfigError(f"Whisper's transformer takes {encoder.embed_positions.num_embeddings} frames "
                              f"(30 s), got activations with {h.shape[1]}")
        h = h + encoder.embed_positions.weight
        return F.dropout(h, p=encoder.dropout, training=encoder.training)

    g.unbounded()
    for i in range(len(encoder.layers)):
        step = _transformer_layer(encoder.layers, i, lambda layer, h: layer(h, None), embed if i == 0 else None)
        stages.append((_site(f"encoder.layer{i}", cfg.d_model, "encoder", g), step))
    head = Step(lambda x: encoder.layer_norm(x.transpose(1, 2)).transpose(1, 2), "layer_norm")
    return HFModel(encoder, "whisper", 16000, "embedding", stages, head, mel, 16000 / 320, extra=mel)


def _build_ast(hf: nn.Module, mean: float = -4.2677393, std: float = 4.5689974) -> HFModel:
    cfg = hf.config
    fbank = KaldiFbank(cfg.num_mel_bins, cfg.max_length, mean, std)
    emb = hf.embeddings
    n_f = (cfg.num_mel_bins - cfg.patch_size) // cfg.frequency_stride + 1
    n_t = (cfg.max_length - cfg.patch_size) // cfg.time_stride + 1
    g = Geometry(stride=160, rf=400).conv(cfg.patch_size, cfg.time_stride)
    patch = _site("encoder.patch_embed", cfg.hidden_size, "encoder", g, layout="BCFT", freq_bins=n_f,
                  notes={"freq_axis": f"mel patches: {cfg.patch_size} bands wide, every {cfg.frequency_stride}",
                         "time_patches": n_t})

    def patchify(x: torch.Tensor) -> torch.Tensor:  # [B, frames, mels] -> [B, C, F, T]
        return emb.patch_embeddings.projection(x.unsqueeze(1).transpose(2, 3))

    def tokens(x: torch.Tensor) -> torch.Tensor:  # [B, C, F, T] -> [B, 2 + F*T, C]
        b = x.shape[0]
        t = x.flatten(2).transpose(1, 2)
        t = torch.cat([emb.cls_token.expand(b, -1, -1), emb.distillation_token.expand(b, -1, -1), t], dim=1)
        return emb.dropout(t + emb.position_embeddings)

    notes = {"tokens": f"[cls, distillation, then {n_f} x {n_t} patches frequency-major: token 2 + f * {n_t} + t]",
             "patch_stride_samples": g.stride}
    stages: list[tuple[Site, nn.Module]] = [(patch, Step(patchify, "patch_embed"))]
    for i in range(len(hf.layers)):
        if i == 0:
            def first(x: torch.Tensor, layer: nn.Module = hf.layers[0]) -> torch.Tensor:
                return _first(layer(tokens(x), None)).transpose(1, 2)
            step = Step(first, "layer0")
        else:
            step = _transformer_layer(hf.layers, i, lambda layer, h: layer(h, None))
        stages.append((Site(f"encoder.layer{i}", "BCT", cfg.hidden_size, role="encoder", global_context=True,
                            notes=notes),
                       step))
    head = Step(lambda x: hf.layernorm(x.transpose(1, 2)).transpose(1, 2), "layernorm")
    return HFModel(hf, "audio-spectrogram-transformer", 16000, "embedding", stages, head, fbank,
                   16000 / g.stride, extra=fbank, min_samples=400)


# ------------------------------------------------------------------- loading
def _classes(kind: str) -> tuple[Any, Any]:
    import transformers as tf  # noqa: PLC0415  # optional: the adapters extra, about 1 s to import

    table = {
        "encodec": (tf.EncodecConfig, tf.EncodecModel),
        "dac": (tf.DacConfig, tf.DacModel),
        "mimi": (tf.MimiConfig, tf.MimiModel),
        "wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model),
        "hubert": (tf.HubertConfig, tf.HubertModel),
        "whisper": (tf.WhisperConfig, tf.WhisperModel),
        "audio-spectrogram-transformer": (tf.ASTConfig, tf.ASTModel),
    }
    if kind not in table:
        raise ConfigError(f"transformers model type {kind!r} is not supported; supported: {', '.join(table)}")
    return table[kind]


def _randomise_codebooks(model: nn.Module) -> None:
    """Seeded standard-normal codebooks for EnCodec / Mimi (the library initialises them to zero)."""
    with torch.no_grad():
        for m in model.modules():
            name = type(m).__name__
            if name == "EncodecEuclideanCodebook":
                m.embed.copy_(torch.randn_like(m.embed))
                m.embed_avg.copy_(m.embed)
            elif name == "MimiEuclideanCodebook":
                m.cluster_usage.fill_(1.0)
                m.embed_sum.copy_(torch.randn_like(m.embed_sum))
                m._embed = None


def _assemble(kind: str, model: nn.Module, options: dict[str, Any]) -> HFModel:
    builders: dict[str, Callable[..., HFModel]] = {
        "encodec": _build_encodec, "dac": _build_dac, "mimi": _build_mimi, "wav2vec2": _build_wav2vec2,
        "hubert": _build_wav2vec2, "audio-spectrogram-transformer": _build_ast,
    }
    if kind == "whisper":
        if options:
            raise ConfigError(f"Whisper takes no options, got {sorted(options)}")
        return _build_whisper(model.encoder if hasattr(model, "encoder") else model)
    try:
        return builders[kind](model, **options)
    except TypeError as e:
        raise ConfigError(f"bad options for {kind}: {e}") from None


def build_hf(name: str, seed: int = 0, overrides: dict[str, Any] | None = None, **options: Any) -> HFModel:
    """``hf:NAME``: the published architecture ``name`` with seeded random weights, frozen.

    Parameters
    ----------
    name : str
        One of :data:`HF_REFERENCES` (``encodec-24khz``, ``dac-44khz``, ``mimi``,
        ``wav2vec2-base``, ``hubert-base``, ``whisper-base``, ``ast``).
    seed : int
        Seed of the random weights (and codebooks).
    overrides : dict, optional
        Configuration values replacing the published ones (e.g. fewer layers
        for a quick test); the result is then no longer the published architecture.
    **options
        ``bandwidth`` (EnCodec, kbps, default 6.0), ``n_quantizers`` (DAC,
        default all 9), ``num_quantizers`` (Mimi, default 8), ``normalize``
        (wav2vec 2.0 / HuBERT input standardisation), ``mean``/``std`` (AST).
    """
    if name not in HF_REFERENCES:
        raise ConfigError(f"unknown Hugging Face reference {name!r}; known: {', '.join(HF_REFERENCES)} "
                          "(or hf:PATH for a local directory with config.json and weights)")
    ref = HF_REFERENCES[name]
    config_cls, model_cls = _classes(ref.kind)
    values = {**ref.config, **(overrides or {})}
    with seeded(seed):
        config = config_cls(**values)
        if ref.kind == "whisper":
            # optional: transformers (the adapters extra, about 1 s to import), only for its hf: models
            from transformers.models.whisper.modeling_whisper import WhisperEncoder  # noqa: PLC0415

            model: nn.Module = WhisperEncoder(config)
        else:
            model = model_cls(config)
        _randomise_codebooks(model)
    opts = {**ref.options, **options}
    return freeze(_assemble(ref.kind, model, opts))


def load_hf_path(path: str | Path, **options: Any) -> HFModel:
    """``hf:PATH``: a local ``save_pretrained`` directory, loaded offline (``local_files_only=True``)."""
    root = Path(path).expanduser()
    cfg_file = root / "config.json"
    if not cfg_file.is_file():
        raise ConfigError(f"{root} is not a Hugging Face model directory (no config.json)")
    try:
        kind = json.loads(cfg_file.read_text())["model_type"]
    except (ValueError, KeyError) as e:
        raise ConfigError(f"{cfg_file} has no readable model_type: {e}") from None
    _, model_cls = _classes(kind)
    model = model_cls.from_pretrained(str(root), local_files_only=True)
    pre_file = root / "preprocessor_config.json"
    if pre_file.is_file():
        pre = json.loads(pre_file.read_text())
        if kind in ("wav2vec2", "hubert") and "do_normalize" in pre:
            options.setdefault("normalize", bool(pre["do_normalize"]))
        if kind == "audio-spectrogram-transformer":
            for key in ("mean", "std"):
                if key in pre:
                    options.setdefault(key, float(pre[key]))
    else:
        default = next((r for r in HF_REFERENCES.values() if r.kind == kind), None)
        if default is not None:
            for key, value in default.options.items():
                options.setdefault(key, value)
    return freeze(_assemble(kind, model, options))


def load_hf(ref: str, seed: int = 0, **options: Any) -> HFModel:
    """``NAME`` (a published architecture, random weights) or ``PATH`` (a local model directory)."""
    if ref in HF_REFERENCES:
        return build_hf(ref, seed=seed, **options)
    if Path(ref).expanduser().is_dir():
        return load_hf_path(ref, **options)
    raise ConfigError(f"unknown Hugging Face reference {ref!r}: not one of {', '.join(HF_REFERENCES)} and not a "
                      "directory with config.json")

