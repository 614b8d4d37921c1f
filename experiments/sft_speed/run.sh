#!/usr/bin/env bash
# Training speed, seft vs PyTorch + transformers, same machine and run: SmolLM2-135M-Instruct
# (f32), sequences truncated to 256 tokens, micro-batch 4, AdamW, 2 threads; full fine-tuning
# and LoRA r=16 on q/k/v/o. Reports median tokens/s (steps 3..8) and peak RSS (GNU time).
# Needs the Python peer env (see experiments/generation_speed/run.sh) plus `pip install peft`.
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
"$py" "$here/make_data.py" "${SEFT_SHARED_DATA:-../shared/data}/instructions/alpaca_en_demo.json" "$work/rows.jsonl"
mkdir -p "$here/results"
for mode in full lora; do
  lora_cfg=""
  [ "$mode" = lora ] && lora_cfg=$'[lora]\nrank = 16\nalpha = 32.0\ntargets = ["q_proj", "k_proj", "v_proj", "o_proj"]'
  cat > "$work/$mode.toml" <<TOML
[model]
path = "$work/smollm2"
[data]
train = "$work/rows.jsonl"
eval_fraction = 0.0
max_len = 256
train_on_prompt = true
[train]
micro_batch = 4
max_steps = 8
epochs = 0
lr = 1e-5
schedule = "constant"
$lora_cfg
[output]
dir = "$work/run-$mode"
TOML
  /usr/bin/time -f "%M" -o "$work/seft-$mode.rss" "$seft" sft --config "$work/$mode.toml" >/dev/null 2>"$work/seft-$mode.log"
  seft_tps=$("$py" -c "import json,statistics,sys; r=[json.loads(l)['tokens_per_s'] for l in open(sys.argv[1]) if 'tokens_per_s' in l]; print(statistics.median(r[2:]))" "$work/run-$mode/metrics.jsonl")
  flag=""; [ "$mode" = lora ] && flag="--lora"
  /usr/bin/time -f "%M" -o "$work/torch-$mode.rss" "$py" "$here/bench_torch.py" --model "$work/smollm2" --data "$work/rows.jsonl" $flag > "$work/torch-$mode.json" 2>/dev/null
  torch_tps=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['tokens_per_s'])" "$work/torch-$mode.json")
  echo "{\"mode\": \"$mode\", \"seft_tokens_per_s\": $seft_tps, \"pytorch_tokens_per_s\": $torch_tps, \"seft_peak_rss_kib\": $(cat "$work/seft-$mode.rss"), \"pytorch_peak_rss_kib\": $(cat "$work/torch-$mode.rss")}" | tee "$here/results/$mode.json"
done
