"""Evaluate one model on the math benchmarks: load data, generate, score, write results.

Output directory layout::

    results.json             model, decoding settings, backend, versions, per-benchmark metrics, average
    table.md                 the paper-style table (five benchmarks + Avg., AIME25 beside)
    samples/<benchmark>.jsonl one line per problem: responses, extracted answers, scores, token counts
    merged_model/            only for verl FSDP checkpoints (verl's model merger output; reused)

``rescore`` recomputes every score and metric from ``samples/`` (e.g. after a verifier change) without
generating again.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Sequence

from sspo_verl.data.prepare import read_verl_rows
from sspo_verl.eval.decoding import DecodingConfig
from sspo_verl.eval.generation import VLLMOptions, choose_backend, generate
from sspo_verl.eval.model_source import resolve_model
from sspo_verl.eval.results import (
    ProblemResult,
    average_of_five,
    benchmark_metrics,
    markdown_table,
    read_samples,
    write_samples,
)
from sspo_verl.reward.math_reward import DEFAULT_TIMEOUT_S, score_many
from sspo_verl.reward.verifier_pool import VerifierPool, default_num_procs


def _versions(backend: str) -> dict:
    names = ["sspo-verl", "verl", "torch", "transformers", "math-verify"] + (["vllm"] if backend == "vllm" else [])
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def score_problems(
    problems: list[ProblemResult], timeout_s: float, pool: VerifierPool
) -> list[ProblemResult]:
    """Fill scores/preds/verify_timeouts of every problem from its responses (in place; returned)."""
    responses = [r for p in problems for r in p.responses]
    golds = [p.ground_truth for p in problems for _ in p.responses]
    scored = score_many(responses, golds, timeout_s=timeout_s, pool=pool)
    cursor = 0
    for p in problems:
        chunk = scored[cursor : cursor + len(p.responses)]
        cursor += len(p.responses)
        p.scores = [s["score"] for s in chunk]
        p.preds = [s["pred"] for s in chunk]
        p.verify_timeouts = int(sum(s["verify_timeout"] for s in chunk))
    return problems


def _write(out_dir: Path, results: dict, problems_by_bench: dict[str, list[ProblemResult]]) -> None:
    for bench, problems in problems_by_bench.items():
        write_samples(out_dir / "samples" / f"{bench}.jsonl", problems)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (out_dir / "table.md").write_text(markdown_table([results]))


def run_eval(
    model: str,
    data_dir: str | Path,
    out_dir: str | Path,
    benchmarks: Sequence[str],
    decoding: DecodingConfig,
    backend: str = "auto",
    label: str | None = None,
    limit: int | None = None,
    merged_dir: str | Path | None = None,
    vllm_options: VLLMOptions = VLLMOptions(),
    hf_batch_size: int = 8,
    verify_timeout_s: float = DEFAULT_TIMEOUT_S,
    num_procs: int | None = None,
    argv: Sequence[str] | None = None,
) -> dict:
    """Evaluate ``model`` on ``benchmarks`` (verl parquet files ``<data_dir>/<name>.parquet``).

    Data files are checked before the model is loaded, so a missing benchmark fails in seconds.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    rows = {b: read_verl_rows(data_dir / f"{b}.parquet")[:limit] for b in benchmarks}
    backend = choose_backend(backend)  # an unavailable backend fails here, before any model is merged or loaded
    out_dir.mkdir(parents=True, exist_ok=True)
    resolved = resolve_model(model, merged_dir or out_dir / "merged_model")

    prompts = [row["prompt"] for b in benchmarks for row in rows[b]]
    generations = generate(backend, resolved.hf_path, prompts, decoding, vllm_options, hf_batch_size)

    problems_by_bench: dict[str, list[ProblemResult]] = {}
    cursor = 0
    for b in benchmarks:
        problems = []
        for i, row in enumerate(rows[b]):
            samples = generations[cursor]
            cursor += 1
            problems.append(
                ProblemResult(
                    index=i,
                    question=(row.get("extra_info") or {}).get("question") or row["prompt"][-1]["content"],
                    ground_truth=str(row["reward_model"]["ground_truth"]),
                    responses=[g.text for g in samples],
                    scores=[],
                    num_tokens=[g.num_tokens for g in samples],
                    finish_reasons=[g.finish_reason for g in samples],
                )
            )
        problems_by_bench[b] = problems

    with VerifierPool(num_procs=num_procs or default_num_procs()) as pool:
        for problems in problems_by_bench.values():
            score_problems(problems, verify_timeout_s, pool)

    bench_metrics = {b: benchmark_metrics(p, decoding) for b, p in problems_by_bench.items()}
    results = {
        "label": label or Path(resolved.source.rstrip("/")).name,
        "model": {"source": resolved.source, "hf_path": resolved.hf_path, "kind": resolved.kind, "step": resolved.step},
        "decoding": decoding.to_dict(),
        "backend": backend,
        "verify_timeout_s": verify_timeout_s,
        "data_dir": str(data_dir),
        "limit": limit,
        "benchmarks": bench_metrics,
        "average": average_of_five(bench_metrics),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": list(argv) if argv is not None else sys.argv,
        "versions": _versions(backend),
    }
    _write(out_dir, results, problems_by_bench)
    return results


def rescore(out_dir: str | Path, verify_timeout_s: float | None = None, num_procs: int | None = None) -> dict:
    """Recompute scores and metrics of an earlier run from its ``samples/`` (no generation)."""
    out_dir = Path(out_dir)
    results_path = out_dir / "results.json"
    if not results_path.is_file():
        raise FileNotFoundError(f"{results_path} not found: rescore needs the directory of an earlier sspo-eval run")
    results = json.loads(results_path.read_text())
    decoding = DecodingConfig.from_dict(results["decoding"])
    timeout_s = verify_timeout_s or results.get("verify_timeout_s", DEFAULT_TIMEOUT_S)
    problems_by_bench = {}
    with VerifierPool(num_procs=num_procs or default_num_procs()) as pool:
        for bench in results["benchmarks"]:
            path = out_dir / "samples" / f"{bench}.jsonl"
            if not path.is_file():
                raise FileNotFoundError(f"{path} missing: cannot rescore {bench}")
            problems_by_bench[bench] = score_problems(read_samples(path), timeout_s, pool)
    results["benchmarks"] = {b: benchmark_metrics(p, decoding) for b, p in problems_by_bench.items()}
    results["average"] = average_of_five(results["benchmarks"])
    results["verify_timeout_s"] = timeout_s
    results["rescored"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    _write(out_dir, results, problems_by_bench)
    return results
