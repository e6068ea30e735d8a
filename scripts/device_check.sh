#!/usr/bin/env bash
# The GPU measurements, in one go, on a machine with CUDA (each step time-limited, each writing as it goes):
#   1. benchmarks/bench_gpu.py: one paper-grid model's training step, a 2000-step run and its operational stage,
#      on the GPU against the same machine's CPU (the section of docs/benchmarks.md);
#   2. scripts/walltime.py: configs/paper.yaml's stimuli and training time on this GPU, from measured step times
#      (the analyses' share is the benchmark's operational row);
#   3. scripts/training_recipe.py: total stride 1024 at compression 16 trained towards the fidelity gate on the GPU
#      under a 24 000-step schedule (longer than the CPU can afford), scored every 3000 steps on 24 held-out clips.
# Usage: OUT=DIR scripts/device_check.sh  (results in DIR, default runs/device; PYTHON names the interpreter)
set -u
OUT=${OUT:-runs/device}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{ nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, 'threads', torch.get_num_threads())"; } \
  > "$OUT/machine.txt" 2>&1
timeout "${BENCH_S:-240}" $PY benchmarks/run.py gpu > "$OUT/bench.log" 2>&1
echo "bench exit $?" >> "$OUT/bench.log"
cp docs/benchmarks.md "$OUT/benchmarks.md"
timeout "${WALLTIME_S:-150}" $PY scripts/walltime.py configs/paper.yaml --device cuda --skip-pretrained --skip-analyses \
  --n 64 --steps 10 --page "$OUT/walltime.md" > "$OUT/walltime.log" 2>&1
echo "walltime exit $?" >> "$OUT/walltime.log"
timeout "${RECIPE_S:-200}" $PY scripts/training_recipe.py --strides 1024 --compressions 16 --max-steps 24000 \
  --every 3000 --score-clips 24 --recipe '{"device": "cuda"}' --out "${TMPDIR:-/tmp}/recipe_gpu" --page "$OUT/recipe.md" \
  > "$OUT/recipe.log" 2>&1
echo "recipe exit $?" >> "$OUT/recipe.log"
