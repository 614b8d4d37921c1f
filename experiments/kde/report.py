"""Tables from run.sh's results.jsonl: one row per (n, d, method) for query time, errors,
update costs and memory, and one for the adaptive-query experiment.

    python report.py results/results.jsonl --out results/results.md
"""
import argparse
import json


def fmt(value, spec):
    return "–" if value is None else format(value, spec)


def read_results(doc):
    """The command line `RESULTS --out OUT` of a report script (described by its `doc`):
    the rows of RESULTS and the path OUT."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    return [json.loads(line) for line in open(args.results)], args.out


def main():
    records, out = read_results(__doc__)
    # Exact's query time per (n, d): the first exact row (every bench process writes one).
    exact_time = {}
    for r in records:
        if r["method"] == "exact":
            exact_time.setdefault((r["n"], r["d"]), r["query_seconds"])
    lines = ["| n | d | method | query s | vs exact | mean rel. err | mean signed err "
             "| max rel. err | within ε | insert s/pt | delete s/pt | kernel evals/query | memory MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    adaptive = ["| n | d | config | copies | queries ≥ τ | fraction > ε | max rel. err |",
                "|---|---|---|---|---|---|---|"]
    seen_exact = set()
    for r in records:
        method = r["method"]
        if method == "exact":
            if (r["n"], r["d"]) in seen_exact:
                continue
            seen_exact.add((r["n"], r["d"]))
        if method == "adaptive":
            res = r["result"]
            adaptive.append(f"| {r['n']} | {r['d']} | {r.get('config', '')} | {r['copies']} "
                            f"| {res['queries_above_tau']} | {res['fraction_above_epsilon']:.3f} "
                            f"| {res['max_relative_error']:.3f} |")
            continue
        if method == "dynamic":
            plan = r["plan"]
            # Name the recall only where a run set it (`--recall`); rows written before bench.rs
            # recorded that have no "recall_override" and are judged against the default 1 - ε/32.
            if "recall_override" in r:
                recall = r["recall_override"]
            else:
                recall = plan.get("lsh_recall")
                if recall is not None and recall >= 1 - r["epsilon"] / 32 - 1e-9:
                    recall = None
            method = (f"dynamic {r.get('config', '')} (R={plan['copies']}, m={plan['samples_per_level']}"
                      + (f", recall {recall:g})" if recall is not None else ")"))
        elif r["impl"] == "sklearn":
            method = f"sklearn {method}"
        errors = r.get("errors", {})
        lines.append(
            f"| {r['n']} | {r['d']} | {method} | {r['query_seconds']:.3e} "
            f"| {exact_time[(r['n'], r['d'])] / r['query_seconds']:.2f}× "
            f"| {fmt(errors.get('mean_relative_error'), '.4f')} "
            f"| {fmt(errors.get('mean_signed_relative_error'), '+.4f')} "
            f"| {fmt(errors.get('max_relative_error'), '.4f')} "
            f"| {fmt(errors.get('fraction_within_epsilon'), '.3f')} "
            f"| {fmt(r.get('insert_seconds_per_point'), '.2e')} "
            f"| {fmt(r.get('delete_seconds_per_point'), '.2e')} "
            f"| {fmt(r.get('kernel_evaluations_per_query'), '.0f')} "
            f"| {r['memory_bytes'] / 1e6:.1f} |")
    text = "\n".join(lines) + "\n\nAdaptive queries (hill climbing on the error):\n\n" + "\n".join(adaptive) + "\n"
    open(out, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
