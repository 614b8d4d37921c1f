"""scikit-learn's k-means++ seeding on the same .npy data as bench.rs, same JSON-lines schema.

Methods: "sklearn-greedy" = kmeans_plusplus with its default n_local_trials (2 + floor(ln k),
greedy k-means++, scikit-learn's default init) and "sklearn-kpp1" = n_local_trials=1 (plain
k-means++). Seeding time is kmeans_plusplus alone; seeding cost is sum of squared distances
to the nearest seed; the Lloyd cost is KMeans(init=seeds, n_init=1, max_iter=ITERS, tol=0,
algorithm="lloyd").inertia_.

    python sklearn_bench.py --data X.npy --k 10,100,1000 --seeds 5 --out results.jsonl
"""
import argparse
import json
import time

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.metrics import pairwise_distances_argmin_min
from threadpoolctl import threadpool_info

METHODS = {"sklearn-greedy": None, "sklearn-kpp1": 1}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--k", default="10,100")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--method", default="sklearn-greedy,sklearn-kpp1")
    parser.add_argument("--lloyd-iters", type=int, default=10)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    X = np.load(args.data)
    if X.dtype != np.float32:
        X = X.astype(np.float32)
    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()]
    print(f"n = {X.shape[0]}, d = {X.shape[1]}, thread pools = {blas}")
    print("| method | k | seeding s | seeding cost | cost after Lloyd | seeds |")
    print("|---|---|---|---|---|---|")
    out = open(args.out, "a") if args.out else None
    for k in [int(v) for v in args.k.split(",")]:
        for method in args.method.split(","):
            trials = METHODS[method]
            totals = np.zeros(3)
            for seed in range(args.seeds):
                started = time.perf_counter()
                centers, _ = kmeans_plusplus(X, k, random_state=seed, n_local_trials=trials)
                seconds = time.perf_counter() - started
                _, dist = pairwise_distances_argmin_min(X, centers)
                seeding_cost = float(np.sum(dist.astype(np.float64) ** 2))
                if args.lloyd_iters > 0:
                    model = KMeans(n_clusters=k, init=centers, n_init=1, max_iter=args.lloyd_iters,
                                   tol=0.0, algorithm="lloyd", random_state=seed).fit(X)
                    lloyd_cost, iters = float(model.inertia_), int(model.n_iter_)
                else:
                    lloyd_cost, iters = seeding_cost, 0
                record = {"impl": "sklearn", "method": method, "data": args.data,
                          "n": X.shape[0], "d": X.shape[1], "k": k, "seed": seed,
                          "threads": blas, "seeding_seconds": seconds,
                          "seeding_cost": seeding_cost, "lloyd_iters": iters,
                          "lloyd_cost": lloyd_cost}
                if out:
                    out.write(json.dumps(record) + "\n")
                    out.flush()
                totals += (seconds, seeding_cost, lloyd_cost)
            t, c, l = totals / max(args.seeds, 1)
            print(f"| {method} | {k} | {t:.4f} | {c:.6e} | {l:.6e} | {args.seeds} |")


if __name__ == "__main__":
    main()
