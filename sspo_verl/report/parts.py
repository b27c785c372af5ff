"""A run's metric log in parts: one file per training attempt, so that a resumed run keeps every step.

verl's file logger opens its file with mode ``"wb"``: a resumed attempt (``trainer.resume_mode=auto`` after a
Slurm requeue or a crash) would erase the steps logged before. ``sspo-train`` therefore calls
:func:`prepare_attempt` before it hands over to verl:

* the attempt **resumes** (verl will load a checkpoint): a non-empty ``metrics.jsonl`` is renamed to the next
  free ``metrics.<n>.jsonl`` (n = 1, 2, ...); verl then writes the new attempt's steps to ``metrics.jsonl``;
* the attempt **starts over** (``resume_mode=disable``, or no checkpoint): the earlier parts — and the
  TensorBoard directory — belong to a run this one replaces; they are moved to
  ``superseded/<YYYYmmdd-HHMMSS>/`` (nothing is deleted), so a report never mixes two runs.

:func:`metric_log_parts` lists the parts oldest first (``metrics.1.jsonl``, ``metrics.2.jsonl``, ...,
``metrics.jsonl``); :mod:`sspo_verl.report.logs` reads them in that order and keeps the latest value per step.
No verl import here.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from typing import Optional

__all__ = ["SUPERSEDED_DIR", "metric_log_parts", "prepare_attempt"]

SUPERSEDED_DIR = "superseded"


def _part_pattern(path: str) -> re.Pattern:
    stem, ext = os.path.splitext(os.path.basename(path))
    return re.compile(rf"^{re.escape(stem)}\.(\d+){re.escape(ext)}$")


def metric_log_parts(path: str) -> list[str]:
    """The parts of the log whose current file is ``path``, oldest first: ``<stem>.<n><ext>`` by n, then
    ``path`` itself (those that exist)."""
    directory = os.path.dirname(os.path.abspath(path))
    pattern = _part_pattern(path)
    numbered = []
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            match = pattern.match(name)
            if match:
                numbered.append((int(match.group(1)), os.path.join(directory, name)))
    parts = [p for _, p in sorted(numbered)]
    if os.path.isfile(path):
        parts.append(os.path.abspath(path))
    return parts


def _next_part(path: str) -> str:
    stem, ext = os.path.splitext(os.path.abspath(path))
    pattern = _part_pattern(path)
    taken = [int(m.group(1)) for m in (pattern.match(os.path.basename(p)) for p in metric_log_parts(path)) if m]
    return f"{stem}.{max(taken, default=0) + 1}{ext}"


def prepare_attempt(metrics_path: str, resumes: bool, tensorboard_dir: Optional[str] = None,
                    now: Optional[datetime.datetime] = None) -> list[tuple[str, str]]:
    """Make room for a new training attempt's logs (see the module docstring).

    Args:
        metrics_path: where verl's file logger will write (``VERL_FILE_LOGGER_PATH``).
        resumes: whether verl will resume from a checkpoint.
        tensorboard_dir: the attempt's ``TENSORBOARD_DIR``, if the TensorBoard logger is on. TensorBoard never
            overwrites (each attempt writes a new event file), so it is moved only when the run starts over.
        now: the time stamp of the ``superseded/`` directory (tests).

    Returns:
        The ``(from, to)`` moves made, in order.
    """
    moves = []
    if resumes:
        if os.path.isfile(metrics_path) and os.path.getsize(metrics_path) > 0:
            target = _next_part(metrics_path)
            os.replace(metrics_path, target)
            moves.append((os.path.abspath(metrics_path), target))
        return moves
    old = [p for p in metric_log_parts(metrics_path) if os.path.getsize(p) > 0]
    if tensorboard_dir and os.path.isdir(tensorboard_dir) and os.listdir(tensorboard_dir):
        old.append(os.path.abspath(tensorboard_dir))
    if not old:
        return moves
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    target_dir = os.path.join(os.path.dirname(os.path.abspath(metrics_path)), SUPERSEDED_DIR, stamp)
    suffix = 1
    while os.path.exists(target_dir):  # two attempts within one second
        suffix += 1
        target_dir = os.path.join(os.path.dirname(os.path.abspath(metrics_path)), SUPERSEDED_DIR, f"{stamp}-{suffix}")
    os.makedirs(target_dir)
    for source in old:
        target = os.path.join(target_dir, os.path.basename(source))
        shutil.move(source, target)
        moves.append((source, target))
    return moves
