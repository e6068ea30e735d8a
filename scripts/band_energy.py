"""Where in the spectrum a study's trained autoencoders lose energy: reconstruction over input, per band.

    python scripts/band_energy.py runs/findings_soundfont

For every trained model of the run (those of its ``tables/models.parquet``), every stimulus clip is
reconstructed and its power spectrum (Hann window of 1024 samples, hop 256, mean over frames) summed in
octave-wide bands; the table gives, per design, the median over clips of ``10 log10(E_reconstruction /
E_input)`` in dB for each band (0 dB: the band's energy kept; negative: lost), averaged over the design's
seeds, beside each band's share of the input's energy (pooled over clips). The gate's loudness error is the
whole-clip level, so a band that holds much of the energy and loses it shows up there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

from ontoscope.descriptors.spectral import stft_power
from ontoscope.models.checkpoint import load_checkpoint
from ontoscope.models.fidelity import reconstruct
from ontoscope.stimuli.dataset import StimulusSet

EDGES_HZ = (0, 250, 500, 1000, 2000, 4000, 8000)


def band_energy(audio: torch.Tensor, sr: int, edges: tuple[float, ...] = EDGES_HZ) -> torch.Tensor:
    """Energy of each clip in each band ``[edges[i], edges[i+1])`` Hz, ``[B, len(edges) - 1]`` (power, arbitrary
    units): the Hann-windowed (1024, hop 256) power spectrum averaged over frames, summed over the band's bins.
    The last band runs from ``edges[-2]`` up to and including Nyquist, whatever ``edges[-1]`` says."""
    power = stft_power(audio, 1024, 256, sr=sr).mean(-1)
    freqs = torch.arange(power.shape[1], dtype=torch.float64) * sr / 1024
    top = list(edges[1:-1]) + [sr / 2 + 1]
    bands = zip(edges[:-1], top, strict=True)
    return torch.stack([power[:, (freqs >= lo) & (freqs < hi)].sum(1) for lo, hi in bands], 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a finished study run directory")
    args = ap.parse_args(argv)
    sets = sorted((args.run / "stages" / "stimuli").glob("*/set"))
    tables = args.run / "tables" / "models.parquet"
    models = set(pd.read_parquet(tables)["model"]) if tables.exists() else set()
    labels = {p.parent: json.loads(p.read_text())["label"]
              for p in sorted((args.run / "stages" / "train").glob("*/stage.json"))}
    trained = {path: label for path, label in labels.items() if label in models}
    if not sets or not trained:
        print(f"error: {args.run} has no stimuli or no trained models; run the study first", file=sys.stderr)
        return 2
    data = StimulusSet.load(sets[0])
    x = data.audio()
    ex = band_energy(x, data.sr)
    names = [f"{lo}-{hi} Hz" for lo, hi in zip(EDGES_HZ[:-1], EDGES_HZ[1:], strict=True)]
    rows = []
    for path, label in trained.items():
        model, _ = load_checkpoint(path)
        model.eval()
        ratio = 10 * torch.log10(band_energy(reconstruct(model, x), data.sr) / ex.clamp_min(1e-20))
        medians = ratio.median(0).values.tolist()
        rows.append({"design": label.rsplit("_seed", 1)[0], **dict(zip(names, medians, strict=True))})
    table = pd.DataFrame(rows).groupby("design", sort=False)[names].mean().reset_index()
    share = (ex.sum(0) / ex.sum()).tolist()
    share_row = {"design": "share of input energy", **dict(zip(names, share, strict=True))}
    table = pd.concat([pd.DataFrame([share_row]), table])
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for design, *values in table.itertuples(index=False):
        fmt = "{:.2f}" if design.startswith("share") else "{:+.1f}"
        print("| " + " | ".join([design, *(fmt.format(v) for v in values)]) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
