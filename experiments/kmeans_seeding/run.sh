#!/usr/bin/env bash
# k-means++ seeding, seft vs scikit-learn, side by side on the same .npy files; builds one
# table (results/results.md) and plots (results/seeding_time_vs_n.png, ..._vs_k.png).
#
# Run from anywhere on a quiet machine (other load makes OpenBLAS's spinning threads
# collapse: a 2.8 s single-thread seeding took 38 s with 2 threads next to a compile).
# Knobs (environment): GRID (see below), LINFA, LINFA_GRID, EMBED, EMBED_K, APPEND, DATA_DIR, N_LIST, D_LIST, K_LIST, SEEDS, BLOBS, THREADS, METHODS, PY, OUT,
# BIN (a prebuilt kmeans_bench, skips the cargo build);
# SMOKE=1 runs a tiny grid.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=${PY:-$HOME/.cache/seft/pyref/bin/python}
OUT=${OUT:-$HERE/results}
if [[ "${SMOKE:-0}" == 1 ]]; then
  N_LIST=${N_LIST:-"3000"}; D_LIST=${D_LIST:-"8"}; K_LIST=${K_LIST:-"5,20"}; SEEDS=${SEEDS:-2}
  OUT=${OUT_SMOKE:-$(mktemp -d)}; EMBED=${EMBED:-0}
fi
SEEDS=${SEEDS:-5}
BLOBS=${BLOBS:-100}
THREADS=${THREADS:-2}
METHODS=${METHODS:-"exact,greedy,fast"}
SK_BOTH="sklearn-greedy,sklearn-kpp1"
# GRID: ';'-separated "n:d:k-list:sklearn-methods" points. The default is the grid that fits
# a short run on 2 cores (scikit-learn's greedy seeding at n = 1M, d = 16, k = 1000 takes ~100 s
# a seed; at n = 1M, d = 384 it would take ~20 min a seed): growth in n at d = 16, growth in d
# at n = 100k, the plain-k-means++ baseline where it is affordable.
if [[ -n "${N_LIST:-}" || -n "${D_LIST:-}" || -n "${K_LIST:-}" ]]; then
  GRID=""
  for n in ${N_LIST:-100000}; do for d in ${D_LIST:-16}; do
    GRID="$GRID${GRID:+;}$n:$d:${K_LIST:-10,100,1000}:$SK_BOTH"
  done; done
fi
GRID=${GRID:-"100000:16:10,100,1000:$SK_BOTH;100000:128:10,100,1000:$SK_BOTH;100000:384:10,100,1000:sklearn-greedy;300000:16:10,100,1000:sklearn-greedy;1000000:16:10,100,1000:sklearn-greedy"}
# EMBED=1 adds MiniLM embeddings of the shared instruction files (needs the release seft
# binary and scripts/fetch-test-models.sh's all-MiniLM-L6-v2).
EMBED=${EMBED:-1}
SHARED=${SEFT_SHARED_DATA:-$ROOT/../shared/data}
MINILM=${MINILM:-$HOME/.cache/seft/models/all-MiniLM-L6-v2}
"$PY" -c "import sklearn, matplotlib, threadpoolctl" 2>/dev/null \
  || "$PY" -m pip install --quiet scikit-learn matplotlib threadpoolctl

# Generated data (up to 1.5 GB a file) lives outside the repository.
DATA_DIR=${DATA_DIR:-$HOME/.cache/seft/select-bench-data}
mkdir -p "$OUT" "$DATA_DIR/kmeans"
RESULTS="$OUT/results.jsonl"
[[ "${APPEND:-0}" == 1 ]] || rm -f "$RESULTS"  # APPEND=1 adds to an earlier run
if [[ -z "${BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --release --example kmeans_bench)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/kmeans_bench"
fi

run_point() { # data k-list sklearn-methods
  local data=$1 ks=$2 sk=$3
  echo "== $(basename "$data") k=$ks: seft"
  RAYON_NUM_THREADS=$THREADS "$BIN" --data "$data" --k "$ks" --seeds "$SEEDS" \
    --method "$METHODS" --lloyd-iters 10 --out "$RESULTS"
  echo "== $(basename "$data") k=$ks: scikit-learn ($sk)"
  # Unset the OpenBLAS core-type pins of this workplace: they slow a current numpy.
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=$THREADS \
    OPENBLAS_NUM_THREADS=$THREADS "$PY" "$HERE/sklearn_bench.py" --data "$data" \
    --k "$ks" --seeds "$SEEDS" --method "$sk" --lloyd-iters 10 --out "$RESULTS"
}

IFS=';' read -ra points <<< "$GRID"
for point in "${points[@]}"; do
  IFS=':' read -r n d ks sk <<< "$point"
  data="$DATA_DIR/kmeans/blobs_n${n}_d${d}_b${BLOBS}.npy"
  [[ -f "$data" ]] || "$PY" "$HERE/make_data.py" --n "$n" --d "$d" --blobs "$BLOBS" --out "$data"
  run_point "$data" "$ks" "$sk"
done

if [[ "$EMBED" == 1 ]]; then
  # Real text: every instruction of the shared instruction files and the AlpacaEval set.
  data="$DATA_DIR/kmeans/minilm_instructions.npy"
  if [[ ! -f "$data" ]]; then
    SEFT=${SEFT:-${CARGO_TARGET_DIR:-$ROOT/target}/release/seft}
    parts=()
    for file in instructions/alpaca_en_demo.json instructions/lima.json \
        instructions/alpaca_seed_tasks.jsonl alpaca_eval/reference_gpt4_1106_preview_outputs.json; do
      part="$DATA_DIR/kmeans/minilm_$(basename "${file%.*}").npy"
      [[ -f "$part" ]] || "$SEFT" embed --model "$MINILM" --input "$SHARED/$file" --output "$part"
      parts+=("$part")
    done
    "$PY" -c "import numpy as np, sys; np.save(sys.argv[1], np.concatenate([np.load(p) for p in sys.argv[2:]]).astype(np.float32))" "$data" "${parts[@]}"
  fi
  run_point "$data" "${EMBED_K:-10,100,1000}" "$SK_BOTH"
fi
# LINFA=1 (the default) adds linfa-clustering 0.7.1's KMeansInit::KMeansPlusPlus and
# KMeansPara (separate package linfa_bench/, never part of seft's build) on LINFA_GRID:
# ';'-separated "data:k-list:methods" points, data a file name in $DATA_DIR/kmeans. linfa's
# k-means++ recomputes every point's distance to all chosen centers at each step (O(n·k²·d)):
# 95 s a seed at n 100k, d 384, k 100, so the default grid keeps to what fits a short run.
LINFA=${LINFA:-1}
if [[ "$LINFA" == 1 && "${SMOKE:-0}" != 1 ]]; then
  LINFA_TARGET=${LINFA_TARGET:-$HOME/.cache/seft/linfa-target}
  (cd "$HERE/linfa_bench" && CARGO_TARGET_DIR="$LINFA_TARGET" cargo build --release)
  BOTH="linfa-kmeans++,linfa-kmeans||"
  LINFA_GRID=${LINFA_GRID:-"blobs_n100000_d16_b${BLOBS}.npy:10,100:$BOTH;minilm_instructions.npy:10,100:$BOTH;blobs_n100000_d128_b${BLOBS}.npy:10,100:$BOTH;blobs_n100000_d16_b${BLOBS}.npy:1000:linfa-kmeans||"}
  IFS=';' read -ra points <<< "$LINFA_GRID"
  for point in "${points[@]}"; do
    IFS=':' read -r file ks methods <<< "$point"
    echo "== $file k=$ks: linfa ($methods)"
    RAYON_NUM_THREADS=$THREADS "$LINFA_TARGET/release/linfa_kmeans_bench" \
      --data "$DATA_DIR/kmeans/$file" --k "$ks" --seeds "$SEEDS" --method "$methods" \
      --lloyd-iters 10 --out "$RESULTS"
  done
fi
"$PY" "$HERE/report.py" "$RESULTS" --out-dir "$OUT"
