"""Control models: audio models in which it is known by construction which factor each intervention controls.

They are part of the instrument (``docs/operational_ontology.md``): every study runs
them, and a measurement is trusted only as far as it recovers their answers.

:class:`ControllerModel` (trained)
    The encoder reads the normalised factors ``u`` off the audio (as
    :class:`~ontoscope.models.planted.PlantedModel` does), a small MLP applied per
    frame is *trained* to map ``u`` to the synthesizer's parameters (``û ≈ u``), and
    the synthesizer renders them. Sites: ``encoder.hidden0``, ``bottleneck``
    (``[B, H, T]``). Every encoded factor is an ICV there (additive steering along a
    pattern direction, interchange, DAS); an omitted factor is not; gain, time-warp
    and modulation do nothing, because the trajectory is constant over frames and the
    decoder reads frame means.
:class:`SupervisedControl` (trained)
    The encoder of a ``conv_ae`` (strides 4, 4, 4, width 8; sites
    ``encoder.block0`` … ``encoder.block2``, ``bottleneck``) is trained with a supervised factor head: a
    linear map of each bottleneck frame whose frame mean is fitted to the normalised
    static factors ``u`` of freshly rendered clips; the synthesizer renders what the
    head reads. The decoder reads the bottleneck only through the head, so every
    factor the head reads (on its own held-out clips, ``fit_r2``) is an ICV at the
    bottleneck by construction, and a factor it does not read is not, even where the
    conv features carry it (a tremolo depth, which no head was trained on, is
    decodable there, and moves nothing).
:class:`WaveformControl`
    One site, ``encoder.waveform`` ``[B, 1, N]``: the audio itself; the output is the
    site. Gain controls loudness, time-warp controls pitch (rates follow), a
    gain-modulation imposes tremolo and a warp-modulation vibrato. With ``level_db``
    the decoder scales every clip to that RMS level, so the site is read apart from
    its norm: gain then controls nothing.
:class:`PlaceControl`
    One site, ``encoder.salience`` ``[B, P, T]``: the clip's f0 as a Gaussian bump (4 bins wide) over
    ``P`` pitch bins of 20 cents (a place code, declared as an ordered axis); the
    decoder reads f0 from the bump (the salience-weighted mean around the peak, as
    CREPE does) and renders a tone; every other factor is held at its mid value.
    A place shift by ``k`` bins moves pitch by ``20 k`` cents. With ``shuffled`` the
    bins are stored in a fixed random order while the axis is still declared ordered:
    a place shift then controls nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ontoscope.descriptors import measure
from ontoscope.errors import ConfigError
from ontoscope.models.conv_ae import ConvAE
from ontoscope.models.planted import PlantedModel
from ontoscope.models.protocol import Site, StagedModel, site_index
from ontoscope.models.spec import ConvAESpec
from ontoscope.stimuli.factors import FactorSpace
from ontoscope.stimuli.synth import Nuisance, render, synthesize

__all__ = ["ControllerModel", "PlaceControl", "SupervisedControl", "WaveformControl"]

CONTROLLER_SITES = ("encoder.hidden0", "bottleneck")


class ControllerModel(PlantedModel):
    """A trained controller between a factor-reading encoder and the synthesizer (see the module docstring).

    Parameters
    ----------
    space : FactorSpace
    omit : sequence of str
        Varied factors the encoder leaves out (the negative cells).
    hidden : int
        Width of the two hidden layers.
    trained : bool
        Train the MLP (``steps`` Adam steps on uniform ``u``); False leaves its random initialisation.
    seed : int
        Seeds the initialisation, the training batches and the decoder's nuisances.
    """

    def __init__(self, space: FactorSpace, *, omit: Sequence[str] = (), hidden: int = 32, trained: bool = True,
                 steps: int = 1500, sample_rate: int = 16000, frame_rate: float = 50.0, seed: int = 0) -> None:
        super().__init__(space, omit=omit, sample_rate=sample_rate, frame_rate=frame_rate, seed=seed)
        k = len(self.encoded)
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.layers = nn.ModuleList([nn.Conv1d(k, hidden, 1), nn.Conv1d(hidden, hidden, 1),
                                         nn.Conv1d(hidden, k, 1)])
        self.trained = bool(trained)
        if trained:
            opt = torch.optim.Adam(self.layers.parameters(), lr=3e-3)
            for _ in range(int(steps)):
                u = torch.rand(256, k, 1, generator=gen) * 2 - 1
                loss = ((self._net(u, 0) - u) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.fit_error = float(loss.detach().sqrt())
        for p in self.layers.parameters():
            p.requires_grad_(False)
        self._sites = [Site(CONTROLLER_SITES[0], "BCT", hidden, role="encoder", stride=self.stride),
                       Site(CONTROLLER_SITES[1], "BCT", hidden, role="bottleneck", stride=self.stride)]

    def _net(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Layers ``start`` … 2 of the MLP (ELU between them); ``start`` 0 from ``u``, 1 from ``encoder.hidden0``,
        2 from ``bottleneck`` (the second hidden layer)."""
        for j in range(start, 3):
            x = self.layers[j](x)
            if j < 2:
                x = nn.functional.elu(x)
        return x

    def encode(self, audio: torch.Tensor, upto: str) -> torch.Tensor:
        """Activations ``[B, H, T]`` at a hidden layer."""
        i = site_index(self._sites, upto)
        u = self.normalised_factors(audio)[..., None].expand(-1, -1, self._frames(audio.shape[-1]))
        x = self.layers[0](u.contiguous())
        x = nn.functional.elu(x)
        if i == 1:
            x = nn.functional.elu(self.layers[1](x))
        return x

    def factor_values(self, acts: torch.Tensor, site: str) -> dict[str, torch.Tensor]:
        """The controller's output ``û`` (frame means, clamped) as factor values in natural units."""
        i = site_index(self._sites, site)
        u = self._net(acts.to(self.layers[0].weight.dtype), i + 1).mean(-1).clamp(-1, 1).double()
        return {n: self.space[n].denormalize((u[:, j] + 1) / 2) for j, n in enumerate(self.encoded)}


class SupervisedControl(PlantedModel):
    """A ``conv_ae`` encoder trained with a supervised factor head, rendered by the synthesizer (module docstring).

    Parameters
    ----------
    space : FactorSpace
    omit : sequence of str
        Varied factors the head does not read (besides every oscillatory factor, which it never reads).
    strides, width, bottleneck
        The encoder's :class:`~ontoscope.models.spec.ConvAESpec` (``depth`` 0).
    steps, clips, seconds, batch_size, lr
        Adam steps (peak learning rate ``lr``, cosine decay) on ``clips`` clips of ``seconds`` rendered from
        ``space`` (seeded by ``seed``); a fifth of them are held out for ``fit_r2``.
    seed : int
        Seeds the clips, the initialisation, the batches and the decoder's nuisances.

    Attributes
    ----------
    fit_r2 : dict of str to float
        The head's R² per read factor on its held-out clips: how well training made it read each one.
    """

    def __init__(self, space: FactorSpace, *, omit: Sequence[str] = (), strides: Sequence[int] = (4, 4, 4),
                 width: int = 8, bottleneck: int = 16, steps: int = 400, clips: int = 320, seconds: float = 0.5,
                 batch_size: int = 16, lr: float = 1e-2, sample_rate: int = 16000, seed: int = 0) -> None:
        read = [n for n in space.names if space[n].kind == "static" and n not in set(omit)]
        if not read:
            raise ConfigError("a supervised control needs a varied static factor for its head to read")
        stride = math.prod(strides)
        super().__init__(space, omit=[n for n in space.names if n not in read], sample_rate=sample_rate,
                         frame_rate=sample_rate / stride, seed=seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            ae = ConvAE(ConvAESpec(sample_rate=sample_rate, strides=list(strides), width=width, depth=0,
                                   bottleneck=bottleneck))
            n_enc = [s.name for s in ae.sites()].index("bottleneck") + 1
            self.stages = nn.ModuleList(list(ae.stages)[:n_enc])
            self.head = nn.Conv1d(bottleneck, len(read), 1)
        self._sites = ae.sites()[:n_enc]
        self.fit_r2 = self._train(space, read, steps=steps, clips=clips, seconds=seconds, batch_size=batch_size,
                                  lr=lr)
        for p in self.parameters():
            p.requires_grad_(False)

    def _train(self, space: FactorSpace, read: list[str], *, steps: int, clips: int, seconds: float,
               batch_size: int, lr: float) -> dict[str, float]:
        table = space.sample(clips, seed=10_000 + self.seed)
        audio = render(table, self.sample_rate, seconds)[:, None]
        u = torch.tensor(np.stack([2 * space[n].normalize(table[n].to_numpy()) - 1 for n in read], 1),
                         dtype=torch.float32)
        n_fit = clips - clips // 5
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, int(steps)))
        for _ in range(int(steps)):
            idx = torch.randint(0, n_fit, (batch_size,), generator=gen)
            loss = ((self._read(self._run(audio[idx], 0, len(self.stages))) - u[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            got = self._read(self._run(audio[n_fit:], 0, len(self.stages)))
        err = (got - u[n_fit:]).pow(2).mean(0) / u[n_fit:].var(0).clamp_min(1e-12)
        return {n: float(1 - e) for n, e in zip(read, err, strict=True)}

    def _run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for j in range(start, stop):
            x = self.stages[j](x)
        return x

    def _read(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """The head's reading ``[B, k]``: the frame mean of its per-frame linear map (before any clamp)."""
        return self.head(bottleneck).mean(-1)

    def encode(self, audio: torch.Tensor, upto: str) -> torch.Tensor:
        """Activations ``[B, C, T]`` at an encoder block or the bottleneck (the clip right-padded to the stride)."""
        i = site_index(self._sites, upto)
        x = nn.functional.pad(audio, (0, (-audio.shape[-1]) % self.stride))[:, None]
        return self._run(x.to(self.head.weight.dtype), 0, i + 1)

    def factor_values(self, acts: torch.Tensor, site: str) -> dict[str, torch.Tensor]:
        """What the head reads from a site (the rest of the encoder run first), clamped to the range, in natural
        units."""
        i = site_index(self._sites, site)
        u = self._read(self._run(acts.to(self.head.weight.dtype), i + 1, len(self.stages)))
        u = u.clamp(-1, 1).double()
        return {n: self.space[n].denormalize((u[:, j] + 1) / 2) for j, n in enumerate(self.encoded)}


class _Level(nn.Module):
    """Scales each clip ``[B, 1, N]`` to the RMS level ``db`` (dBFS); identity with ``db`` None."""

    def __init__(self, db: float | None) -> None:
        super().__init__()
        self.db = db

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.db is None:
            return x
        rms = x.pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-8)
        return x * (10 ** (self.db / 20) / rms)


class WaveformControl(StagedModel):
    """The audio as its own site; with ``level_db`` the output is scaled to that RMS level (dBFS)."""

    output = "audio"

    def __init__(self, *, sample_rate: int = 16000, level_db: float | None = None) -> None:
        self.sample_rate = int(sample_rate)
        self.level_db = level_db
        super().__init__([(Site("encoder.waveform", "BCT", 1, role="encoder", stride=1, receptive_field=1),
                           nn.Identity())], head=_Level(level_db))

    def postprocess(self, out: torch.Tensor) -> torch.Tensor:
        return out.squeeze(1)


class PlaceControl(nn.Module):
    """f0 as a place code over pitch bins of 20 cents (see the module docstring).

    Parameters
    ----------
    space : FactorSpace
        Must vary ``f0``; the bins span its range and half an octave on each side.
    shuffled : bool
        Store the bins in a fixed random order (seeded), the axis still declared ordered.
    """

    output = "audio"
    CENTS_PER_BIN = 20.0
    WIDTH_BINS = 4.0  # standard deviation of the bump

    def __init__(self, space: FactorSpace, *, shuffled: bool = False, sample_rate: int = 16000,
                 frame_rate: float = 50.0, seed: int = 0) -> None:
        super().__init__()
        if "f0" not in space.names:
            raise ConfigError("a place control needs f0 among the varied factors")
        self.space = space
        self.sample_rate = int(sample_rate)
        self.stride = max(1, int(round(sample_rate / frame_rate)))
        self.seed = int(seed)
        f = space["f0"]
        self.low_cents = 1200 * math.log2(f.low) - 600
        n_bins = int(math.ceil((1200 * math.log2(f.high / f.low) + 1200) / self.CENTS_PER_BIN)) + 1
        perm = (torch.randperm(n_bins, generator=torch.Generator().manual_seed(seed)) if shuffled
                else torch.arange(n_bins))
        self.register_buffer("perm", perm)
        self.shuffled = bool(shuffled)
        place = {"dim": "channels", "start": 0, "stop": n_bins, "cents_per_step": self.CENTS_PER_BIN}
        self._sites = [Site("encoder.salience", "BCT", n_bins, role="encoder", stride=self.stride,
                            notes={"place": place})]

    def sites(self) -> list[Site]:
        """``encoder.salience``."""
        return list(self._sites)

    def _frames(self, n_samples: int) -> int:
        return max(1, -(-n_samples // self.stride))

    def encode(self, audio: torch.Tensor, upto: str) -> torch.Tensor:
        """The salience ``[B, P, T]`` of the clip's measured f0 (all zeros where it is undefined)."""
        site_index(self._sites, upto)
        f0 = torch.tensor(measure(audio.detach().cpu(), self.sample_rate)["f0"].to_numpy(), dtype=torch.float32)
        pos = (1200 * torch.log2(f0) - self.low_cents) / self.CENTS_PER_BIN  # [B] fractional bin
        bins = torch.arange(self.perm.numel(), dtype=torch.float32)
        sal = torch.exp(-0.5 * ((bins[None] - pos[:, None]) / self.WIDTH_BINS) ** 2)
        sal = torch.nan_to_num(sal, nan=0.0)[:, self.perm.cpu()]
        return sal[..., None].expand(-1, -1, self._frames(audio.shape[-1])).contiguous().to(audio.device)

    def f0(self, acts: torch.Tensor) -> torch.Tensor:
        """f0 in Hz ``[B]`` from a salience ``[B, P, T]``: the weighted mean of the 9 bins around the peak."""
        sal = torch.empty_like(acts)
        sal[:, self.perm] = acts  # back to pitch order
        s = sal.mean(-1).clamp_min(0)
        peak = s.argmax(1)
        idx = (peak[:, None] + torch.arange(-4, 5, device=s.device)[None]).clamp(0, s.shape[1] - 1)
        w = torch.gather(s, 1, idx)
        pos = (w * idx).sum(1) / w.sum(1).clamp_min(1e-12)
        return 2 ** ((self.low_cents + pos.double() * self.CENTS_PER_BIN) / 1200)

    def resume(self, acts: torch.Tensor, site: str, n_samples: int | None = None) -> torch.Tensor:
        """A tone at the decoded f0, every other factor at its fixed or mid value."""
        site_index(self._sites, site)
        values: dict[str, object] = dict(self.space.fixed)
        for n in self.space.names:
            values[n] = float(self.space[n].denormalize(0.5))
        b = acts.shape[0]
        values["f0"] = self.f0(acts).cpu()
        n = int(n_samples or acts.shape[-1] * self.stride)
        return synthesize(values, Nuisance.from_seeds(np.full(b, self.seed), n), self.sample_rate).to(acts.device)

    def decode(self, acts: torch.Tensor, site: str) -> torch.Tensor:
        return self.resume(acts, site)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.resume(self.encode(audio, "encoder.salience"), "encoder.salience", audio.shape[-1])
