"""The probing instrument on planted models: scores against the entanglement angle, with the derived curves.

Writes ``docs/figures/planted_curves.png`` and prints the Markdown table of ``docs/probing.md``.
Usage: ``python benchmarks/planted_curves.py [N]`` (N clips, default 256).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import angle_figure, markdown_table  # noqa: E402
from ontoscope.models.planted import PlantedModel  # noqa: E402
from ontoscope.probing.capture import capture  # noqa: E402
from ontoscope.probing.decodability import factor_targets, site_metrics  # noqa: E402
from ontoscope.probing.probes import probe_factors  # noqa: E402
from ontoscope.stimuli import FactorSpace  # noqa: E402
from ontoscope.stimuli.dataset import StimulusSet  # noqa: E402

ENCODED = ["f0", "loudness", "brightness", "odd_even"]
ANGLES = (0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0)


def curves(n: int) -> pd.DataFrame:
    space = FactorSpace.create([*ENCODED, "noise"], ranges={"noise": (20.0, 40.0)})
    rows = []
    with tempfile.TemporaryDirectory() as d:
        ds = StimulusSet.synthesize(f"{d}/set", space, n, 16000, 0.5, seed=0, progress=False)
        targets = factor_targets(ds.factors, space)
        for nonlinearity in ("none", "cubic"):
            for angle in ANGLES:
                model = PlantedModel(space, angle=angle, nonlinearity=nonlinearity, omit=["noise"])
                cap = capture(model, ds, f"{d}/{nonlinearity}{angle}", sites=["bottleneck"], views=("pooled",),
                              progress=False)
                m = site_metrics(cap, targets[ENCODED], mode="fast").iloc[0]
                x, _ = cap.features("bottleneck", "pooled")
                p = probe_factors(x[:, :4], targets, probes=("ridge", "mlp"), n_boot=200, control=False)
                enc = p[p["factor"].isin(ENCODED)].groupby("probe")["test_r2"].mean()
                left = p[(p["factor"] == "noise") & (p["probe"] == "ridge")]["test_r2"].iloc[0]
                rows.append({"nonlinearity": nonlinearity, "angle": angle,
                             "dci_d": m["dci_disentanglement"], "dci_c": m["dci_completeness"], "mig": m["mig"],
                             "mcc": m["mcc"], "mcc_derived": max(np.cos(np.radians(angle)), np.sin(np.radians(angle)))
                             if nonlinearity == "none" else float("nan"),
                             "ridge_r2": enc["ridge"], "mlp_r2": enc["mlp"], "omitted_r2": left})
    return pd.DataFrame(rows)


def figure(df: pd.DataFrame, path: Path) -> None:
    angle_figure(df, (("dci_d", "o-"), ("mig", "s-"), ("mcc", "^-"), ("ridge_r2", "d--"), ("mlp_r2", "x--")),
                 [("mcc_derived", ":", "max(cos, sin)")], path)


def main(argv: list[str]) -> None:
    torch.set_num_threads(2)
    df = curves(int(argv[0]) if argv else 256)
    figure(df, ROOT / "docs" / "figures" / "planted_curves.png")
    print(markdown_table(df))


if __name__ == "__main__":
    main(sys.argv[1:])
