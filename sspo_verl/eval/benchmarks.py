"""The benchmarks ``sspo-eval`` evaluates: the paper's math sets, scored by the math verifier, and the tiny task's
held-out split ``tiny_eval``, scored by the tiny task's own reward (:func:`sspo_verl.data.tiny_task.compute_score`).

A benchmark is a verl parquet file ``<data dir>/<name>.parquet``; :func:`data_hint` says which command writes it.
For ``tiny_eval`` a sample's score is the reward's strict part ``exact`` (the accuracy) and its ``reward`` the
whole reward (``char_f1 + exact``, the training signal); the row's ``extra_info`` (the reference solution) is kept
with the samples so ``sspo-eval rescore`` can score them again.
"""

from __future__ import annotations

import argparse

from sspo_verl.data import tiny_task
from sspo_verl.data.sources import EVAL_BENCHMARKS, EXTRA_EVAL

__all__ = ["ALL_BENCHMARKS", "MATH_BENCHMARKS", "TASK_BENCHMARKS", "data_hint", "parse_benchmarks",
           "score_task"]

MATH_BENCHMARKS = EVAL_BENCHMARKS + EXTRA_EVAL
TASK_BENCHMARKS = (tiny_task.EVAL_SPLIT,)
ALL_BENCHMARKS = MATH_BENCHMARKS + TASK_BENCHMARKS


def parse_benchmarks(text: str) -> tuple[str, ...]:
    """``--benchmarks``: comma-separated names from :data:`ALL_BENCHMARKS` (argparse's error names the choices)."""
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [n for n in names if n not in ALL_BENCHMARKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown benchmarks {unknown}; choose from {','.join(ALL_BENCHMARKS)}")
    return names


def data_hint(benchmark: str, data_dir) -> str:
    """The command that writes ``<data_dir>/<benchmark>.parquet``."""
    if benchmark in TASK_BENCHMARKS:
        return ("python -m sspo_verl.demo --setup-only --out OUT writes it to OUT/tiny/data (make demo: runs/tiny/data);"
                " pass that directory as --data-dir")
    return f"sspo-data prepare-all --out-dir {data_dir} --datasets eval"


def score_task(response: str, ground_truth: str, extra_info: dict | None) -> dict:
    """One tiny-task answer: ``{"score": exact, "reward": char_f1 + exact, "pred": last number or ""}``."""
    out = tiny_task.compute_score(tiny_task.DATA_SOURCE, response, ground_truth, extra_info)
    return {"score": out["exact"], "reward": out["score"], "pred": tiny_task.final_number(response) or ""}
