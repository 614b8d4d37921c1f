#!/usr/bin/env bash
# AlpacaEval 2.0-style run of SmolLM2-135M-Instruct on a seeded 50-instruction subset, judged by
# SmolLM2-135M-Instruct itself (a local judge; NOT GPT-4). Run from the repository root after
# scripts/fetch-test-models.sh and `cargo build --release`. Benchmark data: $SEFT_BENCH_DATA, default
# ../shared/data beside the repository.
set -euo pipefail
GGUF=${SEFT_MODELS_DIR:-$HOME/.cache/seft/models}/SmolLM2-135M-Instruct.Q4_1.gguf
OUT=${OUT:-experiments/alpaca_eval_smollm2/results}
/usr/bin/time -v "${SEFT_BIN:-${CARGO_TARGET_DIR:-target}/release/seft}" eval alpaca-eval \
  --model "$GGUF" --name SmolLM2-135M-Instruct \
  --judge "$GGUF" --judge-batch-size 4 \
  --max-instructions 50 --seed 0 --max-new-tokens 256 --batch-size 10 \
  --data-dir "${SEFT_BENCH_DATA:-$(cd .. && pwd)/shared/data}" --out "$OUT" --json
