"""Data and queries for the KDE benchmark: Gaussian blobs (float32 .npy) and queries that are
data points plus N(0, 0.5^2) noise, so that query densities span a wide range.

    python make_data.py --n 100000 --d 16 --blobs 20 --queries 1000 --out-dir data/n100000_d16
"""
import argparse
import os

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--d", type=int, required=True)
    parser.add_argument("--blobs", type=int, default=20)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    centers = rng.uniform(-10.0, 10.0, size=(args.blobs, args.d)).astype(np.float32)
    data = np.lib.format.open_memmap(os.path.join(args.out_dir, "data.npy"), mode="w+",
                                     dtype=np.float32, shape=(args.n, args.d))
    chunk = 65536
    for start in range(0, args.n, chunk):
        stop = min(start + chunk, args.n)
        noise = rng.standard_normal(size=(stop - start, args.d), dtype=np.float32)
        data[start:stop] = centers[np.arange(start, stop) % args.blobs] + noise
    data.flush()
    picks = rng.integers(0, args.n, size=args.queries)
    queries = data[picks] + 0.5 * rng.standard_normal(size=(args.queries, args.d), dtype=np.float32)
    np.save(os.path.join(args.out_dir, "queries.npy"), queries.astype(np.float32))
    print(f"wrote {args.out_dir}/data.npy ({args.n} x {args.d}) and queries.npy ({args.queries})")


if __name__ == "__main__":
    main()
