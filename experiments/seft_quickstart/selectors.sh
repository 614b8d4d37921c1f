#!/usr/bin/env bash
# The quickstart SEFT run once per prompt selector (same seed, data and training), embeddings
# from the starting policy's mean-pooled hidden states. Results: runs/quickstart-<selector>/.
set -euo pipefail
BIN=${SEFT_BIN:-${CARGO_TARGET_DIR:-target}/release/seft}
for s in random kmeans kde kmeans+kde; do
  dir=runs/quickstart-${s/+/-}
  /usr/bin/time -f "$s: %e s wall, %M KB peak" "$BIN" run configs/quickstart.toml --out "$dir" \
    --set "evolution.selector=\"$s\"" --set 'evolution.embedder="policy"' > /dev/null
done
