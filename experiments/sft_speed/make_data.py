"""Training rows for the speed benchmark: Alpaca demo rows long enough to fill 256 tokens
(shorter rows are concatenated), written as {"text"-free} Alpaca JSONL that both engines read."""
import json
import sys

rows = json.load(open(sys.argv[1]))
out = open(sys.argv[2], "w")
n = 0
for r in rows:
    if len(r["output"]) > 1200:  # ~256+ tokens once templated
        out.write(json.dumps({"instruction": r["instruction"], "input": r["input"], "output": r["output"]}) + "\n")
        n += 1
    if n == 64:
        break
print(f"{n} rows", file=sys.stderr)
