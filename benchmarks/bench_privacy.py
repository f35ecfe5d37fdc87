"""Accuracy of a differentially private profile against epsilon, on the example data.

``python benchmarks/bench_privacy.py [--trials 10] [--data examples/data/houses.csv]``

For each epsilon, ``--trials`` independent ``dp_profile`` releases of the
file (every numeric column released with declared bounds, the categorical
``region`` with its categories; epsilon split evenly over the 1 + 3 x 5 + 1
measurements) are compared with the exact profile (``edgeorch.kernels.profile``):
per numeric column the absolute error of the non-missing count, and the
error of the mean and of the median relative to the column's declared
range (bounds width), then the median over columns and trials. The output
is the Markdown table of benchmarks/README.md ("Differential privacy").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeorch.kernels import profile  # noqa: E402
from edgeorch.kernels.privacy import dp_profile  # noqa: E402

BOUNDS = {"area": [20, 400], "rooms": [0, 10], "age": [0, 100], "distance_km": [0, 50], "price": [0, 1000]}
CATEGORIES = {"region": ["north", "south", "east", "west"]}
EPSILONS = (0.1, 0.3, 1.0, 3.0, 10.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / "examples" / "data" / "houses.csv"))
    args = ap.parse_args()
    exact = profile(args.data)
    truth = {c: exact[c].to_dict() for c in BOUNDS}
    print("| epsilon | count error (rows) | mean error (% of range) | median error (% of range) | seconds per release |")
    print("|---|---|---|---|---|")
    for eps in EPSILONS:
        counts, means, medians, secs = [], [], [], []
        for _ in range(args.trials):
            t = time.perf_counter()
            p = dp_profile(args.data, epsilon=eps, bounds=BOUNDS, categories=CATEGORIES)
            secs.append(time.perf_counter() - t)
            for c in p.columns:
                if c["column"] not in BOUNDS:
                    continue
                lo, hi = BOUNDS[c["column"]]
                ref = truth[c["column"]]
                counts.append(abs(c["count"] - (ref["count"] - ref["nulls"])))
                if c["mean"] is not None:
                    means.append(abs(c["mean"] - ref["mean"]) / (hi - lo) * 100)
                if c["quantiles"]["p50"] is not None:
                    medians.append(abs(c["quantiles"]["p50"] - ref["quantiles"]["p50"]) / (hi - lo) * 100)
        print(f"| {eps:g} | {statistics.median(counts):.1f} | {statistics.median(means):.2f} | "
              f"{statistics.median(medians):.2f} | {statistics.median(secs):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
