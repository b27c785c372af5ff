"""``sspo-eval``: evaluate a model or a verl checkpoint on the paper's five math benchmarks (+ AIME25), or on the
tiny task's held-out split ``tiny_eval``.

    # greedy (default), vLLM on a GPU, data written by `sspo-data prepare-all --datasets eval`
    sspo-eval run --model checkpoints/sspo/global_step_500 --data-dir data --out-dir eval/sspo_500
    # sampled: avg@16 and pass@1/4/16
    sspo-eval run --model ~/models/Qwen2.5-Math-1.5B --data-dir data --out-dir eval/base \\
        --temperature 0.6 --top-p 0.95 --n 16 --pass-k 1,4,16
    sspo-eval rescore eval/sspo_500                     # re-score saved samples (no generation)
    sspo-eval table eval/base/results.json eval/sspo_500/results.json --out table.md
    # the demo's runs on the tiny task's held-out split (written by `python -m sspo_verl.demo --setup-only`)
    sspo-eval run --model runs/demo/sspo/checkpoints/global_step_30 --benchmarks tiny_eval \\
        --data-dir runs/tiny/data --out-dir runs/demo/eval/sspo --max-new-tokens 32
    # an ablation (recipes/slurm/ablation.sh): every run evaluated, one table with intervals over seeds
    sspo-eval sweep runs/ablation --data-dir data --benchmarks aime24,amc23,math500,minerva_math,olympiadbench \\
        --baseline grpo

Exit code 2 with a message on bad input (missing data file, bad model path, invalid settings).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sspo_verl.data.readers import DataError
from sspo_verl.eval.benchmarks import ALL_BENCHMARKS, MATH_BENCHMARKS, parse_benchmarks
from sspo_verl.eval.decoding import DecodingConfig
from sspo_verl.eval.generation import BACKENDS, BackendUnavailableError, VLLMOptions
from sspo_verl.eval.model_source import ModelSourceError
from sspo_verl.eval.results import markdown_table
from sspo_verl.reward.math_reward import DEFAULT_TIMEOUT_S
from sspo_verl.reward.verifier_pool import VerifierStartError

DEFAULT_BENCHMARKS = MATH_BENCHMARKS


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sspo-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="generate, score and tabulate")
    run.add_argument("--model", required=True, help="HF model dir, or verl checkpoint (root, global_step_N, .../actor)")
    run.add_argument("--data-dir", required=True, help="directory with <benchmark>.parquet from sspo-data")
    run.add_argument("--out-dir", required=True)
    run.add_argument("--benchmarks", type=parse_benchmarks, default=DEFAULT_BENCHMARKS,
                     help=f"comma-separated from {','.join(ALL_BENCHMARKS)} (default {','.join(DEFAULT_BENCHMARKS)})")
    run.add_argument("--backend", choices=BACKENDS, default="auto",
                     help="auto: vLLM where it can run (a GPU, or the CPU build of vLLM), else HF generate")
    run.add_argument("--label", default=None, help="row name in the table (default: the training run's algorithm, "
                     "seed and step; the model directory's name for an HF model)")
    run.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    run.add_argument("--top-p", type=float, default=1.0)
    run.add_argument("--top-k", type=int, default=-1)
    run.add_argument("--n", type=int, default=1, help="samples per problem (avg@n); greedy needs 1")
    run.add_argument("--max-new-tokens", type=int, default=3000)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--pass-k", type=_ints, default=(), help="k values for pass@k, e.g. 1,4,16 (each <= n)")
    run.add_argument("--limit", type=int, default=None, help="first N problems per benchmark (smoke tests)")
    run.add_argument(
        "--merged-dir", default=None, help="where to merge a verl FSDP checkpoint (default OUT/merged_model)"
    )
    run.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM")
    run.add_argument("--gpu-memory-utilization", type=float, default=0.85, help="vLLM")
    run.add_argument("--max-model-len", type=int, default=None, help="vLLM (default: the model's)")
    run.add_argument("--dtype", default=None, help="vLLM dtype (default: auto on a GPU, hardware/cpu.yaml's float32 on CPU)")
    run.add_argument("--enforce-eager", action="store_true", default=None,
                     help="vLLM: no CUDA graphs (always on CPU: hardware/cpu.yaml)")
    run.add_argument("--kv-cache-memory-bytes", type=int, default=None,
                     help="vLLM KV cache size (default: a share of GPU memory; on CPU hardware/cpu.yaml's 128 MiB, "
                          "enough for the tiny model: a larger model needs more, at least one max_model_len sequence)")
    run.add_argument("--hf-batch-size", type=int, default=8, help="HF backend: prompts per generate call")
    run.add_argument("--verify-timeout-s", type=float, default=DEFAULT_TIMEOUT_S, help="per-answer verifier timeout")
    run.add_argument("--num-procs", type=int, default=None, help="verifier processes (default min(4, CPUs))")

    rescore = sub.add_parser("rescore", help="re-score the samples of an earlier run (no generation)")
    rescore.add_argument("out_dir")
    rescore.add_argument("--verify-timeout-s", type=float, default=None)
    rescore.add_argument("--num-procs", type=int, default=None)

    table = sub.add_parser("table", help="combine results.json files into one paper-style table")
    table.add_argument("results", nargs="+")
    table.add_argument("--out", default=None, help="write the markdown here (default: stdout)")
    table.add_argument("--allow-mixed-settings", action="store_true")

    from sspo_verl.eval import sweep

    sweep.add_subcommands(sub)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            from sspo_verl.eval.runner import run_eval

            decoding = DecodingConfig(
                temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, n=args.n,
                max_new_tokens=args.max_new_tokens, seed=args.seed, pass_k=args.pass_k,
            )
            options = VLLMOptions(
                tensor_parallel_size=args.tensor_parallel_size, gpu_memory_utilization=args.gpu_memory_utilization,
                max_model_len=args.max_model_len, dtype=args.dtype, enforce_eager=args.enforce_eager,
                kv_cache_memory_bytes=args.kv_cache_memory_bytes,
            )
            results = run_eval(
                args.model, args.data_dir, args.out_dir, args.benchmarks, decoding, backend=args.backend,
                label=args.label, limit=args.limit, merged_dir=args.merged_dir, vllm_options=options,
                hf_batch_size=args.hf_batch_size, verify_timeout_s=args.verify_timeout_s, num_procs=args.num_procs,
                argv=["sspo-eval", *argv],
            )
            print((Path(args.out_dir) / "table.md").read_text(), end="")
            print(f"results: {Path(args.out_dir) / 'results.json'} (average {results['average']})")
            return 0
        if args.command in ("sweep", "sweep-check"):
            from sspo_verl.eval import sweep

            return sweep.main(args)
        if args.command == "rescore":
            from sspo_verl.eval.runner import rescore

            rescore(args.out_dir, verify_timeout_s=args.verify_timeout_s, num_procs=args.num_procs)
            print((Path(args.out_dir) / "table.md").read_text(), end="")
            return 0
        loaded = []
        for path in args.results:
            try:
                loaded.append(json.loads(Path(path).read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise DataError(f"{path}: cannot read results JSON ({exc})") from None
        text = markdown_table(loaded, allow_mixed_settings=args.allow_mixed_settings)
        if args.out:
            Path(args.out).write_text(text)
        else:
            print(text, end="")
        return 0
    except (DataError, ModelSourceError, VerifierStartError, BackendUnavailableError, ValueError,
            FileNotFoundError) as exc:
        print(f"sspo-eval: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
