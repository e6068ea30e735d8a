"""Stimulus sets on disk: rendered audio shards, the factor table, and a manifest.

Layout of a set directory::

    manifest.json        what the set is (written last: a set without it is incomplete)
    factors.parquet      one row per clip: clip, seed, factor values, rate_defined_*
    audio/shard-00000.npy  float32 [clips, samples], memory-mapped on load
    columns/shard-00000.parquet  columns a renderer adds per shard (SoundFont sets: measured values)

The manifest's ``meta.source`` says where the audio comes from: ``synth`` (the
synthesizer, :meth:`StimulusSet.synthesize`) or ``soundfont`` (recorded
instruments, :func:`ontoscope.descriptors.renders.render_soundfont_set`, a layer
up since it measures its clips back); both give the same files, so every later
stage reads either.

Rendering goes shard by shard with a progress bar; each shard is written
atomically, so an interrupted render resumes where it stopped, and the same
table and seed always give the same audio.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ontoscope import __version__
from ontoscope.artifacts import ensure_dir, save_json, save_npy, save_table
from ontoscope.errors import StimulusSetError
from ontoscope.progress import track
from ontoscope.stimuli.audio_io import write_audio
from ontoscope.stimuli.factors import FACTOR_NAMES, FactorSpace
from ontoscope.stimuli.synth import MAX_PARTIALS, check_table, render

FORMAT = "ontoscope.stimuli/1"


def table_hash(table: pd.DataFrame) -> str:
    """Content hash of a factor table (values and column names)."""
    h = hashlib.sha256()
    h.update(json.dumps(list(map(str, table.columns))).encode())
    h.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


class StimulusSet:
    """A rendered stimulus set, loaded lazily from its directory.

    Create one with :meth:`StimulusSet.render` (from a factor table),
    :meth:`StimulusSet.synthesize` (sampling a :class:`FactorSpace`) or
    :func:`ontoscope.descriptors.renders.render_soundfont_set` (recorded
    instruments); open one with :meth:`StimulusSet.load`.

    Attributes
    ----------
    root : Path
        The set's directory.
    factors : DataFrame
        One row per clip (``clip``, ``seed``, factor values, ...).
    sr : int
        Sample rate in Hz.
    n_samples : int
        Samples per clip.
    """

    def __init__(self, root: Path, manifest: dict[str, Any], factors: pd.DataFrame) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self.factors = factors
        self.sr = int(manifest["sr"])
        self.n_samples = int(manifest["n_samples"])
        self._shard_size = int(manifest["shard_size"])
        self._shards: dict[int, np.ndarray] = {}

    # -- creation --------------------------------------------------------------------------
    @classmethod
    def render(
        cls,
        out: str | os.PathLike,
        table: pd.DataFrame,
        sr: int = 16000,
        seconds: float = 1.0,
        *,
        max_partials: int = MAX_PARTIALS,
        shard_size: int = 256,
        overwrite: bool = False,
        progress: bool | None = None,
        meta: dict[str, Any] | None = None,
    ) -> StimulusSet:
        """Render every row of ``table`` into a stimulus set at ``out``.

        Parameters
        ----------
        out : path
            Directory of the set. If it already holds a complete set of the same
            table and rendering parameters, that set is returned untouched; if it
            holds an interrupted render of them, rendering resumes.
        table : DataFrame
            Factor table with ``clip`` and ``seed`` columns (``FactorSpace.sample``,
            :func:`counterfactual_pairs`).
        sr, seconds, max_partials
            As in :func:`ontoscope.stimuli.synth.render`.
        shard_size : int
            Clips per audio shard (and per rendering chunk).
        overwrite : bool
            Replace a different set found at ``out`` instead of refusing.
        progress : bool, optional
            Show a progress bar (default: when stderr is a terminal).
        meta : dict, optional
            Extra JSON-serialisable facts stored in the manifest (e.g. the factor space).
        """
        if "clip" not in table or "seed" not in table:
            raise StimulusSetError("the factor table needs 'clip' and 'seed' columns")
        check_table(table)

        def shard(rows: pd.DataFrame) -> np.ndarray:
            return render(rows, sr, seconds, max_partials=max_partials, chunk=64).cpu().numpy()

        return cls.build(out, table, sr, seconds, shard, plan={"max_partials": int(max_partials)},
                         shard_size=shard_size, overwrite=overwrite, progress=progress, meta=meta)

    @classmethod
    def build(
        cls,
        out: str | os.PathLike,
        table: pd.DataFrame,
        sr: int,
        seconds: float,
        render_shard: Callable[[pd.DataFrame], Any],
        *,
        plan: dict[str, Any] | None = None,
        columns: bool = False,
        shard_size: int = 256,
        overwrite: bool = False,
        progress: bool | None = None,
        meta: dict[str, Any] | None = None,
        finish: Callable[[pd.DataFrame], dict[str, Any]] | None = None,
    ) -> StimulusSet:
        """Render a stimulus set with any renderer, shard by shard (resumable); :meth:`render` uses the synthesizer.

        Parameters
        ----------
        out, table, sr, seconds, shard_size, overwrite, progress, meta
            As in :meth:`render`; ``table`` needs ``clip`` and ``seed`` columns.
        render_shard : callable
            ``render_shard(rows)`` renders the rows of one shard: an array ``[rows,
            round(seconds · sr)]`` float32, or with ``columns`` a pair ``(audio, DataFrame)``
            whose table (one row per clip, in order) holds columns to add to the set's
            factor table (e.g. values measured on the rendered audio).
        plan : dict, optional
            JSON-serialisable facts that identify the rendering (renderer, its settings):
            a set at ``out`` is resumed only if they and the table are the same.
        columns : bool
            ``render_shard`` returns extra columns; they are kept per shard in
            ``columns/shard-NNNNN.parquet`` and joined to ``factors.parquet`` when the set completes.
        finish : callable, optional
            ``finish(factors)`` returns extra facts for the manifest's ``meta``, from the
            complete factor table.
        """
        if "clip" not in table or "seed" not in table:
            raise StimulusSetError("the factor table needs 'clip' and 'seed' columns")
        table = table.reset_index(drop=True)
        root = Path(out)
        n_samples = int(round(float(seconds) * sr))
        plan = {
            "format": FORMAT,
            "sr": int(sr),
            "seconds": float(seconds),
            "n_samples": n_samples,
            "n_clips": len(table),
            "shard_size": int(shard_size),
            **(plan or {}),
            "table_hash": table_hash(table),
        }
        if (root / "manifest.json").exists() or (root / "plan.json").exists():
            old = _read_json(root / "plan.json") if (root / "plan.json").exists() else None
            if old != json.loads(json.dumps(plan)):
                if not overwrite:
                    raise StimulusSetError(
                        f"{root} already holds a different stimulus set; choose another directory "
                        "or pass overwrite=True (--overwrite)"
                    )
                shutil.rmtree(root)
            elif (root / "manifest.json").exists():
                return cls.load(root)
        elif root.exists() and any(root.iterdir()) and not overwrite:
            raise StimulusSetError(f"{root} exists and is not empty; choose another directory or pass "
                                   "overwrite=True (--overwrite)")
        ensure_dir(root / "audio")
        save_json(root / "plan.json", plan)
        save_table(root / "factors.parquet", table)
        n_shards = (len(table) + shard_size - 1) // shard_size
        shards = [f"audio/shard-{i:05d}.npy" for i in range(n_shards)]
        extra = [f"columns/shard-{i:05d}.parquet" for i in range(n_shards)]
        todo = [i for i in range(n_shards)
                if not _shard_ok(root / shards[i], _rows(i, shard_size, len(table)), n_samples)
                or (columns and not (root / extra[i]).is_file())]
        for i in track(todo, len(todo), f"rendering {len(table)} clips", progress):
            rows = table.iloc[i * shard_size:(i + 1) * shard_size]
            result = render_shard(rows)
            audio, cols = result if columns else (result, None)
            audio = np.asarray(audio, dtype=np.float32)
            if audio.shape != (len(rows), n_samples):
                raise StimulusSetError(f"the renderer returned audio of shape {audio.shape} for {len(rows)} clips "
                                       f"of {n_samples} samples")
            if cols is not None:
                save_table(root / extra[i], cols.reset_index(drop=True))
            save_npy(root / shards[i], audio)
        if columns:
            parts = []
            for i in range(n_shards):
                try:
                    parts.append(pd.read_parquet(root / extra[i]))
                except (OSError, ValueError) as e:
                    raise StimulusSetError(f"{root / extra[i]} cannot be read ({e}); render the set again") from None
            added = pd.concat(parts, ignore_index=True)
            table = pd.concat([table, added.drop(columns=[c for c in added if c in table])], axis=1)
            save_table(root / "factors.parquet", table)
        meta = dict(meta or {})
        if finish is not None:
            meta.update(finish(table))
        manifest = dict(plan, shards=shards, version=__version__, factors=list(FACTOR_NAMES), meta=meta)
        save_json(root / "manifest.json", manifest)
        return cls.load(root)

    @classmethod
    def synthesize(
        cls,
        out: str | os.PathLike,
        space: FactorSpace,
        n: int,
        sr: int = 16000,
        seconds: float = 1.0,
        seed: int = 0,
        *,
        method: str = "uniform",
        **kwargs: Any,
    ) -> StimulusSet:
        """Sample ``n`` clips from ``space`` with ``seed`` and render them (see :meth:`render`)."""
        space.check_sample_rate(sr)
        space.check_duration(seconds)
        table = space.sample(n, seed=seed, method=method)  # type: ignore[arg-type]
        meta = {"space": space_to_dict(space), "seed": seed, "method": method, "source": "synth"}
        meta.update(kwargs.pop("meta", {}) or {})
        return cls.render(out, table, sr, seconds, meta=meta, **kwargs)

    @classmethod
    def load(cls, root: str | os.PathLike) -> StimulusSet:
        """Open a complete stimulus set (audio stays on disk until asked for)."""
        root = Path(root)
        if not root.is_dir():
            raise StimulusSetError(f"{root}: no such stimulus set directory")
        if not (root / "manifest.json").is_file():
            raise StimulusSetError(
                f"{root} is not a complete stimulus set (no manifest.json); render it again with "
                "`ontoscope stimuli` to finish it"
            )
        manifest = _read_json(root / "manifest.json")
        if manifest.get("format") != FORMAT:
            raise StimulusSetError(f"{root}: unknown stimulus set format {manifest.get('format')!r}")
        try:
            factors = pd.read_parquet(root / "factors.parquet")
        except (OSError, ValueError) as e:
            raise StimulusSetError(f"{root}/factors.parquet cannot be read: {e}") from None
        if len(factors) != manifest["n_clips"]:
            raise StimulusSetError(f"{root}: factors.parquet has {len(factors)} rows, the manifest says "
                                   f"{manifest['n_clips']}")
        return cls(root, manifest, factors)

    # -- access ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.factors)

    def __repr__(self) -> str:
        return f"StimulusSet({str(self.root)!r}, clips={len(self)}, sr={self.sr}, seconds={self.seconds})"

    @property
    def seconds(self) -> float:
        """Duration of every clip in seconds."""
        return float(self.manifest["seconds"])

    def _shard(self, i: int) -> np.ndarray:
        if i not in self._shards:
            path = self.root / self.manifest["shards"][i]
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                raise StimulusSetError(f"{path}: cannot read audio shard ({e}); render the set again") from None
            if arr.shape != (_rows(i, self._shard_size, len(self)), self.n_samples):
                raise StimulusSetError(f"{path}: shard has shape {arr.shape}; the set is corrupt, render it again")
            self._shards[i] = arr
        return self._shards[i]

    def audio(self, indices: Sequence[int] | np.ndarray | slice | None = None) -> torch.Tensor:
        """Audio of the given clips (row positions), ``[len(indices), n_samples]`` float32."""
        if indices is None:
            idx = np.arange(len(self))
        elif isinstance(indices, slice):
            idx = np.arange(len(self))[indices]
        else:
            idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"clip positions must lie in [0, {len(self)})")
        out = np.empty((idx.size, self.n_samples), dtype=np.float32)
        shard_of = idx // self._shard_size
        for s in np.unique(shard_of):
            sel = shard_of == s
            out[sel] = self._shard(int(s))[idx[sel] - s * self._shard_size]
        return torch.from_numpy(out)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, pd.Series]:
        """``(audio [n_samples], factor row)`` of clip position ``i``."""
        return self.audio([i])[0], self.factors.iloc[i]

    def chunks(self, size: int = 256) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Iterate over ``(positions, audio [chunk, n_samples])`` in order."""
        for start in range(0, len(self), size):
            idx = np.arange(start, min(start + size, len(self)))
            yield idx, self.audio(idx)

    def export(self, out: str | os.PathLike, progress: bool | None = None) -> Path:
        """Write every clip as ``clip-NNNNN.wav`` plus ``factors.csv`` (with a ``file`` column) in ``out``."""
        out = ensure_dir(out)
        table = self.factors.copy()
        names = [f"clip-{int(c):05d}.wav" for c in table["clip"]]
        for pos in track(range(len(self)), len(self), "exporting WAV files", progress):
            write_audio(out / names[pos], self.audio([pos])[0].numpy(), self.sr)
        table.insert(1, "file", names)
        save_table(out / "factors.csv", table)
        return out


def space_to_dict(space: FactorSpace) -> dict[str, Any]:
    """JSON-serialisable description of a factor space."""
    return {
        "varied": {f.name: [f.low, f.high, f.scale] for f in space.factors},
        "fixed": dict(space.fixed),
    }


def _rows(i: int, shard_size: int, n: int) -> int:
    return min(shard_size, n - i * shard_size)


def _shard_ok(path: Path, rows: int, n_samples: int) -> bool:
    if not path.is_file():
        return False
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False).shape == (rows, n_samples)
    except (OSError, ValueError):
        return False


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise StimulusSetError(f"{path} cannot be read ({e}); render the set again") from None


def space_from_dict(d: dict[str, Any]) -> FactorSpace:
    """Inverse of :func:`space_to_dict`: the factor space a stimulus set was sampled from."""
    varied = d.get("varied", {})
    return FactorSpace.create(list(varied), ranges={n: (lo, hi) for n, (lo, hi, _) in varied.items()},
                              fixed={n: v for n, v in d.get("fixed", {}).items() if n not in varied})


def set_space(ds: StimulusSet) -> FactorSpace:
    """The factor space of a stimulus set (its recorded one; else every factor column that varies)."""
    meta = ds.manifest.get("meta", {})
    if "space" in meta:
        return space_from_dict(meta["space"])
    varied = [n for n in FACTOR_NAMES if n in ds.factors and ds.factors[n].nunique(dropna=True) > 1]
    if not varied:
        raise StimulusSetError(f"{ds.root}: no factor varies in this stimulus set")
    return FactorSpace.create(varied, ranges={n: (float(ds.factors[n].min()), float(ds.factors[n].max()))
                                              for n in varied})
