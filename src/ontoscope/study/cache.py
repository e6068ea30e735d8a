"""Content-addressed stage outputs: a stage's directory is named by the hash of everything it depends on.

A stage's key is the SHA-256 of its name, its slice of the config, the keys of
its inputs and the package version. Its output lives in
``RUN/stages/<stage>/<key>/`` and counts as done only when ``stage.json`` is there;
the stage works in ``<key>.partial/`` (which it may resume from, as training does)
and is renamed into place when finished, so an interrupted run (even ``kill -9``)
leaves either a finished stage or a partial one, never a half-written finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ontoscope import __version__
from ontoscope.artifacts import OutputError, save_json

__all__ = ["Stage", "stage_key"]


def stage_key(name: str, config: Any, inputs: dict[str, str] | None = None) -> str:
    """Hex key (16 digits) of a stage from its name, config slice, input keys and the package version."""
    blob = json.dumps({"stage": name, "config": config, "inputs": inputs or {}, "version": __version__},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Stage:
    """One stage instance of a run: its name, label (e.g. the model id) and key."""

    run: Path
    name: str
    key: str
    label: str = ""

    @property
    def path(self) -> Path:
        return self.run / "stages" / self.name / self.key

    @property
    def partial(self) -> Path:
        return self.run / "stages" / self.name / f"{self.key}.partial"

    @property
    def done(self) -> bool:
        return (self.path / "stage.json").is_file()

    def run_once(self, work: Callable[[Path], dict[str, Any] | None], force: bool = False) -> Path:
        """Run ``work(directory)`` unless the stage is done (or ``force``); returns the finished directory.

        ``work`` writes into ``directory`` (the partial directory, kept across interruptions) and may return
        a dict recorded in ``stage.json``.
        """
        if self.done and not force:
            return self.path
        if force and self.path.exists():
            shutil.rmtree(self.path)
        try:
            self.partial.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot write the run directory {self.run}: {e.strerror}") from None
        t0 = time.perf_counter()
        info = work(self.partial) or {}
        save_json(self.partial / "stage.json", {"stage": self.name, "key": self.key, "label": self.label,
                                                "seconds": round(time.perf_counter() - t0, 3), **info})
        if self.path.exists():  # a stale copy from a forced rerun of an interrupted stage
            shutil.rmtree(self.path)
        os.replace(self.partial, self.path)
        return self.path
