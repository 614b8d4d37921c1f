#!/usr/bin/env bash
# Dynamic KDE (seft) vs exact brute force (seft) vs scikit-learn's tree KDE (rtol 0.1, 0.01)
# on the same data and queries; Gaussian kernel exp(-|x-q|^2/h^2), h = sqrt(2d) unless H is
# set (for unit-variance blobs that puts same-blob neighbors near kernel value 1/e).
# Writes results/results.jsonl, results/results.md and results/seeds.md (the target per
# config over the seeds).
#
# Knobs (environment): DATA_DIR, N_LIST, D_LIST, BLOBS, QUERIES, SK_QUERIES (scikit-learn queries,
# default 200), CONFIGS, THREADS, H, TAU, PY, OUT,
# BIN (a prebuilt kde_bench, skips the cargo build), SEEDS (structure seeds each config runs
# with, default "0"), SKLEARN=0 (skips scikit-learn); SMOKE=1 runs a tiny grid.
# CONFIGS lists dynamic-structure settings as "name:extra bench flags" entries separated by
# ';': the default runs the (ε, δ, τ)-derived sizes and a small-sample variant.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=${PY:-$HOME/.cache/seft/pyref/bin/python}
OUT=${OUT:-$HERE/results}
if [[ "${SMOKE:-0}" == 1 ]]; then
  N_LIST=${N_LIST:-"4000"}; D_LIST=${D_LIST:-"8"}; QUERIES=${QUERIES:-50}
  CONFIGS=${CONFIGS:-"small:--epsilon 0.3 --samples 100 --adaptive-steps 30 --adaptive-starts 2"}
  OUT=${OUT_SMOKE:-$(mktemp -d)}
fi
N_LIST=${N_LIST:-"100000 300000 500000"}
D_LIST=${D_LIST:-"16 64 128 384"}
BLOBS=${BLOBS:-20}
QUERIES=${QUERIES:-1000}
THREADS=${THREADS:-2}
TAU=${TAU:-0.01}
CONFIGS=${CONFIGS:-"theory:--epsilon 0.2 --delta 0.1 --adaptive-steps 200 --adaptive-starts 5;small-m:--epsilon 0.2 --samples 200 --adaptive-steps 200 --adaptive-starts 5"}
"$PY" -c "import sklearn, threadpoolctl" 2>/dev/null || "$PY" -m pip install --quiet scikit-learn threadpoolctl

# Generated data (up to 1.5 GB a file) lives outside the repository.
DATA_DIR=${DATA_DIR:-$HOME/.cache/seft/select-bench-data}
mkdir -p "$OUT" "$DATA_DIR"
RESULTS="$OUT/results.jsonl"
rm -f "$RESULTS"
if [[ -z "${BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --release --example kde_bench)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/kde_bench"
fi
for n in $N_LIST; do
  for d in $D_LIST; do
    dir="$DATA_DIR/kde/n${n}_d${d}_b${BLOBS}"
    [[ -f "$dir/queries.npy" ]] || "$PY" "$HERE/make_data.py" --n "$n" --d "$d" --blobs "$BLOBS" \
      --queries "$QUERIES" --out-dir "$dir"
    h=${H:-$("$PY" -c "print((2 * $d) ** 0.5)")}
    IFS=';' read -ra configs <<< "$CONFIGS"
    for seed in ${SEEDS:-0}; do
      for config in "${configs[@]}"; do
        name=${config%%:*}
        echo "== n=$n d=$d h=$h seed=$seed: seft exact + dynamic ($name)"
        # shellcheck disable=SC2086 # the config's flags are meant to split
        RAYON_NUM_THREADS=$THREADS "$BIN" --data "$dir/data.npy" --queries "$dir/queries.npy" \
          --bandwidth "$h" --tau "$TAU" ${config#*:} --seed "$seed" --truth-out "$dir/truth.npy" \
          --config-name "$name" --out "$RESULTS" \
          || echo "   (dynamic run '$name' failed or was refused; see the message above)"
      done
    done
    [[ "${SKLEARN:-1}" == 0 ]] && continue
    echo "== n=$n d=$d: scikit-learn KernelDensity"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=$THREADS \
      OPENBLAS_NUM_THREADS=$THREADS "$PY" "$HERE/sklearn_kde.py" --data "$dir/data.npy" \
      --queries "$dir/queries.npy" --bandwidth "$h" --truth "$dir/truth.npy" --tau "$TAU" \
      --epsilon 0.2 --max-queries "${SK_QUERIES:-200}" --out "$RESULTS"
  done
done
"$PY" "$HERE/report.py" "$RESULTS" --out "$OUT/results.md"
"$PY" "$HERE/seeds_report.py" "$RESULTS" --out "$OUT/seeds.md"
