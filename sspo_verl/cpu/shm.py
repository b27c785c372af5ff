"""POSIX shared-memory segments a CPU run leaves in ``/dev/shm``, and their removal.

A CPU run with ``rollout=vllm`` creates segments there: verl's weight-sync bucket (``verl_weights_<uuid>``, as
large as ``checkpoint_engine.update_weights_bucket_megabytes``, sparse) and vLLM's engine-to-worker message
queues (``psm_<hex>``, Python's default names). Their creators unlink them when they shut down cleanly, but Ray
ends the rollout actors and vLLM's engine processes with a signal at the end of every run (and a crashed sync
never reaches its cleanup), so they stay behind. Left alone they accumulate, and on a small ``/dev/shm``
(Docker's 64 MB) a later sync dies with SIGBUS.

:func:`remove_leaked` removes the segments that changed since a given time and that no process holds (neither
mapped nor open: a creator holds its segment open from the moment it creates it) and that nobody wrote to for a
few seconds (a creator between closing and unlinking its segment has just written it): a segment in use by any
run on this machine is never touched. :func:`remove_after_run` is what a run's owner calls once the run has
ended: ``sspo-train`` after its Ray is shut down, ``sspo_verl.demo.job.run_job`` after every run it starts.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Iterable

__all__ = ["MIN_IDLE_S", "SEGMENT_PREFIXES", "leaked_segments", "remove_after_run", "remove_leaked"]

logger = logging.getLogger("sspo_verl.cpu")

SHM_DIR = "/dev/shm"
SEGMENT_PREFIXES = ("verl_weights_", "psm_")
# Unheld segments written to more recently than this may belong to a creator between close() and unlink().
MIN_IDLE_S = 2.0


def _held_paths(paths: set[str]) -> set[str]:
    """The subset of ``paths`` some process has mapped or open (from ``/proc/<pid>/maps`` and ``/proc/<pid>/fd``)."""
    held = set()
    for proc in glob.glob("/proc/[0-9]*"):
        try:
            with open(os.path.join(proc, "maps"), encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    fields = line.rstrip("\n").split(maxsplit=5)  # address perms offset dev inode [pathname]
                    if len(fields) == 6 and fields[5] in paths:
                        held.add(fields[5])
            for fd in os.listdir(os.path.join(proc, "fd")):
                try:
                    target = os.readlink(os.path.join(proc, "fd", fd))
                except OSError:
                    continue
                if target in paths:
                    held.add(target)
        except OSError:
            continue  # the process ended, or its /proc entry is not readable
    return held


def _changed_since(since: float, shm_dir: str, prefixes: Iterable[str]) -> dict[str, float]:
    """{path: change time} of the segments named with ``prefixes`` that changed at or after ``since``."""
    changed = {}
    for prefix in prefixes:
        for path in glob.glob(os.path.join(shm_dir, f"{prefix}*")):
            try:
                ctime = os.stat(path).st_ctime
            except OSError:
                continue
            if ctime >= since:
                changed[path] = ctime
    return changed


def leaked_segments(since: float, shm_dir: str | None = None, prefixes: Iterable[str] = SEGMENT_PREFIXES) -> list[str]:
    """Segments named with ``prefixes`` that changed at or after ``since`` (epoch seconds) and nothing holds."""
    now = time.time()
    changed = _changed_since(since, SHM_DIR if shm_dir is None else shm_dir, prefixes)
    candidates = {path for path, ctime in changed.items() if now - ctime >= MIN_IDLE_S}
    return sorted(candidates - _held_paths(candidates)) if candidates else []


def remove_leaked(since: float, shm_dir: str | None = None) -> list[str]:
    """Remove :func:`leaked_segments` (best effort); return what was removed."""
    removed = []
    for path in leaked_segments(since, shm_dir):
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            continue
    if removed:
        logger.info("sspo_verl.cpu: removed %d shared-memory segment(s) left by the run: %s", len(removed),
                    ", ".join(os.path.basename(p) for p in removed))
    return removed


def remove_after_run(since: float, shm_dir: str | None = None) -> list[str]:
    """For a run that started at ``since`` and has ended: wait until its last writes are ``MIN_IDLE_S`` old (only
    if it left any segment), then :func:`remove_leaked`."""
    if not _changed_since(since, SHM_DIR if shm_dir is None else shm_dir, SEGMENT_PREFIXES):
        return []
    time.sleep(MIN_IDLE_S)
    return remove_leaked(since, shm_dir)
