"""sspo-report on a sweep directory with an ``sspo-eval sweep`` evaluation: the table and the dot-and-whisker
figure join the training curves; accuracy against step where several steps were evaluated."""

from __future__ import annotations

import json
import os
from pathlib import Path


from sspo_verl.eval import sweep
from sspo_verl.eval.decoding import DecodingConfig
from sspo_verl.report.cli import main as report_main

ALGOS = ("grpo", "gspo", "sspo")


def _accuracy(algo: str, seed: int, step: int, bench: str) -> float:
    """Made-up accuracies with a clear ordering (sspo > gspo > grpo), growing with step, some seed noise."""
    base = {"grpo": 30.0, "gspo": 34.0, "sspo": 38.0}[algo] + (5.0 if bench == "amc23" else 0.0)
    return base + 0.2 * step + (seed - 2) * 1.5


def write_evaluation(sweep_dir: Path, steps: tuple[int, ...]) -> Path:
    spec = sweep.EvalSpec(("math500", "amc23"), DecodingConfig(), None, steps)
    items = []
    for algo in ALGOS:
        for seed in (1, 2, 3):
            run = sweep.Run(0, f"abl-{algo}-seed{seed}", sweep_dir / f"abl-{algo}-seed{seed}", algo, seed, "")
            if (algo, seed) == ("gspo", 3):
                items.append(sweep.RunEval(run, None, "failed", "training exited with status 1"))
                continue
            for step in steps:
                bench = {b: {"accuracy": _accuracy(algo, seed, step, b)} for b in spec.benchmarks}
                items.append(sweep.RunEval(run, step, "evaluated", results={"benchmarks": bench, "backend": "hf"}))
    summary = sweep.summarize(items, spec)
    out = sweep_dir / "eval" / spec.key
    out.mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "table.md").write_text(sweep.markdown(summary, sweep_dir.name))
    return out / "summary.json"


def test_report_of_a_sweep_shows_its_evaluation_per_setting_and_against_step(fixture_runs, tmp_path):
    sweep_dir = Path(next(iter(fixture_runs.values()))).parent  # the fixture runs' parent, as a sweep directory
    write_evaluation(sweep_dir, (10, 20, 30))
    out = tmp_path / "report"
    assert report_main([str(sweep_dir), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "## Evaluation" in report and "![evaluation](evaluation.png)" in report
    assert "![evaluation_steps](evaluation_steps.png)" in report
    assert "| sspo @ step 30 | 44.00 ± 3.73 (n=3) | 49.00 ± 3.73 (n=3) | 3/3 evaluated |" in report and "FAILED: abl-gspo-seed3" in report
    assert (out / "training.png").is_file()  # the training curves stay
    for name in ("evaluation.png", "evaluation_steps.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_step_draws_no_step_figure_and_a_rerun_removes_a_stale_one(fixture_runs, tmp_path):
    sweep_dir = Path(next(iter(fixture_runs.values()))).parent
    summary = write_evaluation(sweep_dir, (20,))
    out = tmp_path / "report"
    out.mkdir()
    (out / "evaluation_steps.png").write_bytes(b"stale")
    assert report_main([str(sweep_dir), "--out", str(out)]) == 0
    assert (out / "evaluation.png").is_file() and not (out / "evaluation_steps.png").exists()
    summary.write_text("{not json")
    assert report_main([str(sweep_dir), "--out", str(out)]) == 2


def test_a_sweep_without_evaluation_reports_training_only(fixture_runs, tmp_path):
    sweep_dir = Path(next(iter(fixture_runs.values()))).parent
    assert report_main([str(sweep_dir), "--out", str(tmp_path / "r")]) == 0
    assert "## Evaluation" not in (tmp_path / "r" / "report.md").read_text()
    assert not os.path.exists(tmp_path / "r" / "evaluation.png")
