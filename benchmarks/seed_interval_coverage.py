"""Coverage of 95 % intervals of a mean over 2-5 seeds: Student-t vs scipy's bootstrap (percentile, BCa).

    python benchmarks/seed_interval_coverage.py [--draws 400]

Draws n values from N(0, 1) and counts how often each interval contains the true mean 0 (the measurement behind
sspo_verl/eval/stats.py's choice of the t-interval).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from scipy import stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the bootstrap warns about degenerate resamples at n = 2
    rng = np.random.default_rng(args.seed)
    print("| n | t-interval | bootstrap percentile | bootstrap BCa |\n|--:|--:|--:|--:|")
    for n in (2, 3, 5):
        hits = {"t": 0, "percentile": 0, "BCa": 0}
        for _ in range(args.draws):
            x = rng.normal(0.0, 1.0, n)
            low, high = stats.t.interval(0.95, n - 1, loc=x.mean(), scale=stats.sem(x))
            hits["t"] += low <= 0.0 <= high
            for method in ("percentile", "BCa"):
                ci = stats.bootstrap((x,), np.mean, method=method, n_resamples=999, random_state=rng)
                hits[method] += ci.confidence_interval.low <= 0.0 <= ci.confidence_interval.high
        print(f"| {n} | " + " | ".join(f"{100 * hits[k] / args.draws:.0f} %" for k in ("t", "percentile", "BCa")) + " |")


if __name__ == "__main__":
    main()
