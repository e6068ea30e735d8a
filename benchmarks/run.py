"""Run every ``benchmarks/bench_*.py`` and write their tables to ``docs/benchmarks.md``.

Each module defines ``TITLE`` and ``run() -> list[dict]``; every row compares
ours against a reference implementation measured in the same run.
Usage: ``python benchmarks/run.py [NAME ...]`` (names without ``bench_``); a partial run rewrites only
the sections of the benchmarks it ran. A module whose ``available()`` is false here (the GPU benchmark on a
machine without CUDA) is skipped and its section kept as it was.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if v != v:
            return "–"
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v).replace("|", "\\|")  # a pipe would end the Markdown cell


def _sections(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """Split a benchmarks page into its header lines and its ``## `` sections, keyed by title."""
    head: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        if current is None:
            head.append(line)
        else:
            current.append(line)
    return head, sections


def main(argv: list[str]) -> None:
    import torch

    names = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    if argv:
        names = [n for n in names if n.removeprefix("bench_") in argv]
    head = ["# Benchmarks", "",
            "Written by `make bench` (`benchmarks/run.py`). Every row times ours and a reference "
            "implementation on the same input in the same run (best of several runs after a warm-up), "
            "so the ratios hold on other machines even where the seconds do not.", "",
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}; "
            f"{date.today().isoformat()}.", ""]
    target = ROOT / "docs" / "benchmarks.md"
    _, before = _sections(target.read_text()) if target.exists() else ([], {})
    sections = dict(before) if argv else {}
    for name in names:
        mod = importlib.import_module(f"benchmarks.{name}")
        if not getattr(mod, "available", lambda: True)():
            print(f"skipping {name}: {(mod.available.__doc__ or '').strip()} (its section is kept)", flush=True)
            if mod.TITLE in before:
                sections[mod.TITLE] = before[mod.TITLE]
            continue
        print(f"running {name} ...", flush=True)
        rows = mod.run()
        cols = list(dict.fromkeys(k for r in rows for k in r))
        part = [f"## {mod.TITLE}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        part += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
        notes = getattr(mod, "NOTES", "")
        part += ["", notes, ""] if notes else [""]
        if argv:
            part.insert(1, f"\n_Measured {date.today().isoformat()} (partial run)._")
        sections[mod.TITLE] = part
        for r in rows:
            print("  " + ", ".join(f"{k}={_fmt(v)}" for k, v in r.items()))
    out = head + [line for part in sections.values() for line in part]
    target.write_text("\n".join(out).rstrip() + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
