"""Executors: where a study's per-model stages run.

``local`` runs them in-process, one model after the other. ``ray`` submits each
model's chain (train → latent → operational) as one Ray task, with the stages'
CPU (and, with ``device: cuda`` in the training recipe or the operational analysis, GPU) needs as the task's
resources, and ``retries`` re-executions when a worker dies. A re-executed task
skips the stages already finished and resumes training from its checkpoint
(:mod:`~ontoscope.study.cache`), so a killed worker costs only the unfinished
part of its stage. Results are written to the run directory, which every worker
must see: a local path on one machine, or a directory on storage shared by the
cluster's nodes (NFS, a mounted bucket). The chain itself is
:func:`ontoscope.study.run.model_chain`, handed in by :func:`~ontoscope.study.run.run_study`
(this module does not import :mod:`ontoscope.study.run`, which imports it).

References
----------
Moritz, P., et al. (2018). Ray: a distributed framework for emerging AI applications. OSDI.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ontoscope.errors import ConfigError
from ontoscope.study.config import StudyConfig
from ontoscope.study.storage import RunStore

__all__ = ["ModelChain", "run_on_ray"]

#: One model's stages: ``chain(cfg, m, stim, pairs, forced=forced, store=store)`` -> its record
#: (:func:`ontoscope.study.run.model_chain`).
ModelChain = Callable[..., dict[str, Any]]

#: The keys of a model chain's record that hold stage directories (rewritten between a node and the driver).
_STAGE_DIRS = ("train", "latent", "operational")


def _resources(m: dict[str, Any], cfg: StudyConfig) -> dict[str, float]:
    devices = ((m["plan"].train or {}).get("device", "auto"), cfg.analyses.operational.device)
    gpus = 1.0 if any(d.startswith("cuda") for d in devices) else 0.0
    return {"num_cpus": 1, "num_gpus": gpus}


def _chain(chain: ModelChain, cfg: StudyConfig, m: dict[str, Any], stim: str, pairs: str | None, forced: set[str],
           threads: int, url: str | None) -> dict[str, Any]:
    torch.set_num_threads(threads)  # the driver's: CPU reductions, hence the tables, depend on the thread count
    store = None
    if url is not None:  # this node's working copy of the run, fetched from the URL
        store = RunStore(url)
        store.pull()
        m = {k: dataclasses.replace(v, run=store.local) if hasattr(v, "key") else v for k, v in m.items()}
        stim = str(store.local / Path(stim).relative_to(Path(stim).parents[2]))
        pairs = str(store.local / Path(pairs).relative_to(Path(pairs).parents[2])) if pairs else None
    record = chain(cfg, m, Path(stim), Path(pairs) if pairs else None, forced=forced, store=store)
    if store is not None:  # paths in the record are this node's; the driver reads its own copy
        record = {k: (None if v is None else Path(os.path.relpath(v, store.local))) if k in _STAGE_DIRS else v
                  for k, v in record.items()}
    return record


def run_on_ray(cfg: StudyConfig, models: list[dict[str, Any]], stim: Path, pairs: Path | None, forced: set[str],
               console: Callable[[str], None] | None = None, *, chain: ModelChain, address: str | None = None,
               retries: int = 3, url: str | None = None) -> list[dict[str, Any]]:
    """Run every model's ``chain`` as a Ray task; the records in model order.

    With ``url`` (a run directory on shared storage), each task works in its node's own copy of the run and
    uploads what it finishes; the records' directories are then relative to the run directory.
    """
    try:
        import ray  # noqa: PLC0415  # optional: the ray extra, only for --executor ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: pip install 'ontoscope[ray]'") from None
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise ConfigError(f"cannot reach the Ray cluster at {address or 'a new local cluster'}: {e}; "
                              "check --address (auto, or ray://HOST:PORT)") from None
        started = True
    try:
        task = ray.remote(max_retries=retries, retry_exceptions=False)(_chain)
        refs = []
        for m in models:
            if console is not None:
                console(f"queue {'model':<12} {m['plan'].id}")
            refs.append(task.options(**_resources(m, cfg)).remote(chain, cfg, m, str(stim),
                                                               str(pairs) if pairs else None, forced,
                                                               torch.get_num_threads(), url))
        records = []
        for m, ref in zip(models, refs, strict=True):
            try:
                record = ray.get(ref)
                if url is not None:
                    root = Path(stim).parents[2]
                    record = {k: (root / v if k in _STAGE_DIRS and v is not None else v)
                              for k, v in record.items()}
                records.append(record)
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if getattr(e, "cause", None) is not None else e
                raise cause from None
            except ray.exceptions.WorkerCrashedError:
                raise ConfigError(f"the Ray worker running {m['plan'].id} died {retries + 1} times; see the "
                                  "Ray logs, then run the same command again to resume") from None
            if console is not None:
                console(f"done  {'model':<12} {m['plan'].id}")
        return records
    finally:
        if started:
            ray.shutdown()
