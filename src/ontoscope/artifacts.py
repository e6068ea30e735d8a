"""Atomic writes: an artifact is either absent or complete, never half-written."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ontoscope.errors import OntoscopeError


class OutputError(OntoscopeError, OSError):
    """An output location that cannot be written (permissions, full disk, a file in the way)."""


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) or raise :class:`OutputError` saying why not."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"cannot create directory {p}: a file is in the way") from None
    except OSError as e:
        raise OutputError(f"cannot create directory {p}: {e.strerror}") from None
    if not os.access(p, os.W_OK):
        raise OutputError(f"directory {p} is not writable; choose another output directory")
    return p


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file to ``path``.

    The temporary file lives in the same directory, so the rename is atomic;
    on any failure it is removed and ``path`` is left untouched.
    """
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return write_atomic(path, lambda p: p.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n"))


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an array as ``.npy``, atomically."""
    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.save(f, array, allow_pickle=False)
    return write_atomic(path, write)


def save_table(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write a table as Parquet (``.parquet``) or CSV (``.csv``), atomically."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return write_atomic(path, lambda p: table.to_parquet(p, index=False))
    if suffix == ".csv":
        return write_atomic(path, lambda p: table.to_csv(p, index=False))
    raise OutputError(f"unknown table format {suffix!r} for {path}; use .parquet or .csv")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def save_figure(path: str | os.PathLike, fig: Any, dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG, atomically, and close it.

    A ``matplotlib.figure.Figure`` made without pyplot (as ontoscope's figures are) needs no closing; one made
    by pyplot is closed there, pyplot being loaded by then (so this module never imports matplotlib).
    """
    try:
        return write_atomic(path, lambda p: fig.savefig(p, format="png", dpi=dpi, bbox_inches="tight"))
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(fig)
