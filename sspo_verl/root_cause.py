"""The errors Ray's processes print during a run, read from Ray's log stream in the driver: a failed run's first cause.

When a rollout engine or a Ray worker dies, the exception that reaches ``sspo-train`` is often a later, secondary one
(verl's replay buffer finding no trajectories, a failed ``ray.get``); the process that failed first printed its own
traceback to its log, which Ray streams to the driver. :class:`ErrorWatch` is a handler on that stream (Ray's
``global_worker_stdstream_dispatcher``, where Ray's own printing of worker logs is a handler too): it keeps the
exception line of every traceback with the process that printed it (Ray's actor or task name and pid, and the
sub-process a line names itself by, e.g. vLLM's ``(EngineCore_DP0 pid=123)``). :meth:`ErrorWatch.first_cause`
is the earliest of those in the minutes before the failure, which ``sspo-train`` prints as the run's last word.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Optional

__all__ = ["ErrorWatch", "ProcessError"]

HANDLER_NAME = "sspo_verl_error_watch"
_TRACEBACK = "Traceback (most recent call last):"
# a process's own name for itself on its lines (vLLM's sub-processes): "(EngineCore_DP0 pid=123) "
_SUBPROCESS = re.compile(r"^\((?P<name>[\w.:-]+) pid=(?P<pid>\d+)\)\s?")
# a logging prefix (vLLM's: every line of a multi-line record): "ERROR 12-06 12:00:01 [core.py:123] "
_LOG_PREFIX = re.compile(r"^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \[[^\]]*\] ?")
# a traceback's last line: "[module.]ExceptionName[: message]"
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Dead|Died)\w*(?::.*)?$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class ProcessError:
    """One exception a process printed: ``process`` (pid ``pid``) raised ``error`` (its line, as printed)."""

    process: str
    pid: str
    error: str
    at: float  # when the driver received it (time.time())

    def __str__(self) -> str:
        return f"{self.process} (pid {self.pid}): {self.error}"


class ErrorWatch:
    """A handler for Ray's log stream to the driver that keeps each traceback's exception line (thread-safe)."""

    def __init__(self) -> None:
        self.errors: list[ProcessError] = []
        self._in_traceback: set[tuple] = set()
        self._lock = threading.Lock()

    def __call__(self, data: dict) -> None:
        try:
            self._read(data)
        except Exception:  # noqa: BLE001 -- Ray's log thread calls this: it must never fail there
            pass

    def _read(self, data: dict) -> None:
        ray_name = data.get("actor_name") or data.get("task_name") or "a Ray process"
        ray_pid = str(data.get("pid"))
        for raw in data.get("lines") or ():
            line = _ANSI.sub("", str(raw)).rstrip()
            process, pid = ray_name, ray_pid
            sub = _SUBPROCESS.match(line)
            if sub:
                process, pid = f"{sub['name']} (in {ray_name} pid {ray_pid})", sub["pid"]
                line = line[sub.end():]
            line = _LOG_PREFIX.sub("", line, count=1)
            key = (process, pid)
            with self._lock:
                if line.lstrip().startswith(_TRACEBACK):
                    self._in_traceback.add(key)
                elif key in self._in_traceback and line[:1] not in ("", " ", "\t") and _EXCEPTION_LINE.match(line):
                    self._in_traceback.discard(key)
                    self.errors.append(ProcessError(process, pid, line.strip()[:300], time.time()))

    def first_cause(self, within_s: float = 300.0, now: Optional[float] = None) -> Optional[ProcessError]:
        """The earliest error received in the ``within_s`` seconds before ``now`` (None: none)."""
        now = time.time() if now is None else now
        with self._lock:
            recent = [e for e in self.errors if now - within_s <= e.at <= now]
        return recent[0] if recent else None

    def install(self) -> bool:
        """Listen to the driver's Ray log stream (after ``ray.init``); False when this Ray has no such stream."""
        try:
            from ray._private.ray_logging import global_worker_stdstream_dispatcher
        except ImportError:
            return False
        global_worker_stdstream_dispatcher.add_handler(HANDLER_NAME, self)
        return True

    @staticmethod
    def uninstall() -> None:
        try:
            from ray._private.ray_logging import global_worker_stdstream_dispatcher
        except ImportError:
            return
        global_worker_stdstream_dispatcher.remove_handler(HANDLER_NAME)
