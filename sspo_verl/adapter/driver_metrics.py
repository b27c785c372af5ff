"""Per-update metrics that only the trainer (driver) can compute: ``diag/*`` (group statistics, off-policyness).

The actor sees micro-batches; it cannot tell how many prompt groups had no reward variance (no learning signal
for a group-relative advantage) or how many optimizer steps one rollout batch feeds. The trainer can: both verl
0.9.1 trainers (V1 ``verl/trainer/ppo/v1/trainer_base.py`` and the legacy ``ray_trainer.RayPPOTrainer``) compute
the advantage of every rollout batch with ``verl.trainer.ppo.ray_trainer.compute_advantage`` (V1 through
``verl.trainer.ppo.v1.utils.compute_advantage_for_multi_trajectories``), whose ``data`` holds ``uid`` and the
token-level scores, and then build the step's data metrics once with
``verl.trainer.ppo.metric_utils.compute_data_metrics``. two patches wrap them:

* ``compute_advantage``: records, for the rows the advantage estimator sees, the number of prompt groups
  (distinct ``uid``), how many of them have zero reward variance, and the row count, in a process-local buffer
  (vectorised: ``np.unique`` over the uids, one ``scatter_reduce`` for the per-group min and max);
* ``compute_data_metrics``: drains the buffer into the step's metrics (keys below).

Logged keys (one value per training step; a step with several advantage computations, e.g. V1's
``parameter_sync_step > 1``, sums the counts and averages the per-rollout-batch values)::

    diag/num_groups                prompt groups (distinct uid) in the step's rollout batch(es)
    diag/num_responses             responses the advantage estimator saw (verl's batch-padding rows excluded)
    diag/zero_var_group_frac       groups whose responses all have the same outcome reward / diag/num_groups
                                   (group-weighted; outcome reward = token_level_scores summed over the
                                   response, before any KL-in-reward penalty; a one-response group counts as
                                   zero variance)
    diag/minibatches_per_rollout   rows of the rollout batch (verl's padding rows included: the actor updates on
                                   them) / responses per PPO mini-batch = optimizer steps per epoch
    diag/ppo_epochs                actor.ppo_epochs
    diag/updates_per_rollout       minibatches_per_rollout x ppo_epochs: optimizer steps taken on one rollout
                                   batch (the last one uses a policy that many - 1 steps away from π_old)

The mini-batch size is a config value the two functions do not receive: ``sspo-train`` passes it to every Ray
process as ``SSPO_PPO_MINI_BATCH_SIZE`` (``actor.ppo_mini_batch_size × rollout.n``, in responses, the exact
number verl's ``_update_actor`` hands to the actor) and ``SSPO_PPO_EPOCHS`` (see :func:`config_env`). Without
them (verl started directly) the three mini-batch keys are not logged and a warning says so once. Multi-turn
agent loops with ``adv_estimator=grpo`` under V1 pass only each session's final turn to ``compute_advantage``;
there the row count (and so the mini-batch count) covers final turns only.

The two wraps are :mod:`sspo_verl.patching` patches (:data:`DATA_METRICS`, :data:`ADVANTAGE`), installed by the
``verl.plugins`` entry point in every process that imports verl (only the trainer process ever calls the two).

Public API:
    DATA_METRICS, ADVANTAGE              the patches
    group_statistics(uids, scores)       (num_groups, num_zero_variance_groups) of one batch
    metrics_from_records(records, mini_batch_size, ppo_epochs)   the ``diag/*`` dict of one step
    config_env(config)                   the environment variables ``sspo-train`` sets from a resolved config
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from sspo_verl.patching import Patch

logger = logging.getLogger(__name__)

PREFIX = "diag/"
ENV_MINI_BATCH_SIZE = "SSPO_PPO_MINI_BATCH_SIZE"
ENV_PPO_EPOCHS = "SSPO_PPO_EPOCHS"
# verl 0.9.1's batch padding (verl/trainer/ppo/padding_utils.py, upsample_batch_to_divisible_size) gives every
# synthetic row the uid f"pad{uuid.uuid4().hex}" (35 characters); real uids are str(uuid.uuid4()) (36, dashes).
PADDING_UID_PREFIX = "pad"
PADDING_UID_LEN = len(PADDING_UID_PREFIX) + 32
MAX_BUFFERED = 4096  # records kept if no trainer drains them (a trainer that never calls compute_data_metrics)


@dataclass(frozen=True)
class Record:
    """What one ``compute_advantage`` call saw.

    Attributes:
        rows: rows of the batch, verl's padding rows included (what the actor update iterates over).
        responses: rows without verl's padding rows.
        groups: distinct uids among ``responses`` (0 when the batch has no uid).
        zero_var_groups: groups whose responses all have the same outcome reward.
    """

    rows: int
    responses: int
    groups: int
    zero_var_groups: int


_lock = threading.Lock()
_records: collections.deque = collections.deque(maxlen=MAX_BUFFERED)
_warned: set = set()


def _warn_once(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(msg)


# ----------------------------------------------------------------------------------------------------------------
# statistics (pure functions)


def group_statistics(uids: np.ndarray, scores: torch.Tensor) -> tuple[int, int]:
    """Number of groups and of zero-reward-variance groups.

    Args:
        uids: group id of each response (any hashable numpy dtype, e.g. object array of str). Shape: (B,).
        scores: outcome reward of each response. Shape: (B,).

    Returns:
        ``(G, Z)``: G distinct uids; Z of them with max(score) == min(score) over their responses (exact
        equality, as verl's GRPO std is exactly 0 then; a one-response group counts).
    """
    if len(uids) != scores.shape[0]:
        raise ValueError(f"{len(uids)} uids for {scores.shape[0]} scores")
    if len(uids) == 0:
        return 0, 0
    _, inverse = np.unique(np.asarray(uids), return_inverse=True)
    index = torch.as_tensor(inverse.reshape(-1), dtype=torch.long)  # (B,) group of each response
    num_groups = int(index.max()) + 1
    scores = scores.detach().to(torch.float64).reshape(-1)  # (B,)
    g_max = torch.full((num_groups,), -torch.inf, dtype=torch.float64).scatter_reduce_(0, index, scores, "amax")
    g_min = torch.full((num_groups,), torch.inf, dtype=torch.float64).scatter_reduce_(0, index, scores, "amin")
    return num_groups, int((g_max == g_min).sum())  # (G,) → Z


def is_padding_uid(uids: np.ndarray) -> np.ndarray:
    """Which uids are verl's batch-padding rows (vectorised string ops). Shape: (B,) → (B,) bool."""
    text = np.asarray(uids).astype(str)
    return (np.char.str_len(text) == PADDING_UID_LEN) & np.char.startswith(text, PADDING_UID_PREFIX)


def record_batch(data) -> Record:
    """The :class:`Record` of a ``DataProto`` handed to ``compute_advantage``."""
    batch = data.batch
    key = "token_level_scores" if "token_level_scores" in batch.keys() else "token_level_rewards"
    scores = batch[key].sum(-1)  # (B,) outcome reward per response, as verl's GRPO sums it
    rows = int(scores.shape[0])
    uids = data.non_tensor_batch.get("uid")
    if uids is None:
        _warn_once("uid", "sspo-verl: the advantage batch has no 'uid'; diag/num_groups and "
                   "diag/zero_var_group_frac are not logged (only the mini-batch counts)")
        return Record(rows=rows, responses=rows, groups=0, zero_var_groups=0)
    uids = np.asarray(uids)
    real = ~is_padding_uid(uids)  # (B,)
    groups, zero = group_statistics(uids[real], scores[torch.as_tensor(real)])
    return Record(rows=rows, responses=int(real.sum()), groups=groups, zero_var_groups=zero)


def metrics_from_records(records, mini_batch_size: Optional[int], ppo_epochs: Optional[int]) -> dict[str, float]:
    """The ``diag/*`` metrics of one training step from its records (see the module docstring)."""
    if not records:
        return {}
    groups = sum(r.groups for r in records)
    out = {PREFIX + "num_responses": float(sum(r.responses for r in records))}
    if groups:
        out[PREFIX + "num_groups"] = float(groups)
        out[PREFIX + "zero_var_group_frac"] = sum(r.zero_var_groups for r in records) / groups
    if mini_batch_size and ppo_epochs:
        per_rollout = sum(r.rows / mini_batch_size for r in records) / len(records)
        out[PREFIX + "minibatches_per_rollout"] = per_rollout
        out[PREFIX + "ppo_epochs"] = float(ppo_epochs)
        out[PREFIX + "updates_per_rollout"] = per_rollout * ppo_epochs
    return out


def _positive_int_env(name: str) -> Optional[int]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{name}={raw!r}: expected a positive integer (sspo-train sets it from the config; unset it "
                         "or fix it)")
    return value


def config_env(config) -> dict[str, str]:
    """``{SSPO_PPO_MINI_BATCH_SIZE, SSPO_PPO_EPOCHS}`` from a resolved training config (what ``sspo-train`` puts
    into ``ray_kwargs.ray_init.runtime_env.env_vars``): responses per actor mini-batch, as verl computes it in
    ``_update_actor`` (``actor.ppo_mini_batch_size × rollout.n``), and ``actor.ppo_epochs``."""
    actor = config.actor_rollout_ref.actor
    return {
        ENV_MINI_BATCH_SIZE: str(int(actor.ppo_mini_batch_size) * int(config.actor_rollout_ref.rollout.n)),
        ENV_PPO_EPOCHS: str(int(actor.get("ppo_epochs", 1))),
    }


# ----------------------------------------------------------------------------------------------------------------
# the buffer between the two wrappers


def _push(record: Record) -> None:
    with _lock:
        _records.append(record)


def drain() -> list[Record]:
    """Take every record buffered since the last call (the step's advantage computations)."""
    with _lock:
        out = list(_records)
        _records.clear()
    return out


def step_metrics() -> dict[str, float]:
    """Drain the buffer into the step's ``diag/*`` metrics (empty if no advantage was computed)."""
    records = drain()
    mini_batch_size = _positive_int_env(ENV_MINI_BATCH_SIZE)
    epochs = _positive_int_env(ENV_PPO_EPOCHS)
    if records and not (mini_batch_size and epochs):
        _warn_once("env", f"sspo-verl: {ENV_MINI_BATCH_SIZE} / {ENV_PPO_EPOCHS} are not set in the trainer process "
                   "(sspo-train sets them); diag/minibatches_per_rollout is not logged")
    return metrics_from_records(records, mini_batch_size, epochs)


# ----------------------------------------------------------------------------------------------------------------
# the wrappers


def _wrap_advantage(original):
    @functools.wraps(original)
    def compute_advantage(data, *args, **kwargs):
        _push(record_batch(data))
        return original(data, *args, **kwargs)

    return compute_advantage


def _wrap_data_metrics(original):
    @functools.wraps(original)
    def compute_data_metrics(*args, **kwargs):
        metrics = original(*args, **kwargs)
        return {**metrics, **step_metrics()}

    return compute_data_metrics


# Order matters: ray_trainer imports compute_data_metrics by name, so metric_utils is patched first.
DATA_METRICS = Patch(
    module="verl.trainer.ppo.metric_utils",
    name="compute_data_metrics",
    params=("batch", "use_critic"),
    wrap=_wrap_data_metrics,
    importers=("verl.trainer.ppo.ray_trainer", "verl.trainer.ppo.v1.trainer_base"),
    why="add the step's diag/* driver metrics to verl's data metrics",
)
ADVANTAGE = Patch(
    module="verl.trainer.ppo.ray_trainer",
    name="compute_advantage",
    params=("data", "adv_estimator", "gamma", "lam", "num_repeat", "norm_adv_by_std_in_grpo", "config"),
    wrap=_wrap_advantage,
    importers=("verl.trainer.ppo.v1.utils",),
    why="record each rollout batch's group statistics for the diag/* driver metrics",
)
PATCHES = (DATA_METRICS, ADVANTAGE)
