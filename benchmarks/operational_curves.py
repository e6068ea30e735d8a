"""The operational ontology on planted models: intervention scores against the entanglement angle.

For the planted latent at each angle, linear and through the cube, with ``noise`` left out:

- along the probe's directions (what :func:`~ontoscope.probing.operational.operational_ontology` scores):
  mean specificity, IIA and ICV score of the four encoded factors, and the status of the left-out one;
- along latent channel 0 (an axis): the specificity and IIA of f0, with the curves a linear rotation
  predicts, ``cos θ / (cos θ + sin θ)`` and ``cos² θ``.

Writes ``docs/figures/operational_curves.png`` and prints the Markdown table of
``docs/operational_ontology.md``. Usage: ``python benchmarks/operational_curves.py [N]`` (N clips, default 96).
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
from ontoscope.probing.interchange import interchange_accuracy  # noqa: E402
from ontoscope.probing.operational import operational_ontology  # noqa: E402
from ontoscope.probing.steering import effect_matrix  # noqa: E402
from ontoscope.stimuli import FactorSpace  # noqa: E402
from ontoscope.stimuli.dataset import StimulusSet  # noqa: E402
from ontoscope.stimuli.pairs import counterfactual_pairs  # noqa: E402

ENCODED = ["f0", "loudness", "brightness", "odd_even"]
ANGLES = (0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0)
SITE = "bottleneck"


def curves(n: int) -> pd.DataFrame:
    space = FactorSpace.create([*ENCODED, "noise"], ranges={"noise": (20.0, 40.0)})
    rows = []
    with tempfile.TemporaryDirectory() as d:
        ds = StimulusSet.synthesize(f"{d}/set", space, n, 16000, 0.5, seed=0, progress=False)
        pairs = StimulusSet.render(f"{d}/pairs", counterfactual_pairs(space, 8, factors=ENCODED, seed=1,
                                                                      min_change=0.2), 16000, 0.5, progress=False)
        for nonlinearity in ("none", "cubic"):
            for angle in ANGLES:
                model = PlantedModel(space, angle=angle, nonlinearity=nonlinearity, omit=["noise"])
                op = operational_ontology(model, ds, pairs=pairs, sites=[SITE], n_steer=12, progress=False)
                t = op.table.set_index("factor")
                base = ds.audio(op.steer_clips)
                axis = np.eye(4)[:, 0]
                e = effect_matrix(model, base, SITE, {"f0": axis * 0.3}, space=space)
                iia = interchange_accuracy(model, pairs, SITE, {"f0": axis[:, None]}, space).iloc[0]["iia"]
                c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
                rows.append({"nonlinearity": nonlinearity, "angle": angle,
                             "specificity": t.loc[ENCODED, "specificity"].mean(), "iia": t.loc[ENCODED, "iia"].mean(),
                             "icv_score": t.loc[ENCODED, "icv_score"].mean(),
                             "icv_count": int((t.loc[ENCODED, "status"] == "icv").sum()),
                             "omitted": t.loc["noise", "status"],
                             "axis_specificity": e["specificity"].iloc[0], "axis_iia": iia,
                             "axis_specificity_derived": c / (c + s) if nonlinearity == "none" else float("nan"),
                             "axis_iia_derived": c**2 if nonlinearity == "none" else float("nan")})
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def figure(df: pd.DataFrame, path: Path) -> None:
    curves = (("specificity", "o-"), ("iia", "s-"), ("icv_score", "^-"), ("axis_specificity", "d--"),
              ("axis_iia", "x--"))
    angle_figure(df, curves, [("axis_specificity_derived", ":", "cos / (cos + sin)"),
                              ("axis_iia_derived", "-.", "cos²")], path)


def main(argv: list[str]) -> None:
    torch.set_num_threads(2)
    df = curves(int(argv[0]) if argv else 96)
    figure(df, ROOT / "docs" / "figures" / "operational_curves.png")
    print(markdown_table(df))


if __name__ == "__main__":
    main(sys.argv[1:])
