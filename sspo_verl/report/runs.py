"""Runs: one directory's metrics plus who it is (algorithm, seed), and the grouping of runs for a report.

Identity of a run directory:

1. ``resolved_config.yaml`` (written by ``sspo-train``): the algorithm is ``algorithm_preset.name`` (``grpo``,
   ``gspo``, ``gspo_wide``, ``sspo``), the seed is ``seed``;
2. else the directory name ``<algorithm>-<model>-seed<seed>`` (``sspo-train``'s default experiment name);
3. else the directory name is the algorithm and the seed is unknown (a note says so).

Grouping: runs with the same algorithm form one group, whose members are its seeds — unless their resolved
configs differ in something other than seeds and bookkeeping (the keys a rerun may change,
:func:`sspo_verl.rundir.changes_training`; values that are the run's name or a path naming it): then each
distinct setting is its own group, labelled with the differing values, e.g. ``sspo (clip_ratio_high=0.4)``. So
an ablation sweep is reported per grid point, never averaged across it.
Two runs with the same label and seed are refused (the same run passed twice, or a rerun in another place).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from sspo_verl.report.logs import merge_records, read_run_metrics
from sspo_verl.rundir import RECORD, changes_training, read_record

__all__ = ["Run", "group_runs", "load_run", "run_from_records"]

ALGORITHM_ORDER = ("grpo", "gspo", "gspo_wide", "sspo")  # plotting order and colours; others follow by name
_NAME = re.compile(r"^(?P<algorithm>[A-Za-z0-9_.]+)-(?P<model>.+)-seed(?P<seed>\d+)$")


@dataclass
class Run:
    """One run's metrics and identity.

    Attributes:
        name: the directory's base name (or a given name).
        algorithm: see the module docstring.
        seed: the seed, None when unknown.
        steps: ``{step: {metric: value}}`` (latest value per step and metric).
        run_dir: the directory read ("" for in-memory runs).
        source: ``jsonl`` or ``tensorboard`` (or ``records``).
        files: the files read, in order.
        config: the resolved config flattened to dotted keys, None without ``resolved_config.yaml``.
        label: the group label (set by :func:`group_runs`; the algorithm until then).
        notes: remarks for the report (how the identity was found, ...).
    """

    name: str
    algorithm: str
    seed: Optional[int]
    steps: dict[int, dict[str, float]]
    run_dir: str = ""
    source: str = "records"
    files: list[str] = field(default_factory=list)
    config: Optional[dict[str, Any]] = None
    label: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.label:
            self.label = self.algorithm

    def keys(self) -> set[str]:
        """Every metric logged at least once."""
        return {k for row in self.steps.values() for k in row}

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of one metric, steps ascending, only where it was logged."""
        steps, values = [], []
        for step in sorted(self.steps):
            value = self.steps[step].get(key)
            if value is not None:
                steps.append(step)
                values.append(value)
        return steps, values

    @property
    def step_range(self) -> tuple[int, int]:
        return min(self.steps), max(self.steps)

    def updates_per_rollout(self) -> Optional[tuple[float, int]]:
        """(mini-batches per rollout batch, PPO epochs) from the resolved config, None without it.

        verl's actor splits a rollout batch (``data.train_batch_size`` prompts × ``rollout.n``) into mini-batches
        of ``actor.ppo_mini_batch_size`` prompts × ``rollout.n`` and takes one optimizer step per mini-batch and
        epoch: a rollout batch feeds their product in steps, the last one by a policy that many − 1 steps away
        from π_old (verl's padding rows for data-parallel divisibility aside).
        """
        keys = ("data.train_batch_size", "actor_rollout_ref.actor.ppo_mini_batch_size",
                "actor_rollout_ref.actor.ppo_epochs")
        values = [self.config.get(k) for k in keys] if self.config else [None]
        if not all(isinstance(v, int) and v > 0 for v in values):
            return None
        prompts, mini_batch, epochs = values
        return prompts / mini_batch, epochs


def _hashable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def _read_config(run_dir: str) -> Optional[dict[str, Any]]:
    """The run's record (:func:`sspo_verl.rundir.read_record`) with lists as tuples, to compare and group by."""
    record = read_record(run_dir)
    return None if record is None else {key: _hashable(value) for key, value in record.items()}


def _identity(name: str, config: Optional[dict[str, Any]]) -> tuple[str, Optional[int], str]:
    """``(algorithm, seed, how)`` of a run (see the module docstring)."""
    match = _NAME.match(name)
    if config is not None and config.get("algorithm_preset.name"):
        seed = config.get("seed")
        return str(config["algorithm_preset.name"]), (int(seed) if seed is not None else None), RECORD
    if match:
        return match.group("algorithm"), int(match.group("seed")), "directory name"
    return name, None, "unknown"


def load_run(run_dir: str, source: str = "auto") -> Run:
    """Read one run directory (metrics, identity). Raises ``MetricsNotFoundError`` naming it if it has none."""
    run_dir = os.path.abspath(run_dir)
    steps, used, files = read_run_metrics(run_dir, source)
    config = _read_config(run_dir)
    name = os.path.basename(run_dir.rstrip(os.sep))
    algorithm, seed, how = _identity(name, config)
    notes = []
    if how == "unknown":
        notes.append(
            f"{name}: no {RECORD} and the name is not <algorithm>-<model>-seed<seed>; treated as algorithm "
            f"{name!r} with an unknown seed"
        )
    return Run(name=name, algorithm=algorithm, seed=seed, steps=steps, run_dir=run_dir, source=used, files=files,
               config=config, notes=notes)


def run_from_records(name: str, algorithm: str, seed: Optional[int], records: Iterable[Mapping]) -> Run:
    """A run from verl file-logger records held in memory (``{"step", "data"}``), e.g. while it trains."""
    steps = merge_records(records)
    if not steps:
        raise ValueError(f"{name}: no logged step")
    return Run(name=name, algorithm=algorithm, seed=seed, steps=dict(sorted(steps.items())))


def _ignored(key: str, run: Run) -> bool:
    if not changes_training(key) or "seed" in key.rsplit(".", 1)[-1]:
        return True
    config = run.config or {}
    value = config.get(key)
    if not isinstance(value, str):
        return False
    names = {n for n in (run.name, config.get("trainer.experiment_name")) if isinstance(n, str) and n}
    # the run's own name, or a path naming it (checkpoints, logs, traces)
    return any(value == n or f"/{n}/" in f"{value}/" for n in names) or bool(run.run_dir and run.run_dir in value)


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    """The shortest dotted suffix of each key that is unique among ``keys``."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if sum(1 for other in keys if other == suffix or other.endswith("." + suffix)) == 1:
                out[key] = suffix
                break
        else:
            out[key] = key
    return out


def _format(value: Any) -> str:
    return "null" if value is None else str(value)


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Group runs by algorithm and setting (see the module docstring); sets each run's ``label``.

    Returns:
        ``{label: [runs sorted by seed]}``, labels in :data:`ALGORITHM_ORDER`, then by name.

    Raises:
        ValueError: two runs share a label and a seed.
    """
    by_algorithm: dict[str, list[Run]] = {}
    for run in runs:
        by_algorithm.setdefault(run.algorithm, []).append(run)
    for members in by_algorithm.values():
        configured = [r for r in members if r.config is not None]
        keys = sorted({k for r in configured for k in r.config})
        differing = [
            k for k in keys
            if len({_hashable(r.config.get(k)) for r in configured if not _ignored(k, r)}) > 1
        ]
        short = _short_names(differing)
        for run in members:
            if run.config is None or not differing:
                run.label = run.algorithm
                continue
            setting = ", ".join(f"{short[k]}={_format(run.config.get(k))}" for k in differing)
            run.label = f"{run.algorithm} ({setting})"
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    for label, members in groups.items():
        seen: dict[int, Run] = {}
        for run in members:
            if run.seed is None:
                continue
            if run.seed in seen:
                raise ValueError(
                    f"{seen[run.seed].run_dir or seen[run.seed].name} and {run.run_dir or run.name} are both "
                    f"{label!r} with seed {run.seed}: pass only one of them (the same run twice, or a rerun "
                    "elsewhere)"
                )
            seen[run.seed] = run
        members.sort(key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, r.name))

    def order(label: str):
        algorithm = groups[label][0].algorithm
        rank = ALGORITHM_ORDER.index(algorithm) if algorithm in ALGORITHM_ORDER else len(ALGORITHM_ORDER)
        return rank, label

    return {label: groups[label] for label in sorted(groups, key=order)}
