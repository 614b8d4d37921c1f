#!/usr/bin/env bash
# Parameter sweep of the dynamic structure at one grid point: which sizes (copies R, samples per
# level m, LSH bucket width factor, table budget) reach the speed target at mean relative error
# <= 0.1? Same data, queries and exact truth as run.sh. Writes results/sweep_<point>.jsonl and
# prints one line per configuration (batched query time vs exact, errors).
# Knobs: N, D, H (bandwidth, default sqrt(2d)), TAU, CONFIGS ("name:flags;..."), BIN, THREADS.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=${PY:-$HOME/.cache/seft/pyref/bin/python}
N=${N:-500000}; D=${D:-128}; TAU=${TAU:-0.01}; THREADS=${THREADS:-2}
H=${H:-$("$PY" -c "print((2 * $D) ** 0.5)")}
CONFIGS=${CONFIGS:-"R1-m100-w2:--copies 1 --samples 100 --width-factor 2 --max-tables 4;R1-m64-w2:--copies 1 --samples 64 --width-factor 2 --max-tables 4;R1-m100-w1:--copies 1 --samples 100 --width-factor 1 --max-tables 4;R1-m100-w4:--copies 1 --samples 100;R3-m100-w2:--copies 3 --samples 100 --width-factor 2 --max-tables 4;R3-m200-w2:--copies 3 --samples 200 --width-factor 2 --max-tables 4;R17-m200:--samples 200"}
DATA_DIR=${DATA_DIR:-$HOME/.cache/seft/select-bench-data}
dir="$DATA_DIR/kde/n${N}_d${D}_b20"
[[ -f "$dir/queries.npy" ]] || "$PY" "$HERE/make_data.py" --n "$N" --d "$D" --blobs 20 --queries 1000 --out-dir "$dir"
if [[ -z "${BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --release --example kde_bench)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/kde_bench"
fi
OUT=${OUT:-$HERE/results/sweep_n${N}_d${D}.jsonl}
rm -f "$OUT"
IFS=';' read -ra configs <<< "$CONFIGS"
for config in "${configs[@]}"; do
  name=${config%%:*}
  # shellcheck disable=SC2086 # the config's flags are meant to split
  RAYON_NUM_THREADS=$THREADS "$BIN" --data "$dir/data.npy" --queries "$dir/queries.npy" \
    --bandwidth "$H" --tau "$TAU" --epsilon 0.2 --delta 0.1 ${config#*:} --adaptive-steps 0 \
    --adaptive-starts 0 --updates 1000 --config-name "$name" --out "$OUT" > /dev/null
done
"$PY" - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
exact = [r for r in rows if r["method"] == "exact"]
t_exact = sorted(r["query_seconds"] for r in exact)[len(exact) // 2]
print(f"exact (median of {len(exact)} runs): {t_exact:.3e} s/query (64 queries per GEMM)")
print("| config | R | m | s/query batched | vs exact | s/query one at a time | mean rel. err | max rel. err | within 0.2 | kernel evals/query | candidates/query | insert / delete s/point | MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if r["method"] != "dynamic":
        continue
    e, p = r["errors"], r["plan"]
    print(f"| {r['config']} | {p['copies']} | {p['samples_per_level']} | {r['query_seconds']:.2e} | "
          f"{t_exact / r['query_seconds']:.1f}× faster | {r['single_query_seconds']:.2e} | "
          f"{e['mean_relative_error']:.3f} | {e['max_relative_error']:.3f} | {e['fraction_within_epsilon']:.3f} | "
          f"{r['kernel_evaluations_per_query']:.0f} | {r['candidates_per_query']:.0f} | "
          f"{r['insert_seconds_per_point']:.1e} / {r['delete_seconds_per_point']:.1e} | {r['memory_bytes'] / 1e6:.0f} |")
PY
