"""Shared timing helper for the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeat: int = 3, warmup: int = 1) -> float:
    """Best wall time of ``repeat`` calls of ``fn`` after ``warmup`` calls, in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def angle_figure(df, curves, derived, path) -> None:
    """Scores against the planted entanglement angle, one panel per nonlinearity, written to ``path``.

    ``curves``: ``(column, matplotlib style)`` pairs; ``derived``: ``(column, style, label)`` drawn in black
    on the linear panel (the curves derived by construction).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from ontoscope.artifacts import save_figure

    angles = sorted(df["angle"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, (nl, g) in zip(axes, df.groupby("nonlinearity", sort=False), strict=True):
        for key, style in curves:
            ax.plot(g["angle"], g[key], style, ms=4, label=key)
        if nl == "none":
            for key, style, label in derived:
                ax.plot(g["angle"], g[key], style, color="k", label=label)
        ax.set_title(f"planted latent, nonlinearity={nl}")
        ax.set_xlabel("entanglement angle (degrees)")
        ax.set_xticks(angles)
    axes[0].set_ylabel("score")
    for ax in axes:
        ax.legend(fontsize=7, loc="lower left")
    save_figure(path, fig)


def markdown_table(df) -> str:
    """``df`` as a Markdown table, floats to three decimals."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)
