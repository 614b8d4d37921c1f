#!/usr/bin/env bash
# Data for configs/seft_ifeval_smollm2.toml, into runs/seft_ifeval_data/ (resumable):
#   train.jsonl     300 constraint prompts the starting policy samples K=4 answers to
#   pairs/          samples.jsonl, pairs.jsonl (best vs worst by fraction of instructions
#                   followed, ties dropped), summary.json
#   pool.jsonl      400 fresh constraint prompts, unannotated: what SEFT evolves on
#   held_out.jsonl  200 constraint prompts for the held-out grader
# All prompts are Alpaca-demo, LIMA and Alpaca seed-task instructions with 1-3 of IFEval's
# instruction types attached; none is an IFEval prompt, and the three sets share no base
# instruction text with one another (each later set excludes the earlier ones' prompts).
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED="${SEFT_SHARED_DATA:-../shared/data}"
MODEL="${SEFT_MODELS_DIR:-$HOME/.cache/seft/models}/SmolLM2-135M-Instruct.Q4_1.gguf"
SEFT="${SEFT:-target/release/seft}"
OUT=runs/seft_ifeval_data
mkdir -p "$OUT"
INSTRUCTIONS=("$SHARED/instructions/alpaca_en_demo.json" "$SHARED/instructions/lima.json"
              "$SHARED/instructions/alpaca_seed_tasks.jsonl")
prompts() { # name count seed [exclude files...]
  local name=$1 count=$2 seed=$3; shift 3
  [[ -f "$OUT/$name.jsonl" ]] && return
  "$SEFT" eval constraint-prompts --instructions "${INSTRUCTIONS[@]}" --data-dir "$SHARED" \
    --count "$count" --seed "$seed" --max-chars 400 ${1:+--exclude "$@"} --out "$OUT/$name.jsonl"
}
prompts held_out 200 11
prompts train 300 12 "$OUT/held_out.jsonl"
prompts pool 400 13 "$OUT/held_out.jsonl" "$OUT/train.jsonl"
"$SEFT" eval constraint-pairs --model "$MODEL" --prompts "$OUT/train.jsonl" --samples 4 \
  --temperature 0.8 --top-p 0.95 --max-new-tokens 256 --batch-size 16 --seed 1 --out "$OUT/pairs"
