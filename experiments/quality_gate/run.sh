#!/usr/bin/env bash
# The quality gate (seft::sparse::QualityGate) on the shared preference data: trained through
# the firing-neuron trees and densely on the same frozen all-MiniLM-L6-v2 embeddings and the
# same splits; held-out accuracy, agreement and training time of each path.
# Knobs (environment): SEFT (binary), MINILM, SEFT_SHARED_DATA, WIDTH, STEPS, SPLITS,
# MAX_PAIRS, OUT.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SEFT=${SEFT:-${CARGO_TARGET_DIR:-$ROOT/target}/release/seft}
MINILM=${MINILM:-$HOME/.cache/seft/models/all-MiniLM-L6-v2}
SHARED=${SEFT_SHARED_DATA:-$ROOT/../shared/data}
OUT=${OUT:-$HERE/results}
WIDTH=${WIDTH:-4096}
STEPS=${STEPS:-100}
SPLITS=${SPLITS:-3}
MAX_PAIRS=${MAX_PAIRS:-1000}
# Embeddings are cached outside the repository (they are rebuilt when the texts change).
CACHE=${CACHE:-$HOME/.cache/seft/quality-gate}
mkdir -p "$OUT"
for data in hh_rlhf/helpful-base_test.jsonl.gz preference_samples/llamafactory_dpo_en_demo.json; do
  name=$(basename "${data%%.*}")
  echo "== $name"
  RAYON_NUM_THREADS=2 "$SEFT" gate --preferences "$SHARED/$data" --embedder "$MINILM" \
    --max-pairs "$MAX_PAIRS" --skip-bad-rows --width "$WIDTH" --steps "$STEPS" --splits "$SPLITS" \
    --out "$CACHE/$name" | tee "$OUT/$name.md"
  cp "$CACHE/$name/results.json" "$OUT/$name.json"
done
