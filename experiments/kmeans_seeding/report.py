"""One table (mean over seeds) and two plots from run.sh's results.jsonl.

Columns: seeding time, seeding cost, cost after the Lloyd iterations, and for each row the
speedup over scikit-learn's default (greedy kmeans_plusplus) and the cost ratios to it.

    python report.py results/results.jsonl --out-dir results
"""
import argparse
import json
import os
from collections import defaultdict

BASELINE = "sklearn-greedy"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args()
    runs = defaultdict(list)
    for line in open(args.results):
        r = json.loads(line)
        data = "minilm" if "minilm" in os.path.basename(r["data"]) else "blobs"
        runs[(data, r["n"], r["d"], r["k"], r["method"])].append(r)
    mean = {}
    for key, rs in runs.items():
        mean[key] = {f: sum(r[f] for r in rs) / len(rs)
                     for f in ("seeding_seconds", "seeding_cost", "lloyd_cost")}
        mean[key]["seeds"] = len(rs)
    lines = ["| data | n | d | k | method | seeds | seeding s | seeding cost | cost after Lloyd "
             f"| speedup vs {BASELINE} | seeding cost / {BASELINE} | Lloyd cost / {BASELINE} |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (data, n, d, k, method) in sorted(mean):
        m = mean[(data, n, d, k, method)]
        cell = method.replace("|", "\\|")  # "linfa-kmeans||" inside a markdown cell
        base = mean.get((data, n, d, k, BASELINE))
        ratio = lambda f, inverse=False: (
            "–" if base is None else
            f"{(base[f] / m[f]) if inverse else (m[f] / base[f]):.3f}")
        lines.append(
            f"| {data} | {n} | {d} | {k} | {cell} | {m['seeds']} | {m['seeding_seconds']:.4f} "
            f"| {m['seeding_cost']:.5e} | {m['lloyd_cost']:.5e} | {ratio('seeding_seconds', True)} "
            f"| {ratio('seeding_cost')} | {ratio('lloyd_cost')} |")
    os.makedirs(args.out_dir, exist_ok=True)
    table = "\n".join(lines) + "\n"
    open(os.path.join(args.out_dir, "results.md"), "w").write(table)
    print(table)
    plot(mean, args.out_dir)


def plot(mean, out_dir):
    # Growth plots use the synthetic blobs only (the embeddings are a single n).
    mean = {key[1:]: value for key, value in mean.items() if key[0] == "blobs"}
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    methods = sorted({key[3] for key in mean})
    color = {method: f"C{i}" for i, method in enumerate(methods)}  # same color in every panel
    dims = sorted({key[1] for key in mean})
    for axis, title in (("n", "seeding time vs n (largest k)"), ("k", "seeding time vs k (largest n)")):
        fig, axes = plt.subplots(1, len(dims), figsize=(5 * len(dims), 4), squeeze=False)
        for ax, d in zip(axes[0], dims):
            keys = [key for key in mean if key[1] == d]
            fixed = max(key[2] if axis == "n" else key[0] for key in keys)
            for method in methods:
                points = sorted(
                    (key[0] if axis == "n" else key[2], mean[key]["seeding_seconds"])
                    for key in keys if key[3] == method
                    and (key[2] if axis == "n" else key[0]) == fixed)
                if points:
                    ax.plot(*zip(*points), marker="o", label=method, color=color[method])
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(axis)
            ax.set_ylabel("seeding seconds")
            ax.set_title(f"d = {d}, {'k' if axis == 'n' else 'n'} = {fixed}")
            ax.legend(fontsize=7)
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"seeding_time_vs_{axis}.png"), dpi=120)
        plt.close(fig)


if __name__ == "__main__":
    main()
