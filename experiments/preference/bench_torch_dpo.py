"""The PyTorch side of experiments/preference/speed.sh: DPO (TRL's sigmoid loss, beta 0.1) on
the same pairs, chat template, truncation (256 tokens per row) and micro-batch (2 pairs = 4 rows,
chosen first) as `seft train`, AdamW (lr 1e-6), clipping at 1.0, float32, 2 threads. The
reference is a frozen copy of the starting weights, run under no_grad at every step, or
(--precompute) run once over all pairs before the timed steps. Prints the median training
tokens/s (both rows of every pair, padding excluded) over the steps after the first two."""
import argparse
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--steps", type=int, default=8)
ap.add_argument("--precompute", action="store_true")
args = ap.parse_args()
torch.set_num_threads(2)
MAX_LEN, PAIRS, BETA, PAD = 256, 2, 0.1, 2
tok = AutoTokenizer.from_pretrained(args.model)
model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
model.train()
reference = copy.deepcopy(model).eval()
for p in reference.parameters():
    p.requires_grad_(False)


def row(prompt, completion):
    messages = [{"role": "user", "content": prompt}]
    p_text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(messages + [{"role": "assistant", "content": completion}], tokenize=False)
    p_len = len(tok(p_text, add_special_tokens=False)["input_ids"])
    ids = tok(full, add_special_tokens=False)["input_ids"][:MAX_LEN]
    return ids, p_len


pairs = [(row(r["prompt"], r["chosen"]), row(r["prompt"], r["rejected"])) for r in json.load(open(args.data))]


def logps(net, rows):
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([r + [PAD] * (width - len(r)) for r, _ in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _ in rows])
    labels = ids.clone()
    for i, (r, p_len) in enumerate(rows):
        labels[i, :p_len] = -100
        labels[i, len(r):] = -100
    logits = net(input_ids=ids, attention_mask=mask).logits[:, :-1, :]
    labels = labels[:, 1:]
    keep = labels != -100
    picked = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(2)).squeeze(2)
    return (picked * keep).sum(-1)


def batch_rows(step):
    batch = pairs[PAIRS * step: PAIRS * step + PAIRS]
    return [c for c, _ in batch] + [r for _, r in batch]


cached = {}
if args.precompute:
    with torch.no_grad():
        for step in range(args.steps):
            cached[step] = logps(reference, batch_rows(step))
opt = torch.optim.AdamW(model.parameters(), lr=1e-6, eps=1e-8, weight_decay=0.0)
rates = []
for step in range(args.steps):
    rows = batch_rows(step)
    start = time.perf_counter()
    policy = logps(model, rows)
    if args.precompute:
        ref = cached[step]
    else:
        with torch.no_grad():
            ref = logps(reference, rows)
    n = PAIRS
    delta = (policy[:n] - policy[n:]) - (ref[:n] - ref[n:])
    loss = -F.logsigmoid(BETA * delta).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    rates.append(sum(len(r) for r, _ in rows) / (time.perf_counter() - start))
print(json.dumps({"engine": "pytorch", "precompute": args.precompute, "tokens_per_s": statistics.median(rates[2:]),
                  "steps": args.steps}))
