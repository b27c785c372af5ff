"""An ablation's evaluation: every run of a sweep directory evaluated once, and one table over seeds per setting.

A sweep directory is what ``recipes/slurm/ablation.sh`` writes: ``manifest.tsv`` (one row per run: index, name,
run dir, algorithm, seed, GRID overrides) and a run directory per row. An evaluation spec (benchmarks, decoding,
``--limit``) has a key, the hash of those settings; the checkpoint is chosen per run (``last``: the run's latest
checkpoint, or given steps). Layout::

    <run dir>/eval/<key>/global_step_<N>/     sspo-eval run's output for that checkpoint (results.json, samples/)
    <sweep dir>/eval/<key>/table.md           rows = algorithm × GRID value × step, cells mean ± 95 % CI (n)
    <sweep dir>/eval/<key>/summary.json       the same, with every run's status and value (sspo-report plots it)

:func:`evaluate` evaluates what is missing (a finished evaluation is reused, never rewritten; one whose settings or
checkpoint differ from its place is an error naming the run); :func:`tabulate` writes the table, where a run that
failed, never started or has no checkpoint is a named gap in its row. The statistics are :mod:`.stats`'.
:func:`preflight` composes and pre-flights every row's training config before anything is queued.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from sspo_verl.data.readers import DataError
from sspo_verl.data.sources import DISPLAY, EVAL_BENCHMARKS
from sspo_verl.eval.benchmarks import parse_benchmarks
from sspo_verl.eval.decoding import DecodingConfig
from sspo_verl.eval.results import read_samples
from sspo_verl.eval.stats import paired_difference, seed_interval
from sspo_verl.rundir import CHECKPOINTS_DIR, RECORD

MANIFEST = "manifest.tsv"
MANIFEST_COLUMNS = ["index", "run_name", "run_dir", "algo", "seed", "overrides"]
LAUNCHER_LOG = os.path.join("logs", "launcher.log")
AVG = "Avg."
# train.sbatch's last words per attempt: "[sspo-slurm <time>] exit <rc> (run dir ..., latest checkpoint: ...)"
_EXIT = re.compile(r"\] exit (\d+) \(run dir")
_ATTEMPT = "===== attempt "


class SweepError(DataError):
    """A sweep directory, run or earlier evaluation that cannot be used as asked (the message names the fix)."""


# ------------------------------------------------------------------ the sweep and its runs
@dataclass(frozen=True)
class Run:
    """One row of ``manifest.tsv``."""

    index: int
    name: str
    run_dir: Path
    algo: str
    seed: int
    overrides: str  # the GRID point, "k=v k=v" ("" without a GRID)


def read_manifest(path: str | Path) -> list[Run]:
    """The rows of a manifest file, or of ``<sweep dir>/manifest.tsv``."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise SweepError(
            f"{path}: no sweep manifest. A sweep directory is made by recipes/slurm/ablation.sh "
            "(RUNS_ROOT/SWEEP_NAME); pass that directory."
        )
    lines = path.read_text().splitlines()
    if not lines or lines[0].lstrip("# ").split("\t") != MANIFEST_COLUMNS:
        raise SweepError(f"{path}: not an ablation.sh manifest (header {lines[:1]}, expected {MANIFEST_COLUMNS})")
    runs = []
    for lineno, row in enumerate(csv.reader(lines[1:], delimiter="\t"), start=2):
        row = row + [""] * (len(MANIFEST_COLUMNS) - len(row))
        try:
            runs.append(Run(int(row[0]), row[1], Path(row[2]), row[3], int(row[4]), row[5]))
        except ValueError:
            raise SweepError(f"{path}:{lineno}: malformed row {row}") from None
    if not runs:
        raise SweepError(f"{path}: the manifest has no runs")
    return runs


def _slurm_error(run: Run) -> Optional[tuple[str, str]]:
    """A task that died before its run directory had a launcher log (e.g. the directory could not be made): the
    last ``ERROR:`` line of its newest Slurm output ``<sweep dir>/slurm-<job>_<index>.out`` (ablation.sh's)."""
    outputs = sorted(run.run_dir.parent.glob(f"slurm-*_{run.index}.out"), key=lambda p: p.stat().st_mtime)
    if not outputs:
        return None
    errors = re.findall(r"\] ERROR: (.*)", outputs[-1].read_text(errors="replace"))
    return ("failed", f"{errors[-1]} (see {outputs[-1]})") if errors else None


def training_state(run: Run) -> tuple[str, str]:
    """``(state, detail)`` of a run's training from its launcher log: ``finished`` (its last attempt exited 0),
    ``failed`` (exited non-zero, or its Slurm output ends in an error before any launcher log), ``running`` (an
    attempt without its exit line yet), ``not started``."""
    log = run.run_dir / LAUNCHER_LOG
    if not log.is_file():
        return _slurm_error(run) or ("not started", f"no {LAUNCHER_LOG} in {run.run_dir}")
    last_attempt = log.read_text(errors="replace").rsplit(_ATTEMPT, 1)[-1]
    codes = _EXIT.findall(last_attempt)
    if not codes:
        return "running", f"no exit line yet in {log}"
    rc = int(codes[-1])
    if rc == 0:
        return "finished", ""
    return "failed", f"training exited with status {rc}: see {log}"


def checkpoint_steps(run: Run) -> list[int]:
    """The steps of the run's saved checkpoints (``checkpoints/global_step_<N>/actor``), ascending."""
    root = run.run_dir / CHECKPOINTS_DIR
    steps = []
    for path in root.glob("global_step_*"):
        suffix = path.name.split("_")[-1]
        if suffix.isdigit() and (path / "actor").is_dir():
            steps.append(int(suffix))
    return sorted(steps)


def latest_step(run: Run) -> Optional[int]:
    """The step verl's tracker names (``latest_checkpointed_iteration.txt``: written after a save completes)."""
    tracker = run.run_dir / CHECKPOINTS_DIR / "latest_checkpointed_iteration.txt"
    try:
        text = tracker.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# ------------------------------------------------------------------ the evaluation spec
@dataclass(frozen=True)
class EvalSpec:
    """What every run is evaluated on and how; ``steps`` is ``("last",)`` or checkpoint steps."""

    benchmarks: tuple[str, ...]
    decoding: DecodingConfig
    limit: Optional[int] = None
    steps: tuple = ("last",)

    def identity(self) -> dict:
        """The settings that make two evaluations comparable (the checkpoint is chosen per run)."""
        return {"benchmarks": sorted(self.benchmarks), "decoding": self.decoding.to_dict(), "limit": self.limit}

    @property
    def key(self) -> str:
        digest = hashlib.sha1(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:10]
        return f"eval-{digest}"

    def describe_checkpoint(self) -> str:
        if self.steps == ("last",):
            return "each run's last checkpoint (--step last)"
        return "checkpoints at step " + ", ".join(str(s) for s in self.steps) + f" (--step {','.join(map(str, self.steps))})"


def parse_steps(text: str) -> tuple:
    """``last`` or comma-separated positive steps."""
    if text.strip() == "last":
        return ("last",)
    try:
        steps = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        steps = ()
    if not steps or any(s < 1 for s in steps):
        raise ValueError(f"--step {text!r}: expected 'last' or comma-separated checkpoint steps, e.g. 100,200")
    return steps


@dataclass
class RunEval:
    """One run at one checkpoint: its status and, once evaluated, its results."""

    run: Run
    step: Optional[int]
    status: str  # evaluated | to evaluate | failed | running | not started | no checkpoint | evaluation failed
    detail: str = ""
    out_dir: Optional[Path] = None
    results: Optional[dict] = None
    problems: dict = field(default_factory=dict)  # benchmark -> per-problem (question, answer) identity


def eval_dir(run: Run, spec: EvalSpec, step: int) -> Path:
    return run.run_dir / "eval" / spec.key / f"global_step_{step}"


def _check_results(results: dict, run: Run, spec: EvalSpec, step: int, path: Path) -> None:
    """An earlier results.json must be this spec's evaluation of this checkpoint (else: an error naming the fix)."""
    problems = []
    if results.get("decoding") != spec.decoding.to_dict():
        problems.append(f"decoding {results.get('decoding')} (asked: {spec.decoding.to_dict()})")
    if sorted(results.get("benchmarks") or {}) != sorted(spec.benchmarks):
        problems.append(f"benchmarks {sorted(results.get('benchmarks') or {})} (asked: {sorted(spec.benchmarks)})")
    if results.get("limit") != spec.limit:
        problems.append(f"limit {results.get('limit')} (asked: {spec.limit})")
    recorded_run = results.get("run") or {}
    for key, expected in (("name", run.name), ("algorithm", run.algo), ("seed", run.seed)):
        if recorded_run.get(key) is not None and recorded_run[key] != expected:
            problems.append(f"run {key} {recorded_run[key]!r} (the manifest row says {expected!r})")
    recorded = recorded_run.get("step", (results.get("model") or {}).get("step"))
    if recorded is not None and int(recorded) != step:
        problems.append(f"checkpoint global_step_{recorded} (expected global_step_{step})")
    if problems:
        raise SweepError(
            f"run {run.name}: {path} holds another evaluation: {'; '.join(problems)}. It is kept, not overwritten, "
            f"and not mixed into the table: move it out of {path.parent} (or delete it if unwanted) and run again."
        )


def _load(out_dir: Path) -> Optional[dict]:
    path = out_dir / "results.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SweepError(f"{path}: not valid JSON ({exc}); move it away to evaluate this checkpoint again") from None


def _check_record(run: Run) -> None:
    """The run directory must hold the manifest row's run: its ``resolved_config.yaml`` (sspo-train's record)
    names the same algorithm and seed (a directory copied or reused from another sweep would mix runs)."""
    import yaml

    path = run.run_dir / RECORD
    if not path.is_file():
        return
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SweepError(f"run {run.name}: {path} is not YAML ({exc})") from None
    algo = (config.get("algorithm_preset") or {}).get("name")
    seed = config.get("seed")
    if (algo is not None and algo != run.algo) or (seed is not None and seed != run.seed):
        raise SweepError(
            f"run {run.name}: {path} records algorithm={algo} seed={seed}, but the manifest row says "
            f"algorithm={run.algo} seed={run.seed}: this directory holds another run. Move it out of the sweep "
            f"(or fix {run.run_dir.parent / MANIFEST}) and run again."
        )


def plan(sweep_dir: str | Path, spec: EvalSpec, indices: Optional[Sequence[int]] = None) -> list[RunEval]:
    """Every run (or the rows ``indices``) at every asked checkpoint, with its status; earlier evaluations loaded
    and checked against the spec."""
    runs = read_manifest(sweep_dir)
    if indices is not None:
        known = {r.index for r in runs}
        unknown = sorted(set(indices) - known)
        if unknown:
            raise SweepError(f"--index {unknown}: no such row in {Path(sweep_dir) / MANIFEST} (rows {sorted(known)})")
        runs = [r for r in runs if r.index in set(indices)]
    items = []
    for run in runs:
        _check_record(run)
        state, detail = training_state(run)
        if state != "finished":
            items.append(RunEval(run, None, state, detail))
            continue
        if spec.steps == ("last",):
            last = latest_step(run)
            steps = [last] if last is not None else []
        else:
            steps = list(spec.steps)
        if not steps:
            items.append(RunEval(run, None, "no checkpoint",
                                 f"{run.run_dir}/checkpoints has no checkpoint (trainer.save_freq=-1?)"))
            continue
        have = set(checkpoint_steps(run))
        for step in steps:
            if step not in have:
                items.append(RunEval(run, step, "no checkpoint", f"no {run.run_dir}/checkpoints/global_step_{step}"
                                     f" (saved: {sorted(have) or 'none'})"))
                continue
            out = eval_dir(run, spec, step)
            results = _load(out)
            if results is None:
                status = "evaluation failed" if out.exists() else "to evaluate"
                detail = f"{out} has no results.json: an evaluation started and did not finish" if out.exists() else ""
                items.append(RunEval(run, step, status, detail, out))
                continue
            _check_results(results, run, spec, step, out / "results.json")
            items.append(RunEval(run, step, "evaluated", "", out, results))
    return items


def evaluate(
    sweep_dir: str | Path,
    spec: EvalSpec,
    data_dir: str | Path,
    indices: Optional[Sequence[int]] = None,
    **run_eval_kwargs,
) -> list[RunEval]:
    """Evaluate every finished run's checkpoint that has no evaluation of this spec yet (in sequence); return the
    plan after it. An evaluation that fails is reported by its run, after the others ran."""
    from sspo_verl.eval.runner import run_eval

    items = plan(sweep_dir, spec, indices)
    data_dir = Path(data_dir)
    missing = [b for b in spec.benchmarks if not (data_dir / f"{b}.parquet").is_file()]
    todo = [i for i in items if i.status in ("to evaluate", "evaluation failed")]
    if todo and missing:
        raise SweepError(f"--data-dir {data_dir}: no {', '.join(b + '.parquet' for b in missing)}")
    errors = []
    for item in todo:
        model = item.run.run_dir / CHECKPOINTS_DIR / f"global_step_{item.step}"
        print(f"sspo-eval sweep: evaluating {item.run.name} at global_step_{item.step} -> {item.out_dir}", flush=True)
        try:
            item.results = run_eval(
                str(model), data_dir, item.out_dir, spec.benchmarks, spec.decoding,
                label=f"{item.run.name}@{item.step}", limit=spec.limit, **run_eval_kwargs,
            )
            item.status, item.detail = "evaluated", ""
        except Exception as exc:  # noqa: BLE001 -- one run's failure must not hide the others' results
            item.status, item.detail = "evaluation failed", f"{type(exc).__name__}: {exc}"
            errors.append(f"{item.run.name}@{item.step}: {item.detail}")
    if errors:
        print("sspo-eval sweep: evaluation failed for " + " | ".join(errors), flush=True)
    return items


# ------------------------------------------------------------------ the table
def _problem_identity(item: RunEval, bench: str) -> list[tuple[str, str]]:
    if bench not in item.problems:
        path = item.out_dir / "samples" / f"{bench}.jsonl"
        item.problems[bench] = [(p.question, p.ground_truth) for p in read_samples(path)] if path.is_file() else []
    return item.problems[bench]


def _value(item: RunEval, column: str) -> Optional[float]:
    if column == AVG:
        return item.results.get("average")
    metrics = item.results["benchmarks"].get(column)
    return None if metrics is None else float(metrics["accuracy"])


def _group_label(algo: str, overrides: str, step: Optional[int]) -> str:
    label = algo + (f" {overrides}" if overrides else "")
    return label + (f" @ step {step}" if step is not None else "")


def summarize(items: list[RunEval], spec: EvalSpec, baseline: Optional[str] = None) -> dict:
    """Groups (algorithm × GRID point × step) with a mean ± interval per column, the paired comparisons with
    ``baseline``, and every run's status (a JSON-ready dict)."""
    columns = list(spec.benchmarks) + ([AVG] if set(EVAL_BENCHMARKS) <= set(spec.benchmarks) else [])
    order: dict[tuple, list[RunEval]] = {}
    for item in items:  # manifest order: algorithm, seed, GRID point
        if item.step is None:
            continue
        order.setdefault((item.run.algo, item.run.overrides, item.step), []).append(item)
    # a run with no checkpoint to evaluate belongs to every group of its algorithm and GRID point
    for item in items:
        if item.step is None:
            keys = [k for k in order if k[:2] == (item.run.algo, item.run.overrides)]
            for key in keys or [(item.run.algo, item.run.overrides, None)]:
                order.setdefault(key, []).append(item)
    groups = []
    for (algo, overrides, step), members in order.items():
        evaluated = [m for m in members if m.status == "evaluated"]
        cells = {}
        for column in columns:
            values = {m.run.seed: _value(m, column) for m in evaluated if _value(m, column) is not None}
            if values:
                iv = seed_interval(list(values.values()))
                cells[column] = {"mean": iv.mean, "half_width": iv.half_width, "n": iv.n, "text": iv.format(),
                                 "values": {str(s): v for s, v in values.items()}}
            else:
                cells[column] = None
        gaps = [f"{m.run.name}: {m.status}" + (f" ({m.detail})" if m.detail else "")
                for m in members if m.status != "evaluated"]
        groups.append({"label": _group_label(algo, overrides, step), "algo": algo, "overrides": overrides,
                       "step": step, "cells": cells, "runs": len(members), "evaluated": len(evaluated),
                       "gaps": gaps, "_members": evaluated})
    comparisons = []
    if baseline is not None:
        for group in groups:
            if group["algo"] == baseline:
                continue
            base = next((g for g in groups if g["algo"] == baseline and g["overrides"] == group["overrides"]
                         and g["step"] == group["step"]), None)
            if base is None:
                continue
            for column in columns:
                if group["cells"][column] is None or base["cells"][column] is None:
                    continue
                if column != AVG:
                    _same_problems(group["_members"] + base["_members"], column)
                cand = {int(s): v for s, v in group["cells"][column]["values"].items()}
                ref = {int(s): v for s, v in base["cells"][column]["values"].items()}
                if not set(cand) & set(ref):
                    continue
                d = paired_difference(cand, ref)
                comparisons.append({"group": group["label"], "baseline": base["label"], "column": column,
                                    "mean": d.mean, "low": d.low, "high": d.high, "p_value": d.p_value,
                                    "n": d.n, "seeds": list(d.seeds), "text": d.format()})
    for group in groups:
        del group["_members"]
    backends = sorted({i.results.get("backend") for i in items if i.results and i.results.get("backend")})
    return {
        "spec": {**spec.identity(), "key": spec.key, "steps": list(spec.steps),
                 "checkpoint": spec.describe_checkpoint()},
        "columns": columns, "baseline": baseline, "backends": backends, "groups": groups,
        "comparisons": comparisons,
        "runs": [{"name": i.run.name, "index": i.run.index, "algo": i.run.algo, "seed": i.run.seed,
                  "overrides": i.run.overrides, "step": i.step, "status": i.status, "detail": i.detail,
                  "eval_dir": str(i.out_dir) if i.out_dir else None,
                  "values": {c: _value(i, c) for c in columns} if i.status == "evaluated" else None}
                 for i in items],
    }


def _same_problems(members: list[RunEval], bench: str) -> None:
    """A paired comparison needs the same problems in every run (same data, same --limit)."""
    first = members[0]
    reference = _problem_identity(first, bench)
    for other in members[1:]:
        if _problem_identity(other, bench) != reference:
            raise SweepError(
                f"{bench}: runs {first.run.name} and {other.run.name} were evaluated on different problems "
                f"({first.out_dir} vs {other.out_dir}); a paired comparison needs the same data file for every run. "
                "Move the stale evaluation away and run sspo-eval sweep again."
            )


def markdown(summary: dict, sweep_name: str) -> str:
    """The table (rows = algorithm × GRID value × step; cells mean ± 95 % CI (n)), the comparisons and the runs."""
    columns = summary["columns"]
    names = [DISPLAY.get(c, c) for c in columns]
    spec = summary["spec"]
    decoding = DecodingConfig.from_dict(spec["decoding"])
    lines = [f"# Sweep {sweep_name}: accuracy (%), mean ± 95 % CI over seeds (n seeds)", "",
             "| Setting | " + " | ".join(names) + " | Runs |", "|:--|" + "--:|" * len(columns) + ":--|"]
    for g in summary["groups"]:
        cells = [g["cells"][c]["text"] if g["cells"][c] else "—" for c in columns]
        runs = f"{g['evaluated']}/{g['runs']} evaluated"
        failed = [x.split(":")[0] for x in g["gaps"] if ": failed" in x]
        if failed:
            runs += f"; FAILED: {', '.join(failed)}"
        other = len(g["gaps"]) - len(failed)
        if other:
            runs += f"; {other} not evaluated (below)"
        lines.append(f"| {g['label']} | " + " | ".join(cells) + f" | {runs} |")
    if summary["baseline"]:
        lines += ["", f"Paired difference to {summary['baseline']} (same seeds, same problems; scipy ttest_rel over "
                  "seeds): mean [95 % CI], p", ""]
        rows = summary["comparisons"]
        if rows:
            lines += ["| Setting | vs | Column | Difference |", "|:--|:--|:--|:--|"]
            lines += [f"| {c['group']} | {c['baseline']} | {DISPLAY.get(c['column'], c['column'])} | {c['text']} |"
                      for c in rows]
        else:
            lines.append(f"(nothing to compare: no evaluated {summary['baseline']} run shares a seed with another)")
    lines += ["", "Runs:", ""]
    for r in summary["runs"]:
        where = f"global_step_{r['step']}" if r["step"] is not None else "-"
        lines.append(f"- {r['name']} ({where}): {r['status']}" + (f" — {r['detail']}" if r["detail"] else ""))
    lines += [
        "",
        f"- Checkpoint: {spec['checkpoint']}.",
        f"- Decoding: {'greedy' if decoding.greedy else f'avg@{decoding.n}'} accuracy, {decoding.describe()}; "
        f"limit: {spec['limit'] if spec['limit'] is not None else 'none (all problems)'}; "
        f"backend: {', '.join(summary['backends']) or '—'}; evaluation key {spec['key']}.",
        "- Interval: Student-t over seeds (scipy.stats.t.interval); one seed has none (\"not enough seeds\").",
    ]
    if AVG in columns:
        lines.append("- Avg. = per run, the unweighted mean of the five benchmarks; then over seeds.")
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # several evaluation jobs may finish at once: readers see one whole table


def tabulate(sweep_dir: str | Path, spec: EvalSpec, items: Optional[list[RunEval]] = None,
             baseline: Optional[str] = None) -> tuple[Path, dict]:
    """Write ``<sweep dir>/eval/<key>/{table.md,summary.json}`` from the whole sweep; return the table's path."""
    sweep_dir = Path(sweep_dir)
    if items is None or {i.run.index for i in items} != {r.index for r in read_manifest(sweep_dir)}:
        items = plan(sweep_dir, spec)
    if baseline is not None and baseline not in {i.run.algo for i in items}:
        raise SweepError(f"--baseline {baseline}: not an algorithm of this sweep ({sorted({i.run.algo for i in items})})")
    summary = summarize(items, spec, baseline)
    out = sweep_dir / "eval" / spec.key
    _write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    _write_atomic(out / "table.md", markdown(summary, sweep_dir.name))
    return out / "table.md", summary


# ------------------------------------------------------------------ pre-flight of every run's training config
def preflight(manifest: str | Path, fixed: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Compose and pre-flight every row's config as its job will (``sspo-train dry_run=true``), in this process,
    with run directories in a temporary directory (nothing of the sweep is written) and no cluster check (the
    job's own pre-flight checks its allocation). Returns one message per distinct problem, naming its runs."""
    from sspo_verl.preflight import PreflightError
    from sspo_verl.train import compose
    from sspo_verl.train import run as train_run

    failures: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="sspo-sweep-check-") as tmp:
        for run in read_manifest(manifest):
            argv = [f"algorithm={run.algo}", f"seed={run.seed}", *fixed, f"trainer.experiment_name={run.name}",
                    f"output_dir={tmp}", "preflight.check_cluster=false", "dry_run=true",
                    *run.overrides.split(), *overrides]
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    train_run(compose(argv))
            except PreflightError as exc:
                for line in str(exc).splitlines()[1:] or [str(exc)]:
                    failures.setdefault(line.strip().removeprefix("- "), []).append(run.name)
            except Exception as exc:  # noqa: BLE001 -- Hydra's composition errors: a wrong preset, a misspelt key
                text = str(exc).split("Config search path")[0]  # Hydra's search path says nothing new
                message = " ".join(line.strip() for line in text.splitlines() if line.strip())[:800]
                failures.setdefault(f"composing the config: {type(exc).__name__}: {message}", []).append(run.name)
    return [f"{msg}  [runs: {', '.join(names)}]" for msg, names in failures.items()]


# ------------------------------------------------------------------ sspo-eval sweep / sweep-check
def add_subcommands(sub) -> None:
    """``sspo-eval sweep`` and ``sspo-eval sweep-check`` (see :func:`main`)."""
    from sspo_verl.eval.generation import BACKENDS
    from sspo_verl.reward.math_reward import DEFAULT_TIMEOUT_S

    sweep = sub.add_parser(
        "sweep", help="evaluate every run of an ablation sweep (what is missing) and write its table",
        description="Evaluate each finished run of SWEEP_DIR (recipes/slurm/ablation.sh's RUNS_ROOT/SWEEP_NAME) at "
        "the chosen checkpoint, in sequence, reusing every finished evaluation, then write "
        "SWEEP_DIR/eval/<key>/table.md (mean ± 95%% CI over seeds) and summary.json.",
    )
    sweep.add_argument("sweep_dir")
    sweep.add_argument("--data-dir", required=True, help="directory with <benchmark>.parquet")
    sweep.add_argument("--benchmarks", required=True, help="comma-separated, e.g. aime24,amc23,math500,"
                       "minerva_math,olympiadbench (as sspo-eval run)")
    sweep.add_argument("--step", default="last", help="'last' (each run's latest checkpoint) or steps, e.g. 100,200")
    sweep.add_argument("--index", default=None, help="only these manifest rows (comma-separated): one job per run")
    sweep.add_argument("--table-only", action="store_true", help="evaluate nothing; write the table of what is there")
    sweep.add_argument("--baseline", default=None, help="algorithm to compare every other with (paired over seeds)")
    sweep.add_argument("--backend", choices=BACKENDS, default="auto")
    sweep.add_argument("--temperature", type=float, default=0.0)
    sweep.add_argument("--top-p", type=float, default=1.0)
    sweep.add_argument("--top-k", type=int, default=-1)
    sweep.add_argument("--n", type=int, default=1)
    sweep.add_argument("--max-new-tokens", type=int, default=3000)
    sweep.add_argument("--seed", type=int, default=0)
    sweep.add_argument("--limit", type=int, default=None)
    sweep.add_argument("--hf-batch-size", type=int, default=8)
    sweep.add_argument("--verify-timeout-s", type=float, default=DEFAULT_TIMEOUT_S)
    sweep.add_argument("--num-procs", type=int, default=None)

    check = sub.add_parser(
        "sweep-check", help="compose and pre-flight every run of a sweep manifest (ablation.sh runs it)",
    )
    check.add_argument("manifest", help="manifest.tsv (or its sweep directory)")
    check.add_argument("--fixed", action="append", default=[], help="an override for every run, before the row's "
                       "(ablation.sh: hardware=, model=, experiment=, trainer.nnodes=)")
    check.add_argument("--eval-args", default=None, help="the sweep's `sspo-eval sweep` options, checked too")
    check.add_argument("--override", action="append", default=[], dest="overrides",
                       help="the sweep's overrides for every run (after the row's)")


def _check_eval_args(text: str) -> list[str]:
    """Problems of an ``EVAL="..."`` string of ablation.sh: options `sspo-eval sweep` refuses, missing data."""
    import argparse
    import shlex

    parser = argparse.ArgumentParser(prog="EVAL", add_help=False, exit_on_error=False)
    add_subcommands(parser.add_subparsers(dest="command"))
    try:
        args = parser.parse_args(["sweep", "SWEEP_DIR", *shlex.split(text)])
        spec = spec_from_args(args)
    except (argparse.ArgumentError, argparse.ArgumentTypeError, ValueError) as exc:
        return [f"EVAL={text!r}: {exc}"]
    except SystemExit:  # argparse's exit on a missing required option (it printed the usage)
        return [f"EVAL={text!r}: sspo-eval sweep needs --data-dir and --benchmarks (see sspo-eval sweep --help)"]
    missing = [b for b in spec.benchmarks if not (Path(args.data_dir) / f"{b}.parquet").is_file()]
    if missing:
        return [f"EVAL: --data-dir {args.data_dir} has no {', '.join(b + '.parquet' for b in missing)} "
                "(sspo-data prepare-all --datasets eval writes them)"]
    return []


def spec_from_args(args) -> EvalSpec:
    decoding = DecodingConfig(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, n=args.n,
                              max_new_tokens=args.max_new_tokens, seed=args.seed)
    return EvalSpec(parse_benchmarks(args.benchmarks), decoding, args.limit, parse_steps(args.step))


def main(args) -> int:
    """Run ``sspo-eval sweep`` / ``sweep-check`` (errors raise; the caller prints them and exits 2)."""
    import argparse

    if args.command == "sweep-check":
        problems = []
        if args.eval_args is not None:
            problems += _check_eval_args(args.eval_args)
        problems += preflight(args.manifest, args.fixed, args.overrides)
        if problems:
            raise SweepError("pre-flight of the sweep's runs failed; nothing was queued:\n  - " + "\n  - ".join(problems))
        print(f"sspo-eval sweep-check: every run of {args.manifest} composes and passes the pre-flight")
        return 0
    try:
        spec = spec_from_args(args)
    except argparse.ArgumentTypeError as exc:
        raise SweepError(f"--benchmarks: {exc}") from None
    indices = None
    if args.index:
        try:
            indices = [int(x) for x in args.index.split(",") if x.strip()]
        except ValueError:
            raise SweepError(f"--index {args.index!r}: expected comma-separated manifest rows") from None
    if args.table_only:
        items = None
    else:
        items = evaluate(args.sweep_dir, spec, args.data_dir, indices, backend=args.backend,
                         hf_batch_size=args.hf_batch_size, verify_timeout_s=args.verify_timeout_s,
                         num_procs=args.num_procs)
    table, summary = tabulate(args.sweep_dir, spec, items, baseline=args.baseline)
    print(table.read_text(), end="")
    print(f"table: {table}\nsummary: {table.with_name('summary.json')}")
    failed = [r["name"] for r in summary["runs"] if r["status"] == "evaluation failed"
              and (indices is None or r["index"] in indices)]
    return 1 if failed and not args.table_only else 0
