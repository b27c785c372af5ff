"""Metric log parts: a resumed attempt keeps the earlier steps, a new run moves the old logs aside."""

from __future__ import annotations

import datetime
import os

from sspo_verl.report.logs import read_run_metrics
from sspo_verl.report.parts import SUPERSEDED_DIR, metric_log_parts, prepare_attempt

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5)


def _write(path, steps, value):
    with open(path, "w", encoding="utf-8") as fh:
        for step in steps:
            fh.write(f'{{"step": {step}, "data": {{"critic/score/mean": {value + step}}}}}\n')


def test_resumed_attempts_become_numbered_parts_and_every_step_is_read(tmp_path):
    path = os.fspath(tmp_path / "metrics.jsonl")
    _write(path, [1, 2, 3], 0.0)  # attempt 1 reached step 3, checkpoint at 2
    assert prepare_attempt(path, resumes=True) == [(path, os.fspath(tmp_path / "metrics.1.jsonl"))]
    _write(path, [3, 4], 10.0)  # attempt 2 redid step 3, then step 4
    prepare_attempt(path, resumes=True)
    _write(path, [5], 100.0)  # attempt 3
    assert [os.path.basename(p) for p in metric_log_parts(path)] == ["metrics.1.jsonl", "metrics.2.jsonl",
                                                                     "metrics.jsonl"]
    steps, source, files = read_run_metrics(os.fspath(tmp_path))
    assert source == "jsonl" and len(files) == 3
    # step 3 from attempt 2 (the latest), the others from the attempt that logged them
    assert {s: row["critic/score/mean"] for s, row in steps.items()} == {1: 1.0, 2: 2.0, 3: 13.0, 4: 14.0, 5: 105.0}


def test_parts_are_ordered_numerically_not_by_name(tmp_path):
    for n in (10, 2, 1):
        _write(tmp_path / f"metrics.{n}.jsonl", [n], 0.0)
    _write(tmp_path / "other.3.jsonl", [3], 0.0)
    names = [os.path.basename(p) for p in metric_log_parts(os.fspath(tmp_path / "metrics.jsonl"))]
    assert names == ["metrics.1.jsonl", "metrics.2.jsonl", "metrics.10.jsonl"]
    _write(tmp_path / "metrics.jsonl", [11], 0.0)
    moved = prepare_attempt(os.fspath(tmp_path / "metrics.jsonl"), resumes=True)
    assert os.path.basename(moved[0][1]) == "metrics.11.jsonl"


def test_an_empty_log_is_not_kept_as_a_part(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"")  # an attempt that died before its first step
    assert prepare_attempt(os.fspath(path), resumes=True) == []
    assert metric_log_parts(os.fspath(path)) == [os.fspath(path)]


def test_a_new_run_moves_earlier_logs_and_tensorboard_aside(tmp_path):
    path = os.fspath(tmp_path / "metrics.jsonl")
    _write(tmp_path / "metrics.1.jsonl", [1], 0.0)
    _write(path, [2], 0.0)
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events.out.tfevents.1.host.1.0").write_bytes(b"x")
    moves = prepare_attempt(path, resumes=False, tensorboard_dir=os.fspath(tmp_path / "tensorboard"), now=NOW)
    target = tmp_path / SUPERSEDED_DIR / "20260102-030405"
    assert [os.path.basename(t) for _, t in moves] == ["metrics.1.jsonl", "metrics.jsonl", "tensorboard"]
    assert (target / "metrics.1.jsonl").is_file() and (target / "tensorboard").is_dir()
    assert metric_log_parts(path) == [] and not (tmp_path / "tensorboard").exists()
    # the same second again: a second directory, nothing overwritten
    _write(path, [1], 0.0)
    prepare_attempt(path, resumes=False, now=NOW)
    assert (tmp_path / SUPERSEDED_DIR / "20260102-030405-2" / "metrics.jsonl").is_file()
    assert prepare_attempt(path, resumes=False, now=NOW) == []  # nothing left to move


def test_sspo_train_decides_resume_like_verl(tmp_path, monkeypatch):
    """sspo-train's attempt preparation (sspo_verl.rundir): resume_mode=auto resumes only with verl's checkpoint
    tracker present; an attempt that starts over moves the earlier logs and checkpoints aside."""
    from omegaconf import OmegaConf

    import sspo_verl.train as train

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.delenv("VERL_FILE_LOGGER_PATH", raising=False)
    config = OmegaConf.create({
        "trainer": {"resume_mode": "auto", "default_local_dir": os.fspath(run_dir / "checkpoints")},
        "ray_kwargs": {"ray_init": {"runtime_env": {"env_vars": {
            "VERL_FILE_LOGGER_PATH": os.fspath(run_dir / "metrics.jsonl")}}}},
    })
    _write(run_dir / "metrics.jsonl", [1, 2], 0.0)
    assert train._prepare_attempt(config, str(run_dir), ["console", "file"], False)  # no checkpoint: a new run
    assert not (run_dir / "metrics.jsonl").exists() and (run_dir / SUPERSEDED_DIR).is_dir()

    _write(run_dir / "metrics.jsonl", [1, 2], 0.0)
    (run_dir / "checkpoints" / "global_step_2").mkdir(parents=True)
    (run_dir / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("2")
    assert not train._prepare_attempt(config, str(run_dir), ["console", "file"], False)  # resumes
    assert (run_dir / "metrics.1.jsonl").is_file()

    config.trainer.resume_mode = "disable"
    _write(run_dir / "metrics.jsonl", [1], 0.0)
    assert train._prepare_attempt(config, str(run_dir), ["console", "file"], False)
    assert metric_log_parts(os.fspath(run_dir / "metrics.jsonl")) == []
    assert not (run_dir / "checkpoints").exists()  # moved aside with the logs, never overwritten
