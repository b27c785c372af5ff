"""Wall time per training step and peak memory of the real verl trainer on CPU, SSPO against GRPO.

Not a test: runs ``sspo-train hardware=cpu model=tiny rollout=hf algorithm=<a>`` (the demo's sizes: 8 prompts x 8
responses of up to 32 tokens, 4 mini-batches) several times, interleaved, on this machine, and prints what it
measured with the conditions.

    python benchmarks/bench_cpu_step.py [--algorithms grpo,sspo,sspo_current] [--repeats 3] [--steps 12] [--out DIR]

``sspo_current`` is ``algorithm=sspo`` with ``policy_loss.entropy_source=current`` (π_θ's entropy in the update,
``calculate_entropy=true``: the behaviour before issue 13); ``sspo`` is the preset (the sampling policy's entropy).

Control for a shared, noisy machine: runs alternate (grpo, sspo, sspo, grpo, grpo, sspo, ...: each block of one
run per algorithm in turned order) so load drift hits all alike; step times exclude the first 2 steps of each run
(step 1 also starts verl's agent-loop and reward workers); the figure of merit is the median over all remaining
steps of all repeats, and each block also gives its own ratio of medians against grpo. Besides the whole step
(``timing_s/step``), the actor update (``timing_s/update_actor``, where the policy loss runs) is reported per
token (``timing_per_token_ms/update_actor``) so different response lengths do not bias it.

CPU time: the CPU seconds (user + system) of all the run's processes, and of verl's trainer worker alone (log-probs
and the actor update, where GRPO and SSPO differ), per step after warm-up. Other jobs on the machine stretch wall
time much more than CPU time, so this is the steadier SSPO / GRPO comparison on a shared machine.

Memory: ``peak RSS (all)`` is the peak of the summed resident set size of every process of the run (driver,
Ray, trainer worker, rollout server, TransferQueue, agent-loop and reward workers; shared pages counted once per
process, so an upper bound), sampled every 2 s; ``worker peak RSS`` is verl's
``actor/perf/max_memory_allocated_gb``, which the CPU backend reports as the trainer worker's peak RSS.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from sspo_verl.demo.assets import build_assets  # noqa: E402
from sspo_verl.demo.job import run_job  # noqa: E402

WARMUP = 2
# variant name -> (algorithm preset, extra sspo-train overrides)
VARIANTS = {
    "sspo_current": ("sspo", ["actor_rollout_ref.actor.policy_loss.entropy_source=current",
                              "actor_rollout_ref.actor.calculate_entropy=true"]),
}


def _order(algorithms: list[str], repeats: int) -> list[str]:
    order = []
    for r in range(repeats):
        order += algorithms if r % 2 == 0 else list(reversed(algorithms))
    return order


def _after_warmup(result, key: str) -> list[float]:
    return [float(r["data"][key]) for r in result.records if r["step"] > WARMUP and key in r["data"]]


def _cpu_per_step(result, key: str):
    """CPU seconds per step over the steps after warm-up: (CPU at the last step - CPU at step WARMUP) / steps."""
    samples = [c for c in result.cpu_samples if c["step"] >= WARMUP]
    if len(samples) < 2 or samples[-1]["step"] == samples[0]["step"]:
        return None
    return (samples[-1][key] - samples[0][key]) / (samples[-1]["step"] - samples[0]["step"])


def _conditions() -> dict:
    from importlib.metadata import version

    import torch

    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout
    import psutil

    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "commit": commit.strip() or "unknown",
        "verl": version("verl"),  # not `import verl`: this process stays verl-free
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", default="grpo,sspo")
    parser.add_argument("--repeats", type=int, default=3, help="runs per algorithm (interleaved)")
    parser.add_argument("--steps", type=int, default=12, help="training steps per run")
    parser.add_argument("--ranks", type=int, default=1, help="trainer ranks (trainer.n_gpus_per_node)")
    parser.add_argument("--out", default="/tmp/sspo_bench_cpu_step")
    parser.add_argument("--extra", nargs="*", default=[], help="more sspo-train overrides for every run")
    args = parser.parse_args(argv)
    algorithms = [a for a in args.algorithms.split(",") if a]
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    tiny = build_assets(os.path.join(out, "tiny"), seed=0)
    conditions = _conditions()
    conditions["load_before"] = " ".join(f"{x:.1f}" for x in os.getloadavg())

    runs = []
    for i, algorithm in enumerate(_order(algorithms, args.repeats)):
        name = f"{i:02d}-{algorithm}"
        preset, variant_overrides = VARIANTS.get(algorithm, (algorithm, []))
        overrides = [
            "hardware=cpu", "model=tiny", "rollout=hf", f"algorithm={preset}", "seed=0", *variant_overrides,
            f"output_dir={out}", "trainer.project_name=bench", f"trainer.experiment_name={name}",
            f"trainer.total_training_steps={args.steps}", "trainer.total_epochs=1000",
            "trainer.val_before_train=false", "trainer.test_freq=-1", "trainer.save_freq=-1",
            "trainer.resume_mode=disable", f"trainer.n_gpus_per_node={args.ranks}", *args.extra,
        ]
        print(f"[{i + 1}/{len(algorithms) * args.repeats}] {algorithm} ...", flush=True)
        result = run_job(name, overrides, os.path.join(out, "bench", name), env={"SSPO_TINY_DIR": tiny["tiny_dir"]},
                         poll_s=0.25)
        if not result.ok:
            print(result.error, file=sys.stderr)
            return 1
        step = _after_warmup(result, "timing_s/step")
        run = {
            "name": name,
            "algorithm": algorithm,
            "step_s": step,
            "update_ms_per_token": _after_warmup(result, "timing_per_token_ms/update_actor"),
            "update_s": _after_warmup(result, "timing_s/update_actor"),
            "gen_s": _after_warmup(result, "timing_s/gen"),
            "cpu_s_per_step_all": _cpu_per_step(result, "all_s"),
            "cpu_s_per_step_trainer": _cpu_per_step(result, "trainer_s"),
            "worker_peak_rss_gb": max(result.series("actor/perf/max_memory_allocated_gb") or [0.0]),
            "peak_rss_all_gb": result.peak_rss_gb,
            "startup_s": result.startup_s,
            "wall_s": result.wall_s,
        }
        runs.append(run)
        print(f"    median step {statistics.median(step):.2f} s, update {statistics.median(run['update_s']):.2f} s, "
              f"CPU/step {run['cpu_s_per_step_all']:.2f} s (trainer {run['cpu_s_per_step_trainer']:.2f} s), "
              f"start-up {result.startup_s:.0f} s, peak RSS (all) {result.peak_rss_gb:.2f} GB", flush=True)
    conditions["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())

    summary = {}
    for algorithm in algorithms:
        mine = [r for r in runs if r["algorithm"] == algorithm]
        pooled = lambda key: statistics.median([v for r in mine for v in r[key]])  # noqa: E731
        summary[algorithm] = {
            "runs": len(mine),
            "steps_timed": sum(len(r["step_s"]) for r in mine),
            "step_s_median": pooled("step_s"),
            "gen_s_median": pooled("gen_s"),
            "update_s_median": pooled("update_s"),
            "update_ms_per_token_median": pooled("update_ms_per_token"),
            "cpu_s_per_step_all_median": statistics.median(r["cpu_s_per_step_all"] for r in mine),
            "cpu_s_per_step_trainer_median": statistics.median(r["cpu_s_per_step_trainer"] for r in mine),
            "worker_peak_rss_gb": max(r["worker_peak_rss_gb"] for r in mine),
            "peak_rss_all_gb": max(r["peak_rss_all_gb"] for r in mine),
            "startup_s_median": statistics.median(r["startup_s"] for r in mine),
        }
    pair_ratios = {}  # per block of one run per algorithm: variant / grpo
    blocks = [runs[i : i + len(algorithms)] for i in range(0, len(runs), len(algorithms))]
    for other in (a for a in algorithms if a != "grpo" and "grpo" in algorithms):
        for key in ("step_s", "update_ms_per_token", "cpu_s_per_step_all", "cpu_s_per_step_trainer"):
            ratios = []
            for block in blocks:
                by = {r["algorithm"]: r[key] if isinstance(r[key], float) else statistics.median(r[key]) for r in block}
                if {"grpo", other} <= set(by):
                    ratios.append(by[other] / by["grpo"])
            pair_ratios[f"{other}/{key}"] = ratios

    lines = [f"Conditions: {json.dumps(conditions)}", "",
             f"{args.repeats} runs per algorithm x {args.steps} steps, {args.ranks} rank(s), first {WARMUP} steps "
             "of each run excluded; medians over all remaining steps.", "",
             "| algorithm | step, wall (s) | rollout (s) | actor update (s) | update (ms/token) | "
             "CPU per step, all processes (s) | CPU per step, trainer worker (s) | worker peak RSS (GB) | "
             "peak RSS, all processes (GB) | start-up to step 1 (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for algorithm, s in summary.items():
        cells = [
            f"{s['step_s_median']:.2f}",
            f"{s['gen_s_median']:.2f}",
            f"{s['update_s_median']:.2f}",
            f"{s['update_ms_per_token_median']:.3f}",
            f"{s['cpu_s_per_step_all_median']:.2f}",
            f"{s['cpu_s_per_step_trainer_median']:.2f}",
            f"{s['worker_peak_rss_gb']:.2f}",
            f"{s['peak_rss_all_gb']:.2f}",
            f"{s['startup_s_median']:.0f}",
        ]
        lines.append(f"| {algorithm} | " + " | ".join(cells) + " |")
    labels = (
        ("step_s", "wall step"),
        ("update_ms_per_token", "update per token"),
        ("cpu_s_per_step_all", "CPU per step, all"),
        ("cpu_s_per_step_trainer", "CPU per step, trainer"),
    )
    for other in (a for a in summary if a != "grpo" and "grpo" in summary):
        g, s_ = summary["grpo"], summary[other]
        ratio = lambda key: s_[key] / g[key]  # noqa: E731
        lines += ["", f"{other} / grpo, medians: wall step {ratio('step_s_median'):.3f}, "
                      f"actor update per token {ratio('update_ms_per_token_median'):.3f}, "
                      f"actor update {ratio('update_s_median'):.3f}, "
                      f"CPU per step (all) {ratio('cpu_s_per_step_all_median'):.3f}, "
                      f"CPU per step (trainer) {ratio('cpu_s_per_step_trainer_median'):.3f}, "
                      f"worker peak RSS {ratio('worker_peak_rss_gb'):.3f}"]
        for key, label in labels:
            lines.append(f"{other} / grpo per block ({label}): "
                         + ", ".join(f"{x:.3f}" for x in pair_ratios[f"{other}/{key}"]))
    text = "\n".join(lines)
    print("\n" + text)
    with open(os.path.join(out, "bench_cpu_step.json"), "w", encoding="utf-8") as fh:
        json.dump({"conditions": conditions, "runs": runs, "summary": summary, "pair_ratios": pair_ratios}, fh,
                  indent=1)
    with open(os.path.join(out, "bench_cpu_step.md"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
