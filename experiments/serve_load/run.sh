#!/usr/bin/env bash
# Load benchmark of `seft serve` against llama.cpp's server (llama-cpp-python), one after the
# other in one run, same F32 GGUF, same 2 threads, same client (load.py): concurrency 1, 4, 8,
# 16; 2 requests per client; 128-token answers. Results: results/{seft,llamacpp}.json and the
# table on stdout. llama-cpp-python's server answers one request at a time; by default a new
# request interrupts the running one (`interrupt_requests`), which is turned off here so that
# concurrent clients queue instead of getting cut-off answers.
#   experiments/serve_load/setup_peer.sh        # once: builds the peer, writes the F32 GGUF
#   experiments/serve_load/run.sh [SEFT_BINARY]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seft="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/seft/target}/release/seft}"
venv="${SEFT_LLAMACPP_VENV:-$HOME/.cache/seft/llamacpp}"
model="${SEFT_MODELS_DIR:-$HOME/.cache/seft/models}/SmolLM2-135M-Instruct.F32.gguf"
levels="${LEVELS:-1,4,8,16}"
rounds="${ROUNDS:-2}"
mkdir -p "$here/results"
lscpu | grep -E "Model name|^CPU\(s\)" | tee "$here/results/machine.txt"

wait_up() {
  for _ in $(seq 1 600); do
    curl -sf "$1/models" > /dev/null && return 0
    sleep 0.5
  done
  echo "server at $1 did not come up" >&2
  return 1
}

RAYON_NUM_THREADS=2 "$seft" serve --model "$model" --name smollm2 --addr 127.0.0.1:18080 \
  --slots 16 --max-seq-len 1024 --queue 256 > /dev/null 2> "${TMPDIR:-/tmp}/seft-serve-load.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_up http://127.0.0.1:18080/v1
python3 "$here/load.py" http://127.0.0.1:18080/v1 smollm2 --force min_tokens \
  --levels "$levels" --rounds "$rounds" --json "$here/results/seft.json"
kill $pid; wait $pid 2>/dev/null || true

"$venv/bin/python" -m llama_cpp.server --model "$model" --model_alias smollm2 \
  --n_threads 2 --n_threads_batch 2 --n_ctx 2048 --interrupt_requests False \
  --host 127.0.0.1 --port 18081 \
  > "${TMPDIR:-/tmp}/llamacpp-serve-load.log" 2>&1 &
pid=$!
wait_up http://127.0.0.1:18081/v1
python3 "$here/load.py" http://127.0.0.1:18081/v1 smollm2 --force logit_bias \
  --levels "$levels" --rounds "$rounds" --json "$here/results/llamacpp.json"
kill $pid; wait $pid 2>/dev/null || true

python3 - "$here/results" <<'PY'
import json, sys
d = sys.argv[1]
s, l = json.load(open(f"{d}/seft.json")), json.load(open(f"{d}/llamacpp.json"))
print("| concurrency | seft tok/s | llama.cpp tok/s | ratio | seft TTFT p50/p95 (s) | llama.cpp TTFT p50/p95 (s) | seft latency p50/p95 (s) | llama.cpp latency p50/p95 (s) |")
print("|---|---|---|---|---|---|---|---|")
for a, b in zip(s, l):
    print(f"| {a['concurrency']} | {a['tokens_per_s']:.1f} | {b['tokens_per_s']:.1f} | {a['tokens_per_s']/b['tokens_per_s']:.2f}× "
          f"| {a['ttft_p50_s']:.2f} / {a['ttft_p95_s']:.2f} | {b['ttft_p50_s']:.2f} / {b['ttft_p95_s']:.2f} "
          f"| {a['latency_p50_s']:.2f} / {a['latency_p95_s']:.2f} | {b['latency_p50_s']:.2f} / {b['latency_p95_s']:.2f} |")
c1 = s[0]["tokens_per_s"]
for a in s:
    print(f"seft concurrency {a['concurrency']}: {a['tokens_per_s']/c1:.2f}× concurrency 1; errors {len(a['errors'])}")
for b in l:
    print(f"llama.cpp concurrency {b['concurrency']}: errors {len(b['errors'])}, min chunks {b['min_stream_chunks']}")
PY
