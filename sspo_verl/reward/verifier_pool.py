"""A persistent pool of math-verify worker processes with a real per-sample timeout.

Why: verl's reward loop calls a custom ``compute_score`` from threads (``loop.run_in_executor`` in
``verl/experimental/reward_loop/reward_manager/naive.py``), where math-verify's ``signal.alarm`` timeout
cannot work, and some answers (``9^{9^{9^{9^9}}}``, ``(x+1)^{100000}``) make sympy run for hours in C code
that no signal interrupts. Each request here goes to its own worker process; if the answer does not come
back within ``timeout_s`` the worker is SIGKILLed and replaced, and the caller gets a ``timeout`` outcome.
Works from any thread, any number of threads at once (each worker serves one request at a time).

Lifecycle: workers start lazily on first use (``python -m sspo_verl.reward.verifier``, ~1 s each: importing
sympy), announce themselves after a math-verify self-test, and are recycled after ``max_tasks_per_proc``
requests. Popen runs in one long-lived spawner thread so that Linux's parent-death signal (set by the
worker) fires only when the pool's process ends. A worker that cannot start is an error raised to the caller
(never silently scored 0); a worker that dies while answering is a ``crash`` outcome.

Public API: :class:`VerifierPool`, :class:`VerifyOutcome`, :func:`get_default_pool`.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

logger = logging.getLogger(__name__)

_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class VerifyOutcome:
    """The result of one verification request.

    Attributes:
        status: ``ok`` (answered), ``timeout`` (killed after ``timeout_s``), ``crash`` (worker died),
            ``error`` (math-verify raised, e.g. MemoryError), ``overloaded`` (no worker free in time).
        equivalent: the verdict; always False unless status is ``ok``.
        seconds: wall time from sending the request to the verdict (or the kill).
        detail: error text for ``error``/``crash``.
    """

    status: str
    equivalent: bool
    seconds: float
    detail: str = ""


class VerifierStartError(RuntimeError):
    """A worker process could not start (bad interpreter, math-verify missing): a setup error, raised."""


class _Worker:
    """One worker process and its two pipes. Used by one thread at a time."""

    def __init__(self, proc: subprocess.Popen, requests: Connection, replies: Connection, log) -> None:
        self.proc = proc
        self.requests = requests
        self.replies = replies
        self.log = log
        self.ready = False
        self.tasks = 0

    def stderr_tail(self, limit: int = 2000) -> str:
        try:
            self.log.flush()
            self.log.seek(0)
            return self.log.read().decode("utf-8", "replace")[-limit:]
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail on Linux
            logger.error("verifier worker %d did not exit after SIGKILL", self.proc.pid)
        for closable in (self.requests, self.replies, self.log):
            try:
                closable.close()
            except (OSError, ValueError):
                pass


class VerifierPool:
    """Process pool for :func:`sspo_verl.reward.verifier.is_equivalent` with kill-on-timeout.

    Args:
        num_procs: worker processes (concurrent verifications).
        memory_limit_mb: address-space limit per worker (``RLIMIT_AS``) after its imports; 0 disables.
        start_timeout_s: how long a new worker may take to import math-verify and pass its self-test.
        acquire_timeout_s: how long a request may wait for a free worker before giving up (``overloaded``).
        max_tasks_per_proc: recycle a worker after this many requests (bounds sympy cache growth).
    """

    def __init__(
        self,
        num_procs: int = 2,
        memory_limit_mb: int = 4096,
        start_timeout_s: float = 120.0,
        acquire_timeout_s: float = 600.0,
        max_tasks_per_proc: int = 5000,
    ) -> None:
        if num_procs < 1:
            raise ValueError(f"num_procs must be >= 1, got {num_procs}")
        if start_timeout_s <= 0 or acquire_timeout_s <= 0:
            raise ValueError("start_timeout_s and acquire_timeout_s must be > 0")
        self.num_procs = num_procs
        self.memory_limit_mb = memory_limit_mb
        self.start_timeout_s = start_timeout_s
        self.acquire_timeout_s = acquire_timeout_s
        self.max_tasks_per_proc = max_tasks_per_proc
        self.owner_pid = os.getpid()
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._all: set[_Worker] = set()
        self._start_error: VerifierStartError | None = None
        self._spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sspo-verifier-spawn")
        self._stats_lock = threading.Lock()
        self.stats = {"requests": 0, "timeouts": 0, "crashes": 0, "errors": 0, "spawned": 0, "overloaded": 0,
                      "start_retries": 0}

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    # ---------------------------------------------------------------- process management
    def _popen(self) -> _Worker:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        log = tempfile.TemporaryFile(prefix="sspo-verifier-")
        env = dict(os.environ)
        env["PYTHONPATH"] = _PROJECT_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = "1"
        cmd = [
            sys.executable,
            "-m",
            "sspo_verl.reward.verifier",
            "--serve",
            str(req_r),
            str(rep_w),
            "--memory-limit-mb",
            str(self.memory_limit_mb),
            "--parent-pid",
            str(os.getpid()),
        ]
        try:
            proc = subprocess.Popen(
                cmd, pass_fds=(req_r, rep_w), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                cwd=_PROJECT_ROOT, close_fds=True,
            )
        except OSError as exc:
            for fd in (req_r, req_w, rep_r, rep_w):
                os.close(fd)
            log.close()
            raise VerifierStartError(f"cannot start a verifier worker with {sys.executable}: {exc}") from exc
        os.close(req_r)
        os.close(rep_w)
        self._count("spawned")
        return _Worker(proc, Connection(req_w, readable=False), Connection(rep_r, writable=False), log)

    def _spawn(self) -> _Worker:
        # Popen from the single long-lived spawner thread (see module docstring: parent-death signal).
        if self._closed:
            raise RuntimeError("VerifierPool is closed")
        worker = self._spawner.submit(self._popen).result(timeout=60)
        with self._lock:
            self._all.add(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def _wait_ready(self, worker: _Worker) -> None:
        """Block until a fresh worker passed its self-test; raise VerifierStartError otherwise."""
        if worker.ready:
            return
        problem = ""
        try:
            if worker.replies.poll(self.start_timeout_s):
                kind, value = worker.replies.recv()
                if kind == "ready":
                    worker.ready = True
                    return
                problem = str(value)
            else:
                problem = f"no ready signal within start_timeout_s={self.start_timeout_s}"
        except (EOFError, OSError) as exc:
            problem = f"worker exited during start-up ({type(exc).__name__})"
        tail = worker.stderr_tail()
        self._retire(worker)
        raise VerifierStartError(
            f"verifier worker failed to start: {problem}. Interpreter: {sys.executable}. "
            f"Check that `{sys.executable} -c 'import math_verify, sspo_verl'` works on this node "
            f"(pip install math-verify==0.9.0).\nworker stderr:\n{tail}"
        )

    def _ensure_started(self) -> None:
        if self._closed:
            raise RuntimeError("VerifierPool is closed")
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            self._started = True
        workers = [self._spawn() for _ in range(self.num_procs)]
        for worker in workers:
            self._idle.put(worker)

    # ---------------------------------------------------------------- requests
    def verify(self, gold: str, pred: str, timeout_s: float, max_wait_s: float | None = None) -> VerifyOutcome:
        """Verify one (gold, pred) pair with a hard wall-clock limit. Thread-safe.

        Args:
            timeout_s: the verification's limit (the worker is killed past it).
            max_wait_s: how long to wait for a free worker (default ``acquire_timeout_s``); past it the outcome is
                ``overloaded``. So a call takes at most ``max_wait_s + timeout_s`` (plus a worker's start-up when
                one had to be replaced).

        Raises:
            VerifierStartError: a worker cannot start at all (installation problem).
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        wait_s = self.acquire_timeout_s if max_wait_s is None else max(0.0, float(max_wait_s))
        if self._start_error is not None:
            raise self._start_error
        self._ensure_started()
        try:
            worker = self._idle.get(timeout=wait_s) if wait_s > 0 else self._idle.get_nowait()
        except queue.Empty:
            self._count("overloaded")
            logger.warning("no verifier worker free within %.1f s (%d procs)", wait_s, self.num_procs)
            return VerifyOutcome("overloaded", False, 0.0, "no free worker")
        try:
            if worker.proc.poll() is not None:  # died while idle (recycled, OOM-killed): replace, not a sample error
                self._retire(worker)
                worker = self._spawn()
            try:
                self._wait_ready(worker)
            except VerifierStartError:
                # A worker killed while starting (OOM killer, a signal) is not an installation problem: only a
                # second, fresh worker failing too makes the pool give up for good.
                self._count("start_retries")
                worker = self._spawn()
                self._wait_ready(worker)
        except BaseException as exc:
            if isinstance(exc, VerifierStartError):
                self._start_error = exc  # an installation problem does not heal: fail every later call at once
            try:
                self._idle.put(self._spawn())  # keep the pool's size
            except BaseException:  # noqa: BLE001 - the original error is the one to report
                pass
            raise
        try:
            outcome, worker = self._run(worker, gold, pred, timeout_s)
        except BaseException:
            # Interrupted (KeyboardInterrupt, pool closed): the worker may be mid-request; replace it.
            self._retire(worker)
            if not self._closed:
                self._idle.put(self._spawn())
            raise
        self._idle.put(worker)
        return outcome

    def _run(self, worker: _Worker, gold: str, pred: str, timeout_s: float) -> tuple[VerifyOutcome, _Worker]:
        self._count("requests")
        start = time.monotonic()
        try:
            worker.requests.send(("verify", gold, pred))
            if worker.replies.poll(timeout_s):
                kind, value = worker.replies.recv()
                seconds = time.monotonic() - start
                worker.tasks += 1
                if worker.tasks >= self.max_tasks_per_proc:
                    self._retire(worker)
                    worker = self._spawn()
                if kind == "ok":
                    return VerifyOutcome("ok", bool(value), seconds), worker
                self._count("errors")
                return VerifyOutcome("error", False, seconds, str(value)), worker
            seconds = time.monotonic() - start
            self._count("timeouts")
            self._retire(worker)
            return VerifyOutcome("timeout", False, seconds, f"killed after {timeout_s} s"), self._spawn()
        except (EOFError, OSError, BrokenPipeError) as exc:
            seconds = time.monotonic() - start
            self._count("crashes")
            code = worker.proc.poll()
            self._retire(worker)
            return VerifyOutcome("crash", False, seconds, f"{type(exc).__name__}, exit code {code}"), self._spawn()

    def close(self) -> None:
        """Kill every worker. Idempotent."""
        self._closed = True
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.kill()
        self._spawner.shutdown(wait=False)

    def worker_pids(self) -> list[int]:
        with self._lock:
            return sorted(w.proc.pid for w in self._all)

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_default_pool: VerifierPool | None = None
_default_lock = threading.Lock()


def default_num_procs() -> int:
    """``SSPO_REWARD_NUM_PROCS`` if set, else min(4, CPU count)."""
    env = os.environ.get("SSPO_REWARD_NUM_PROCS")
    if env:
        value = int(env)
        if value < 1:
            raise ValueError(f"SSPO_REWARD_NUM_PROCS must be >= 1, got {env!r}")
        return value
    return max(1, min(4, os.cpu_count() or 1))


def get_default_pool(num_procs: int | None = None, memory_limit_mb: int | None = None) -> VerifierPool:
    """The process-wide pool, created on first use (and re-created in a forked child).

    The first call's ``num_procs``/``memory_limit_mb`` win; later different values are logged and ignored.
    """
    global _default_pool
    with _default_lock:
        pool = _default_pool
        if pool is not None and (pool.owner_pid != os.getpid() or pool._closed):
            pool = None  # inherited through fork, or closed: its pipes are not ours
        if pool is None:
            pool = VerifierPool(
                num_procs=num_procs or default_num_procs(),
                memory_limit_mb=4096 if memory_limit_mb is None else memory_limit_mb,
            )
            _default_pool = pool
        elif num_procs is not None and num_procs != pool.num_procs:
            logger.warning(
                "verifier pool already running with %d procs; ignoring num_procs=%d", pool.num_procs, num_procs
            )
        return pool


@atexit.register
def _close_default_pool() -> None:
    pool = _default_pool
    if pool is not None and pool.owner_pid == os.getpid():
        pool.close()
