#!/usr/bin/env bash
# k-means++ seeding, seft vs scikit-learn, side by side on the same .npy files; builds one
# table (results/results.md) and plots (results/seeding_time_vs_n.png, ..._vs_k.png).
#
# Run from anywhere on a quiet machine (other load makes OpenBLAS's spinning threads
# collapse: a 2.8 s single-thread seeding took 38 s with 2 threads next to a compile).
# Knobs (environment): DATA_DIR, N_LIST, D_LIST, K_LIST, SEEDS, BLOBS, THREADS, METHODS, PY, OUT,
# BIN (a prebuilt kmeans_bench, skips the cargo build);
# SMOKE=1 runs a tiny grid.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=${PY:-$HOME/.cache/seft/pyref/bin/python}
OUT=${OUT:-$HERE/results}
if [[ "${SMOKE:-0}" == 1 ]]; then
  N_LIST=${N_LIST:-"3000"}; D_LIST=${D_LIST:-"8"}; K_LIST=${K_LIST:-"5,20"}; SEEDS=${SEEDS:-2}
  OUT=${OUT_SMOKE:-$(mktemp -d)}
fi
N_LIST=${N_LIST:-"100000 300000 1000000"}
D_LIST=${D_LIST:-"16 128 384"}
K_LIST=${K_LIST:-"10,100,1000"}
SEEDS=${SEEDS:-5}
BLOBS=${BLOBS:-100}
THREADS=${THREADS:-2}
METHODS=${METHODS:-"exact,greedy,fast"}
"$PY" -c "import sklearn, matplotlib, threadpoolctl" 2>/dev/null \
  || "$PY" -m pip install --quiet scikit-learn matplotlib threadpoolctl

# Generated data (up to 1.5 GB a file) lives outside the repository.
DATA_DIR=${DATA_DIR:-$HOME/.cache/seft/select-bench-data}
mkdir -p "$OUT" "$DATA_DIR/kmeans"
RESULTS="$OUT/results.jsonl"
rm -f "$RESULTS"
if [[ -z "${BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --release --example kmeans_bench)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/kmeans_bench"
fi
for n in $N_LIST; do
  for d in $D_LIST; do
    data="$DATA_DIR/kmeans/blobs_n${n}_d${d}_b${BLOBS}.npy"
    [[ -f "$data" ]] || "$PY" "$HERE/make_data.py" --n "$n" --d "$d" --blobs "$BLOBS" --out "$data"
    echo "== n=$n d=$d k=$K_LIST: seft"
    RAYON_NUM_THREADS=$THREADS "$BIN" --data "$data" --k "$K_LIST" --seeds "$SEEDS" \
      --method "$METHODS" --lloyd-iters 10 --out "$RESULTS"
    echo "== n=$n d=$d k=$K_LIST: scikit-learn"
    # Unset the OpenBLAS core-type pins of this workplace: they slow a current numpy.
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=$THREADS \
      OPENBLAS_NUM_THREADS=$THREADS "$PY" "$HERE/sklearn_bench.py" --data "$data" \
      --k "$K_LIST" --seeds "$SEEDS" --lloyd-iters 10 --out "$RESULTS"
  done
done
"$PY" "$HERE/report.py" "$RESULTS" --out-dir "$OUT"
