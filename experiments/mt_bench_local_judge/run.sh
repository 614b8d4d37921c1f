#!/usr/bin/env bash
# MT-Bench single-answer grading of three models' published answers (gpt-4, vicuna-13b-v1.3,
# llama-13b: all 80 questions, both turns) by a local judge, SmolLM2-135M-Instruct, in
# `prefill` verdict mode (its reply is forced to start with "Rating: [["). A 135M judge is not
# GPT-4: this shows the pipeline, not the models' quality.
set -euo pipefail
GGUF=${SEFT_MODELS_DIR:-$HOME/.cache/seft/models}/SmolLM2-135M-Instruct.Q4_1.gguf
DATA=${SEFT_SHARED_DATA:-../shared/data}
OUT=${OUT:-experiments/mt_bench_local_judge/results}
/usr/bin/time -v "${SEFT_BIN:-${CARGO_TARGET_DIR:-target}/release/seft}" eval mt-bench \
  --answers "$DATA"/mt_bench/model_answer/{gpt-4,vicuna-13b-v1.3,llama-13b}.jsonl \
  --judge "$GGUF" --verdict prefill --judge-batch-size 8 \
  --out "$OUT"
