"""The speed target per grid point and config over several structure seeds (run.sh with
SEEDS="0 1 2"): exact's batched query time (median of every bench process's exact pass at that
(n, d)) over the structure's, per seed and for the median seed, and each seed's mean relative
error. The target is ≥ 20× at mean relative error ≤ 0.1: a point meets it for every seed when
the median ratio is ≥ 20 and every seed's error is ≤ 0.1, and on average over the seeds when
the median ratio is ≥ 20 and the seeds' mean error is ≤ 0.1.

    python seeds_report.py results/results.jsonl --out results/seeds.md
"""
import statistics
from collections import defaultdict

from report import read_results

SPEEDUP, MAX_ERROR = 20.0, 0.1


def main():
    records, out = read_results(__doc__)
    exact = defaultdict(list)
    runs = defaultdict(list)
    for r in records:
        if r["method"] == "exact":
            exact[(r["n"], r["d"])].append(r["query_seconds"])
        elif r["method"] == "dynamic":
            runs[(r["config"], r["n"], r["d"])].append(r)
    configs = list(dict.fromkeys(config for config, _, _ in runs))
    points = sorted({(n, d) for _, n, d in runs})
    dims = sorted({d for _, d in points})
    lines = [
        "Per cell: median ratio (per-seed ratios; per-seed mean relative errors); bold where "
        "the target holds for every seed, italic where it holds on average over the seeds.",
        "",
        "| n | config | " + " | ".join(f"d {d}" for d in dims) + " |",
        "|---|---|" + "---|" * len(dims),
    ]
    met_every, met_average = defaultdict(int), defaultdict(int)
    for n in sorted({n for n, _ in points}):
        for config in configs:
            cells = []
            for d in dims:
                rows = sorted(runs.get((config, n, d), []), key=lambda r: r.get("seed", 0))
                if not rows:
                    cells.append("–")
                    continue
                exact_time = statistics.median(exact[(n, d)])
                ratios = [exact_time / r["query_seconds"] for r in rows]
                errors = [r["errors"]["mean_relative_error"] for r in rows]
                ratio = exact_time / statistics.median(r["query_seconds"] for r in rows)
                every = ratio >= SPEEDUP and max(errors) <= MAX_ERROR
                average = ratio >= SPEEDUP and statistics.mean(errors) <= MAX_ERROR
                met_every[config] += every
                met_average[config] += average
                text = (f"{ratio:.1f}× ({', '.join(f'{x:.1f}' for x in ratios)}; "
                        f"{', '.join(f'{e:.3f}' for e in errors)})")
                cells.append(f"**{text}**" if every else f"*{text}*" if average else text)
            lines.append(f"| {n // 1000}k | {config} | " + " | ".join(cells) + " |")
    lines += ["", "Exact's batched query time (median over the bench processes, µs): "
              + ", ".join(f"n {n // 1000}k d {d}: {statistics.median(exact[(n, d)]) * 1e6:.1f}"
                          for n, d in points),
              "", "Points meeting the target for every seed / on average over the seeds: "
              + ", ".join(f"{config} {met_every[config]} / {met_average[config]} of {len(points)}"
                          for config in configs)]
    text = "\n".join(lines) + "\n"
    open(out, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
