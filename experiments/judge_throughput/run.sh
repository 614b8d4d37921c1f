#!/usr/bin/env bash
# Local-judge throughput, unbatched (1 prompt per forward pass) vs batched (8), on the same 32
# AlpacaEval pairs (alpaca-7b's outputs vs the reference), SmolLM2-135M-Instruct as judge.
set -euo pipefail
GGUF=${SEFT_MODELS_DIR:-$HOME/.cache/seft/models}/SmolLM2-135M-Instruct.Q4_1.gguf
DATA=${SEFT_SHARED_DATA:-../shared/data}
for bs in 1 8 1 8; do
  OUT=$(mktemp -d)
  "${SEFT_BIN:-${CARGO_TARGET_DIR:-target}/release/seft}" eval alpaca-eval --outputs "$DATA"/alpaca_eval/model_outputs/alpaca-7b.json \
    --judge "$GGUF" --judge-batch-size $bs --max-instructions 32 --seed 0 --out "$OUT" --json \
    2>&1 >/dev/null | grep "^judged" | sed "s/^/batch $bs: /"
  rm -rf "$OUT"
done
