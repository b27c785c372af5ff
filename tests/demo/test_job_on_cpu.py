"""run_job's bounds: a run that never logs a step, or stalls between steps, is ended with a clear message and
leaves no process behind. The trainer is replaced by small scripts that behave like a hanging run."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time

import psutil
import pytest

from sspo_verl.demo import job

# A stand-in for `sspo-train`: moves an earlier attempt's metric log aside as sspo-train does when it resumes
# (unless it refuses the rerun: exit 2, nothing touched), starts a child in its own session (as Ray starts its
# workers), writes `steps` metric records, then exits or sleeps.
_FAKE = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    run_dir, steps, then = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    log = os.path.join(run_dir, "metrics.jsonl")
    if then == "refuse":
        sys.exit(2)
    if os.path.exists(log):
        os.replace(log, os.path.join(run_dir, "metrics.1.jsonl"))
    # like a Ray worker: a child in its own session, outside the run's process group
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    open(os.path.join(run_dir, "child.pid"), "w").write(str(child.pid))
    with open(os.path.join(run_dir, "metrics.jsonl"), "ab", buffering=0) as fh:
        for s in range(1, steps + 1):
            fh.write((json.dumps({"step": s, "data": {"timing_s/step": 0.1, "critic/score/mean": s}}) + "\\n").encode())
            time.sleep(0.2)
    if then == "hang":
        time.sleep(600)
    child.kill()
    sys.exit(0 if then == "exit0" else 3)
    """
)


@pytest.fixture
def fake_trainer(monkeypatch, tmp_path):
    script = tmp_path / "fake_train.py"
    script.write_text(_FAKE)

    def use(steps, then):
        monkeypatch.setattr(job, "sspo_train_command", lambda overrides: [sys.executable, str(script), *overrides])
        return [str(tmp_path / "run"), str(steps), then]

    return use


def _child_gone(run_dir, timeout=15.0):
    pid = int(open(os.path.join(run_dir, "child.pid")).read())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.2)
    return False


def test_success_collects_every_step(fake_trainer, tmp_path):
    args = fake_trainer(3, "exit0")
    seen = []
    result = job.run_job("ok", args, args[0], on_step=seen.append, poll_s=0.1)
    assert result.ok, result.error
    assert [r["step"] for r in seen] == [1, 2, 3] == [r["step"] for r in result.records]
    assert result.series("critic/score/mean") == [1.0, 2.0, 3.0]
    assert result.startup_s is not None and result.returncode == 0
    assert result.peak_rss_gb > 0
    assert result.cpu_samples and result.cpu_samples[-1]["step"] <= 3 and result.cpu_samples[-1]["all_s"] > 0


def test_no_first_step_ends_the_run_with_the_startup_message(fake_trainer):
    args = fake_trainer(0, "hang")
    result = job.run_job("stuck", args, args[0], startup_timeout_s=2.0, poll_s=0.1)
    assert not result.ok and result.returncode is None
    assert "no training step logged within 2 s" in result.error and "num_cpus" in result.error
    assert _child_gone(args[0])  # the whole process group was ended


def test_a_stall_between_steps_ends_the_run(fake_trainer):
    args = fake_trainer(2, "hang")
    result = job.run_job("stall", args, args[0], step_timeout_s=2.0, poll_s=0.1)
    assert not result.ok and "no new step (or exit) for 2 s after step 2" in result.error
    assert len(result.records) == 2
    assert _child_gone(args[0])


def test_a_failing_run_reports_its_status_and_log(fake_trainer):
    args = fake_trainer(1, "fail")
    result = job.run_job("bad", args, args[0], poll_s=0.1)
    assert not result.ok and "exited with status 3" in result.error and "console.log" in result.error


def test_an_earlier_attempts_log_is_kept_and_not_taken_for_the_rerun(fake_trainer):
    args = fake_trainer(2, "exit0")
    os.makedirs(args[0])
    earlier = json.dumps({"step": 7, "data": {"critic/score/mean": 7}}) + "\n"
    with open(os.path.join(args[0], "metrics.jsonl"), "w") as fh:
        fh.write(earlier)
    result = job.run_job("rerun", args, args[0], poll_s=0.1)
    assert result.ok, result.error
    assert [r["step"] for r in result.records] == [1, 2]  # only the new attempt's records
    with open(os.path.join(args[0], "metrics.1.jsonl")) as fh:
        assert fh.read() == earlier  # moved aside by the trainer, not deleted by run_job

    args[1:] = ["0", "refuse"]  # a refused rerun writes nothing: the earlier log is neither read nor touched
    os.replace(os.path.join(args[0], "metrics.1.jsonl"), os.path.join(args[0], "metrics.jsonl"))
    result = job.run_job("refused", args, args[0], poll_s=0.1)
    assert result.returncode == 2 and result.records == []
    with open(os.path.join(args[0], "metrics.jsonl")) as fh:
        assert fh.read() == earlier


def test_read_metrics_skips_a_partial_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(json.dumps({"step": 1, "data": {}}).encode() + b"\n" + b'{"step": 2, "da')
    assert job.read_metrics(str(path)) == [{"step": 1, "data": {}}]
    assert job.read_metrics(str(tmp_path / "missing.jsonl")) == []
