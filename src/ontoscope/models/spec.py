"""Architecture specs: the knobs of ontoscope's model family, validated, loadable from YAML.

An :data:`ArchSpec` is one of three families, told apart by ``family``:

- ``conv_ae``: a waveform autoencoder in the SEANet / EnCodec style (Tagliasacchi
  et al. 2020; Défossez et al. 2022): strided conv blocks with residual units,
  a bottleneck, an optional residual vector quantizer, a mirrored decoder.
- ``spec_cnn``: a spectrogram CNN (STFT or log-mel front end, 2-D conv blocks
  with pooling), as an autoencoder or as a supervised factor regressor.
- ``tcn``: the control with no temporal downsampling: dilated residual convs at
  stride 1 (Bai et al. 2018), optionally after one small fixed decimation.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from ontoscope.errors import ConfigError
from ontoscope.stimuli.factors import get_factor


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuantizerSpec(_Spec):
    """Residual vector quantizer (Zeghidour et al. 2021): ``codebooks`` stages of ``size`` codes each."""

    codebooks: int = Field(4, ge=1, le=64)
    size: int = Field(256, ge=2, le=65536)
    commitment: float = Field(0.25, ge=0)

    def bitrate(self, frame_rate: float) -> float:
        """Bits per second the codes carry: ``codebooks * log2(size) * frame_rate``."""
        return self.codebooks * math.log2(self.size) * frame_rate


def _from_compression(data: object, floats_per_channel: int | None = None) -> object:
    """Turn a ``compression`` given in place of ``bottleneck`` into the bottleneck width it implies.

    ``compression`` is input samples per latent float, so ``bottleneck = total_stride / (compression * f)``
    with ``f`` the frequency bins at the bottleneck (1 for a waveform model); it must come out a whole number.
    """
    if not isinstance(data, dict) or data.get("compression") is None:
        return data
    data = dict(data)
    compression = data.pop("compression")
    if data.get("bottleneck") is not None:
        raise ValueError("give bottleneck (latent channels) or compression (input samples per latent float), "
                         "not both")
    if isinstance(compression, bool) or not isinstance(compression, (int, float)) or compression <= 0:
        raise ValueError(f"compression must be a positive number of input samples per latent float, got "
                         f"{compression!r}")
    per_frame = _stride_of(data) / compression / (floats_per_channel or 1)
    if abs(per_frame - round(per_frame)) > 1e-9 or round(per_frame) < 1:
        bins = f" over {floats_per_channel} frequency bins" if floats_per_channel else ""
        raise ValueError(f"compression {compression:g} gives {per_frame:g} latent channels (total stride "
                         f"{_stride_of(data)}{bins}); choose a compression that divides it into a whole number")
    data["bottleneck"] = int(round(per_frame))
    return data


def _stride_of(data: dict) -> int:
    if data.get("family", "conv_ae") == "spec_cnn":
        return int(data.get("hop", 128)) * math.prod(int(t) for _, t in data.get("pool", [(2, 2)] * 3))
    return math.prod(int(s) for s in data.get("strides", [2, 4, 4, 8]))


class ConvAESpec(_Spec):
    """Waveform autoencoder; total stride = product of ``strides``."""

    family: Literal["conv_ae"] = "conv_ae"
    sample_rate: int = Field(16000, ge=1000, le=192000)
    strides: list[int] = Field(default_factory=lambda: [2, 4, 4, 8], min_length=1, max_length=12)
    width: int = Field(16, ge=1, le=1024, description="channels of the first block, doubled per block")
    max_channels: int = Field(512, ge=1)
    depth: int = Field(1, ge=0, le=12, description="residual units per block (dilations 1, 3, 9, ...)")
    kernel: int | None = Field(None, ge=1, description="kernel of the strided convs; default 2 x stride")
    bottleneck: int = Field(32, ge=1, description="latent channels (or give compression instead)")
    antialias: Literal["none", "blur"] = "none"
    activation: Literal["elu", "snake"] = Field("elu", description="elu, or snake: x + sin^2(a x) / a, a learnt "
                                                                   "per channel (Ziyin et al. 2020)")
    quantizer: QuantizerSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _compression(cls, data: object) -> object:
        return _from_compression(data)

    @model_validator(mode="after")
    def _check(self) -> ConvAESpec:
        bad = [s for s in self.strides if s < 1]
        if bad:
            raise ValueError(f"strides must be >= 1, got {self.strides}")
        return self

    @property
    def total_stride(self) -> int:
        return math.prod(self.strides)

    @property
    def compression(self) -> float:
        """Input samples per latent float: ``total_stride / bottleneck``."""
        return self.total_stride / self.bottleneck

    @property
    def bitrate(self) -> float | None:
        """Bits per second of the quantizer's codes, or None without one."""
        return None if self.quantizer is None else self.quantizer.bitrate(self.sample_rate / self.total_stride)

    def kernel_for(self, stride: int) -> int:
        """Kernel of the strided conv for ``stride`` (the ``kernel`` rule)."""
        return self.kernel if self.kernel is not None else 2 * stride


class SpecCNNSpec(_Spec):
    """Spectrogram CNN: front end, 2-D conv blocks each followed by pooling (freq, time)."""

    family: Literal["spec_cnn"] = "spec_cnn"
    sample_rate: int = Field(16000, ge=1000, le=192000)
    frontend: Literal["stft", "logmel"] = "logmel"
    n_fft: int = Field(512, ge=16)
    hop: int = Field(128, ge=1)
    n_mels: int = Field(64, ge=4)
    width: int = Field(16, ge=1, le=1024)
    max_channels: int = Field(256, ge=1)
    depth: int = Field(1, ge=1, le=8, description="3x3 convs per block")
    pool: list[tuple[int, int]] = Field(default_factory=lambda: [(2, 2), (2, 2), (2, 2)], min_length=1,
                                        description="(freq, time) pooling after each block")
    bottleneck: int = Field(32, ge=1, description="latent channels per frequency bin (or give compression)")
    mode: Literal["autoencoder", "encoder"] = "autoencoder"
    factors: list[str] = Field(default_factory=list, description="factors regressed in encoder mode")

    @model_validator(mode="before")
    @classmethod
    def _compression(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("compression") is not None:
            probe = {k: v for k, v in data.items() if k not in ("compression", "bottleneck")}
            return _from_compression(data, SpecCNNSpec(**probe).bottleneck_bins)
        return data

    @model_validator(mode="after")
    def _check(self) -> SpecCNNSpec:
        if any(p < 1 or q < 1 for p, q in self.pool):
            raise ValueError(f"pool sizes must be >= 1, got {self.pool}")
        if self.hop > self.n_fft:
            raise ValueError(f"hop ({self.hop}) must not exceed n_fft ({self.n_fft})")
        if self.mode == "encoder" and not self.factors:
            raise ValueError("encoder mode regresses factors: list them in 'factors'")
        if self.factors:
            for f in self.factors:
                get_factor(f)
        bins = self.n_mels if self.frontend == "logmel" else self.n_fft // 2 + 1
        fpool = math.prod(p for p, _ in self.pool)
        if fpool > bins:
            raise ValueError(f"frequency pooling {fpool} exceeds the {bins} frequency bins")
        return self

    @property
    def total_stride(self) -> int:
        return self.hop * math.prod(t for _, t in self.pool)

    @property
    def bottleneck_bins(self) -> int:
        """Frequency bins at the bottleneck: the front end's bins through each pooling (rounded up)."""
        bins = self.n_mels if self.frontend == "logmel" else self.n_fft // 2 + 1
        for pf, _ in self.pool:
            bins = math.ceil(bins / pf)
        return bins

    @property
    def compression(self) -> float:
        """Input samples per latent float: ``total_stride / (bottleneck * bottleneck_bins)``."""
        return self.total_stride / (self.bottleneck * self.bottleneck_bins)

    @property
    def bitrate(self) -> None:
        """None: no quantizer in this family."""
        return None


class TCNSpec(_Spec):
    """Temporal conv net at stride 1 (after an optional fixed decimation), as an autoencoder."""

    family: Literal["tcn"] = "tcn"
    sample_rate: int = Field(16000, ge=1000, le=192000)
    width: int = Field(32, ge=1, le=1024)
    depth: int = Field(8, ge=1, le=24, description="residual layers, dilation 2**i")
    kernel: int = Field(3, ge=2)
    decimation: int = Field(1, ge=1, le=16)
    bottleneck: int = Field(32, ge=1)

    @property
    def total_stride(self) -> int:
        return self.decimation

    @property
    def compression(self) -> float:
        """Input samples per latent float: ``decimation / bottleneck``."""
        return self.total_stride / self.bottleneck

    @property
    def bitrate(self) -> None:
        """None: no quantizer in this family."""
        return None


ArchSpec = Annotated[ConvAESpec | SpecCNNSpec | TCNSpec, Field(discriminator="family")]
_ADAPTER: TypeAdapter = TypeAdapter(ArchSpec)
FAMILIES = {"conv_ae": ConvAESpec, "spec_cnn": SpecCNNSpec, "tcn": TCNSpec}


def parse_spec(data: dict, source: str = "spec") -> ConvAESpec | SpecCNNSpec | TCNSpec:
    """Validate a spec given as a dict; a :class:`ConfigError` naming the key and the problem otherwise."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: an architecture spec must be a mapping, got {type(data).__name__}")
    family = data.get("family")
    if family not in FAMILIES:
        raise ConfigError(f"{source}: unknown family {family!r}; use one of {', '.join(FAMILIES)}")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"][1:])
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}: {loc}: {msg}" if loc else f"{source}: {msg}") from None


def load_spec(path: str | os.PathLike) -> ConvAESpec | SpecCNNSpec | TCNSpec:
    """Read and validate a spec YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such spec file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    return parse_spec(data, str(path))


def spec_to_dict(spec: ConvAESpec | SpecCNNSpec | TCNSpec) -> dict:
    """JSON/YAML-ready dict of a spec."""
    return spec.model_dump(mode="json")
