"""Activation capture: a model's sites over a stimulus set, streamed to disk chunk by chunk.

:func:`capture` runs the model over the clips ``chunk`` at a time, reads every
requested site in one pass (:func:`ontoscope.models.protocol.encode_sites`),
turns each into its views (:mod:`ontoscope.probing.views`) and writes one
``.npy`` file per (site, view, chunk), atomically. Memory is bounded by the
chunk, not by the set. An interrupted capture resumes at the first chunk not
on disk; ``manifest.json`` is written last, and a capture is complete only
when it exists.

Layout of a capture directory::

    config.json                 what was captured (model, sites, views, options)
    sites.json                  channels, frames and frame rate of each site (after the first chunk)
    manifest.json               written last: sites with channels, frames, frame rate; views; clips
    clips.npy                   the stimulus set's clip ids, in capture order
    <site>/<view>/chunk-NNNNN.npy
    <site>/frames/groups-NNNNN.npy   clip id of every frame row
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ontoscope.artifacts import ensure_dir, save_json, save_npy
from ontoscope.errors import ConfigError, OntoscopeError
from ontoscope.models.protocol import AudioModel, encode_sites, model_device, site_index
from ontoscope.models.resample import prepare, resample
from ontoscope.probing.views import VIEWS, frame_view, modulation_view, pooled_view, timing_view
from ontoscope.progress import track
from ontoscope.stimuli.dataset import StimulusSet

__all__ = ["Capture", "CaptureError", "capture"]


class CaptureError(OntoscopeError):
    """A capture directory that is missing, incomplete, or holds another capture."""


def _site_rate(model: AudioModel, name: str, n_frames: int, n_samples: int) -> float:
    """The site's frame rate (:meth:`Site.frame_rate`), else the one its frame count shows."""
    sites = model.sites()
    rate = sites[site_index(sites, name)].frame_rate(model.sample_rate)
    return rate if rate is not None else n_frames * model.sample_rate / n_samples


def capture(
    model: AudioModel,
    stimuli: StimulusSet,
    out: str | os.PathLike,
    *,
    sites: Sequence[str] | None = None,
    views: Sequence[str] = VIEWS,
    chunk: int = 64,
    max_bytes: int = 2**30,
    frames_per_clip: int = 8,
    n_bands: int = 8,
    model_ref: str | None = None,
    progress: bool | None = None,
) -> Capture:
    """Capture the views of ``model``'s sites over every clip of ``stimuli``.

    Parameters
    ----------
    model : AudioModel
        Run in evaluation mode without gradients, on the device of its parameters
        (move it to CUDA first to capture there).
    stimuli : StimulusSet
        Clips are resampled to ``model.sample_rate`` when the rates differ.
    out : path
        Capture directory (resumed if it holds the same capture unfinished).
    sites : sequence of str, optional
        Site names (default: every site).
    views : sequence of {"frames", "pooled", "modulation", "timing"}
    chunk : int
        Clips per forward pass, at most.
    max_bytes : int
        Bytes of site activations (float32) one pass may hold: a pass takes fewer clips than ``chunk`` where the
        sites are wide (sized on one clip first), and each view is computed on slices of a pass whose float64
        work stays under it.
    frames_per_clip, n_bands : int
        Options of :func:`~ontoscope.probing.views.frame_view` and
        :func:`~ontoscope.probing.views.modulation_view`.
    model_ref : str, optional
        The model's reference, recorded in ``config.json``.

    Returns
    -------
    Capture
    """
    names = [s.name for s in model.sites()] if sites is None else list(dict.fromkeys(sites))
    for n in names:
        site_index(model.sites(), n)  # SiteError lists the known sites
    bad = [v for v in views if v not in VIEWS]
    if bad or not views:
        raise ConfigError(f"unknown view(s) {bad or views}; use any of {', '.join(VIEWS)}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ConfigError(f"chunk must be a positive integer, got {chunk!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ConfigError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    root = Path(out)
    config = {"model": model_ref or type(model).__name__, "sample_rate": int(model.sample_rate),
              "stimuli": str(Path(stimuli.root).resolve()), "stimuli_hash": stimuli.manifest.get("table_hash"),
              "n_clips": len(stimuli), "sites": names, "views": list(views), "chunk": chunk,
              "max_bytes": max_bytes, "frames_per_clip": frames_per_clip, "n_bands": n_bands}
    if (root / "config.json").is_file():
        old = json.loads((root / "config.json").read_text())
        if old != config:
            raise CaptureError(f"{root} holds another capture (different model, stimuli or options); "
                               "choose a new directory or delete it")
        if (root / "manifest.json").is_file():
            return Capture(root)
    ensure_dir(root)
    save_json(root / "config.json", config)
    save_npy(root / "clips.npy", stimuli.factors["clip"].to_numpy())

    if isinstance(model, torch.nn.Module):
        model.eval()
    device = model_device(model)
    # the sites' shapes and frame rates, known once a chunk has run (kept so that a resumed capture skips
    # every finished chunk)
    info: dict[str, dict[str, Any]] = (json.loads((root / "sites.json").read_text())
                                       if (root / "sites.json").is_file() else {})
    if not info:  # the sites' float32 bytes per clip, from one clip
        with torch.no_grad():
            one = encode_sites(model, prepare(stimuli.audio(np.arange(1)), stimuli.sr, model).to(device), names)
        per_clip = sum(int(one[n][0].numel()) * 4 for n in names)
    else:
        per_clip = sum(int(i["channels"] * (i["freq_bins"] or 1) * i["frames"]) * 4 for i in info.values())
    chunk = max(1, min(chunk, max_bytes // max(1, per_clip)))
    n_chunks = (len(stimuli) + chunk - 1) // chunk
    clip_ids = stimuli.factors["clip"].to_numpy()
    for ci in track(range(n_chunks), n_chunks, f"capturing {len(names)} sites", progress):
        idx = np.arange(ci * chunk, min((ci + 1) * chunk, len(stimuli)))
        files = {(n, v): root / n / v / f"chunk-{ci:05d}.npy" for n in names for v in views}
        if all(f.is_file() for f in files.values()) and info:
            continue
        audio = prepare(stimuli.audio(idx), stimuli.sr, model).to(device)
        with torch.no_grad():
            acts = encode_sites(model, audio, names)
        for n in names:
            a = acts[n].float()
            rate = _site_rate(model, n, a.shape[-1], audio.shape[-1])
            info[n] = {"layout": "BCFT" if a.ndim == 4 else "BCT", "channels": int(a.shape[1]),
                       "freq_bins": int(a.shape[2]) if a.ndim == 4 else None, "frames": int(a.shape[-1]),
                       "frame_rate_hz": float(rate)}
            for v in views:
                if files[(n, v)].is_file():
                    continue
                if v == "frames":
                    x, g = frame_view(a, frames_per_clip)
                    save_npy(root / n / v / f"groups-{ci:05d}.npy", clip_ids[idx][g.cpu().numpy()])
                elif v == "pooled":
                    x = _in_slices(pooled_view, a, max_bytes)
                elif v == "timing":
                    x = _in_slices(partial(timing_view, frame_rate=rate), a, max_bytes)
                else:
                    x = _in_slices(partial(modulation_view, frame_rate=rate, n_bands=n_bands), a, max_bytes)
                save_npy(files[(n, v)], x.cpu().numpy().astype(np.float32))
        if not (root / "sites.json").is_file():
            save_json(root / "sites.json", info)
    manifest = {"complete": True, "n_clips": len(stimuli), "n_chunks": n_chunks, "clips_per_chunk": chunk,
                "sites": info, "views": list(views)}
    save_json(root / "manifest.json", manifest)
    return Capture(root)


def _in_slices(view: Callable[[torch.Tensor], torch.Tensor], acts: torch.Tensor, max_bytes: int) -> torch.Tensor:
    """``view`` of ``acts`` ``[B, ...]`` computed on slices of clips whose float64 copies stay under ``max_bytes``
    (the views are per clip, so the result is the same)."""
    step = max(1, max_bytes // max(1, int(acts[0].numel()) * 8))
    if step >= acts.shape[0]:
        return view(acts)
    return torch.cat([view(acts[i:i + step]) for i in range(0, acts.shape[0], step)])


@dataclass
class Capture:
    """A finished capture on disk; :meth:`features` loads one (site, view) matrix."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not (self.root / "manifest.json").is_file():
            raise CaptureError(f"{self.root} is not a finished capture (no manifest.json); run the capture "
                               "again to complete it")
        self.manifest = json.loads((self.root / "manifest.json").read_text())
        self.config = json.loads((self.root / "config.json").read_text())
        self.clips = np.load(self.root / "clips.npy", allow_pickle=False)

    @property
    def sites(self) -> list[str]:
        """Captured site names, in forward order."""
        return list(self.config["sites"])

    @property
    def views(self) -> list[str]:
        return list(self.config["views"])

    def frame_rate(self, site: str) -> float:
        """Frames per second at ``site``."""
        return float(self.manifest["sites"][self._site(site)]["frame_rate_hz"])

    def _site(self, site: str) -> str:
        if site not in self.manifest["sites"]:
            raise CaptureError(f"site {site!r} was not captured; captured: {', '.join(self.sites)}")
        return site

    def features(self, site: str, view: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X [rows, d] float32, clip id per row [rows])`` for one site and view."""
        self._site(site)
        if view not in self.views:
            raise CaptureError(f"view {view!r} was not captured; captured: {', '.join(self.views)}")
        n = int(self.manifest["n_chunks"])
        d = self.root / site / view
        x = np.concatenate([np.load(d / f"chunk-{i:05d}.npy", allow_pickle=False) for i in range(n)])
        if view == "frames":
            g = np.concatenate([np.load(d / f"groups-{i:05d}.npy", allow_pickle=False) for i in range(n)])
        else:
            g = self.clips
        return x, g


class _Resampled(StimulusSet):
    """A stimulus set read at another sample rate: the same clips, factors and files, resampled on read."""

    def __init__(self, base: StimulusSet, sr: int) -> None:  # noqa: D107 - a view, not a new set
        self.__dict__.update(base.__dict__)
        self._base = base
        self.sr = int(sr)
        self.n_samples = int(round(base.n_samples * self.sr / base.sr))

    def audio(self, indices: Sequence[int] | np.ndarray | slice | None = None) -> torch.Tensor:
        return resample(self._base.audio(indices), self._base.sr, self.sr)

    def __repr__(self) -> str:
        return f"{self._base!r} at {self.sr} Hz"


def at_rate(stimuli: StimulusSet, sr: int) -> StimulusSet:
    """``stimuli`` read at ``sr`` Hz: every clip band-limited resampled on read (``models.resample.resample``,
    windowed sinc), factors and positions unchanged; the set itself when it is already at ``sr``.

    Resampling up keeps the set's band limit: a 16 kHz clip read at 22 050 Hz has nothing above about 7.6 kHz,
    which a descriptor reading the whole band (brightness, a spectral slope up to Nyquist) measures as a darker
    sound than the set's value. Where the stimuli can be rendered at the model's rate, render them there (a
    study does, for every model whose rate differs from its stimuli's)."""
    return stimuli if int(stimuli.sr) == int(sr) else _Resampled(stimuli, sr)
