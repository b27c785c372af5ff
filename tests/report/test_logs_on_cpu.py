"""Reading verl's logs: JSONL parts and TensorBoard event files of real CPU runs, and bad input."""

from __future__ import annotations

import json
import os

import pytest

from sspo_verl.report.logs import MetricsNotFoundError, find_sources, read_jsonl, read_run_metrics
from tests.report.fixture_runs import FIXTURE_RUNS, RUN_NAMES, raw_steps


@pytest.mark.parametrize("name", RUN_NAMES)
def test_jsonl_of_real_runs_read_as_logged(name):
    run_dir = os.path.join(FIXTURE_RUNS, name)
    steps, source, files = read_run_metrics(run_dir)
    assert source == "jsonl" and files == find_sources(run_dir)["jsonl"]
    assert steps == raw_steps(run_dir)
    assert 0 in steps and set(steps[0]) == {k for k in steps[0] if k.startswith("val-")}  # val before training
    assert steps[1]["critic/score/mean"] > 0 and "actor/diag/token/clipfrac" in steps[1]


def test_the_resumed_real_run_keeps_the_steps_of_both_attempts():
    """grpo seed 1: attempt 1 trained steps 1-2 (checkpoint at 2), attempt 2 resumed and trained step 3."""
    run_dir = os.path.join(FIXTURE_RUNS, "grpo-tiny-seed1")
    assert [os.path.basename(f) for f in find_sources(run_dir)["jsonl"]] == ["metrics.1.jsonl", "metrics.jsonl"]
    first = {r["step"] for r in read_jsonl(os.path.join(run_dir, "metrics.1.jsonl"))}
    second = {r["step"] for r in read_jsonl(os.path.join(run_dir, "metrics.jsonl"))}
    assert first == {0, 1, 2} and 3 in second and 1 not in second
    steps, _, _ = read_run_metrics(run_dir)
    assert sorted(steps) == [0, 1, 2, 3]
    assert all("critic/score/mean" in steps[s] for s in (1, 2, 3))


@pytest.mark.parametrize("name", RUN_NAMES)
def test_tensorboard_of_real_runs_matches_jsonl(name):
    run_dir = os.path.join(FIXTURE_RUNS, name)
    jsonl, _, _ = read_run_metrics(run_dir, "jsonl")
    board, source, files = read_run_metrics(run_dir, "tensorboard")
    assert source == "tensorboard" and files and all(os.sep + "tensorboard" + os.sep in f for f in files)
    assert sorted(board) == sorted(jsonl)
    compared = 0
    for step, row in jsonl.items():
        for key, value in row.items():
            if key in board[step]:  # the JSONL fixture is trimmed to the keys the report reads
                assert board[step][key] == pytest.approx(value, rel=1e-6, abs=1e-6)  # float32 in TensorBoard
                compared += 1
    assert compared >= 20 * len(jsonl) - 20


def test_a_partly_written_last_line_is_skipped_and_a_bad_line_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "data": {"a": 1.5, "s": "text", "b": true}}\n{"step": 2, "data": {"a"')
    steps, _, _ = read_run_metrics(os.fspath(tmp_path))
    assert steps == {1: {"a": 1.5}}  # non-numeric values skipped; the half line ignored
    path.write_text('{"step": 1, "data": {"a": 1}}\nnot json\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a verl file-logger record"):
        read_run_metrics(os.fspath(tmp_path))


def test_a_directory_without_metrics_is_an_error_naming_it(tmp_path):
    with pytest.raises(MetricsNotFoundError, match=f"{tmp_path}: no metrics found"):
        read_run_metrics(os.fspath(tmp_path))
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(MetricsNotFoundError, match="hold no logged step"):
        read_run_metrics(os.fspath(tmp_path))
    with pytest.raises(MetricsNotFoundError, match="not a directory"):
        read_run_metrics(os.fspath(tmp_path / "nope"))
    with pytest.raises(ValueError, match="source='csv'"):
        read_run_metrics(os.fspath(tmp_path), "csv")


def test_latest_value_per_step_and_metric_within_one_file(tmp_path):
    records = [{"step": 2, "data": {"a": 1.0, "b": 2.0}}, {"step": 2, "data": {"a": 3.0}}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    steps, _, _ = read_run_metrics(os.fspath(tmp_path))
    assert steps == {2: {"a": 3.0, "b": 2.0}}
