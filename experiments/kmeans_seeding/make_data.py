"""Synthetic Gaussian blobs as a float32 .npy file, the input both benchmarks read.

Centers are uniform in [-10, 10]^d, points are N(center, I) assigned round-robin (the same
recipe as seft::select::synthetic::gaussian_blobs, not the same random stream). Written in
chunks through a memory map, so 1M x 384 needs no float64 copy in memory.

    python make_data.py --n 100000 --d 16 --blobs 100 --seed 0 --out data/blobs_n100000_d16.npy
"""
import argparse

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--d", type=int, required=True)
    parser.add_argument("--blobs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    centers = rng.uniform(-10.0, 10.0, size=(args.blobs, args.d)).astype(np.float32)
    out = np.lib.format.open_memmap(args.out, mode="w+", dtype=np.float32, shape=(args.n, args.d))
    chunk = 65536
    for start in range(0, args.n, chunk):
        stop = min(start + chunk, args.n)
        labels = np.arange(start, stop) % args.blobs
        noise = rng.standard_normal(size=(stop - start, args.d), dtype=np.float32)
        out[start:stop] = centers[labels] + noise
    out.flush()
    print(f"wrote {args.out}: {args.n} x {args.d} float32, {args.blobs} blobs")


if __name__ == "__main__":
    main()
