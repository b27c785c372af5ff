"""One ``sspo-train`` run in a subprocess, bounded in time, watched step by step.

The demo, the end-to-end tests and the CPU step-time benchmark all start the real trainer the same way:
``python -m sspo_verl.train <overrides>`` in its own process group, with verl's file logger writing one JSON
record per step to ``<run dir>/metrics.jsonl``. :func:`run_job` follows that file while the run goes, calls
``on_step`` for each new record, samples the memory of every process of the run, and ends the run — the whole
process group, Ray included — when it exceeds a bound:

* ``startup_timeout_s`` until the first step is logged (Ray, workers, model and rollout start-up). A run that
  never gets there is most often Ray waiting for resources it will never get (e.g. TransferQueue storage units
  against too few logical CPUs): the error says so, with the tail of the log.
* ``step_timeout_s`` between two logged steps.

It never hangs and never leaves processes behind: every process of the run (the driver, Ray, every Ray worker,
which Ray starts outside the driver's process group) carries ``SSPO_JOB_TAG=<unique id>`` in its environment;
on a bound they get SIGTERM, then SIGKILL after a grace period. The same tag finds them for the memory samples.
Once they are gone, the ``/dev/shm`` segments the run left behind are removed (``sspo_verl.cpu.shm``).

A metric log already in the run directory belongs to an earlier attempt and is kept: ``sspo-train`` moves it aside
(``metrics.<n>.jsonl`` when the attempt resumes, ``superseded/`` when it starts over; :mod:`sspo_verl.rundir`)
before verl writes a new ``metrics.jsonl``, and :func:`run_job` follows only that new file (another inode), so a
rerun's records are its own and the earlier attempt's steps stay in the run's history.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Optional

from sspo_verl.cpu import shm
from sspo_verl.rundir import METRICS_FILE

__all__ = ["JobResult", "read_metrics", "run_job", "sspo_train_command"]


@dataclass
class JobResult:
    """What a run left behind.

    Attributes:
        name: label of the run (for messages).
        returncode: the trainer's exit status (negative: killed by a signal), None if it had to be ended.
        wall_s: launch to exit, seconds.
        startup_s: launch to the first logged step, seconds (None if no step was logged).
        records: verl's file-logger records ``{"step": int, "data": {metric: value}}``, in order.
        run_dir: the run directory (``metrics.jsonl``, ``resolved_config.yaml``, checkpoints).
        console_log: the run's stdout + stderr.
        peak_rss_gb: peak of the summed resident set size of all the run's processes (sampled every
            ``memory_every_s``; pages shared between processes count once per process).
        error: why the run failed or was ended, with the log tail; None when it succeeded.
        cpu_samples: CPU seconds (user + system) used so far by all the run's processes (``all_s``) and by
            verl's trainer workers (``trainer_s``, the ``ray::WorkerDict`` processes: log-probs and the actor
            update), sampled when each step's record appears (``step``). Unlike wall time, CPU time hardly
            depends on what else runs on the machine.
    """

    name: str
    returncode: Optional[int]
    wall_s: float
    startup_s: Optional[float]
    records: list[dict] = field(default_factory=list)
    run_dir: str = ""
    console_log: str = ""
    peak_rss_gb: float = 0.0
    error: Optional[str] = None
    cpu_samples: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def series(self, key: str) -> list[float]:
        """Values of one metric, one per step that logged it."""
        return [float(r["data"][key]) for r in self.records if key in r.get("data", {})]


def sspo_train_command(overrides: Sequence[str]) -> list[str]:
    """The command line of one ``sspo-train`` run with this interpreter."""
    return [sys.executable, "-m", "sspo_verl.train", *overrides]


def _file_id(path: str) -> Optional[tuple[int, int]]:
    """(device, inode) of a non-empty file, else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st.st_size > 0 else None


def read_metrics(path: str, skip: Optional[tuple[int, int]] = None) -> list[dict]:
    """All complete records of a verl file-logger JSONL file (a partly written last line is skipped); none while
    ``path`` is still the file ``skip`` names (``(device, inode)``: an earlier attempt's log)."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return []
    records = []
    with fh:
        st = os.fstat(fh.fileno())
        if skip is not None and (st.st_dev, st.st_ino) == skip:
            return []
        for line in fh:
            if line.endswith(b"\n"):
                records.append(json.loads(line))
    return records


def _log_tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 200_000))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


_TAG = "SSPO_JOB_TAG"


def _job_processes(tag: str) -> list:
    """Live processes of one run: every process whose environment carries ``SSPO_JOB_TAG=<tag>``.

    The driver, Ray's own processes and every Ray worker inherit the driver's environment, while Ray starts
    workers in their own sessions (outside the driver's process group), so the tag is what finds them all.
    """
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(_TAG) == tag:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _rss_bytes(procs) -> int:
    import psutil

    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def _cpu_seconds(procs) -> tuple[float, float]:
    """(all, trainer) CPU seconds of ``procs``; trainer = verl's ``ray::WorkerDict`` worker processes."""
    import psutil

    total = trainer = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            used = t.user + t.system
            total += used
            if " ".join(proc.cmdline()).startswith("ray::WorkerDict"):
                trainer += used
        except psutil.Error:
            continue
    return total, trainer


def _end_run(proc: subprocess.Popen, tag: str, grace_s: float = 20.0) -> None:
    """End a run: SIGTERM the driver's process group, then every process left with the run's tag; SIGKILL
    whatever is still there after ``grace_s``."""
    import psutil

    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        left = _job_processes(tag)
        if proc.poll() is not None and not left:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        for p in left:
            try:
                p.send_signal(sig)
            except psutil.Error:
                continue
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _job_processes(tag):
                return
            time.sleep(0.5)


def run_job(
    name: str,
    overrides: Sequence[str],
    run_dir: str,
    *,
    env: Optional[dict] = None,
    startup_timeout_s: float = 480.0,
    step_timeout_s: float = 240.0,
    on_step: Optional[Callable[[dict], None]] = None,
    on_wait: Optional[Callable[[float], None]] = None,
    poll_s: float = 1.0,
    memory_every_s: float = 2.0,
) -> JobResult:
    """Run ``sspo-train <overrides>`` whose run directory is ``run_dir``; see the module docstring.

    Args:
        name: label for messages.
        overrides: Hydra overrides; they must make the run directory ``run_dir`` (``output_dir``,
            ``trainer.project_name``, ``trainer.experiment_name``).
        run_dir: where ``metrics.jsonl`` appears; ``console.log`` is written there too.
        env: extra environment variables for the run.
        startup_timeout_s: bound from launch to the first logged step.
        step_timeout_s: bound between two logged steps (and from the last step to exit).
        on_step: called with each new record ``{"step", "data"}``.
        on_wait: called about every 30 s before the first step, with the seconds elapsed.

    Returns:
        A :class:`JobResult`; ``result.ok`` is False (with ``result.error``) when the run failed or was ended.
    """
    import uuid

    os.makedirs(run_dir, exist_ok=True)
    tag = f"{name}-{uuid.uuid4().hex[:12]}"
    metrics_path = os.path.join(run_dir, METRICS_FILE)
    earlier_log = _file_id(metrics_path)  # an earlier attempt's log: kept, not followed (module docstring)
    console_log = os.path.join(run_dir, "console.log")
    full_env = {**os.environ, **(env or {}), _TAG: tag}
    full_env.pop("VERL_FILE_LOGGER_PATH", None)  # sspo-train points the file logger at <run dir>/metrics.jsonl
    full_env.pop("SSPO_VERL_CONFIG_PATH", None)  # and verl's config dump at <run dir>/verl_config.yaml
    start, started_at = time.monotonic(), time.time()
    seen, startup_s, last_progress, last_memory, last_wait = 0, None, start, 0.0, start
    peak = 0
    error = None
    cpu_samples = []
    with open(console_log, "wb") as log:
        proc = subprocess.Popen(
            sspo_train_command(overrides), stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
        try:
            while True:
                returncode = proc.poll()
                records = read_metrics(metrics_path, skip=earlier_log)
                now = time.monotonic()
                for record in records[seen:]:
                    if startup_s is None:
                        startup_s = now - start
                    last_progress = now
                    if on_step is not None:
                        on_step(record)
                if len(records) > seen:
                    all_s, trainer_s = _cpu_seconds(_job_processes(tag))
                    cpu_samples.append({"step": records[-1]["step"], "all_s": all_s, "trainer_s": trainer_s})
                seen = len(records)
                if now - last_memory >= memory_every_s:
                    peak = max(peak, _rss_bytes(_job_processes(tag)))
                    last_memory = now
                if returncode is not None:
                    break
                if startup_s is None and now - start > startup_timeout_s:
                    error = (
                        f"{name}: no training step logged within {startup_timeout_s:.0f} s of launch; the run was "
                        "ended. "
                        "A CPU run that never reaches its first step is most often Ray waiting for resources it will "
                        "not get (TransferQueue storage units vs ray_kwargs.ray_init.num_cpus; see hardware/cpu.yaml) "
                        "or a machine too loaded to start it in time."
                    )
                    break
                if startup_s is not None and now - last_progress > step_timeout_s:
                    error = (
                        f"{name}: no new step (or exit) for {step_timeout_s:.0f} s after step {seen}; "
                        "the run was ended."
                    )
                    break
                if startup_s is None and on_wait is not None and now - last_wait >= 30:
                    on_wait(now - start)
                    last_wait = now
                time.sleep(poll_s)
        finally:
            # on a bound: end everything; after a normal exit: make sure no Ray process of the run lingers
            _end_run(proc, tag, grace_s=20.0 if proc.poll() is None else 5.0)
            shm.remove_after_run(started_at)  # vLLM's queues, verl's weight bucket
    returncode = proc.returncode if error is None else None
    records = read_metrics(metrics_path, skip=earlier_log)
    if error is None and returncode != 0:
        error = f"{name}: sspo-train exited with status {returncode}."
    if error is not None:
        error += f"\nLog: {console_log}\n--- last lines ---\n{_log_tail(console_log)}"
    return JobResult(
        name=name,
        returncode=returncode,
        wall_s=time.monotonic() - start,
        startup_s=startup_s,
        records=records,
        run_dir=run_dir,
        console_log=console_log,
        peak_rss_gb=peak / 1024**3,
        error=error,
        cpu_samples=cpu_samples,
    )
