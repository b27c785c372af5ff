"""Accuracy estimators over n sampled answers per problem: avg@n and unbiased pass@k.

pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", eq. 1): with n samples of
which c are correct, the probability that at least one of k samples drawn without replacement is correct:

    pass@k = 1 - C(n-c, k) / C(n, k)

computed as the product  1 - prod_{i=n-c+1}^{n} (1 - k/i)  (their numerically stable form: no huge
binomials, no cancellation), and 1 when n - c < k. avg@n is the mean correctness of all n samples
(= pass@1 for the same samples). Benchmark figures are the mean over problems.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``c`` correct out of ``n`` samples.

    Raises:
        ValueError: unless 0 <= c <= n and 1 <= k <= n.
    """
    if not (0 <= c <= n):
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not (1 <= k <= n):
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}; sample at least k answers per problem (--n)")
    if n - c < k:
        return 1.0
    # 1 - C(n-c, k)/C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i)
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def mean_pass_at_k(n: int, correct: Sequence[int], k: int) -> float:
    """Mean pass@k over problems, each with ``n`` samples and ``correct[i]`` correct ones."""
    if len(correct) == 0:
        raise ValueError("no problems")
    return float(np.mean([pass_at_k(n, int(c), k) for c in correct]))


def avg_at_n(n: int, correct: Sequence[int]) -> float:
    """Mean over problems of (correct samples / n): the avg@n accuracy."""
    if len(correct) == 0:
        raise ValueError("no problems")
    if n < 1 or any(not (0 <= c <= n) for c in correct):
        raise ValueError(f"need 0 <= correct <= n={n}")
    return float(np.mean(np.asarray(correct, dtype=np.float64) / n))
