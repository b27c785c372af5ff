"""Faults during real CPU runs of ``sspo-train`` (the real verl trainer, Ray, the tiny model, rollout=hf): nothing
is lost.

One run directory, one command, launched again after each fault (the tests run in this order and share it; three
real launches in all, the last two cases start no Ray):

    1. 5 steps, a checkpoint every step; kill -9 of the trainer's Ray worker (``ray::WorkerDict``) right after
       step 1 → sspo-train fails by itself within DIED_WITHIN_S, its log naming the dead worker and the checkpoint
       a rerun resumes from; every logged step's checkpoint intact
    2. the same command → resumes from the last checkpoint (no step retrained); SIGTERM of sspo-train right after
       its first step → it exits by itself, its Ray gone with it; checkpoints and both attempts' metric logs intact
    3. the same command → resumes from the last checkpoint, trains to step 5: one metrics history, steps 1-5
    4. the same command again → the run is finished: nothing trained, no file changed, no Ray started
    5. the same command with another learning rate → refused before Ray starts, naming the key; nothing changed

Launches 1-3 are bounded by ``sspo_verl.demo.job.run_job`` (start-up and per-step timeouts end the process group).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
import uuid

import psutil
import pytest

from sspo_verl.cpu.shm import leaked_segments
from sspo_verl.demo.job import JobResult, run_job, sspo_train_command
from sspo_verl.data.tiny_task import write_dataset
from sspo_verl.report.logs import read_run_metrics
from sspo_verl.rundir import metric_log_parts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

STARTUP_TIMEOUT_S = 420
STEP_TIMEOUT_S = 180
DIED_WITHIN_S = 60  # kill -9 of the trainer worker → sspo-train's exit [ours: Ray reports a dead actor at once]
TERM_WITHIN_S = 60  # SIGTERM → sspo-train's exit with every process of its Ray gone
FAULT_TAG = "SSPO_FAULT_TEST_TAG"  # in every process of a launch: <this module's run id>-<launch id>
STEPS = 5  # room for a fault that lands a step later than aimed (a step takes ~2 s here)


def _overrides(out_root, *extra):
    return [
        "hardware=cpu", "model=tiny", "rollout=hf", "algorithm=grpo", "seed=0", f"output_dir={out_root}",
        "trainer.project_name=faults", "trainer.experiment_name=grpo", "data.train_batch_size=4",
        "actor_rollout_ref.rollout.n=4", "data.max_response_length=16",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "trainer.total_epochs=100", "trainer.val_before_train=false", "trainer.test_freq=-1",
        "trainer.save_freq=1", f"trainer.total_training_steps={STEPS}", *extra,
    ]


def _tagged(tag):
    """Live processes of one launch, or of all launches of a prefix (the driver, Ray's own, every Ray worker: they
    inherit its environment)."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.environ().get(FAULT_TAG, "").startswith(tag):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _is_driver(proc) -> bool:
    try:
        return proc.cmdline()[1:3] == ["-m", "sspo_verl.train"]
    except psutil.Error:
        return False


def _wait_until(predicate, timeout_s, poll_s=0.2):
    """Seconds until ``predicate()`` held, or None if it did not within ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(poll_s)
    return None


def _exited(proc) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE  # the test's child: a zombie until run_job reaps it
    except psutil.NoSuchProcess:
        return True


def _checkpoints(run_dir):
    ckpt = os.path.join(run_dir, "checkpoints")
    steps = sorted(int(n.rsplit("_", 1)[1]) for n in os.listdir(ckpt) if n.startswith("global_step_"))
    with open(os.path.join(ckpt, "latest_checkpointed_iteration.txt"), encoding="utf-8") as f:
        return steps, int(f.read().strip())


def _snapshot(run_dir):
    """{path: (sha256, mtime_ns)} of every file under the run dir."""
    out = {}
    for root, _, files in os.walk(run_dir):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(path, run_dir)] = (digest, os.stat(path).st_mtime_ns)
    return out


def _changed(before, after):
    """Paths removed, changed (content or mtime) or added between two snapshots: a launch that trains nothing takes
    back Hydra's launch record and its lines of train.log (sspo_verl.train.LaunchFootprint), so nothing may differ."""
    paths = set(before) | set(after)
    return sorted(p for p in paths if before.get(p) != after.get(p))


def _log(result: JobResult) -> str:
    with open(result.console_log, encoding="utf-8", errors="replace") as f:
        return f.read()


def _steps_in(path):
    import json

    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["step"] for line in f]


class _Run:
    """The shared run directory and what each launch left (tests 2-5 need the earlier ones to have passed)."""

    def __init__(self, out_root, tiny_dir):
        self.out_root, self.tiny_dir = out_root, tiny_dir
        self.run_dir = os.path.join(out_root, "faults", "grpo")
        self.passed: set[str] = set()
        self.id, self.started = uuid.uuid4().hex[:12], time.time()
        self.killed_at = self.termed_at = 0  # the last step logged before each fault

    def launch(self, name, on_step=None, tag=None) -> JobResult:
        return run_job(name, _overrides(self.out_root), self.run_dir,
                       env={"SSPO_TINY_DIR": self.tiny_dir, FAULT_TAG: tag or self.tag()},
                       startup_timeout_s=STARTUP_TIMEOUT_S, step_timeout_s=STEP_TIMEOUT_S, on_step=on_step,
                       poll_s=0.2)

    def tag(self) -> str:
        return f"{self.id}-{uuid.uuid4().hex[:8]}"

    def run_cli(self, *extra) -> tuple[subprocess.CompletedProcess, float]:
        """sspo-train in a plain subprocess (no bound from run_job: these must end by themselves, quickly)."""
        start = time.monotonic()
        proc = subprocess.run(sspo_train_command(_overrides(self.out_root, *extra)), capture_output=True, text=True,
                              timeout=300, env={**os.environ, "SSPO_TINY_DIR": self.tiny_dir, FAULT_TAG: self.tag()})
        return proc, time.monotonic() - start

    def needs(self, case):
        if case not in self.passed:
            pytest.skip(f"needs the run left by {case!r}, which did not pass")


@pytest.fixture(scope="module")
def run(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    shutil.copytree(tiny_model_dir, root / "model")
    write_dataset(os.fspath(root / "data"), n_train=64, n_val=8, seed=0)
    run = _Run(os.fspath(root / "runs"), os.fspath(root))
    yield run
    left = [f"{p.pid} {' '.join(p.cmdline())[:80]}" for p in _tagged(run.id)]
    for proc in _tagged(run.id):  # ours only (the tag): never another user's Ray
        proc.kill()
    leaked = leaked_segments(run.started)
    for path in leaked:
        os.unlink(path)
    assert not left, f"processes of the fault tests' runs still alive after them: {left}"
    assert not leaked, f"/dev/shm segments left by the fault tests' runs: {leaked}"


def test_a_killed_trainer_worker_fails_the_run_at_once_naming_it(run):
    tag, killed = run.tag(), {}

    def kill_worker(record):  # at once after step 1's record (and checkpoint): during step 2, or 3 on a slow poll
        if killed:
            return
        (driver,) = [p for p in _tagged(tag) if _is_driver(p)]
        workers = [p for p in _tagged(tag) if " ".join(p.cmdline()).startswith("ray::WorkerDict")]
        assert workers, "no ray::WorkerDict process of this run"
        killed["pid"] = workers[0].pid
        os.kill(workers[0].pid, signal.SIGKILL)
        killed["exit_s"] = _wait_until(lambda: _exited(driver), DIED_WITHIN_S)

    first = run.launch("kill9", kill_worker, tag)
    assert killed, first.error
    assert killed["exit_s"] is not None, f"sspo-train still running {DIED_WITHIN_S} s after its worker died"
    assert first.returncode not in (0, None), first.error  # failed by itself, not ended by run_job's bound
    logged = [r["step"] for r in first.records]
    assert logged and logged == list(range(1, logged[-1] + 1)) and logged[-1] < STEPS - 2, logged
    run.killed_at = logged[-1]
    assert _checkpoints(run.run_dir) == (logged, run.killed_at)  # every logged step's checkpoint, whole
    log = _log(first)
    assert "ActorDiedError" in log and f"pid: {killed['pid']}" in log, log[-3000:]  # Ray's own words
    latest = os.path.join(run.run_dir, "checkpoints", f"global_step_{run.killed_at}")
    assert (f"the run ended early: the Ray worker WorkerDict (pid {killed['pid']}) died; rerunning the same command "
            f"resumes from {latest}.") in log, log[-3000:]
    print(f"\nkill -9 of WorkerDict pid {killed['pid']} after step {run.killed_at}: sspo-train exited "
          f"{killed['exit_s']:.1f} s later")
    run.passed.add("kill9")


def test_the_rerun_resumes_and_sigterm_mid_step_keeps_checkpoints_and_logs(run):
    run.needs("kill9")
    tag, termed = run.tag(), {}

    def term_driver(record):  # at once after the first resumed step's record: during the next step
        if termed:
            return
        (driver,) = [p for p in _tagged(tag) if _is_driver(p)]
        driver.send_signal(signal.SIGTERM)
        termed["exit_s"] = _wait_until(lambda: _exited(driver), TERM_WITHIN_S)
        termed["gone_s"] = _wait_until(lambda: not _tagged(tag), 15)  # its Ray shut down with it
        termed["left"] = [" ".join(p.cmdline())[:80] for p in _tagged(tag)]

    second = run.launch("sigterm", term_driver, tag)
    assert termed, second.error
    assert termed["exit_s"] is not None, f"sspo-train still running {TERM_WITHIN_S} s after SIGTERM"
    assert termed["gone_s"] is not None, f"processes of the run left after sspo-train's exit: {termed['left']}"
    assert second.returncode == 128 + signal.SIGTERM, second.error
    logged = [r["step"] for r in second.records]
    assert logged and logged == list(range(run.killed_at + 1, logged[-1] + 1)), logged  # resumed, none retrained
    assert logged[-1] < STEPS, logged
    run.termed_at = logged[-1]
    log = _log(second)
    ckpt = os.path.join(run.run_dir, "checkpoints")
    assert f"Resuming from {ckpt}/global_step_{run.killed_at}" in log  # verl names the checkpoint it loaded
    assert _checkpoints(run.run_dir) == (list(range(1, run.termed_at + 1)), run.termed_at)
    assert (f"the run ended early: stopped by SIGTERM; rerunning the same command resumes from "
            f"{ckpt}/global_step_{run.termed_at}.") in log, log[-3000:]
    parts = metric_log_parts(os.path.join(run.run_dir, "metrics.jsonl"))
    assert [os.path.basename(p) for p in parts] == ["metrics.1.jsonl", "metrics.jsonl"]
    assert [_steps_in(p) for p in parts] == [list(range(1, run.killed_at + 1)), logged]  # each attempt's log whole
    print(f"\nSIGTERM after step {run.termed_at}: sspo-train exited {termed['exit_s']:.1f} s later, its processes "
          f"gone {termed['gone_s']:.1f} s after that")
    run.passed.add("sigterm")


def test_the_rerun_after_sigterm_resumes_and_finishes_one_history(run):
    run.needs("sigterm")
    third = run.launch("finish")
    assert third.ok, third.error
    assert [r["step"] for r in third.records] == list(range(run.termed_at + 1, STEPS + 1))
    assert f"global_step_{run.termed_at}" in _log(third)
    assert _checkpoints(run.run_dir) == (list(range(1, STEPS + 1)), STEPS)
    metrics, _, files = read_run_metrics(run.run_dir)
    assert sorted(metrics) == list(range(1, STEPS + 1)) and len(files) == 3  # one part per attempt, one history
    assert all("actor/pg_loss" in metrics[s] for s in metrics)
    run.passed.add("finish")


def test_rerunning_the_finished_run_changes_nothing(run):
    run.needs("finish")
    before = _snapshot(run.run_dir)
    proc, wall_s = run.run_cli()
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert f"is finished: its checkpoint global_step_{STEPS} is at trainer.total_training_steps={STEPS}" in out, out[-3000:]
    assert "Started a local Ray instance" not in out  # decided before Ray starts
    after = _snapshot(run.run_dir)
    assert _changed(before, after) == []  # nothing trained, moved or rewritten (verl alone trains a step past the end)
    assert any(p.startswith("checkpoints/global_step_") for p in after)  # the snapshot sees the checkpoints
    print(f"\nrerun of the finished run: exit 0 after {wall_s:.1f} s")
    run.passed.add("rerun")


def test_a_rerun_with_a_changed_config_is_refused_and_changes_nothing(run):
    run.needs("finish")
    before = _snapshot(run.run_dir)
    proc, _ = run.run_cli("actor_rollout_ref.actor.optim.lr=1e-2")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "actor_rollout_ref.actor.optim.lr: 0.003 -> 0.01" in proc.stderr, proc.stderr[-3000:]
    assert "on_config_change=new_attempt" in proc.stderr and "Traceback" not in proc.stderr
    assert _changed(before, _snapshot(run.run_dir)) == []
    metrics, _, _ = read_run_metrics(run.run_dir)
    assert sorted(metrics) == list(range(1, STEPS + 1))  # never mixed into the run's history
