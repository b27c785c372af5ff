"""SSPO loss forward+backward time and peak memory against verl's own ``vanilla`` and ``gspo``, same tensors.

Not a test: prints ratios measured in one run (machines are shared and noisy; the ratios are what to read).

    python benchmarks/bench_loss.py                    # B=64, T in (2048, 8192), on CUDA if present else CPU
    python benchmarks/bench_loss.py --T 2048 --repeats 20 --device cpu
    python benchmarks/bench_loss.py --T 8192 --profile sspo   # torch.profiler's top ops of one loss instead
    python benchmarks/bench_loss.py --lp-dtype bfloat16       # log-probs as a bf16 engine hands them over

Each loss is called the way verl calls it (registry function, keyword arguments, ``ActorConfig``), SSPO with
the response ids and entropy its micro-batch context would supply, metrics included (every loss returns
its metrics as floats). ``sspo`` is the preset (``entropy_source=old``: the entropy and the rollout batch's μ
come with the batch), ``sspo_current`` computes μ from the micro-batch, ``sspo_noent`` has no entropy clipping.
Timing: median of ``--repeats`` interleaved rounds (vanilla, gspo, sspo, ... in
turn, so load drift hits all alike) after warm-up; wall time on CUDA, process CPU time on CPU.
Peak memory: on CUDA ``max_memory_allocated`` of one step above the inputs, in this process after a warm-up step;
on CPU the resident high-water mark of a
fresh subprocess per (loss, T) above its resident size before the step (glibc told to mmap every block of
64 KiB or more, so freed tensors leave RSS at once; page granularity, small blocks are not resolved).
Segmentation's own cost (table lookup + segment ids, the table already built) is timed separately, and the
one-off table build from a 151,665-piece vocabulary (Qwen2.5's size) is reported once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from conditions import conditions, header  # benchmarks/conditions.py (this script's directory)
from rss import CHILD_ENV, peak_rss_growth  # benchmarks/rss.py (this script's directory)

import torch

LOSSES = ("vanilla", "gspo", "sspo", "sspo_current", "sspo_noent")


def make_inputs(B: int, T: int, vocab_size: int, delimiter_ids: torch.Tensor, device: str, seed: int = 0,
                lp_dtype: torch.dtype = torch.float32):
    """Random micro-batch; ``lp`` (log π_θ) in ``lp_dtype``, old log-probs, advantages and entropy float32."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(T // 4, T + 1, (B,), generator=g)
    mask = torch.arange(T)[None] < lengths[:, None]
    ids = torch.randint(0, vocab_size, (B, T), generator=g)
    punct = torch.rand(B, T, generator=g) < 1 / 12  # ~ one clause delimiter per 12 tokens
    ids = torch.where(punct, delimiter_ids[torch.randint(0, len(delimiter_ids), (B, T), generator=g)], ids)
    lp = -torch.rand(B, T, generator=g) * 3
    old = lp + 0.1 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, 1, generator=g).expand(B, T).contiguous()
    ent = torch.rand(B, T, generator=g) * 3
    to = lambda x: x.to(device)  # noqa: E731
    return dict(ids=to(ids), mask=to(mask), lp=to(lp).to(lp_dtype), old=to(old), adv=to(adv), ent=to(ent))


def build_configs(tokenizer_path: str):
    from verl.workers.config import ActorConfig, PolicyLossConfig

    from sspo_verl import SSPOPolicyLossConfig

    common = dict(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, clip_ratio_low=0.2,
                  clip_ratio_high=0.28, loss_agg_mode="seq-mean-token-mean")
    return {
        "vanilla": ActorConfig(policy_loss=PolicyLossConfig(loss_mode="vanilla"), **common),
        "gspo": ActorConfig(policy_loss=PolicyLossConfig(loss_mode="gspo"), **common),
        "sspo": ActorConfig(policy_loss=SSPOPolicyLossConfig(tokenizer_path=tokenizer_path), **common),
        "sspo_current": ActorConfig(policy_loss=SSPOPolicyLossConfig(tokenizer_path=tokenizer_path,
                                                                     entropy_source="current"), **common),
        "sspo_noent": ActorConfig(policy_loss=SSPOPolicyLossConfig(tokenizer_path=tokenizer_path, entropy_clip=False),
                                  **common),
    }


def step_fn(name: str, config, x):
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    fn = get_policy_loss_fn("sspo" if name.startswith("sspo") else name)
    extra = dict(response_ids=x["ids"], entropy=x["ent"]) if name.startswith("sspo") else {}
    if name == "sspo":  # the preset: the sampling policy's entropy, μ of the rollout batch given by the trainer
        extra["entropy_mean"] = float(x["ent"][x["mask"]].mean())

    def step():
        lp = x["lp"].detach().requires_grad_(True)
        loss, metrics = fn(old_log_prob=x["old"], log_prob=lp, advantages=x["adv"], response_mask=x["mask"],
                           loss_agg_mode=config.loss_agg_mode, config=config, rollout_is_weights=None, **extra)
        loss.backward()
        return metrics

    return step


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(steps: dict, device: str, repeats: int, warmup: int = 3, inner: int = 5) -> dict:
    """Median over ``repeats`` interleaved rounds of the mean of ``inner`` calls.

    CUDA: wall time between synchronisations. CPU: this process's CPU time (``time.process_time``), which
    other jobs on a shared machine perturb far less than wall time.
    """
    clock = time.perf_counter if device.startswith("cuda") else time.process_time
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {k: [] for k in steps}
    for _ in range(repeats):
        for k, step in steps.items():
            sync(device)
            t0 = clock()
            for _ in range(inner):
                step()
            sync(device)
            times[k].append((clock() - t0) / inner)
    return {k: statistics.median(v) for k, v in times.items()}


def tiny_tokenizer(tmp: str):
    from sspo_verl.demo.tiny_model import build_tokenizer

    tok = build_tokenizer(tmp)
    delims = [i for i in range(len(tok)) if tok.decode([i]).strip() in {",", ".", ";", ":", "!", "?", "，", "。"}]
    return tok, torch.tensor(delims)


def peak_memory_child(args) -> None:
    """Run one (loss, T) in this fresh process and print its peak memory growth above the inputs (bytes)."""
    tok, delims = tiny_tokenizer(args.tokenizer_dir)
    x = make_inputs(args.B, args.child_T, len(tok), delims, args.device, lp_dtype=getattr(torch, args.lp_dtype))
    step = step_fn(args.child_loss, build_configs(args.tokenizer_dir)[args.child_loss], x)
    if args.child_loss.startswith("sspo"):
        from sspo_verl.adapter.actor_config import boundary_table

        boundary_table(args.tokenizer_dir, ",.;:!?，。；：！？、", str(torch.device(args.device)))  # cached table
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        print(json.dumps({"peak": torch.cuda.max_memory_allocated() - base}))
        return
    # CPU: every block >= 64 KiB is mmap'd and returned on free (MALLOC_MMAP_THRESHOLD_, set by the parent),
    # so resident memory follows live tensors; warm up once, reset the high-water mark, measure one step.
    step()
    print(json.dumps({"peak": peak_rss_growth(step)}))


def peak_memory(loss: str, T: int, args, x=None, config=None) -> int:
    """Peak memory of one step above the inputs: on CUDA in this process (``max_memory_allocated`` is exact and
    per-process), on CPU in a fresh process (resident memory is not)."""
    if args.device.startswith("cuda"):
        step = step_fn(loss, config, x)
        step()  # warm-up: boundary table cached, allocator primed
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    cmd = [sys.executable, __file__, "--child-loss", loss, "--child-T", str(T), "--B", str(args.B), "--device",
           args.device, "--tokenizer-dir", args.tokenizer_dir, "--lp-dtype", args.lp_dtype]
    env = dict(os.environ, **CHILD_ENV)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])["peak"]


def profile(name: str, config, x: dict, device: str, steps: int = 10) -> None:
    """torch.profiler over ``steps`` calls of one loss (after warm-up): its top ops by self device time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    step = step_fn(name, config, x)
    for _ in range(3):
        step()
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync(device)
    t0 = time.perf_counter()
    with torch_profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    wall = (time.perf_counter() - t0) / steps
    events = prof.key_averages()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    kernels = sum(e.count for e in events if cuda and e.device_type == torch.autograd.DeviceType.CUDA) / steps
    print(f"# profile {name}  device={device}  B,T={tuple(x['ids'].shape)}  wall/step (profiled) {wall * 1e3:.2f} ms"
          + (f"  device kernels/step {kernels:.0f}" if cuda else ""))
    print(events.table(sort_by=sort, row_limit=15))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--B", type=int, default=64)
    parser.add_argument("--T", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--tokenizer-dir", default=None)
    parser.add_argument("--lp-dtype", choices=("float32", "bfloat16"), default="float32",
                        help="dtype of log π_θ (old log-probs, advantages, entropy stay float32)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--json", default=None, help="also write the conditions and rows to this JSON file")
    parser.add_argument("--profile", choices=LOSSES, default=None,
                        help="print torch.profiler's top ops of this loss at the first --T, and nothing else")
    parser.add_argument("--child-loss", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-T", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_loss:
        return peak_memory_child(args)

    from sspo_verl.core.segmentation import build_boundary_table, segment_responses

    with tempfile.TemporaryDirectory() as tmp:
        args.tokenizer_dir = args.tokenizer_dir or tmp
        tok, delims = tiny_tokenizer(args.tokenizer_dir)
        configs = build_configs(args.tokenizer_dir)
        from sspo_verl.adapter.actor_config import boundary_table

        table = boundary_table(args.tokenizer_dir, ",.;:!?，。；：！？、", str(torch.device(args.device)))

        pieces = [f"w{i}" if i % 13 else f"w{i}," for i in range(151_665)]
        t0 = time.perf_counter()
        build_boundary_table(pieces, special_ids=range(151_643, 151_665))
        build_s = time.perf_counter() - t0

        if args.profile:
            return profile(args.profile, configs[args.profile],
                           make_inputs(args.B, args.T[0], len(tok), delims, args.device,
                                       lp_dtype=getattr(torch, args.lp_dtype)), args.device)
        device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else None
        cond = conditions(device=args.device, device_name=device_name, threads=torch.get_num_threads(), B=args.B,
                          lp_dtype=args.lp_dtype, repeats=args.repeats,
                          clock="wall" if args.device.startswith("cuda") else "process CPU",
                          table_build_ms=round(build_s * 1e3, 1))
        print(header("bench_loss", cond) + "  (median of interleaved repeats)")
        print(f"# boundary-table build from 151,665 pieces (one-off per tokenizer): {build_s * 1e3:.0f} ms")
        print("| T | loss | fwd+bwd ms | × vanilla | peak extra MiB | × vanilla |")
        print("|---|---|---|---|---|---|")
        rows = []
        for T in args.T:
            x = make_inputs(args.B, T, len(tok), delims, args.device, lp_dtype=getattr(torch, args.lp_dtype))
            steps = {k: step_fn(k, configs[k], x) for k in LOSSES}
            steps["segmentation"] = lambda x=x: segment_responses(x["ids"], x["mask"], "subsentence", table)
            times = time_interleaved(steps, args.device, args.repeats)
            mems = ({k: 0 for k in LOSSES} if args.no_memory else
                    {k: peak_memory(k, T, args, x, configs[k]) for k in LOSSES})
            for k in LOSSES:
                print(f"| {T} | {k} | {times[k] * 1e3:.2f} | {times[k] / times['vanilla']:.2f} | "
                      f"{mems[k] / 2**20:.1f} | {mems[k] / max(mems['vanilla'], 1):.2f} |")
                rows.append(dict(T=T, loss=k, ms=times[k] * 1e3, time_x_vanilla=times[k] / times["vanilla"],
                                 peak_mib=mems[k] / 2**20, mem_x_vanilla=mems[k] / max(mems["vanilla"], 1)))
            rows.append(dict(T=T, loss="segmentation", ms=times["segmentation"] * 1e3,
                             time_x_vanilla=times["segmentation"] / times["vanilla"]))
            print(f"| {T} | segmentation only | {times['segmentation'] * 1e3:.2f} | "
                  f"{times['segmentation'] / times['vanilla']:.2f} | | |")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(dict(conditions=cond, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
