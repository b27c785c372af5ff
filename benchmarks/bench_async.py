"""Synchronous against asynchronous training on the real verl trainer on CPU: throughput, idle time, and the clip
fractions of GRPO, GSPO and SSPO at every ratio granularity.

Not a test: runs ``sspo-train hardware=cpu model=tiny rollout=vllm algorithm=<a> mode=<m>`` (the demo's sizes: 8
prompts x 8 responses of up to 32 tokens, 4 mini-batches; real vLLM on CPU) for every algorithm x mode, on this
machine, and prints what it measured with the conditions.

    python benchmarks/bench_async.py [--algorithms grpo,gspo,sspo] [--modes sync,colocate_async,colocate_bypass]
                                     [--steps 8] [--out DIR]

Modes: ``sync`` and ``colocate_async`` are the ``mode`` presets (hydra_configs/mode/); ``colocate_bypass`` is
``mode=colocate_async`` with ``algorithm.rollout_correction.bypass_mode=true``: no recomputation, the ratio is
taken against the behaviour policy's log-probs (the rollout's), as in verl issue #7356's fully-async GSPO run, whose
``actor/pg_clipfrac`` was ~0.4 against ~0 synchronously. SSPO needs the sampling policy's entropy, which bypass does
not compute: its bypass run uses ``policy_loss.entropy_source=current``. ``separate_async`` is the preset: a
standalone vLLM replica of its own (one logical slot on CPU) generates continuously and the trainer's weights reach
it through sspo-verl's ``gloo`` checkpoint engine every ``parameter_sync_step`` mini-batches (``--modes
sync,separate_async``).

Throughput: steps per hour = 3600 / mean ``timing_s/step`` over the steps after the first ``WARMUP`` (step 1 also
starts the agent-loop and reward workers). Trainer idle fraction = Σ ``timing_s/gen`` / Σ ``timing_s/step``: the
time the trainer waits in the replay buffer for finished rollouts. Rollout idle fraction: in both colocated modes
the vLLM engine shares the trainer's slots and generates only while the trainer waits for samples (the async
trainer aborts it and puts it to sleep at ``on_sample_end`` and resumes it after the weight update), so its idle
fraction is at least 1 - Σ ``timing_s/gen`` / Σ ``timing_s/step`` (reported as that lower bound; exact when the
engine is busy whenever the trainer waits); for ``separate_async`` it is not measured (n/a: the standalone pool
generates independently of the trainer's waits and verl logs no engine busy time). Off-policy evidence per mode:
``training/off_policy/trajectory_staleness/max``,
``training/rollout_probs_diff_max`` and ``rollout_corr/k3_kl`` (rollout vs recomputed log-probs).

Runs go algorithm by algorithm, the modes in turned order for every other algorithm, so load drift on a shared
machine hits all modes alike (runs and warm-up: trainer_runs.py; conditions: conditions.py). To fit a time limit,
run one algorithm per invocation (``--algorithms gspo``) into the same ``--out``: each writes
``bench_async_<algorithms>.json`` and ``--merge`` prints the table of all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conditions import conditions, load  # noqa: E402  (this directory)
from trainer_runs import WARMUP, add_arguments, after_warmup, run_plan, split, turned  # noqa: E402

MODES = {
    "sync": ["mode=sync"],
    "colocate_async": ["mode=colocate_async"],
    "colocate_bypass": ["mode=colocate_async", "algorithm.rollout_correction.bypass_mode=true"],
    "separate_async": ["mode=separate_async"],  # standalone vLLM pool; weights pushed by the gloo checkpoint engine
}
# what SSPO needs on top of a mode's overrides where the old-log-prob pass (and its entropy) is skipped
SSPO_BYPASS = ["actor_rollout_ref.actor.policy_loss.entropy_source=current",
               "actor_rollout_ref.actor.calculate_entropy=true"]
GRANULARITIES = ("token", "subsentence", "sequence")
CLIP_KEYS = ("actor/pg_clipfrac",) + tuple(
    f"actor/diag/{g}/{k}" for g in GRANULARITIES for k in ("clipfrac", "seq_all_clipped_frac"))
OFF_POLICY_KEYS = ("training/off_policy/trajectory_staleness/max", "training/rollout_probs_diff_max",
                   "rollout_corr/k3_kl")


def _overrides(algorithm: str, mode: str) -> list[str]:
    mode_overrides = list(MODES[mode])
    if algorithm == "sspo" and mode == "colocate_bypass":
        mode_overrides += SSPO_BYPASS
    return ["rollout=vllm", f"algorithm={algorithm}", *mode_overrides]


def _mean(values: list[float]):
    return statistics.fmean(values) if values else None


def _summarise(name: str, result) -> dict:
    step = after_warmup(result, "timing_s/step")
    gen = after_warmup(result, "timing_s/gen")
    algorithm, mode = name.split("-", 2)[1:]
    run = {
        "name": name,
        "algorithm": algorithm,
        "mode": mode,
        "steps_timed": len(step),
        "step_s_mean": _mean(step),
        "steps_per_hour": 3600 / _mean(step) if step else None,
        "trainer_idle_frac": sum(gen) / sum(step) if step else None,
        "startup_s": result.startup_s,
        "wall_s": result.wall_s,
    }
    # separate_async's standalone pool generates independently of the trainer's waits; verl logs no engine busy
    # time, so its idle fraction is not measured (n/a)
    colocated = mode != "separate_async"
    run["rollout_idle_frac"] = None if run["trainer_idle_frac"] is None or not colocated else 1 - run["trainer_idle_frac"]
    # clip fractions and off-policy metrics: mean over every step (step 1 included: it is trained like the others)
    for key in CLIP_KEYS + OFF_POLICY_KEYS:
        run[key] = _mean([float(r["data"][key]) for r in result.records if key in r["data"]])
    run[OFF_POLICY_KEYS[0] + " (max over steps)"] = max(
        (float(r["data"][OFF_POLICY_KEYS[0]]) for r in result.records if OFF_POLICY_KEYS[0] in r["data"]), default=None)
    print(f"    {_cell(run['steps_per_hour'], '.0f')} steps/h, trainer idle {_cell(run['trainer_idle_frac'], '.2f')}, "
          f"staleness max {run[OFF_POLICY_KEYS[0] + ' (max over steps)']}, "
          f"pg_clipfrac {_cell(run['actor/pg_clipfrac'], '.3f')}, start-up {result.startup_s:.0f} s", flush=True)
    return run


def _cell(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _tables(runs: list[dict], algorithms: list[str], modes: list[str]) -> list[str]:
    by = {(r["algorithm"], r["mode"]): r for r in runs}
    lines = ["| algorithm | mode | steps/hour | vs sync | step (s) | trainer idle | rollout idle (≥) | "
             "staleness max | rollout_probs_diff_max (mean) | rollout_corr/k3_kl (mean) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for a in algorithms:
        for m in modes:
            r = by.get((a, m))
            if r is None:
                continue
            base = by.get((a, "sync"))
            ratio = (r["steps_per_hour"] / base["steps_per_hour"]
                     if base and r["steps_per_hour"] and base["steps_per_hour"] else None)
            lines.append(
                f"| {a} | {m} | {_cell(r['steps_per_hour'], '.0f')} | {_cell(ratio, '.2f')} | "
                f"{_cell(r['step_s_mean'], '.2f')} | {_cell(r['trainer_idle_frac'], '.2f')} | "
                f"{_cell(r['rollout_idle_frac'], '.2f')} | "
                f"{_cell(r[OFF_POLICY_KEYS[0] + ' (max over steps)'], '.0f')} | "
                f"{_cell(r[OFF_POLICY_KEYS[1]], '.1e')} | {_cell(r[OFF_POLICY_KEYS[2]], '.1e')} |")
    lines += ["", "| algorithm | mode | actor/pg_clipfrac | " + " | ".join(
        f"{g} clipfrac | {g} all-clipped" for g in GRANULARITIES) + " |",
        "|---|---|---|" + "---|---|" * len(GRANULARITIES)]
    for a in algorithms:
        for m in modes:
            r = by.get((a, m))
            if r is not None:
                lines.append(f"| {a} | {m} | " + " | ".join(_cell(r[k], ".3f") for k in CLIP_KEYS) + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, algorithms="grpo,gspo,sspo", steps=8, out="/tmp/sspo_bench_async")
    parser.add_argument("--modes", default="sync,colocate_async,colocate_bypass", help=f"of {', '.join(MODES)}")
    parser.add_argument("--merge", action="store_true", help="print the tables of every bench_async_*.json in --out")
    args = parser.parse_args(argv)
    algorithms, modes = split(args.algorithms), split(args.modes)
    if args.merge:
        return _merge(os.path.abspath(args.out), algorithms, modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; choose from {sorted(MODES)}")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    cond = conditions(steps=args.steps, extra=" ".join(args.extra) or None)
    stem = os.path.join(out, f"bench_async_{'-'.join(algorithms)}")

    def save(runs: list[dict]) -> None:  # after every run: a time limit keeps what ran
        with open(stem + ".json", "w", encoding="utf-8") as fh:
            json.dump({"conditions": cond, "steps": args.steps, "runs": runs}, fh, indent=1)

    plan = turned([[(f"{a}-{m}", _overrides(a, m)) for m in modes] for a in algorithms])
    runs = run_plan(plan, out, "bench_async", args.steps, _summarise, extra=args.extra, after_each=save)
    if runs is None:
        return 1
    cond["load_after"] = load()

    text = "\n".join([f"Conditions: {json.dumps(cond)}", "",
                      f"{args.steps} steps per run, one run per algorithm x mode; throughput over steps > {WARMUP}, "
                      "clip fractions and off-policy metrics averaged over all steps.", "",
                      *_tables(runs, algorithms, modes)])
    print("\n" + text)
    save(runs)
    with open(stem + ".md", "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return 0


def _merge(out: str, algorithms: list[str], modes: list[str]) -> int:
    import glob

    runs, conditions = [], []
    for path in sorted(glob.glob(os.path.join(out, "bench_async_*.json"))):
        with open(path, encoding="utf-8") as fh:
            part = json.load(fh)
        runs += part["runs"]
        conditions.append(f"{os.path.basename(path)}: {json.dumps(part['conditions'])}, {part['steps']} steps")
    print("\n".join(["Conditions:", *conditions, "", *_tables(runs, algorithms, modes)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
