"""Token ids both engines time: a 512-token prefill prompt and 8 chat prompts of different
lengths for decoding, tokenized with the model's own tokenizer (seft's tokenizer gives the same
ids; see tests/smollm2_reference.rs)."""

import json
import sys

from transformers import AutoTokenizer

model_dir, out = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(model_dir)
text = open(__file__.replace("make_prompts.py", "passage.txt")).read()
ids = tok(text, add_special_tokens=False)["input_ids"]
while len(ids) < 512:
    ids = ids + ids
questions = [
    "Write a story about a lighthouse keeper.",
    "Explain how vaccines work.",
    "What are the main causes of the French Revolution? Give a detailed answer.",
    "Describe the water cycle to a ten-year-old.",
    "List ten ideas for a birthday party.",
    "How do I bake sourdough bread at home, step by step?",
    "Summarize the plot of Hamlet.",
    "Compare Python and Rust for systems programming, with examples of where each one shines.",
]
decode = [
    tok(tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True),
        add_special_tokens=False)["input_ids"]
    for q in questions
]
json.dump({"prefill": ids[:512], "decode": decode}, open(out, "w"))
print(f"prefill {len(ids[:512])} tokens; decode prompt lengths {[len(d) for d in decode]}", file=sys.stderr)
