"""The transformers (PyTorch CPU) side of experiments/generation_speed: the same token ids,
the same float32 weights (the folder `seft export` wrote), the same thread count, KV cache on.
Decode time = generate(N new tokens) - generate(1 new token), as seft's `bench` measures it."""

import argparse
import json
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prompts = json.load(open(args.prompts))
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()

    def prefill_once():
        ids = torch.tensor([prompts["prefill"]])
        start = time.perf_counter()
        with torch.no_grad():
            model(ids, use_cache=True, logits_to_keep=1)
        return time.perf_counter() - start

    prefill_once()
    n = len(prompts["prefill"])
    prefill = statistics.median(prefill_once() for _ in range(args.repeats))
    results = [{"phase": "prefill", "batch": 1, "tokens": n, "seconds": prefill, "tokens_per_s": n / prefill}]
    for b in [int(x) for x in args.batch.split(",")]:
        rows = prompts["decode"][:b]
        width = max(map(len, rows))
        pad = model.generation_config.pad_token_id or 0
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])

        def timed(new):
            start = time.perf_counter()
            with torch.no_grad():
                model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False)
            return time.perf_counter() - start

        timed(2)
        decode = statistics.median(timed(args.new_tokens) - timed(1) for _ in range(args.repeats))
        tokens = b * (args.new_tokens - 1)
        results.append({"phase": "decode", "batch": b, "tokens": tokens, "seconds": decode, "tokens_per_s": tokens / decode})
    print(json.dumps({"engine": "transformers", "torch": torch.__version__, "threads": args.threads, "results": results}))


if __name__ == "__main__":
    main()
