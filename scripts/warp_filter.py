"""Is a time-warp at the last decoder block of a conv_ae made unspecific by the fixed filter after it?

    .venv/bin/python scripts/warp_filter.py RUN [--n-steer 8]

For every trained ``conv_ae`` of a study run (``RUN/stages/train/*``), the time-warp family is run at the
model's last decoder block (one frame per sample) twice on the run's stimuli:

* ``as trained``: the output head as it is, an activation and a 7-tap convolution to one channel;
* ``taps collapsed``: the same head with each channel's 7 taps summed into the centre tap, so it mixes the
  channels with the same weights and filters nothing.

Everything after that site is then pointwise (the activation) and a fixed mix of channels, and a time-warp of
a signal commutes with both: warping the site is warping the sound, so f0 moves and the rest only as a warp of the
sound moves it. A fixed convolution does not commute with a change of time scale: it weighs every partial by its
frequency response, and a warp moves the partials along that response. If the ``as trained`` row leaks into
brightness and the ``taps collapsed`` row does not, the leak is the filter's (``docs/operational_ontology.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch
from findings_tables import markdown  # scripts/ is on the path of a script run from it

from ontoscope.errors import ConfigError
from ontoscope.models.registry import load_model
from ontoscope.probing.decodability import factor_targets
from ontoscope.probing.operational import operational_ontology
from ontoscope.stimuli.dataset import StimulusSet, set_space


def collapse_taps(conv: torch.nn.Conv1d) -> None:
    """Sum each (output, input) pair's taps into the centre tap, in place: the same channel mix, no filtering."""
    with torch.no_grad():
        w = conv.weight.sum(-1)
        conv.weight.zero_()
        conv.weight[..., conv.weight.shape[-1] // 2] = w


def warp_rows(model: torch.nn.Module, stimuli: StimulusSet, site: str, *, n_steer: int) -> pd.DataFrame:
    """The time-warp row of f0 at ``site`` (efficacy, specificity, status at the dose kept) and the brightness
    change beyond what a warp of the sound does, at that dose, over brightness's spread."""
    op = operational_ontology(model, stimuli, sites=[site], families=["time_warp"], n_steer=n_steer, erasure=False,
                              progress=False)
    t = op.table.set_index("factor")
    kept = float(t.loc["f0", "dose"])
    curve = op.effects[(op.effects["intended"] == "f0") & (op.effects["measured"] == "brightness")]
    at = curve.loc[(curve["dose"] - kept).abs().idxmin()]
    sigma = float(factor_targets(stimuli.factors, set_space(stimuli))["brightness"].std(ddof=0))
    return pd.DataFrame([{"dose": kept, "f0 efficacy": t.loc["f0", "efficacy"],
                          "f0 specificity": t.loc["f0", "specificity"],
                          "brightness leak": abs(at["response"] - at["expected"]) / sigma,
                          "status": t.loc["f0", "status"]}])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--n-steer", type=int, default=8)
    args = ap.parse_args(argv)
    sets = sorted((args.run / "stages" / "stimuli").glob("*/set"))
    if not sets:
        raise SystemExit(f"error: {args.run} has no rendered stimuli; run the study first")
    stimuli = StimulusSet.load(sets[0])
    rows = []
    for d in sorted((args.run / "stages" / "train").glob("*")):
        card = json.loads((d / "card.json").read_text())
        if card["spec"]["family"] != "conv_ae":
            continue
        spec = card["spec"]
        site = f"decoder.block{len(spec['strides']) - 1}"
        label = (f"strides {'x'.join(map(str, spec['strides']))}, bottleneck {spec['bottleneck']}, "
                 f"{spec.get('activation', 'elu')}")
        for head in ("as trained", "taps collapsed"):
            model = load_model(str(d))
            if head == "taps collapsed":
                collapse_taps(model.head[-1])
            r = warp_rows(model, stimuli, site, n_steer=args.n_steer).assign(model=label, site=site, head=head)
            rows.append(r)
            print(r.to_string(index=False), file=sys.stderr)
    if not rows:
        raise SystemExit(f"error: {args.run} has no trained conv_ae")
    table = pd.concat(rows, ignore_index=True)
    cols = ["model", "site", "head", "dose", "f0 efficacy", "f0 specificity", "brightness leak", "status"]
    print(markdown(table[cols]))


if __name__ == "__main__":
    try:
        main()
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
