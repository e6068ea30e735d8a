"""Reading a finished study run directory: ``run.json``, the result tables and each model's directories.

The report reads files only; nothing here imports the study that wrote them. A run is *finished*
when ``run.json`` and ``tables/models.parquet`` exist; every other table is optional and reads as an
empty table when absent.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ontoscope.errors import ConfigError

__all__ = ["OPTIONAL_TABLES", "ModelEntry", "RunData", "load_run"]

#: Tables under ``RUN/tables`` that a run may lack (an analysis switched off, a stage not reached).
OPTIONAL_TABLES = ("latent", "operational", "comparison", "claims", "knob_means", "control_rates")


@dataclass(frozen=True)
class ModelEntry:
    """One model of the run as ``run.json`` lists it.

    Attributes
    ----------
    model : str
        The model's id (the ``model`` column of every table).
    ref : str
        What the model is: a family name or a real model's reference.
    latent_dir, operational_dir : Path or None
        Absolute directories of its latent and operational ontologies; None when not written or missing.
    stage_hashes : dict
        Content hash of each of its stages (``train``, ``latent``, ``operational``).
    missing : list of str
        Directories ``run.json`` names that do not exist (reported, not fatal).
    """

    model: str
    ref: str
    latent_dir: Path | None
    operational_dir: Path | None
    stage_hashes: dict[str, str]
    missing: tuple[str, ...] = ()


@dataclass
class RunData:
    """A finished run: ``info`` is ``run.json``, ``tables`` every table under ``tables/`` (empty when absent)."""

    root: Path
    info: dict[str, Any]
    models: list[ModelEntry]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The study's name (the directory's name when ``run.json`` gives none)."""
        return str(self.info.get("name") or self.root.name)

    @property
    def config(self) -> dict[str, Any]:
        """The validated study config as a mapping (empty when absent)."""
        cfg = self.info.get("config")
        return cfg if isinstance(cfg, dict) else {}

    def table(self, name: str) -> pd.DataFrame:
        """The table ``tables/<name>.parquet`` (an empty frame when the run has none)."""
        return self.tables.get(name, pd.DataFrame())

    def rows_of(self, name: str, model: str) -> pd.DataFrame:
        """The rows of table ``name`` that belong to ``model``."""
        t = self.table(name)
        if t.empty or "model" not in t.columns:
            return t.iloc[0:0]
        return t[t["model"] == model]


def _not_finished(root: Path, what: str) -> ConfigError:
    return ConfigError(f"{root} is not a finished study run: {what}; run the study to completion first "
                       "(a run directory holds run.json and tables/)")


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001  (pyarrow raises many kinds for a damaged file)
        raise ConfigError(f"{path}: cannot read the table ({type(e).__name__}: {e}); rerun the study "
                          "stage that writes it") from None


def _resolve(root: Path, rel: Any) -> Path | None:
    if rel in (None, ""):
        return None
    p = Path(str(rel))
    return p if p.is_absolute() else root / p


def load_run(run_dir: str | os.PathLike) -> RunData:
    """Read a run directory, or raise :class:`ConfigError` saying why it is not a finished run.

    Parameters
    ----------
    run_dir : path
        The directory a study wrote (``RUN/run.json``, ``RUN/tables/*.parquet``, per-model directories).

    Returns
    -------
    RunData
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such run directory; give the directory a study wrote "
                          "(it holds run.json and tables/)")
    info_path = root / "run.json"
    if not info_path.is_file():
        raise _not_finished(root, "run.json is missing")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{info_path}: not a readable run.json ({e}); rerun the study") from None
    if not isinstance(info, dict) or not isinstance(info.get("models"), list):
        raise ConfigError(f"{info_path}: run.json must be a mapping with a list of models; rerun the study")
    tables_dir = root / "tables"
    if not (tables_dir / "models.parquet").is_file():
        raise _not_finished(root, "tables/models.parquet is missing")
    tables = {"models": _read_table(tables_dir / "models.parquet")}
    for name in OPTIONAL_TABLES:
        p = tables_dir / f"{name}.parquet"
        if p.is_file():
            tables[name] = _read_table(p)
    models = []
    for i, m in enumerate(info["models"]):
        if not isinstance(m, dict) or "model" not in m:
            raise ConfigError(f"{info_path}: models.{i} has no model id; rerun the study")
        dirs, missing = {}, []
        for key in ("latent_dir", "operational_dir"):
            p = _resolve(root, m.get(key))
            if p is not None and not p.is_dir():
                missing.append(str(m.get(key)))
                p = None
            dirs[key] = p
        models.append(ModelEntry(model=str(m["model"]), ref=str(m.get("ref", "")), latent_dir=dirs["latent_dir"],
                                 operational_dir=dirs["operational_dir"],
                                 stage_hashes={str(k): str(v) for k, v in (m.get("stage_hashes") or {}).items()},
                                 missing=tuple(missing)))
    return RunData(root=root, info=info, models=models, tables=tables)
