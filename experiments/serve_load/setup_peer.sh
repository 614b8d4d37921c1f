#!/usr/bin/env bash
# The peer for the load benchmark: llama.cpp's OpenAI-compatible server from the PyPI package
# llama-cpp-python (built here from source, about 10-20 minutes on 2 cores), and an F32 GGUF
# of SmolLM2-135M-Instruct written from the Q4_1 file with the `gguf` package (every tensor
# dequantized, every metadata field copied, file_type 0).
# Portable x86-64 flags: a native build crashed on an AVX-512 Xeon (issue 30's notes); on a
# CPU with AVX-512 add -DGGML_AVX512=ON.
set -euo pipefail
venv="${SEFT_LLAMACPP_VENV:-$HOME/.cache/seft/llamacpp}"
models="${SEFT_MODELS_DIR:-$HOME/.cache/seft/models}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_OPENMP=OFF" \
    "$venv/bin/pip" install --quiet --no-cache-dir "llama-cpp-python[server]==0.3.36" "gguf==0.19.0" numpy
fi
f32="$models/SmolLM2-135M-Instruct.F32.gguf"
if [ ! -s "$f32" ]; then
  "$venv/bin/python" "$(dirname "$0")/to_f32_gguf.py" "$models/SmolLM2-135M-Instruct.Q4_1.gguf" "$f32.partial"
  mv "$f32.partial" "$f32"
fi
echo "$venv"
echo "$f32"
