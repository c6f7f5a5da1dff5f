#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go (each step has a time limit; all of them
# together stay under 10 minutes):
#   1. the gpu-marked tests;
#   2. a short CUDA training run on the embedded pictures, then its evaluation;
#   3. `latentgen bench --device cuda` at 64 x 64 RGB, batch 256, in fp32 and in bf16, eager and
#      compiled (CUDA graphs);
#   4. when LEBM_SVHN / LEBM_CIFAR10 / LEBM_CELEBA name local copies of those data sets, the
#      latent-EBM table's script on them (benchmarks/protocols/lebm_table.py).
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

# The latent-EBM table (docs/protocols.md) on whichever of its data sets this machine has:
# LEBM_SVHN, LEBM_CIFAR10, LEBM_CELEBA name their local paths (nothing is downloaded). It needs
# far more than this script's 10 minutes at the published length: LEBM_EPOCHS (default 1 here,
# a check that the pipeline runs on the real files) and LEBM_TIMEOUT set how long it may take.
lebm=()
[ -n "${LEBM_SVHN:-}" ] && lebm+=(--svhn "$LEBM_SVHN")
[ -n "${LEBM_CIFAR10:-}" ] && lebm+=(--cifar10 "$LEBM_CIFAR10")
[ -n "${LEBM_CELEBA:-}" ] && lebm+=(--celeba "$LEBM_CELEBA")
if [ "${#lebm[@]}" -gt 0 ]; then
    step "latent-EBM table (${LEBM_EPOCHS:-1} epochs)"
    timeout "${LEBM_TIMEOUT:-600}" "$PY" benchmarks/protocols/lebm_table.py "${lebm[@]}" \
        --device cuda --epochs "${LEBM_EPOCHS:-1}" --abp --results "$OUT/lebm.jsonl" \
        > "$OUT/lebm.md" 2> "$OUT/lebm.err" || status=1
    tail -n 8 "$OUT/lebm.md"
fi

step "done, status $status"
exit "$status"
