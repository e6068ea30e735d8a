"""Where a run directory lives: a local path, or an fsspec URL mirrored by a local working copy.

Stages read and write local files (checkpoints, Parquet, WAV). For a run
directory given as a URL (``s3://bucket/runs/demo``, ``gs://...``, ``file:///shared/runs/demo``,
any filesystem fsspec knows), :class:`RunStore` keeps a working copy under
``$ONTOSCOPE_CACHE`` (default ``~/.cache/ontoscope/runs``), named by the URL's hash:
:meth:`RunStore.pull` fetches what the URL already holds (so a run resumes from
any machine), and :meth:`RunStore.push` uploads a finished stage, its files first
and its ``stage.json`` last, so that the URL never holds a stage marked done
whose files are missing. Ray workers on other nodes pull and push the same way.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import fsspec

from ontoscope.artifacts import OutputError

__all__ = ["RunStore", "is_url"]


def is_url(path: str | os.PathLike) -> bool:
    """True when ``path`` names an fsspec URL (``scheme://...``) rather than a local path."""
    return "://" in str(path)


def _cache_root() -> Path:
    return Path(os.environ.get("ONTOSCOPE_CACHE", Path.home() / ".cache" / "ontoscope")) / "runs"


class RunStore:
    """A run directory: ``local`` is where stages work; ``url`` (or None) where the run is kept."""

    def __init__(self, out: str | os.PathLike) -> None:
        self.url = str(out).rstrip("/") if is_url(out) else None
        if self.url is None:
            self.local = Path(out)
            self.fs = None
            self.root = ""
            return
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except (ValueError, ImportError) as e:
            raise OutputError(f"cannot open the run directory {self.url}: {e}") from None
        name = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.local = _cache_root() / name

    def __repr__(self) -> str:
        return f"RunStore({self.url or str(self.local)!r})"

    @property
    def where(self) -> str:
        """The run directory as the user named it."""
        return self.url or str(self.local)

    def check_writable(self) -> None:
        """Create the run directory (and the working copy) or raise a one-line :class:`OutputError`."""
        targets = [(None, self.local)]
        if self.fs is not None:
            targets.append((self.fs, self.root))
        for fs, path in targets:
            try:
                if fs is None:
                    Path(path).mkdir(parents=True, exist_ok=True)
                    probe = Path(path) / ".write-test"
                    probe.write_text("")
                    probe.unlink()
                else:
                    fs.makedirs(path, exist_ok=True)
                    fs.pipe_file(f"{path}/.write-test", b"")
                    fs.rm_file(f"{path}/.write-test")
            except OSError as e:
                raise OutputError(f"cannot write the run directory {self.where}: {e.strerror or e}; choose "
                                  "another --out") from None

    def pull(self) -> None:
        """Fetch the run's files from the URL into the working copy (nothing for a local run)."""
        if self.fs is None or not self.fs.exists(self.root):
            return
        for remote in self.fs.find(self.root):
            rel = os.path.relpath(remote, self.root)
            if rel == ".write-test":
                continue
            dest = self.local / rel
            if dest.exists() and dest.stat().st_size == self.fs.size(remote):
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(remote, str(dest))

    def push(self, path: Path) -> None:
        """Upload a file or a finished directory of the working copy (its ``stage.json`` last)."""
        if self.fs is None:
            return
        path = Path(path)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files.sort(key=lambda p: p.name == "stage.json")
        try:
            for f in files:
                remote = f"{self.root}/{f.relative_to(self.local).as_posix()}"
                self.fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(f), remote)
        except OSError as e:
            raise OutputError(f"cannot write the run directory {self.where}: {e.strerror or e}") from None
