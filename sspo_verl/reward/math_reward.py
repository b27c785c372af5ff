"""Rule-based math reward for verl: last ``\\boxed{}`` answer, math-verify equivalence, hard timeout.

Use it in a verl run with::

    reward.custom_reward_function.path=pkg://sspo_verl.reward.math_reward
    reward.custom_reward_function.name=compute_score
    # optional, forwarded as keyword arguments by verl:
    +reward.custom_reward_function.reward_kwargs.timeout_s=5.0
    +reward.custom_reward_function.reward_kwargs.max_wait_s=10.0
    +reward.custom_reward_function.reward_kwargs.num_procs=4

verl (0.9.1, ``verl/experimental/reward_loop/reward_manager/naive.py``) calls
``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=..., **reward_kwargs)``
through ``loop.run_in_executor``, i.e. from worker threads of a Ray actor, many at once. Everything here
is thread-safe and bounded in time; the symbolic check runs in :mod:`sspo_verl.reward.verifier_pool`.

Scoring (outcome reward, 1 or 0, as in the zero-RL recipes SimpleRL-Zoo and Dr. GRPO):
1. ``pred`` = content of the last ``\\boxed{}`` of the response (:func:`last_boxed_answer`); none → 0.
2. A trailing percent sign is dropped on both sides (MATH convention, :func:`strip_percent`); ``pred`` and
   the ground truth equal after a conservative canonicalisation → 1 (no process round trip); both plain
   decimal numbers → their values decide (no process round trip either).
3. Otherwise math-verify decides in a worker process, killed after ``timeout_s`` → timeout scores 0. A sample
   waits at most ``max_wait_s`` in all for a free worker (a burst of answers that each cost a timeout would
   otherwise queue the rest for minutes) → ``verify_timeout`` = 1, score 0. So one sample takes at most
   ``max_wait_s + timeout_s`` per accepted ground truth (plus a replacement worker's start-up).

Returned dict (verl keeps every key as ``reward_extra_info``; the keys are the same for every sample):
``score`` (float), ``acc`` (float, = score), ``pred`` (str, the extracted answer, used by verl's maj@N),
``has_answer`` (float), ``verify_timeout`` (float), ``verify_error`` (float).
"""

from __future__ import annotations

import logging
import os
import re
import time
from decimal import Decimal
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable

from sspo_verl.reward.answer_extraction import (
    DEFAULT_MAX_ANSWER_CHARS,
    canonical_answer,
    last_boxed_answer,
    strip_percent,
)
from sspo_verl.reward.verifier_pool import VerifierPool, get_default_pool

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = float(os.environ.get("SSPO_REWARD_TIMEOUT_S", "5.0"))
# Bound on a sample's total wait for a free verifier worker. [ours]
DEFAULT_MAX_WAIT_S = float(os.environ.get("SSPO_REWARD_MAX_WAIT_S", "10.0"))
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
_PRED_CHARS_KEPT = 200  # ``pred`` is logged and dumped by verl: keep it short


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _ground_truths(ground_truth: Any) -> list[str]:
    """A ground truth may be one answer or a list of accepted answers (numpy arrays included)."""
    if isinstance(ground_truth, (list, tuple)) or type(ground_truth).__name__ == "ndarray":
        answers = [_as_text(g).strip() for g in ground_truth]
    else:
        answers = [_as_text(ground_truth).strip()]
    return [a for a in answers if a]


def score_response(
    solution_str: Any,
    ground_truth: Any,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    pool: VerifierPool | None = None,
    max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
) -> dict[str, Any]:
    """Score one response against its ground truth; see the module docstring for the rules.

    Never raises for bad model output (any string, any size); raises only if no verifier worker can start.
    """
    pred = last_boxed_answer(_as_text(solution_str), max_answer_chars=max_answer_chars)
    result = {"score": 0.0, "acc": 0.0, "pred": "", "has_answer": 0.0, "verify_timeout": 0.0, "verify_error": 0.0}
    if pred is None:
        return result
    result["pred"] = pred[:_PRED_CHARS_KEPT]
    result["has_answer"] = 1.0
    golds = [strip_percent(g) for g in _ground_truths(ground_truth)]
    pred = strip_percent(pred)
    if not golds:
        logger.warning("empty ground truth: scoring 0 (check the data file's reward_model.ground_truth)")
        result["verify_error"] = 1.0
        return result
    pred_canonical = canonical_answer(pred)
    golds_canonical = [canonical_answer(g) for g in golds]
    if pred_canonical in golds_canonical:
        result["score"] = result["acc"] = 1.0
        return result
    if _DECIMAL.match(pred_canonical) and all(_DECIMAL.match(g) for g in golds_canonical):
        if any(Decimal(g) == Decimal(pred_canonical) for g in golds_canonical):
            result["score"] = result["acc"] = 1.0
        return result
    pool = pool or get_default_pool()
    wait_until = time.monotonic() + max_wait_s
    for gold in golds:
        outcome = pool.verify(gold, pred, timeout_s=timeout_s, max_wait_s=max(0.0, wait_until - time.monotonic()))
        if outcome.status in ("timeout", "overloaded"):
            result["verify_timeout"] = 1.0
        elif outcome.status != "ok":
            result["verify_error"] = 1.0
        if outcome.equivalent:
            result["score"] = result["acc"] = 1.0
            break
    return result


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    num_procs: int | None = None,
    memory_limit_mb: int | None = None,
    max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
    **kwargs: Any,
) -> dict[str, Any]:
    """verl ``custom_reward_function`` entry point (signature of ``default_compute_score``).

    Args:
        data_source: ignored (one rule for every math set; kept for verl's signature).
        solution_str: the decoded response.
        ground_truth: ``reward_model.ground_truth`` of the row (str, number, or list of accepted answers).
        extra_info: ignored.
        timeout_s: hard wall-clock limit per verification (default 5 s, env ``SSPO_REWARD_TIMEOUT_S``).
        num_procs: worker processes of this process's pool (first call wins; env ``SSPO_REWARD_NUM_PROCS``).
        memory_limit_mb: address-space limit per worker (default 4096; 0 disables).
        max_answer_chars: longer boxed answers count as no answer.
        max_wait_s: bound on the sample's wait for a free verifier worker (default 10 s, env
            ``SSPO_REWARD_MAX_WAIT_S``); past it the sample scores 0 with ``verify_timeout`` = 1.
        **kwargs: anything else verl passes (e.g. ``reward_router_address``), ignored.
    """
    del data_source, extra_info, kwargs
    pool = get_default_pool(num_procs=num_procs, memory_limit_mb=memory_limit_mb)
    return score_response(solution_str, ground_truth, timeout_s=timeout_s, pool=pool, max_answer_chars=max_answer_chars,
                          max_wait_s=max_wait_s)


def score_many(
    responses: Iterable[str],
    ground_truths: Iterable[Any],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    pool: VerifierPool | None = None,
    num_threads: int | None = None,
) -> list[dict[str, Any]]:
    """Score many (response, ground truth) pairs concurrently, in order (used by ``sspo-eval``)."""
    responses = list(responses)
    ground_truths = list(ground_truths)
    if len(responses) != len(ground_truths):
        raise ValueError(f"{len(responses)} responses but {len(ground_truths)} ground truths")
    pool = pool or get_default_pool()
    threads = num_threads or 2 * pool.num_procs
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sspo-score") as executor:
        return list(
            # evaluation is not latency-bound: wait for a worker as long as the pool allows
            executor.map(lambda rg: score_response(rg[0], rg[1], timeout_s, pool, max_wait_s=pool.acquire_timeout_s),
                         zip(responses, ground_truths))
        )
