#!/usr/bin/env bash
# Train the four Cosmos-style tokenizers of the physics clips side by side on one GPU within a wall-clock
# budget, each going on from its shipped card (model_cards/cosmos-tokenizer-<name>-physics). Each runs
# stage 1 (reconstruction) for 3/4 of the budget, then stage 2 (+ temporal and Gram losses) for the rest,
# batch 32, the learning rate decaying over the time (`--time-limit`). Models land in
# outputs/cosmos/tokenizer-<name>-stage2/model, logs in outputs/logs/physics-tokenizers-gpu/.
#
#   wm-hub data make physics --num-clips 2000 --out data/physics-train --workers 16
#   bash training/physics_tokenizers_gpu.sh [MINUTES]     (default 7; BATCH=32, WORKERS=3 per run, PYTHON=python)
set -euo pipefail
minutes=${1:-7}
batch=${BATCH:-32}
workers=${WORKERS:-3}
python=${PYTHON:-python}
logs=outputs/logs/physics-tokenizers-gpu
mkdir -p "$logs"
stage1=$(awk "BEGIN {print $minutes * 0.75}")
stage2=$(awk "BEGIN {print $minutes * 0.25}")

chain() {  # variant compression: stage 1 from the shipped card, then stage 2 from stage 1's model
    local variant=$1 compression=$2
    local name=${variant:0:1}v$compression
    local common=(--variant "$variant" --compression "$compression" --batch-size "$batch" --num-workers "$workers"
                  --max-steps 1000000)
    $python training/train_cosmos_tokenizer.py "${common[@]}" --stage 1 --lr 5e-4 --time-limit "$stage1" \
        --init "model_cards/cosmos-tokenizer-$name-physics" >"$logs/$name-stage1.log" 2>&1
    $python training/train_cosmos_tokenizer.py "${common[@]}" --stage 2 --time-limit "$stage2" \
        >"$logs/$name-stage2.log" 2>&1
    echo "$name done"
}

chain continuous 4x8x8 &
chain discrete 4x8x8 &
chain continuous 8x8x8 &
chain discrete 8x8x8 &
failed=0
for job in $(jobs -p); do wait "$job" || failed=1; done
for name in cv4x8x8 dv4x8x8 cv8x8x8 dv8x8x8; do
    cp "outputs/cosmos/tokenizer-$name-stage1/log.csv" "$logs/$name-stage1.csv" 2>/dev/null || true
    cp "outputs/cosmos/tokenizer-$name-stage2/log.csv" "$logs/$name-stage2.csv" 2>/dev/null || true
done
exit $failed
