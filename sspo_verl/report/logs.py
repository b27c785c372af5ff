"""Reading one run's logged metrics: verl's file logger (JSONL, in parts) or TensorBoard event files.

verl 0.9.1's loggers (``verl/utils/tracking.py``):

* ``file``: ``VERL_FILE_LOGGER_PATH`` (``sspo-train``: ``<run dir>/metrics.jsonl``), one line per ``log`` call,
  ``{"step": <int>, "data": {<metric>: <value>, ...}}``; the file is truncated when a run resumes, so
  ``sspo-train`` keeps earlier attempts as ``metrics.<n>.jsonl`` (:mod:`sspo_verl.rundir`);
* ``tensorboard``: ``TENSORBOARD_DIR`` (``sspo-train``: ``<run dir>/tensorboard``), one scalar per metric and
  step (float32), a new event file per attempt.

Both can hold a step more than once (an attempt that resumes from step N logs its validation at step N again,
and redoes steps logged after the checkpoint). :func:`read_run_metrics` merges in the order the values were
written — parts oldest first, lines or events in file order — keeping the **latest value per (step, metric)**.
Non-numeric values (strings, lists) are skipped.

Public API:
    read_jsonl(path)                  records of one JSONL file (a partly written last line is skipped)
    read_tensorboard(path)            {step: {metric: value}} of one event file
    find_sources(run_dir)             the JSONL parts and the TensorBoard event files of a run
    read_run_metrics(run_dir, source) {step: {metric: value}} and the files read
    MetricsNotFoundError              a directory without any metrics (the message names it)
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Optional

from sspo_verl.rundir import METRICS_FILE, TENSORBOARD_DIR, metric_log_parts

__all__ = [
    "MetricsNotFoundError",
    "find_sources",
    "merge_records",
    "read_jsonl",
    "read_run_metrics",
    "read_tensorboard",
]

SOURCES = ("auto", "jsonl", "tensorboard")
_EVENT_FILE = re.compile(r"^events\.out\.tfevents\.(\d+(?:\.\d+)?)\.")


class MetricsNotFoundError(FileNotFoundError):
    """A run directory with no readable metrics."""


def _number(value) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def read_jsonl(path: str) -> list[dict]:
    """The complete records of a verl file-logger file: ``[{"step": int, "data": {...}}, ...]`` in file order.

    A last line without its newline (the run is still writing it) is skipped; any other malformed line raises
    ``ValueError`` naming the file and line.
    """
    records = []
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.endswith(b"\n"):
                break  # partly written
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                step = int(record["step"])
                data = record["data"]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: not a verl file-logger record ({e})") from e
            if not isinstance(data, Mapping):
                raise ValueError(f"{path}:{lineno}: 'data' is not an object")
            records.append({"step": step, "data": data})
    return records


def read_tensorboard(path: str) -> dict[int, dict[str, float]]:
    """Scalars of one TensorBoard event file: ``{step: {tag: value}}``, later events winning."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    out: dict[int, dict[str, float]] = {}
    for event in EventFileLoader(path).Load():
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                number = float(value.simple_value)
            elif kind == "tensor":
                array = tensor_util.make_ndarray(value.tensor)
                if array.size != 1 or array.dtype.kind not in "fiu":
                    continue
                number = float(array.reshape(-1)[0])
            else:
                continue
            out.setdefault(int(event.step), {})[value.tag] = number
    return out


def _event_files(run_dir: str) -> list[str]:
    found = []
    candidates = [(run_dir, n) for n in os.listdir(run_dir)]
    for root, dirs, files in os.walk(os.path.join(run_dir, TENSORBOARD_DIR)):
        dirs.sort()
        candidates += [(root, n) for n in files]
    for root, name in candidates:
        match = _EVENT_FILE.match(name)
        if match and os.path.isfile(os.path.join(root, name)):
            found.append((float(match.group(1)), os.path.join(root, name)))
    return [p for _, p in sorted(found)]  # by the creation time in the name: attempts in order


def find_sources(run_dir: str) -> dict[str, list[str]]:
    """``{"jsonl": [parts, oldest first], "tensorboard": [event files, oldest first]}`` of a run directory.

    The JSONL parts are ``metrics.<n>.jsonl`` and ``metrics.jsonl`` in ``run_dir``; event files are those in
    ``run_dir`` itself (a TensorBoard log directory passed directly) and under ``run_dir/tensorboard/``.
    """
    return {
        "jsonl": metric_log_parts(os.path.join(run_dir, METRICS_FILE)),
        "tensorboard": _event_files(run_dir),
    }


def merge_records(records: Iterable[Mapping]) -> dict[int, dict[str, float]]:
    """``{step: {metric: value}}`` from records in write order; the latest numeric value per (step, metric)."""
    steps: dict[int, dict[str, float]] = {}
    for record in records:
        row = steps.setdefault(int(record["step"]), {})
        for key, value in record["data"].items():
            number = _number(value)
            if number is not None:
                row[key] = number
    return steps


def read_run_metrics(run_dir: str, source: str = "auto") -> tuple[dict[int, dict[str, float]], str, list[str]]:
    """All logged metrics of one run.

    Args:
        run_dir: the run directory (``sspo-train``'s ``<output_dir>/<project>/<experiment>``).
        source: ``jsonl``, ``tensorboard``, or ``auto`` (JSONL when present: full precision, every value; else
            TensorBoard).

    Returns:
        ``(steps, source_used, files)``: ``{step: {metric: value}}``, ``"jsonl"`` or ``"tensorboard"``, the files
        read in order.

    Raises:
        MetricsNotFoundError: nothing to read, or the files hold no step.
    """
    if source not in SOURCES:
        raise ValueError(f"source={source!r}: expected one of {', '.join(SOURCES)}")
    if not os.path.isdir(run_dir):
        raise MetricsNotFoundError(f"{run_dir}: not a directory")
    sources = find_sources(run_dir)
    if source == "auto":
        source = "jsonl" if sources["jsonl"] else "tensorboard"
    files = sources[source]
    if not files:
        raise MetricsNotFoundError(
            f"{run_dir}: no metrics found ({'metrics*.jsonl' if source == 'jsonl' else 'TensorBoard event files'}"
            f"{' or TensorBoard event files' if source == 'jsonl' and not sources['tensorboard'] else ''}). "
            "Pass the run directory sspo-train wrote (<output_dir>/<project>/<experiment>) with "
            "trainer.logger including 'file' (the default) or 'tensorboard'."
        )
    if source == "jsonl":
        steps = merge_records(r for path in files for r in read_jsonl(path))
    else:
        steps = {}
        for path in files:
            for step, row in read_tensorboard(path).items():
                steps.setdefault(step, {}).update(row)
    steps = {s: row for s, row in steps.items() if row}
    if not steps:
        raise MetricsNotFoundError(f"{run_dir}: {', '.join(files)} hold no logged step (did the run reach step 1?)")
    return dict(sorted(steps.items())), source, files


def finite(value: Optional[float]) -> bool:
    """True for a real number that is neither NaN nor infinite."""
    return value is not None and not math.isnan(value) and not math.isinf(value)
