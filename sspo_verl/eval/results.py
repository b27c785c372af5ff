"""Per-benchmark metrics, the results JSON, and the paper-style markdown table.

Metrics of one benchmark (all accuracies in percent, mean over problems):
- ``accuracy``: greedy accuracy, or avg@n for sampled runs (mean correctness of all n samples);
- ``pass@k``: unbiased pass@k (:mod:`sspo_verl.eval.pass_at_k`) for each requested k;
- ``mean_response_tokens``, ``truncated_pct`` (answers that hit max_new_tokens), ``no_answer_pct`` (no
  ``\\boxed{}``), ``verify_timeouts`` (verifications killed by the per-sample timeout).

``average`` is the unweighted mean of the five benchmarks' accuracy (AIME24, AMC23, MATH-500, Minerva,
OlympiadBench), as the paper's "Avg." column; it is null unless all five were evaluated. AIME25 is
reported beside them, not in the average. A task benchmark (``tiny_eval``) also has ``mean_reward``, the mean
of its task's whole reward over all samples (:mod:`sspo_verl.eval.benchmarks`).

A row of the table is named by the result's ``label``: ``sspo-eval run`` makes it from the training run the
checkpoint belongs to (algorithm, seed, step; :func:`run_label`), not from the checkpoint's directory name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sspo_verl.data.sources import DISPLAY, EVAL_BENCHMARKS
from sspo_verl.eval.benchmarks import MATH_BENCHMARKS, TASK_BENCHMARKS
from sspo_verl.eval.decoding import DecodingConfig
from sspo_verl.eval.generation import describe_engine
from sspo_verl.eval.pass_at_k import avg_at_n, mean_pass_at_k


@dataclass
class ProblemResult:
    """One problem's samples and their scores (a line of ``samples/<benchmark>.jsonl``)."""

    index: int
    question: str
    ground_truth: str
    responses: list[str]
    scores: list[float]
    preds: list[str] = field(default_factory=list)
    num_tokens: list[int] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)
    verify_timeouts: int = 0
    rewards: list[float] = field(default_factory=list)  # task benchmarks: the task's whole reward per sample
    extra_info: dict | None = None  # task benchmarks: the row's extra_info its reward reads (the reference)

    @property
    def correct(self) -> int:
        return int(sum(1 for s in self.scores if s >= 1.0))


def benchmark_metrics(problems: list[ProblemResult], decoding: DecodingConfig) -> dict:
    """Metrics of one benchmark; see the module docstring."""
    if not problems:
        raise ValueError("no problems to score")
    n = decoding.n
    for p in problems:
        if len(p.scores) != n:
            raise ValueError(f"problem {p.index} has {len(p.scores)} scored samples, expected n={n}")
    correct = [p.correct for p in problems]
    samples = [s for p in problems for s in p.responses]
    tokens = [t for p in problems for t in p.num_tokens]
    reasons = [r for p in problems for r in p.finish_reasons]
    preds = [x for p in problems for x in p.preds]
    metrics = {
        "n_problems": len(problems),
        "n_samples_per_problem": n,
        "accuracy": 100.0 * avg_at_n(n, correct),
        "pass@k": {str(k): 100.0 * mean_pass_at_k(n, correct, k) for k in decoding.pass_k},
        "mean_response_tokens": float(sum(tokens) / len(tokens)) if tokens else None,
        "truncated_pct": 100.0 * reasons.count("length") / len(reasons) if reasons else None,
        "no_answer_pct": 100.0 * sum(1 for x in preds if not x) / len(preds) if preds else None,
        "verify_timeouts": int(sum(p.verify_timeouts for p in problems)),
        "n_samples": len(samples),
    }
    rewards = [x for p in problems for x in p.rewards]
    if rewards:
        metrics["mean_reward"] = float(sum(rewards) / len(rewards))
    return metrics


def average_of_five(benchmarks: dict[str, dict]) -> float | None:
    """Unweighted mean accuracy of the paper's five benchmarks; None if any is missing."""
    if not all(name in benchmarks for name in EVAL_BENCHMARKS):
        return None
    return sum(benchmarks[name]["accuracy"] for name in EVAL_BENCHMARKS) / len(EVAL_BENCHMARKS)


def write_samples(path: Path, problems: list[ProblemResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for p in problems:
            f.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")


def read_samples(path: Path) -> list[ProblemResult]:
    problems = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                try:
                    problems.append(ProblemResult(**json.loads(line)))
                except (json.JSONDecodeError, TypeError) as exc:
                    raise ValueError(f"{path}:{lineno}: not a samples line ({exc})") from None
    return problems


def run_label(run: dict, step: int | None, fallback: str) -> str:
    """A row name from the training run: ``sspo (seed 0, step 30)``, or ``<run name> (sspo, seed 0, step 30)``
    when the run's name is not its algorithm; ``fallback`` (the model directory's name) without a run."""
    if not run or not run.get("algorithm"):
        return fallback
    facts = [f"seed {run['seed']}" if run.get("seed") is not None else "seed ?",
             f"step {step}" if step is not None else "step ?"]
    if run.get("name") and run["name"] != run["algorithm"]:
        facts.insert(0, run["algorithm"])
        return f"{run['name']} ({', '.join(facts)})"
    return f"{run['algorithm']} ({', '.join(facts)})"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _setting(result: dict) -> str:
    """What must be equal for two rows to be compared: decoding settings and the problems (``--limit``)."""
    return json.dumps({"decoding": result["decoding"], "limit": result.get("limit")}, sort_keys=True)


def _limit_text(limit: int | None) -> str:
    return "all problems" if limit is None else f"first {limit} problems per benchmark (--limit {limit})"


def markdown_table(results: list[dict], allow_mixed_settings: bool = False) -> str:
    """The paper's layout: one row per model, the five benchmarks and their average (then AIME25), then the task
    benchmarks present (accuracy and mean reward); below it, per row, the decoding, ``--limit``, backend, model.

    Raises:
        ValueError: results decoded with different settings or on different problems (``--limit``), unless
            ``allow_mixed_settings``.
    """
    if not results:
        raise ValueError("no results")
    settings = {_setting(r) for r in results}
    if len(settings) > 1 and not allow_mixed_settings:
        raise ValueError(
            "these results use different decoding settings or problem sets (--limit): "
            + "; ".join(f"{r['label']}: {DecodingConfig.from_dict(r['decoding']).describe()}, "
                        f"{_limit_text(r.get('limit'))}" for r in results)
            + ". Compare like with like (or pass --allow-mixed-settings to tabulate them anyway, settings listed "
            "per row)"
        )
    present = {b for r in results for b in r["benchmarks"]}
    paper = bool(present & set(MATH_BENCHMARKS)) or not (present & set(TASK_BENCHMARKS))
    tasks = [b for b in TASK_BENCHMARKS if b in present]
    columns = ([DISPLAY[b] for b in EVAL_BENCHMARKS] + ["Avg.", DISPLAY["aime25"]] if paper else [])
    columns += [c for b in tasks for c in (DISPLAY[b], f"{DISPLAY[b]} reward")]
    lines = ["| Model | " + " | ".join(columns) + " |", "|:--|" + "--:|" * len(columns)]
    for r in results:
        b = r["benchmarks"]
        cells = []
        if paper:
            cells += [_fmt(b[name]["accuracy"]) if name in b else "—" for name in EVAL_BENCHMARKS]
            cells += [_fmt(r.get("average")), _fmt(b["aime25"]["accuracy"]) if "aime25" in b else "—"]
        for name in tasks:
            cells += [_fmt(b[name]["accuracy"]), _fmt(b[name].get("mean_reward"))] if name in b else ["—", "—"]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    pass_names = (list(EVAL_BENCHMARKS) + ["aime25"] if paper else []) + tasks
    pass_ks = sorted({int(k) for r in results for m in r["benchmarks"].values() for k in m["pass@k"]})
    if pass_ks:
        lines += ["", "| Model | pass@k | " + " | ".join(DISPLAY[n] for n in pass_names) + " |",
                  "|:--|--:|" + "--:|" * len(pass_names)]
        for r in results:
            for k in pass_ks:
                b = r["benchmarks"]
                cells = [_fmt(b[name]["pass@k"].get(str(k))) if name in b else "—" for name in pass_names]
                lines.append(f"| {r['label']} | {k} | " + " | ".join(cells) + " |")
    lines.append("")
    for r in results:
        d = DecodingConfig.from_dict(r["decoding"])
        metric = "greedy accuracy" if d.greedy else f"avg@{d.n} accuracy"
        lines.append(
            f"- {r['label']}: {metric} (%), {d.describe()}; {_limit_text(r.get('limit'))}; backend "
            f"{describe_engine(r['backend'], r.get('engine'))}; prompt template from the data files; "
            f"model {r['model']['source']}"
        )
    if paper:
        lines.append("- Avg. = unweighted mean of the five benchmarks; AIME25 (post-cutoff check) is not in it.")
    if tasks:
        lines.append("- tiny_eval: the tiny task's held-out split; accuracy = exact final answer (%), reward = the "
                     "task's training reward char_f1 + exact, in [0, 2], mean over samples.")
    return "\n".join(lines) + "\n"
