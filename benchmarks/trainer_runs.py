"""Real ``sspo-train`` runs on CPU for the trainer benchmarks (bench_cpu_step.py, bench_async.py): a plan of
configurations run one after another in turned order, each on the demo's tiny model, its logged steps read back.

    plan = turned([[("grpo", [...overrides]), ("sspo", [...])]] * repeats)   # grpo, sspo, sspo, grpo, ...
    runs = run_plan(plan, out, "bench", steps, summarise)                      # summarise(name, JobResult) -> dict

Every run is ``sspo-train hardware=cpu model=tiny seed=0 <the configuration's overrides>`` for ``steps`` steps,
without validation or checkpoints, through :func:`sspo_verl.demo.job.run_job` (bounded, every process of the run
ended, its memory and CPU time sampled). Step figures drop the first ``WARMUP`` steps: step 1 also starts verl's
agent-loop and reward workers. :func:`add_arguments` gives each benchmark the options they share.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sspo_verl.demo.assets import build_assets  # noqa: E402
from sspo_verl.demo.job import JobResult, run_job  # noqa: E402

WARMUP = 2


def add_arguments(parser: argparse.ArgumentParser, algorithms: str, steps: int, out: str) -> None:
    """The options every trainer benchmark takes, with its own defaults: --algorithms, --steps, --out, --extra."""
    parser.add_argument("--algorithms", default=algorithms, help="comma-separated sspo-train algorithm presets")
    parser.add_argument("--steps", type=int, default=steps, help="training steps per run")
    parser.add_argument("--out", default=out, help="output root: the tiny model, every run, the JSON and table")
    parser.add_argument("--extra", nargs="*", default=[], help="more sspo-train overrides for every run")


def split(value: str) -> list[str]:
    """A comma-separated option as a list, empty items dropped."""
    return [x for x in value.split(",") if x]


def turned(blocks: Sequence[Sequence]) -> list:
    """The blocks one after another, every other one reversed, so load drift on a shared machine hits each
    configuration of a block alike: ``[[a, b], [a, b]] -> [a, b, b, a]``."""
    return [x for i, block in enumerate(blocks) for x in (block if i % 2 == 0 else reversed(block))]


def after_warmup(result: JobResult, key: str) -> list[float]:
    """The metric ``key`` of every logged step after the first ``WARMUP``."""
    return [float(r["data"][key]) for r in result.records if r["step"] > WARMUP and key in r["data"]]


def cpu_per_step(result: JobResult, key: str) -> float | None:
    """CPU seconds per step after warm-up (``key``: ``all_s`` or ``trainer_s`` of the job's CPU samples):
    (CPU at the last step - CPU at step WARMUP) / steps; None with fewer than two samples."""
    samples = [c for c in result.cpu_samples if c["step"] >= WARMUP]
    if len(samples) < 2 or samples[-1]["step"] == samples[0]["step"]:
        return None
    return (samples[-1][key] - samples[0][key]) / (samples[-1]["step"] - samples[0]["step"])


def run_plan(plan: Sequence[tuple[str, list[str]]], out: str, project: str, steps: int,
             summarise: Callable[[str, JobResult], dict], extra: Sequence[str] = (),
             after_each: Callable[[list[dict]], None] | None = None) -> list[dict] | None:
    """Run every ``(label, overrides)`` of ``plan`` in order; the list of ``summarise(name, result)``, or None
    (the failed run's error printed) at the first run that fails.

    Runs are named ``<index>-<label>`` and written under ``<out>/<project>/``; the tiny model and data are built
    once in ``<out>/tiny``. ``extra`` overrides come last (they win); ``after_each(runs)`` is called after every
    run (e.g. to save what ran so far).
    """
    os.makedirs(out, exist_ok=True)
    tiny = build_assets(os.path.join(out, "tiny"), seed=0)
    runs = []
    for i, (label, overrides) in enumerate(plan):
        name = f"{i:02d}-{label}"
        print(f"[{i + 1}/{len(plan)}] {label} ...", flush=True)
        result = run_job(name, [
            "hardware=cpu", "model=tiny", "seed=0", *overrides,
            f"output_dir={out}", f"trainer.project_name={project}", f"trainer.experiment_name={name}",
            f"trainer.total_training_steps={steps}", "trainer.total_epochs=1000", "trainer.val_before_train=false",
            "trainer.test_freq=-1", "trainer.save_freq=-1", "trainer.resume_mode=disable", *extra,
        ], os.path.join(out, project, name), env={"SSPO_TINY_DIR": tiny["tiny_dir"]}, poll_s=0.25)
        if not result.ok:
            print(result.error, file=sys.stderr)
            return None
        runs.append(summarise(name, result))
        if after_each is not None:
            after_each(runs)
    return runs
