"""The committed logs of real CPU runs (fixtures/README.md) and an independent reader for the tests."""

from __future__ import annotations

import json
import os

FIXTURE_RUNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "cpu_runs")
RUN_NAMES = ("grpo-tiny-seed1", "grpo-tiny-seed2", "sspo-tiny-seed1", "sspo-tiny-seed2")


def raw_steps(run_dir: str) -> dict[int, dict[str, float]]:
    """An independent reader for the tests: every JSONL part in attempt order, later lines overwriting."""
    parts = sorted((int(n.split(".")[1]), n) for n in os.listdir(run_dir) if n.startswith("metrics.") and
                   n.count(".") == 2)
    names = [n for _, n in parts] + (["metrics.jsonl"] if os.path.exists(os.path.join(run_dir, "metrics.jsonl"))
                                     else [])
    steps: dict[int, dict[str, float]] = {}
    for name in names:
        with open(os.path.join(run_dir, name), encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                steps.setdefault(record["step"], {}).update(record["data"])
    return steps
