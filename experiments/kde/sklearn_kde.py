"""scikit-learn's tree-based KernelDensity on the same data and queries as bench.rs.

seft's Gaussian kernel is exp(-|x-q|^2/h^2) and its KDE is the mean kernel value, so the
scikit-learn bandwidth is h/sqrt(2) and seft's value is exp(score) * (pi h^2)^(d/2). Errors
are relative to the exact values bench.rs wrote (--truth), over queries with truth >= tau.
Memory is the size of the pickled fitted estimator (the tree and its copy of the data).

    python sklearn_kde.py --data data.npy --queries queries.npy --bandwidth H \
        --truth truth.npy --rtol 0.1,0.01 --algorithm kd_tree,ball_tree --out results.jsonl
"""
import argparse
import json
import pickle
import time

import numpy as np
from sklearn.neighbors import KernelDensity
from threadpoolctl import threadpool_info


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--bandwidth", type=float, required=True)
    parser.add_argument("--truth", required=True)
    parser.add_argument("--rtol", default="0.1,0.01")
    parser.add_argument("--algorithm", default="kd_tree,ball_tree")
    parser.add_argument("--tau", type=float, default=1e-3)
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--out", default=None)
    parser.add_argument("--max-queries", type=int, default=0,
                        help="use only the first N queries (0 = all): the trees are slow in high d")
    args = parser.parse_args()
    X = np.load(args.data)
    Q = np.load(args.queries)
    truth = np.load(args.truth).reshape(-1).astype(np.float64)
    if args.max_queries > 0:
        Q, truth = Q[:args.max_queries], truth[:args.max_queries]
    n, d = X.shape
    h = args.bandwidth
    log_scale = 0.5 * d * np.log(np.pi * h * h)
    relevant = truth >= args.tau
    pools = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()]
    print(f"n = {n}, d = {d}, queries = {len(Q)}, h = {h}, pools = {pools}")
    out = open(args.out, "a") if args.out else None
    for algorithm in args.algorithm.split(","):
        for rtol in [float(v) for v in args.rtol.split(",")]:
            kde = KernelDensity(kernel="gaussian", bandwidth=h / np.sqrt(2.0), algorithm=algorithm,
                                rtol=rtol, atol=0.0)
            started = time.perf_counter()
            kde.fit(X)
            build = time.perf_counter() - started
            started = time.perf_counter()
            scores = kde.score_samples(Q)
            per_query = (time.perf_counter() - started) / len(Q)
            estimate = np.exp(scores.astype(np.float64) + log_scale)
            errors = np.abs(estimate[relevant] - truth[relevant]) / truth[relevant]
            record = {
                "impl": "sklearn", "method": f"{algorithm}-rtol{rtol}", "n": n, "d": d,
                "bandwidth": h, "threads": pools, "queries": len(Q), "build_seconds": build,
                "query_seconds": per_query, "memory_bytes": len(pickle.dumps(kde)),
                "errors": {
                    "queries_above_tau": int(relevant.sum()),
                    "mean_relative_error": float(errors.mean()) if errors.size else None,
                    "max_relative_error": float(errors.max()) if errors.size else None,
                    "fraction_within_epsilon": float((errors <= args.epsilon).mean()) if errors.size else None,
                },
            }
            print(json.dumps(record))
            if out:
                out.write(json.dumps(record) + "\n")
                out.flush()


if __name__ == "__main__":
    main()
