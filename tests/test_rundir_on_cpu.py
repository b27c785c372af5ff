"""sspo_verl.rundir: a rerun with another training config is refused with the diff, a fresh attempt moves the
earlier one aside (checkpoints, metric log parts, TensorBoard) instead of overwriting it, a resume keeps the record
and its metric log as the next part, and a launch that trains nothing takes back what it wrote. Real files in a
temporary run dir laid out as sspo-train and verl write it."""

from __future__ import annotations

import datetime
import os

import pytest
import yaml

from sspo_verl.report.logs import read_run_metrics
from sspo_verl.rundir import (
    RECORD,
    SUPERSEDED_DIR,
    VERL_CONFIG,
    Footprint,
    RerunRefused,
    metric_log_parts,
    prepare_attempt,
    read_record,
    training_diff,
)

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5)
CONFIG = {"seed": 1, "actor_rollout_ref": {"actor": {"optim": {"lr": 1e-6}, "clip_ratio_high": 0.28}},
          "trainer": {"total_training_steps": 4, "logger": ["console", "file"]}}


def _run_dir(tmp_path, steps=(1, 2), config=CONFIG):
    """A run dir after an attempt: record, checkpoints global_step_<n> with verl's tracker, a metric log."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for step in steps:
        (run / "checkpoints" / f"global_step_{step}").mkdir()
        (run / "checkpoints" / f"global_step_{step}" / "model.pt").write_text(f"weights {step}")
    (run / "checkpoints" / "latest_checkpointed_iteration.txt").write_text(str(max(steps)))
    (run / "metrics.jsonl").write_text("".join(f'{{"step": {s}}}\n' for s in steps))
    (run / RECORD).write_text(yaml.safe_dump(config))
    return run


def _attempt(run, config=CONFIG, **kw):
    kw.setdefault("resumes", True)
    return prepare_attempt(str(run), config, checkpoint_dir=str(run / "checkpoints"),
                           metrics_path=str(run / "metrics.jsonl"), now=NOW, **kw)


def _changed(**actor):
    return {**CONFIG, "actor_rollout_ref": {"actor": {**CONFIG["actor_rollout_ref"]["actor"], **actor}}}


def test_training_diff_ignores_bookkeeping_and_keeps_seeds():
    flat = {"seed": 1, "trainer.total_training_steps": 4, "a.lr": 1.0, "ray_kwargs.x": 1, "output_dir": "/a"}
    assert training_diff(flat, {**flat, "trainer.total_training_steps": 8, "ray_kwargs.x": 2, "output_dir": "/b"}) == {}
    assert training_diff(flat, {**flat, "seed": 2, "a.lr": 2.0}) == {"a.lr": (1.0, 2.0), "seed": (1, 2)}
    assert training_diff(flat, {**flat, "a.new": 3}) == {"a.new": (None, 3)}


def test_training_diff_counts_the_trainer_mode():
    # an async checkpoint holds prompts in flight that a sync resume drops; the mode changes where data come from
    flat = {"trainer.v1.trainer_mode": "colocate_async", "trainer.v1.sampler.max_off_policy_threshold": 8}
    assert training_diff(flat, {**flat, "trainer.v1.trainer_mode": "sync"}) == {
        "trainer.v1.trainer_mode": ("colocate_async", "sync")}
    assert list(training_diff(flat, {**flat, "trainer.v1.sampler.max_off_policy_threshold": 2})) == [
        "trainer.v1.sampler.max_off_policy_threshold"]


def test_a_rerun_with_a_changed_training_config_is_refused_with_the_diff(tmp_path):
    run = _run_dir(tmp_path)
    with pytest.raises(RerunRefused) as info:
        _attempt(run, _changed(**{"optim": {"lr": 2e-6}, "clip_ratio_high": 0.4}))
    text = str(info.value)
    assert "actor_rollout_ref.actor.optim.lr: 1e-06 -> 2e-06" in text
    assert "actor_rollout_ref.actor.clip_ratio_high: 0.28 -> 0.4" in text
    assert "trainer.experiment_name" in text and "on_config_change=new_attempt" in text
    # nothing moved, nothing rewritten
    assert yaml.safe_load((run / RECORD).read_text()) == CONFIG
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[:2] == ["global_step_1", "global_step_2"]
    with pytest.raises(RerunRefused):  # a dry run refuses the same way
        _attempt(run, _changed(clip_ratio_high=0.4), dry_run=True)


def test_new_attempt_moves_the_earlier_attempt_aside(tmp_path):
    run = _run_dir(tmp_path)
    starts, moves = _attempt(run, _changed(clip_ratio_high=0.4), on_config_change="new_attempt")
    assert starts is True  # the caller writes the new record; verl finds no checkpoint and starts over
    old = run / "superseded" / "20260102-030405"
    assert (old / "checkpoints" / "global_step_2" / "model.pt").read_text() == "weights 2"
    assert (old / "metrics.jsonl").exists() and yaml.safe_load((old / RECORD).read_text()) == CONFIG
    assert not (run / "checkpoints").exists() and not (run / "metrics.jsonl").exists() and not (run / RECORD).exists()
    assert len(moves) == 3


def test_verls_config_of_the_earlier_attempt_moves_with_it_and_stays_on_a_resume(tmp_path):
    run = _run_dir(tmp_path)
    (run / VERL_CONFIG).write_text(yaml.safe_dump(CONFIG))  # what verl's TaskRunner ran the attempt with
    assert _attempt(run)[0] is False  # a resume: the file stays (the new attempt rewrites it)
    assert (run / VERL_CONFIG).exists()
    starts, moves = _attempt(run, resumes=False)
    assert starts is True and (str(run / VERL_CONFIG), str(run / SUPERSEDED_DIR / "20260102-030405" / VERL_CONFIG)) in moves
    assert not (run / VERL_CONFIG).exists()


def test_a_fresh_attempt_never_overwrites_earlier_checkpoints(tmp_path):
    """The issue: resume_mode=disable after a 4-step run overwrote global_step_1..2 in place, 3..4 stayed."""
    run = _run_dir(tmp_path, steps=(1, 2, 3, 4))
    starts, _ = _attempt(run, resumes=False)  # same config, starting over
    assert starts is True
    old = run / "superseded" / "20260102-030405" / "checkpoints"
    assert sorted(p.name for p in old.iterdir()) == [
        "global_step_1", "global_step_2", "global_step_3", "global_step_4", "latest_checkpointed_iteration.txt"]
    assert not (run / "checkpoints").exists()


def test_a_resume_with_the_same_training_config_keeps_checkpoints_and_record(tmp_path):
    run = _run_dir(tmp_path)
    longer = {**CONFIG, "trainer": {**CONFIG["trainer"], "total_training_steps": 8}}  # bookkeeping only
    starts, moves = _attempt(run, longer)
    assert starts is False
    assert moves == [(str(run / "metrics.jsonl"), str(run / "metrics.1.jsonl"))]
    assert (run / "checkpoints" / "global_step_2").is_dir() and yaml.safe_load((run / RECORD).read_text()) == CONFIG


def test_a_record_without_an_earlier_attempt_is_replaced(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / RECORD).write_text(yaml.safe_dump(CONFIG))  # a dry run, or a run that died before step 1
    assert _attempt(run, _changed(clip_ratio_high=0.4), resumes=False) == (True, [])


def test_a_dry_run_moves_nothing_and_keeps_an_earlier_record(tmp_path):
    run = _run_dir(tmp_path)
    assert _attempt(run, resumes=False, dry_run=True) == (False, [])
    assert (run / "checkpoints" / "global_step_1").is_dir() and (run / "metrics.jsonl").exists()


def test_an_unknown_on_config_change_is_refused(tmp_path):
    with pytest.raises(ValueError, match="on_config_change='keep'"):
        _attempt(_run_dir(tmp_path), on_config_change="keep")


def test_an_unreadable_record_is_refused_naming_the_file(tmp_path):
    run = _run_dir(tmp_path)
    (run / RECORD).write_text("- a list, not sspo-train's config\n")
    with pytest.raises(ValueError, match=f"{RECORD}: expected a mapping"):
        _attempt(run)
    (run / RECORD).write_text("seed: [1\n")
    with pytest.raises(ValueError, match=f"(?s){RECORD}: not readable YAML .*fix or remove it"):
        read_record(str(run))
    assert (run / "metrics.jsonl").exists() and not (run / "metrics.1.jsonl").exists()  # nothing moved


def _write(path, steps, value):
    with open(path, "w", encoding="utf-8") as fh:
        for step in steps:
            fh.write(f'{{"step": {step}, "data": {{"critic/score/mean": {value + step}}}}}\n')


def _log_attempt(run, resumes, **kw):
    """An attempt with the file logger on and no checkpoint or record (the metric log's own rules)."""
    return prepare_attempt(str(run), {}, checkpoint_dir=str(run / "checkpoints"), resumes=resumes,
                           metrics_path=os.fspath(run / "metrics.jsonl"), now=NOW, **kw)[1]


def test_resumed_attempts_become_numbered_parts_and_every_step_is_read(tmp_path):
    path = os.fspath(tmp_path / "metrics.jsonl")
    _write(path, [1, 2, 3], 0.0)  # attempt 1 reached step 3, checkpoint at 2
    assert _log_attempt(tmp_path, True) == [(path, os.fspath(tmp_path / "metrics.1.jsonl"))]
    _write(path, [3, 4], 10.0)  # attempt 2 redid step 3, then step 4
    _log_attempt(tmp_path, True)
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
    moved = _log_attempt(tmp_path, True)
    assert os.path.basename(moved[0][1]) == "metrics.11.jsonl"


def test_an_empty_log_is_not_kept_as_a_part(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"")  # an attempt that died before its first step
    assert _log_attempt(tmp_path, True) == []
    assert metric_log_parts(os.fspath(path)) == [os.fspath(path)]


def test_a_fresh_attempt_moves_every_log_part_and_tensorboard_aside(tmp_path):
    path = os.fspath(tmp_path / "metrics.jsonl")
    _write(tmp_path / "metrics.1.jsonl", [1], 0.0)
    _write(path, [2], 0.0)
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events.out.tfevents.1.host.1.0").write_bytes(b"x")
    moves = _log_attempt(tmp_path, False, tensorboard_dir=os.fspath(tmp_path / "tensorboard"))
    target = tmp_path / SUPERSEDED_DIR / "20260102-030405"
    assert [os.path.basename(t) for _, t in moves] == ["metrics.1.jsonl", "metrics.jsonl", "tensorboard"]
    assert (target / "metrics.1.jsonl").is_file() and (target / "tensorboard").is_dir()
    assert metric_log_parts(path) == [] and not (tmp_path / "tensorboard").exists()
    # the same second again: a second directory, nothing overwritten
    _write(path, [1], 0.0)
    _log_attempt(tmp_path, False)
    assert (tmp_path / SUPERSEDED_DIR / "20260102-030405-2" / "metrics.jsonl").is_file()
    assert _log_attempt(tmp_path, False) == []  # nothing left to move


def test_sspo_train_decides_resume_like_verl(tmp_path, monkeypatch):
    """sspo-train's attempt preparation (train._prepare_attempt): resume_mode=auto resumes only with verl's
    checkpoint tracker present; an attempt that starts over moves the earlier logs and checkpoints aside."""
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


def _tree(root):
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_a_footprint_takes_back_what_a_launch_added_to_an_existing_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra" / "20260101-000000-000000").mkdir(parents=True)
    (run_dir / ".hydra" / "20260101-000000-000000" / "overrides.yaml").write_text("- seed=1\n")
    (run_dir / "train.log").write_text("first launch\n")
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n')
    before = _tree(run_dir)
    footprint = Footprint.before(str(run_dir))
    # what Hydra's job set-up does: a record of its own, lines appended to the log; another process's file grows
    (run_dir / ".hydra" / "20260102-000000-000000").mkdir()
    (run_dir / ".hydra" / "20260102-000000-000000" / "config.yaml").write_text("x: 1\n")
    with open(run_dir / "train.log", "a") as f:
        f.write("refused launch\n")
    (run_dir / "stray.log").write_text("not a log of this launch\n")
    footprint.undo([str(run_dir / "train.log")])
    after = _tree(run_dir)
    assert after.pop("stray.log")[0] == b"not a log of this launch\n"  # only the launch's own files are undone
    assert after == before


def test_a_footprint_removes_the_directories_a_launch_created(tmp_path):
    (tmp_path / "out").mkdir()
    run_dir = tmp_path / "out" / "sspo" / "run"
    footprint = Footprint.before(str(run_dir))
    assert footprint.created_root == str(tmp_path / "out" / "sspo")
    (run_dir / ".hydra" / "t").mkdir(parents=True)
    (run_dir / "train.log").write_text("x\n")
    footprint.undo([str(run_dir / "train.log")])
    assert list((tmp_path / "out").iterdir()) == []


def test_the_driver_prepares_an_attempt_without_the_report_package(tmp_path):
    """sspo-train reads and writes the run dir through sspo_verl.rundir alone (a fresh interpreter: a resume that
    renames the metric log and a fresh attempt that moves it aside, then no sspo_verl.report module loaded)."""
    import subprocess
    import sys

    _write(tmp_path / "metrics.jsonl", [1], 0.0)
    code = f"""
import os, sys
from omegaconf import OmegaConf
import sspo_verl.train as train
run = {os.fspath(tmp_path)!r}
config = OmegaConf.create({{"trainer": {{"resume_mode": "resume_path", "resume_from_path": run + "/checkpoints/x",
    "default_local_dir": run + "/checkpoints"}}, "ray_kwargs": {{"ray_init": {{}}}}}})
os.environ["VERL_FILE_LOGGER_PATH"] = run + "/metrics.jsonl"
assert not train._prepare_attempt(config, run, ["file"], False)
config.trainer.resume_mode = "disable"
assert train._prepare_attempt(config, run, ["file"], False)
print(sorted(m for m in sys.modules if m.startswith("sspo_verl.report")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"
    assert (tmp_path / SUPERSEDED_DIR / os.listdir(tmp_path / SUPERSEDED_DIR)[0] / "metrics.1.jsonl").is_file()
