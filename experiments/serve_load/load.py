"""Load on an OpenAI-compatible server: C clients, each sending R streamed chat requests one
after another, every answer forced to exactly N tokens. Reports per concurrency level the
aggregate output tokens/s (all tokens ÷ wall time of the level) and the p50/p95 of time to
first token and of request latency. Standard library only, so it measures the server, not a
client library.

Usage: python load.py URL MODEL --force {min_tokens,logit_bias} [--levels 1,4,8,16]
           [--rounds 2] [--tokens 128] [--json OUT]

How each server is made to write exactly N tokens: seft takes vLLM's `min_tokens`; llama.cpp's
server (llama-cpp-python) takes a `logit_bias` of -100 on the end-of-sequence tokens.
"""

import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse

TOPICS = [
    "a lighthouse keeper", "a lost robot", "the first snow", "a city under the sea",
    "a talking cat", "an old clock", "a mountain village", "a desert caravan",
    "a secret garden", "a river journey", "a space station", "a forgotten library",
    "a winter market", "a dragon's egg", "a paper boat", "a midnight train",
]

# SmolLM2's end-of-sequence tokens: <|endoftext|> = 0, <|im_end|> = 2.
EOS_IDS = ["0", "2"]


def one_request(url, model, tokens, force, prompt):
    parts = urllib.parse.urlsplit(url)
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": tokens,
        "temperature": 0.0,
        "stream": True,
    }
    if force == "min_tokens":
        body["min_tokens"] = tokens
    else:
        body["logit_bias"] = {t: -100 for t in EOS_IDS}
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    start = time.perf_counter()
    conn.request(
        "POST",
        parts.path.rstrip("/") + "/chat/completions",
        json.dumps(body),
        {"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:300]!r}")
    first = None
    pieces = 0
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        for choice in chunk.get("choices", []):
            if choice.get("delta", {}).get("content"):
                pieces += 1
                if first is None:
                    first = time.perf_counter() - start
    latency = time.perf_counter() - start
    conn.close()
    return first if first is not None else latency, latency, pieces


def level(url, model, tokens, force, concurrency, rounds):
    ttfts, latencies, pieces, errors = [], [], [], []
    lock = threading.Lock()

    def client(c):
        for r in range(rounds):
            topic = TOPICS[(c * rounds + r) % len(TOPICS)]
            try:
                t, l, p = one_request(url, model, tokens, force, f"Write a long story about {topic}.")
                if p < tokens * 0.9:
                    raise RuntimeError(f"a short answer: {p} stream chunks for {tokens} tokens")
                with lock:
                    ttfts.append(t)
                    latencies.append(l)
                    pieces.append(p)
            except Exception as e:  # reported, and the level is marked failed
                with lock:
                    errors.append(str(e))

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start

    def pct(xs, q):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")

    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "wall_s": wall,
        "tokens_per_s": len(latencies) * tokens / wall,
        "ttft_p50_s": pct(ttfts, 0.5),
        "ttft_p95_s": pct(ttfts, 0.95),
        "latency_p50_s": pct(latencies, 0.5),
        "latency_p95_s": pct(latencies, 0.95),
        "min_stream_chunks": min(pieces) if pieces else 0,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("model")
    ap.add_argument("--force", choices=["min_tokens", "logit_bias"], required=True)
    ap.add_argument("--levels", default="1,4,8,16")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--json")
    args = ap.parse_args()
    # One warm-up request (model pages, kernels) that is not counted.
    one_request(args.url, args.model, 8, args.force, "Hello")
    results = []
    for c in [int(x) for x in args.levels.split(",")]:
        r = level(args.url, args.model, args.tokens, args.force, c, args.rounds)
        print(json.dumps(r), flush=True)
        results.append(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
