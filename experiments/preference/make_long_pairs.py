"""24 preference pairs with a short prompt and two 600-word completions (random common words,
seed 0): every row is cut at data.max_len, so SFT (prompt + chosen) and preference training
(prompt + chosen, prompt + rejected) see batches of exactly the same shape.

    python3 experiments/preference/make_long_pairs.py /tmp/long_pairs.json
"""
import json
import random
import sys

random.seed(0)
WORDS = ("the of and to in is was for on that with as by at from his her an were are which this "
         "be or has had not but their they").split()
rows = []
for i in range(24):
    def text():
        return " ".join(random.choice(WORDS) for _ in range(600))
    rows.append({"prompt": f"Write a long paragraph number {i}.", "chosen": text(), "rejected": text()})
with open(sys.argv[1], "w") as f:
    json.dump(rows, f)
