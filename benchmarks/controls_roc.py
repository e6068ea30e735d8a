"""The controls' pass rates, and how they move with each threshold of the ICV status (one at a time).

Usage: ``python benchmarks/controls_roc.py [N_CLIPS]`` (default 96 clips of 1 s; 8 pairs per factor; the
controller and the supervised control over 3 training seeds). Prints two Markdown tables: the sensitivity and
false-positive rate per family at the default thresholds, and, for each threshold swept alone around its
default, the lowest sensitivity and the highest false-positive rate over the families. The defaults of
:class:`~ontoscope.probing.icv.ICVThresholds` sit inside the ranges where every family passes
(``docs/operational_ontology.md``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from ontoscope.probing.controls import control_rates, run_controls  # noqa: E402
from ontoscope.probing.icv import ICVThresholds  # noqa: E402
from ontoscope.stimuli import FactorSpace  # noqa: E402
from ontoscope.stimuli.dataset import StimulusSet  # noqa: E402
from ontoscope.stimuli.pairs import counterfactual_pairs  # noqa: E402

FACTORS = ["f0", "loudness", "brightness", "vibrato_depth", "tremolo_depth"]
SWEEP = {"decodable": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8], "efficacy": [0.1, 0.2, 0.3, 0.4, 0.5, 0.7],
         "specificity": [0.5, 0.6, 0.7, 0.8, 0.9], "consistency": [0.6, 0.7, 0.8, 0.9, 0.95],
         "iia": [0.3, 0.5, 0.6, 0.7, 0.9], "iia_margin": [0.1, 0.2, 0.3, 0.5]}


def markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def main(n: int = 96) -> None:
    space = FactorSpace.create(FACTORS)
    with tempfile.TemporaryDirectory() as tmp:
        ds = StimulusSet.render(Path(tmp) / "s", space.sample(n, seed=0), 16000, 1.0, progress=False)
        pairs = StimulusSet.render(Path(tmp) / "p", counterfactual_pairs(space, 8, seed=1, min_change=0.2), 16000,
                                   1.0, progress=False)
        t0 = time.perf_counter()
        rows = run_controls(ds, pairs=pairs, seeds=(0, 1, 2), n_steer=8)
        seconds = time.perf_counter() - t0
    print(f"controls over {n} clips of 1 s ({', '.join(FACTORS)}), 8 pairs per factor: {seconds:.0f} s\n")
    print(markdown(control_rates(rows)))
    base = asdict(ICVThresholds())
    sweep = []
    for key, values in SWEEP.items():
        for v in values:
            r = control_rates(rows, ICVThresholds(**{**base, key: v}))
            sweep.append({"threshold": key, "value": v, "default": "yes" if v == base[key] else "",
                          "lowest sensitivity": float(r["sensitivity"].min()), "highest fpr": float(r["fpr"].max()),
                          "missed": int((r["positives"] - r["found"]).sum()),
                          "false positives": int(r["false_positives"].sum())})
    print()
    print(markdown(pd.DataFrame(sweep)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 96)
