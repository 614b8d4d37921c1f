#!/usr/bin/env python3
"""Compares two `seft run` reports (report.json) with timings left out: the check that a change
of structure changed no result. Prints a unified diff of what differs, or IDENTICAL.

    python3 experiments/seft_quickstart/compare_reports.py A/report.json B/report.json

Dropped before comparing: every `*seconds` field, the run directory (replaced by <run> in
every string), and stage_seconds' times (its stage names are kept).
"""
import difflib
import json
import sys

TIMING = {"seconds", "embed_seconds", "select_seconds", "fit_seconds", "train_seconds", "score_seconds"}


def load(path):
    report = json.load(open(path))
    root = report["run_dir"]

    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in TIMING}
        if isinstance(o, list):
            return [strip(x) for x in o]
        if isinstance(o, str):
            return o.replace(root, "<run>")
        return o

    report = strip(report)
    report["stage_seconds"] = [s[0] for s in report["stage_seconds"]]
    return report


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: compare_reports.py A/report.json B/report.json")
    a, b = (json.dumps(load(p), indent=1, sort_keys=True).splitlines() for p in sys.argv[1:])
    diff = list(difflib.unified_diff(a, b, sys.argv[1], sys.argv[2], lineterm="", n=1))
    print("\n".join(diff) if diff else "IDENTICAL (timings aside)")
    sys.exit(1 if diff else 0)


if __name__ == "__main__":
    main()
