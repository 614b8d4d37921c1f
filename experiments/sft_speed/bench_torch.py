"""The PyTorch side of experiments/sft_speed: the same rows, chat template, truncation (256) and
micro-batch (4) as `seft sft`, AdamW, float32, 2 threads; full fine-tuning or LoRA r=16 (peft,
same target projections). Prints median training tokens/s over the steps after the first two."""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--steps", type=int, default=8)
ap.add_argument("--lora", action="store_true")
args = ap.parse_args()
torch.set_num_threads(2)
tok = AutoTokenizer.from_pretrained(args.model)
model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
model.train()
if args.lora:
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                              target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
rows = [json.loads(l) for l in open(args.data)]
seqs = []
for r in rows:
    user = r["instruction"] + ("\n" + r["input"] if r["input"] else "")
    text = tok.apply_chat_template([{"role": "user", "content": user}, {"role": "assistant", "content": r["output"]}], tokenize=False)
    seqs.append(tok(text, add_special_tokens=False)["input_ids"][:256])
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, eps=1e-8, weight_decay=0.0)
rates = []
for step in range(args.steps):
    batch = seqs[4 * step: 4 * step + 4]
    width = max(map(len, batch))
    ids = torch.tensor([s + [2] * (width - len(s)) for s in batch])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch])
    labels = ids.masked_fill(mask == 0, -100)
    start = time.perf_counter()
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    rates.append(sum(map(len, batch)) / (time.perf_counter() - start))
print(json.dumps({"engine": "pytorch", "lora": args.lora, "tokens_per_s": statistics.median(rates[2:]), "steps": args.steps}))
