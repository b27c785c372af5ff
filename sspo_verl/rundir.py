"""The run directory: its layout, the record of the config its run started with, and what a rerun into it may do.

The one module that knows the layout (``sspo-train`` writes it, ``sspo-report`` and ``sspo-eval`` read it here)::

    <run dir>/resolved_config.yaml   RECORD: the config the run started with
              verl_config.yaml       VERL_CONFIG: the config verl's trainer ran the latest attempt with (what
                                     verl 0.9.1 prints at start-up; sspo-train's workers write it here instead)
              metrics.jsonl          METRICS_FILE: verl's file logger, this attempt; metrics.<n>.jsonl: earlier
                                     attempts of a resumed run (metric_log_parts lists them oldest first)
              tensorboard/           TENSORBOARD_DIR, when that logger is on
              checkpoints/           CHECKPOINTS_DIR (trainer.default_local_dir): global_step_<n>/, verl's
                                     latest-step tracker
              superseded/<time>/     SUPERSEDED_DIR: earlier attempts a fresh attempt moved aside
              .hydra/<time>/         HYDRA_DIR: Hydra's record of each launch; train.log, the driver's log

``sspo-train`` writes the resolved config to :data:`RECORD` when a run starts (no earlier attempt there) and
keeps it when a later attempt resumes, so the file always says how the run's checkpoints and metrics were made.
Before a rerun hands over to verl (:func:`prepare_attempt`):

* the config differs from the record in a key that changes training (:func:`changes_training`: anything but
  bookkeeping) → refused (:class:`RerunRefused`) with the differing keys and the two ways out: a new run name,
  or ``on_config_change=new_attempt``;
* ``on_config_change=new_attempt``, or an attempt that starts over (``trainer.resume_mode=disable``, or no
  checkpoint to resume): everything the earlier attempt left — checkpoints, metric logs, TensorBoard files,
  its config record and verl's config — moves to ``superseded/<YYYYmmdd-HHMMSS>/``; nothing is overwritten or deleted;
* an attempt that resumes with the same training config: the metric log moves to the next ``metrics.<n>.jsonl``
  (verl's file logger opens its file with mode ``"wb"``), checkpoints and the record stay (verl's config is
  rewritten: it differs from the earlier attempt's in bookkeeping keys only);
* the same, for a run that already reached its last step (``finished``): nothing moves, and the caller trains
  nothing (verl 0.9.1 would train one step past ``trainer.total_training_steps`` and save it).

An "earlier attempt" is a checkpoint (``global_step_*``) or a non-empty metric log in the run dir; a record alone
(a dry run, or a run that died before its first step) is replaced.

Hydra creates the run dir, its launch record (``.hydra/<time>/``) and its log file before ``sspo-train`` can check
anything; a :class:`Footprint` taken before that lets a launch that trains nothing (refused, a dry run, a finished
run) take them back: a run dir it created goes, one that existed keeps every byte it had.
"""

from __future__ import annotations

import datetime
import glob
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

__all__ = [
    "FOOTPRINTS",
    "HYDRA_DIR",
    "IGNORED_KEYS",
    "IGNORED_PREFIXES",
    "METRICS_FILE",
    "CHECKPOINTS_DIR",
    "ON_CONFIG_CHANGE",
    "RECORD",
    "SUPERSEDED_DIR",
    "TENSORBOARD_DIR",
    "TRAINING_PREFIXES",
    "VERL_CONFIG",
    "Footprint",
    "RerunRefused",
    "changes_training",
    "flatten",
    "metric_log_parts",
    "prepare_attempt",
    "read_record",
    "training_diff",
]

RECORD = "resolved_config.yaml"
VERL_CONFIG = "verl_config.yaml"  # SSPO_VERL_CONFIG_PATH in the run dir (sspo_verl.adapter.config_dump)
METRICS_FILE = "metrics.jsonl"  # VERL_FILE_LOGGER_PATH in the run dir
TENSORBOARD_DIR = "tensorboard"  # TENSORBOARD_DIR in the run dir
CHECKPOINTS_DIR = "checkpoints"  # trainer.default_local_dir in the run dir (sspo_trainer.yaml)
ON_CONFIG_CHANGE = ("refuse", "new_attempt")
# Keys that do not change what a run trains: its schedule length, logging, checkpoint cadence, cluster layout,
# Ray settings and the pre-flight's own switches. [ours]
IGNORED_PREFIXES = ("trainer.", "ray_kwargs.", "preflight.", "hydra.", "transfer_queue.", "global_profiler.")
IGNORED_KEYS = frozenset({"dry_run", "output_dir", "data_dir", "on_config_change"})
# Keys under an ignored prefix that do change training: verl's V1 trainer mode and its settings (which policy
# the data come from, parameter_sync_step, the staleness bound). An asynchronous checkpoint also holds the
# prompts in flight, which a synchronous resume would drop. [ours]
TRAINING_PREFIXES = ("trainer.v1.",)
SUPERSEDED_DIR = "superseded"
HYDRA_DIR = ".hydra"  # Hydra's launch records (hydra.output_subdir=.hydra/<time> in sspo_trainer.yaml)
# This process's current launch: {run dir: its Footprint before Hydra's set-up}, filled by sspo_verl.train's Hydra
# callback. Kept here, in one module, because ``python -m sspo_verl.train`` runs the app as ``__main__`` while Hydra
# imports the callback from ``sspo_verl.train``: two copies of that module.
FOOTPRINTS: dict = {}


@dataclass(frozen=True)
class Footprint:
    """A directory's state before a launch wrote into it, enough to take back what the launch added.

    Take it with :meth:`before` ahead of Hydra's job set-up; :meth:`undo` then removes the directory and the
    parents the launch created, or, when it existed, the launch's records (what is new in ``.hydra/``) and its log
    files (a new one deleted, an older one cut back to its size and time: Hydra appends). Nothing else in
    an existing directory is touched (another process may be writing there).
    """

    path: str
    created_root: Optional[str]  # the top-most directory that did not exist (None: ``path`` existed)
    hydra_entries: Optional[frozenset[str]]  # what ``.hydra/`` held (None: no ``.hydra/``)
    sizes: tuple[tuple[str, int, int], ...]  # (name, size, mtime_ns) of the regular files directly in ``path``

    @classmethod
    def before(cls, path: str) -> "Footprint":
        path = os.path.abspath(path)
        created_root, parent = None, path
        while not os.path.exists(parent):
            created_root, parent = parent, os.path.dirname(parent)
        sizes: tuple = ()
        hydra_dir = os.path.join(path, HYDRA_DIR)
        hydra_entries = frozenset(os.listdir(hydra_dir)) if os.path.isdir(hydra_dir) else None
        if created_root is None and os.path.isdir(path):
            with os.scandir(path) as entries:
                files = [e for e in entries if e.is_file(follow_symlinks=False)]
                sizes = tuple((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in files)
        return cls(path, created_root, hydra_entries, sizes)

    def undo(self, log_files: Sequence[str] = ()) -> None:
        """Remove what the launch added (see the class docstring); ``log_files`` must be closed already."""
        if self.created_root is not None:
            shutil.rmtree(self.created_root, ignore_errors=True)
            return
        hydra_dir = os.path.join(self.path, HYDRA_DIR)
        if self.hydra_entries is None:
            shutil.rmtree(hydra_dir, ignore_errors=True)
        elif os.path.isdir(hydra_dir):
            for name in set(os.listdir(hydra_dir)) - self.hydra_entries:
                shutil.rmtree(os.path.join(hydra_dir, name), ignore_errors=True)
        before = {name: (size, mtime_ns) for name, size, mtime_ns in self.sizes}
        for log_file in log_files:
            log_file = os.path.abspath(log_file)
            if os.path.dirname(log_file) != self.path or not os.path.isfile(log_file):
                continue
            name = os.path.basename(log_file)
            if name not in before:
                os.remove(log_file)
            elif os.path.getsize(log_file) > before[name][0]:
                os.truncate(log_file, before[name][0])
                os.utime(log_file, ns=(os.stat(log_file).st_atime_ns, before[name][1]))


class RerunRefused(ValueError):
    """A rerun whose training config differs from the run's record (the message lists the keys and the fixes)."""


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{dotted.key: leaf}`` (lists kept as leaves)."""
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def changes_training(key: str) -> bool:
    """Whether a dotted config key changes what a run trains (not bookkeeping: :data:`IGNORED_PREFIXES` except
    :data:`TRAINING_PREFIXES`, :data:`IGNORED_KEYS`)."""
    return key not in IGNORED_KEYS and (key.startswith(TRAINING_PREFIXES) or not key.startswith(IGNORED_PREFIXES))


def training_diff(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (recorded, current)}`` for every training-relevant key whose value differs (flattened configs;
    a key present in one only counts, with None for the other side)."""
    keys = set(recorded) | set(current)
    return {
        key: (recorded.get(key), current.get(key))
        for key in sorted(keys)
        if changes_training(key) and recorded.get(key) != current.get(key)
    }


def read_record(run_dir: str) -> Optional[dict[str, Any]]:
    """The run dir's :data:`RECORD`, flattened (:func:`flatten`); None when there is none.

    Raises:
        ValueError: the record is not readable YAML or not a mapping (the message names the file and the fix).
    """
    import yaml

    path = os.path.join(run_dir, RECORD)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            loaded = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not readable YAML ({e}); fix or remove it") from e
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path}: expected a mapping (sspo-train's resolved config), got {type(loaded).__name__}")
    return flatten(loaded)


def _part_pattern(path: str) -> re.Pattern:
    stem, ext = os.path.splitext(os.path.basename(path))
    return re.compile(rf"^{re.escape(stem)}\.(\d+){re.escape(ext)}$")


def metric_log_parts(path: str) -> list[str]:
    """The parts of the metric log whose current file is ``path``, oldest first: ``<stem>.<n><ext>`` by n
    (``metrics.1.jsonl``, ``metrics.2.jsonl``, ...), then ``path`` itself (those that exist)."""
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


def _checkpoints(checkpoint_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(checkpoint_dir, "global_step_*")))


def earlier_attempt(checkpoint_dir: str, metrics_path: Optional[str]) -> bool:
    """Whether an earlier attempt trained here: a checkpoint, or a non-empty metric log (any part)."""
    if _checkpoints(checkpoint_dir):
        return True
    return bool(metrics_path) and any(os.path.getsize(p) > 0 for p in metric_log_parts(metrics_path))


def _refusal(run_dir: str, diff: Mapping[str, tuple[Any, Any]]) -> str:
    shown = list(diff.items())[:12]
    lines = "\n".join(f"      {key}: {old!r} -> {new!r}" for key, (old, new) in shown)
    more = f"\n      ... and {len(diff) - len(shown)} more" if len(diff) > len(shown) else ""
    return (
        f"{run_dir} holds a run started with another training config ({os.path.join(run_dir, RECORD)}); "
        f"resuming it would mix two settings into one checkpoint and one metrics history. Differing keys "
        f"(recorded -> now):\n{lines}{more}\n    Either give this run its own name (trainer.experiment_name=..., "
        "or put the changed key into the name), or start a fresh attempt here with on_config_change=new_attempt "
        f"(the earlier attempt moves to {os.path.join(run_dir, SUPERSEDED_DIR)}/, nothing is deleted)."
    )


def _supersede(run_dir: str, paths: Sequence[str], now: Optional[datetime.datetime]) -> list[tuple[str, str]]:
    paths = [p for p in paths if os.path.exists(p)]
    if not paths:
        return []
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    target_dir = os.path.join(run_dir, SUPERSEDED_DIR, stamp)
    suffix = 1
    while os.path.exists(target_dir):  # two attempts within one second
        suffix += 1
        target_dir = os.path.join(run_dir, SUPERSEDED_DIR, f"{stamp}-{suffix}")
    os.makedirs(target_dir)
    moves = []
    for source in paths:
        target = os.path.join(target_dir, os.path.basename(source.rstrip("/")))
        shutil.move(source, target)
        moves.append((source, target))
    return moves


def prepare_attempt(
    run_dir: str,
    config: Mapping[str, Any],
    *,
    checkpoint_dir: str,
    resumes: bool,
    metrics_path: Optional[str] = None,
    tensorboard_dir: Optional[str] = None,
    on_config_change: str = "refuse",
    finished: bool = False,
    dry_run: bool = False,
    now: Optional[datetime.datetime] = None,
) -> tuple[bool, list[tuple[str, str]]]:
    """Check a new attempt against the run dir's record and make room for it (see the module docstring).

    Args:
        run_dir: the run directory.
        config: the attempt's resolved config (a plain nested mapping).
        checkpoint_dir: ``trainer.default_local_dir``.
        resumes: whether verl would resume from a checkpoint there (its own rule).
        metrics_path: where verl's file logger writes (None: file logger off).
        tensorboard_dir: the TensorBoard directory (None: off).
        on_config_change: ``refuse`` or ``new_attempt``.
        finished: the checkpoint verl would resume from is at or past the run's last step: a resume with the
            same training config moves nothing (``(False, [])``; the caller does not train).
        dry_run: check only: refuse as a real attempt would, move nothing, write nothing.
        now: the ``superseded/`` time stamp (tests).

    Returns:
        ``(starts, moves)``: whether this attempt starts the run here (the caller then writes :data:`RECORD`;
        verl finds no checkpoint after the moves), and the ``(from, to)`` moves made.

    Raises:
        RerunRefused: the training config differs from the record and ``on_config_change=refuse``.
        ValueError: an unknown ``on_config_change``, or a record that cannot be read (:func:`read_record`).
    """
    if on_config_change not in ON_CONFIG_CHANGE:
        raise ValueError(f"on_config_change={on_config_change!r}: use one of {', '.join(ON_CONFIG_CHANGE)}")
    earlier = earlier_attempt(checkpoint_dir, metrics_path)
    record = read_record(run_dir) if earlier else None
    diff = training_diff(record, flatten(config)) if record is not None else {}
    if diff and on_config_change == "refuse":
        raise RerunRefused(_refusal(run_dir, diff))
    if dry_run:
        return not earlier, []  # an earlier attempt's record stays as it is
    if resumes and not diff:
        if finished or not metrics_path or not os.path.isfile(metrics_path) or not os.path.getsize(metrics_path):
            return False, []
        target = _next_part(metrics_path)  # verl's file logger truncates metrics_path
        os.replace(metrics_path, target)
        return False, [(os.path.abspath(metrics_path), target)]
    old = [checkpoint_dir] if _checkpoints(checkpoint_dir) else []  # with verl's latest-step tracker
    if metrics_path:
        old += [p for p in metric_log_parts(metrics_path) if os.path.getsize(p) > 0]
    if tensorboard_dir and os.path.isdir(tensorboard_dir) and os.listdir(tensorboard_dir):
        old.append(tensorboard_dir)
    if record is not None:
        old.append(os.path.join(run_dir, RECORD))
    if earlier and os.path.isfile(os.path.join(run_dir, VERL_CONFIG)):
        old.append(os.path.join(run_dir, VERL_CONFIG))
    return True, _supersede(run_dir, old, now)
