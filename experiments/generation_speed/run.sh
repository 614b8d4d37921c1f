#!/usr/bin/env bash
# Generation speed, seft vs transformers (PyTorch CPU), same machine, same run, same f32 weights,
# same token ids, 2 threads each, KV cache on both sides. Needs the Python peer environment:
#   python3 -m venv ~/.cache/seft/pyref && ~/.cache/seft/pyref/bin/pip install torch transformers gguf accelerate
# Usage: experiments/generation_speed/run.sh   (from the repo root; writes results/*.json)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${SEFT_PYREF:-$HOME/.cache/seft/pyref/bin/python}"
gguf="$(scripts/fetch-test-models.sh | grep "\.gguf$")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/seft/target}"
cargo build --release --quiet
seft="$CARGO_TARGET_DIR/release/seft"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$seft" export --model "$gguf" --out "$work/smollm2-f32"
"$py" "$here/make_prompts.py" "$work/smollm2-f32" "$work/prompts.json"
mkdir -p "$here/results"
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
"$seft" bench --model "$work/smollm2-f32" --prompts "$work/prompts.json" | tee "$here/results/seft.json"
"$py" "$here/bench_transformers.py" --model "$work/smollm2-f32" --prompts "$work/prompts.json" | tee "$here/results/transformers.json"
"$py" - "$here/results/seft.json" "$here/results/transformers.json" <<'PY'
import json, sys
seft, peer = (json.load(open(p)) for p in sys.argv[1:3])
print("| phase | batch | seft tok/s | transformers tok/s | ratio |")
print("|---|---|---|---|---|")
for a, b in zip(seft["results"], peer["results"]):
    print(f"| {a['phase']} | {a['batch']} | {a['tokens_per_s']:.1f} | {b['tokens_per_s']:.1f} | {a['tokens_per_s'] / b['tokens_per_s']:.2f}x |")
PY
