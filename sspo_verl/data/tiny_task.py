"""The tiny task: synthetic two-number additions in verl's RL parquet format, with a climbable reward.

Each row asks ``What is a + b?``; the reference solution is written in subsentences,
``First, take a. Then, add b; so the answer is a+b.``, so a policy that imitates it produces the clause
punctuation SSPO segments on. Same seed, same files.

Reward (``reward.custom_reward_function.path=pkg://sspo_verl.data.tiny_task``, ``name=compute_score``):

    score = char_f1 + exact                                             range [0, 2]
    char_f1 = F1 between the character multisets of the response and the reference solution   (dense)
    exact   = 1 if the last number in the response equals a + b, else 0                       (strict)

A random tiny model scores ``char_f1`` ≈ 0.1–0.3 and climbs it within a few dozen steps by emitting the
reference's characters (digits, ``, . ;``, the words) in its proportions; ``exact`` checks the arithmetic and
stays rare for a tiny model. Both parts are returned as reward extra info (``char_f1``, ``exact``).

Splits: ``train`` and ``val`` (what the trainer reads) and ``tiny_eval``, the held-out evaluation split that
``sspo-eval --benchmarks tiny_eval`` scores with :func:`compute_score`: none of its problems (operand pairs)
occurs in ``train`` or ``val``.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter

__all__ = [
    "DATA_SOURCE",
    "EVAL_SPLIT",
    "char_f1",
    "compute_score",
    "final_number",
    "make_rows",
    "operands",
    "reference_solution",
    "write_dataset",
]

DATA_SOURCE = "sspo_verl/arith_demo"
EVAL_SPLIT = "tiny_eval"  # the held-out split's name: its file (tiny_eval.parquet) and its sspo-eval benchmark
PROMPT = "What is {a} + {b}?"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def reference_solution(a: int, b: int) -> str:
    """The reference answer: four subsentences (``,`` ``.`` ``,`` ``;`` ``.`` end clauses)."""
    return f"First, take {a}. Then, add {b}; so the answer is {a + b}."


def operands(row: dict) -> tuple[int, int]:
    """``(a, b)`` of a row written by :func:`make_rows`."""
    a, b = row["prompt"][-1]["content"].removeprefix("What is ").rstrip("?").split(" + ")
    return int(a), int(b)


def make_rows(n: int, seed: int, split: str, max_operand: int = 99, exclude=frozenset()) -> list[dict]:
    """``n`` rows in verl's RL format (``data_source``, chat ``prompt``, ``reward_model.ground_truth``, ...),
    none of whose operand pairs ``(a, b)`` is in ``exclude`` (redrawn; an empty ``exclude`` changes nothing)."""
    if n > (max_operand + 1) ** 2 - len(exclude):
        raise ValueError(f"cannot draw {n} problems outside the {len(exclude)} excluded ones")
    rng = random.Random(f"{seed}:{split}")
    rows = []
    for i in range(n):
        a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        while (a, b) in exclude:
            a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": "user", "content": PROMPT.format(a=a, b=b)}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": str(a + b)},
                "extra_info": {"split": split, "index": i, "reference": reference_solution(a, b)},
            }
        )
    return rows


def write_dataset(out_dir: str, n_train: int = 512, n_val: int = 32, seed: int = 0, n_eval: int = 64) -> dict[str, str]:
    """Write ``train.parquet``, ``val.parquet`` (disjoint seeds) and ``tiny_eval.parquet`` (no problem of the other
    two) to ``out_dir``; return their paths by split."""
    import pandas as pd

    os.makedirs(out_dir, exist_ok=True)
    rows = {"train": make_rows(n_train, seed, "train"), "val": make_rows(n_val, seed, "val")}
    seen = {operands(r) for split_rows in rows.values() for r in split_rows}
    rows[EVAL_SPLIT] = make_rows(n_eval, seed, EVAL_SPLIT, exclude=frozenset(seen))
    paths = {}
    for split, split_rows in rows.items():
        path = os.path.join(out_dir, f"{split}.parquet")
        pd.DataFrame(split_rows).to_parquet(path)
        paths[split] = path
    return paths


def char_f1(response: str, reference: str) -> float:
    """F1 between the character multisets of ``response`` and ``reference`` (0 when either is empty)."""
    if not response or not reference:
        return 0.0
    overlap = sum((Counter(response) & Counter(reference)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(response), overlap / len(reference)
    return 2 * precision * recall / (precision + recall)


def final_number(text: str):
    """The last number in ``text`` as a string without thousands separators (``"1,000"`` → ``"1000"``)."""
    numbers = _NUMBER.findall(text or "")
    return numbers[-1].replace(",", "").rstrip(".") if numbers else None


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    """verl custom reward: ``{"score": char_f1 + exact, "char_f1": ..., "exact": ...}`` (see module docstring)."""
    extra_info = extra_info or {}
    reference = extra_info.get("reference")
    if not reference:
        raise ValueError(
            f"sspo_verl.data.tiny_task.compute_score: row from {data_source!r} has no extra_info['reference']; it scores "
            "only rows written by sspo_verl.data.tiny_task.write_dataset."
        )
    dense = char_f1(solution_str or "", reference)
    exact = 1.0 if final_number(solution_str) == str(ground_truth).strip() else 0.0
    return {"score": dense + exact, "char_f1": dense, "exact": exact}
