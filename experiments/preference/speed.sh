#!/usr/bin/env bash
# DPO training speed, seft vs PyTorch + transformers, same machine and run: SmolLM2-135M-Instruct
# (f32 folder from `seft export`, loaded by both), 24 pairs whose rows are all cut at 256 tokens
# (make_long_pairs.py), micro-batch 2 pairs (4 rows), 8 full fine-tuning steps, AdamW lr 1e-6,
# clipping 1.0, 2 threads; reference at every step and precomputed. Reports median tokens/s
# (steps 3..8, both rows of each pair) and peak RSS (GNU time).
# Needs the Python peer env (see experiments/generation_speed/run.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${SEFT_PYREF:-$HOME/.cache/seft/pyref/bin/python}"
gguf="$(scripts/fetch-test-models.sh | grep "\.gguf$")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/seft/target}"
cargo build --release --quiet
seft="$CARGO_TARGET_DIR/release/seft"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$seft" export --model "$gguf" --out "$work/smollm2" 2>/dev/null
python3 "$here/make_long_pairs.py" "$work/pairs.json"
mkdir -p "$here/results"
for mode in per_step precompute; do
  precompute=false; flag=""
  [ "$mode" = precompute ] && precompute=true && flag="--precompute"
  cat > "$work/$mode.toml" <<TOML
[model]
path = "$work/smollm2"
[data]
train = "$work/pairs.json"
eval_fraction = 0.0
max_len = 256
[train]
micro_batch = 2
max_steps = 8
epochs = 0
lr = 1e-6
schedule = "constant"
[preference]
loss = "dpo"
precompute_ref = $precompute
[output]
dir = "$work/run-$mode"
TOML
  /usr/bin/time -f "%M" -o "$work/seft-$mode.rss" "$seft" train --config "$work/$mode.toml" >/dev/null 2>"$work/seft-$mode.log"
  seft_tps=$("$py" -c "import json,statistics,sys; r=[json.loads(l)['tokens_per_s'] for l in open(sys.argv[1]) if 'tokens_per_s' in l]; print(statistics.median(r[2:]))" "$work/run-$mode/metrics.jsonl")
  /usr/bin/time -f "%M" -o "$work/torch-$mode.rss" "$py" "$here/bench_torch_dpo.py" --model "$work/smollm2" --data "$work/pairs.json" $flag > "$work/torch-$mode.json" 2>/dev/null
  torch_tps=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['tokens_per_s'])" "$work/torch-$mode.json")
  echo "{\"mode\": \"$mode\", \"seft_tokens_per_s\": $seft_tps, \"pytorch_tokens_per_s\": $torch_tps, \"seft_peak_rss_kib\": $(cat "$work/seft-$mode.rss"), \"pytorch_peak_rss_kib\": $(cat "$work/torch-$mode.rss")}" | tee "$here/results/$mode.json"
done
