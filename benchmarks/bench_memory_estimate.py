"""The pre-flight memory estimate (sspo_verl/preflight/memory.py) against one real actor update's measured peak.

Not a test: prints, per case, what the estimate says the update adds above what stays resident (grads, gathered
units, logits, activations) next to the fresh-process peak-RSS growth of one update through verl's worker
(benchmarks/bench_actor_update.py's model, batch and worker; benchmarks/rss.py's measurement).

    python benchmarks/bench_memory_estimate.py
    python benchmarks/bench_memory_estimate.py --cases grpo:1024,sspo_current:2048

On CPU the same formula runs with CPU numbers: the FSDP2 engine keeps fp32 master weights and computes in its
mixed-precision dtype, there is no flash-attn (verl's log_softmax-row path), no vLLM and no CUDA context (the
runtime term is 0); the parameters and AdamW state are resident before the measured update (one warm-up update
created the AdamW state) and are left out of both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import bench_actor_update as bau  # noqa: E402  (this directory)
from conditions import conditions, header  # noqa: E402
from rss import CHILD_ENV, peak_rss_growth  # noqa: E402

RESIDENT = ("params", "optimizer", "runtime")  # in RSS before the measured update


def child(args) -> None:
    """One case in this (fresh) process: bench_actor_update's worker, a warm-up, then the measured calls."""
    bau._single_process_env("cpu")  # VERL_PLATFORM=cpu before verl is imported

    from sspo_verl.preflight.files import read_model_config
    from sspo_verl.preflight.memory import estimate

    worker, config = bau.build_worker(args.variant, args.model_dir, args)
    seen = {}
    lm_head = next(m for n, m in worker.actor.engine.module.named_modules() if n.endswith("lm_head"))

    def on_logits(_module, _inputs, out):  # the largest (padded) micro-batch's logits
        seen["logits_dtype"] = str(out.dtype)
        seen["logits_rows"] = max(seen.get("logits_rows", 0), out.numel() // out.shape[-1])

    lm_head.register_forward_hook(on_logits)
    old = bau.old_policy(worker, args)
    update = bau.update_fn(args.variant, worker, args, old)
    update()  # warm-up: AdamW state exists from here on
    log_prob_peak = peak_rss_growth(lambda: bau.old_policy(worker, args))
    seen.pop("logits_rows")
    peak = peak_rss_growth(update)
    model_config, _ = read_model_config(args.model_dir)
    est = estimate(config, model_config)
    print(json.dumps({"peak": peak, "log_prob_peak": log_prob_peak, "update": est.phases["update"],
                      "log_prob": est.phases["log_prob"], "logits_dtype": seen.get("logits_dtype"),
                      "logits_rows": seen.get("logits_rows")}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="grpo:1024,grpo:2048,sspo_current:1024",
                        help="variant:token_budget, variants of bench_actor_update")
    parser.add_argument("--responses", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--response-len", type=int, default=224)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="grpo", help=argparse.SUPPRESS)
    parser.add_argument("--token-budget", type=int, default=1024, help=argparse.SUPPRESS)
    parser.add_argument("--old-noise", type=float, default=0.2, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    cond = conditions(hidden=args.hidden, layers=args.layers, vocab=bau.VOCAB, responses=args.responses,
                      prompt_len=args.prompt_len, response_len=args.response_len)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or bau.build_model(tmp, args.hidden, args.layers)
        for case in args.cases.split(","):
            variant, budget = case.split(":")
            cmd = [sys.executable, __file__, "--child", "--variant", variant, "--token-budget", budget,
                   "--model-dir", model_dir, "--responses", str(args.responses), "--prompt-len",
                   str(args.prompt_len), "--response-len", str(args.response_len)]
            env = dict(os.environ, **CHILD_ENV, MASTER_PORT=str(bau._free_port()))
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
            if out.returncode != 0:
                raise RuntimeError(out.stderr[-3000:])
            rows.append((case, json.loads(out.stdout.strip().splitlines()[-1])))
    print(header("bench_memory_estimate", {**cond, "logits_dtype": rows[0][1]["logits_dtype"]})
          + f"  (Qwen2; responses of {args.response_len // 2}-{args.response_len} tokens)")
    print("| case | phase | largest micro-batch (padded tokens) | grads | gathered | logits | activations | "
          "estimate MiB | measured MiB | error |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    mib = lambda x: x / 2**20  # noqa: E731
    for case, r in rows:
        for phase, measured in (("update", r["peak"]), ("log_prob", r["log_prob_peak"])):
            parts = {k: v for k, v in r[phase].items() if k not in RESIDENT}
            est = sum(parts.values())
            print(f"| {case} | {phase} | {r['logits_rows']} | " + " | ".join(
                f"{mib(parts.get(k, 0)):.0f}" for k in ("grads", "gathered", "logits", "activations"))
                + f" | {mib(est):.0f} | {mib(measured):.0f} | {(est - measured) / measured:+.0%} |")


if __name__ == "__main__":
    main()
