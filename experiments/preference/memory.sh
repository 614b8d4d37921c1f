#!/usr/bin/env bash
# Peak RSS of three runs with the same batch shape (4 rows of 256 tokens per step, 3 full
# fine-tuning steps of SmolLM2-135M): SFT (micro_batch 4), DPO with the reference computed at
# each step and DPO with precomputed references (micro_batch 2 pairs = 4 rows).
#   bash experiments/preference/memory.sh [path/to/seft]
set -euo pipefail
seft=${1:-target/release/seft}
work=$(mktemp -d)
python3 experiments/preference/make_long_pairs.py "$work/long_pairs.json"
sed '/^\[preference\]/,/^precompute_ref/d' configs/dpo_example.toml > "$work/sft.toml"
common=(--set "data.train=$work/long_pairs.json" --set train.max_steps=3 --set data.max_len=256
        --set train.eval_every=0 --set train.grad_accum=1 --set train.warmup_steps=0
        --set train.lr=1e-6 --set data.eval_fraction=0.0)
run() {
    local name=$1 config=$2; shift 2
    /usr/bin/time -v "$seft" train --config "$config" "${common[@]}" --set "output.dir=$work/$name" "$@" \
        > /dev/null 2> "$work/$name.log"
    echo "$name $(grep 'Maximum resident' "$work/$name.log" | awk '{print $NF}') KiB"
}
run sft "$work/sft.toml" --set train.micro_batch=4
run dpo_per_step configs/dpo_example.toml --set train.micro_batch=2
run dpo_precompute configs/dpo_example.toml --set train.micro_batch=2 --set preference.precompute_ref=true
