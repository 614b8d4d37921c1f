#!/usr/bin/env bash
# The quickstart SEFT run with the quality gate ([gate], issue 7) at several skip precisions:
# the gate is trained through the firing-neuron trees (dense for comparison) on the trained
# reviser's frozen mean-pooled hidden states of the reviser's own input text. Results:
# runs/quickstart-gate-p<precision>/report.md ("Quality gate" section).
set -euo pipefail
BIN=${SEFT_BIN:-${CARGO_TARGET_DIR:-target}/release/seft}
for p in ${PRECISIONS:-0.9 0.8 0.7}; do
  dir=runs/quickstart-gate-p${p}
  /usr/bin/time -f "skip_precision $p: %e s wall, %M KB peak" "$BIN" run configs/quickstart.toml \
    --out "$dir" --set 'gate.train="firing-tree"' --set 'gate.embedder="reviser"' \
    --set "gate.skip_precision=$p" > /dev/null
done
