"""Model family: training throughput, peak memory, and the cost of reading a site."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import torch

from benchmarks.common import best_of
from ontoscope.models.family import build
from ontoscope.models.spec import parse_spec

TITLE = "Model family on CPU (16 kHz, 1 s clips, batch 16)"
NOTES = ("Training throughput is audio seconds processed per wall second (forward, backward and AdamW step); "
         "peak memory is the growth of the process's resident set during 20 training steps, measured in a fresh "
         "process. Site overhead compares `encode(upto=site)` followed by `resume(site)` against one plain "
         "forward pass on the same input (reference = forward).")

SPECS = {
    "conv_ae default (strides 2,4,4,8; width 16)": dict(family="conv_ae"),
    "conv_ae small (width 8, bottleneck 16)": dict(family="conv_ae", width=8, bottleneck=16),
    "tcn (width 32, depth 8, decimation 4)": dict(family="tcn", decimation=4),
    "spec_cnn autoencoder (log-mel)": dict(family="spec_cnn"),
}

_TRAIN = textwrap.dedent("""
    import json, resource, sys, time, torch
    torch.set_num_threads(2)
    from ontoscope.models.family import build
    from ontoscope.models.spec import parse_spec
    from ontoscope.models.train import loss_fn
    spec = parse_spec(json.loads(sys.argv[1]))
    model = build(spec)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    audio = torch.randn(16, 16000) * 0.1
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    def step():
        loss = loss_fn(model, audio, None)
        opt.zero_grad(); loss.backward(); opt.step()
    step()
    t = time.perf_counter()
    for _ in range(20):
        step()
    dt = (time.perf_counter() - t) / 20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"step_s": dt, "peak_mb": (peak - base) / 1024}))
""")


def run() -> list[dict]:
    torch.set_num_threads(2)
    rows = []
    for label, d in SPECS.items():
        r = subprocess.run([sys.executable, "-c", _TRAIN, json.dumps(d)], capture_output=True, text=True, check=True)
        m = json.loads(r.stdout.strip().splitlines()[-1])
        spec = parse_spec(d)
        model = build(spec).eval()
        audio = torch.randn(16, 16000) * 0.1
        with torch.no_grad():
            plain = best_of(lambda m=model, a=audio: m(a), repeat=5)
            site = best_of(lambda m=model, a=audio: m.resume(m.encode(a, "bottleneck"), "bottleneck"), repeat=5)
        rows.append({"benchmark": label, "params": sum(p.numel() for p in model.parameters()),
                     "train_audio_s_per_s": 16 / m["step_s"], "peak_mem_mb": m["peak_mb"],
                     "forward_s": plain, "encode+resume_s": site, "site_overhead_%": 100 * (site / plain - 1)})
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
