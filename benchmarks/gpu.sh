#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go (each step has a time limit; all of them
# together stay under 10 minutes):
#   1. the gpu-marked tests;
#   2. a short CUDA training run on the embedded pictures, then its evaluation;
#   3. `latentgen bench --device cuda` at 64 x 64 RGB, batch 256, in fp32 and in bf16, eager and
#      compiled (CUDA graphs).
# Every result goes to $OUT (default: gpu-results/): pytest's log, the run's metrics and
# evaluation, one JSON file per bench, and nvidia-smi's description of the card. Copy the
# figures into docs/benchmarks.md with the card's name.
#
#     bash benchmarks/gpu.sh            # from the repository root, after `make install`
set -uo pipefail

OUT="${OUT:-gpu-results}"
PY="${PY:-.venv/bin/python}"
LG="${LG:-.venv/bin/latentgen}"
mkdir -p "$OUT"
status=0

step() { echo "== $1 ($(date +%T))"; }

step "card"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv \
    | tee "$OUT/card.csv" || { echo "no CUDA GPU here: nvidia-smi failed"; exit 1; }
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))" \
    | tee "$OUT/torch.txt" || exit 1

step "gpu-marked tests"
timeout 180 "$PY" -m pytest -m gpu -q -p no:cacheprovider 2>&1 | tail -n 30 \
    | tee "$OUT/pytest-gpu.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "short CUDA training (embedded pictures, 10 epochs, bf16)"
rm -rf "$OUT/run"
timeout 120 "$LG" train --modality image --device cuda --precision bf16 --epochs 10 \
    --out "$OUT/run" > "$OUT/train.log" 2>&1 || status=1
tail -n 3 "$OUT/train.log"
timeout 90 "$LG" evaluate "$OUT/run" --device cuda --synthesis --json \
    > "$OUT/evaluate.json" 2> "$OUT/evaluate.err" || status=1

for precision in fp32 bf16; do
    for compiled in --no-compile --compile; do
        name="bench-$precision${compiled#--}"
        step "$name"
        timeout 100 "$LG" bench --device cuda --precision "$precision" "$compiled" \
            --image-size 64 --channels 3 --batch-size 256 --json \
            > "$OUT/$name.json" 2> "$OUT/$name.err" || status=1
        cat "$OUT/$name.json"
    done
done

step "done, status $status"
exit "$status"
