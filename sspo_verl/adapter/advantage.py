"""``adv_estimator=sspo`` in verl's advantage registry (spec §8), and its V1 multi-output-session path.

Group-relative outcome advantage, numerically verl's ``grpo`` (groups of size 1 included) but vectorised over
groups (:func:`sspo_verl.core.advantage.outcome_advantage`). verl's trainer calls it with
``config=<algorithm config>`` and ``index=<uid array>``; ``algorithm.norm_adv_by_std_in_grpo`` is read from
``config`` because verl does not pass it as a keyword on this path.

Multi-output agent sessions (V1 trainer): an agent loop may return several outputs per session, keyed
``{uid}_{session_id}_{index}``. verl's ``compute_advantage_for_multi_trajectories``
(``verl/trainer/ppo/v1/utils.py``) special-cases ``grpo`` by name: only each session's final output (largest
``index``) enters the group statistics, and its advantage is given to every output of the session; any other
estimator sees every output as its own response. :data:`MULTI_TRAJECTORY` wraps that function so ``sspo`` takes
the same path as ``grpo``: :func:`session_final_rows` picks the final outputs (vectorised over the keys), verl's
``compute_advantage`` runs the ``sspo`` estimator on them, and :func:`broadcast_to_sessions` gives each session's
value to its outputs. Every other estimator goes to verl's function unchanged.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import numpy as np
import torch
from verl.trainer.ppo.core_algos import register_adv_est

from sspo_verl.core.advantage import GRPO_EPSILON, outcome_advantage
from sspo_verl.patching import Patch

ADV_ESTIMATOR = "sspo"


def group_ids_from_index(index: Any, device=None) -> torch.Tensor:
    """Map prompt-group labels (uid strings, ints, any hashable numpy array) to ids in ``[0, G)``. (B,)"""
    labels = np.asarray(index)
    if labels.ndim != 1:
        raise ValueError(f"index must be a 1-D array of group labels, got shape {labels.shape}")
    _, inverse = np.unique(labels.astype(str) if labels.dtype == object else labels, return_inverse=True)
    return torch.as_tensor(inverse.reshape(-1), dtype=torch.long, device=device)


@register_adv_est(ADV_ESTIMATOR)
def compute_sspo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Optional[np.ndarray] = None,
    epsilon: float = GRPO_EPSILON,
    norm_adv_by_std_in_grpo: Optional[bool] = None,
    config: Optional[Any] = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group-relative advantage; returns ``(advantages, returns)``, both (B, T) and equal, as verl's grpo.

    Args:
        token_level_rewards: Shape: (B, T)
        response_mask: Shape: (B, T)
        index: prompt-group label (verl's ``uid``) of each response. Shape: (B,)
        epsilon: added to the group std.
        norm_adv_by_std_in_grpo: overrides ``config.norm_adv_by_std_in_grpo`` when given.
        config: verl's algorithm config.
    """
    if index is None:
        raise ValueError("adv_estimator=sspo needs the prompt-group index (verl's non_tensor_batch['uid']).")
    if norm_adv_by_std_in_grpo is None:
        norm_adv_by_std_in_grpo = config.get("norm_adv_by_std_in_grpo", True) if config is not None else True
    group_ids = group_ids_from_index(index, device=token_level_rewards.device)
    advantages = outcome_advantage(token_level_rewards, response_mask, group_ids, bool(norm_adv_by_std_in_grpo),
                                   epsilon)
    return advantages, advantages


def session_final_rows(batch_keys) -> tuple[np.ndarray, np.ndarray]:
    """The rows of each session's final output, and each row's session.

    Args:
        batch_keys: V1 sample keys ``{uid}_{session_id}_{index}`` (``index`` an integer), one per row.

    Returns:
        ``(final_rows, row_session)``: for each session, in order of first appearance, the row holding its largest
        ``index`` (the first such row on a tie); for each row, the position of its session in ``final_rows``.
        Shapes (S,), (B,).
    """
    parts = [str(key).rsplit("_", 2) for key in batch_keys]
    bad = [key for key, p in zip(batch_keys, parts) if len(p) != 3 or not p[2].lstrip("-").isdigit()]
    if bad:
        raise ValueError(f"V1 batch keys must look like '{{uid}}_{{session_id}}_{{index}}'; got {bad[:3]}")
    sessions = np.array([f"{p[0]}_{p[1]}" for p in parts], dtype=object)
    index = np.array([int(p[2]) for p in parts], dtype=np.int64)
    _, first_seen, inverse = np.unique(sessions.astype(str), return_index=True, return_inverse=True)
    rank = np.empty_like(first_seen)
    rank[np.argsort(first_seen, kind="stable")] = np.arange(len(first_seen))  # sorted id -> appearance order
    row_session = rank[inverse.reshape(-1)]  # (B,)
    rows = np.arange(len(parts))
    order = np.lexsort((rows, -index, row_session))  # by session, then largest index, then earliest row
    starts = np.r_[True, row_session[order][1:] != row_session[order][:-1]]
    return order[starts], row_session


def broadcast_to_sessions(final_advantages: torch.Tensor, final_mask: torch.Tensor, row_session: np.ndarray,
                          response_mask: torch.Tensor) -> torch.Tensor:
    """Each session's outcome advantage (its final output's, read at the first valid token) on every output.

    Shape: final_advantages, final_mask (S, T); row_session (B,); response_mask (B, T) -> (B, T).
    """
    first_valid = final_mask.argmax(dim=1)  # (S,)
    per_session = final_advantages[torch.arange(final_advantages.shape[0]), first_valid]  # (S,)
    index = torch.as_tensor(row_session, dtype=torch.long, device=per_session.device)
    return per_session[index].unsqueeze(-1) * response_mask  # (B, T)


def _wrap_multi_trajectories(original):
    @functools.wraps(original)
    def compute_advantage_for_multi_trajectories(data, batch_keys, adv_estimator, gamma=1.0, lam=1.0,
                                                  num_repeat=1, norm_adv_by_std_in_grpo=True, config=None):
        if adv_estimator != ADV_ESTIMATOR:
            return original(data, batch_keys, adv_estimator, gamma, lam, num_repeat, norm_adv_by_std_in_grpo,
                            config)
        from verl.trainer.ppo.v1 import utils as v1_utils  # its compute_advantage, as verl's grpo path calls it

        final_rows, row_session = session_final_rows(batch_keys)
        final = v1_utils.compute_advantage(data.select_idxs(final_rows), adv_estimator=adv_estimator, gamma=gamma,
                                           lam=lam, num_repeat=num_repeat,
                                           norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo, config=config)
        advantages = broadcast_to_sessions(final.batch["advantages"], final.batch["response_mask"], row_session,
                                           data.batch["response_mask"])
        data.batch["advantages"] = advantages
        data.batch["returns"] = advantages
        return data

    return compute_advantage_for_multi_trajectories


MULTI_TRAJECTORY = Patch(
    module="verl.trainer.ppo.v1.utils",
    name="compute_advantage_for_multi_trajectories",
    params=("data", "batch_keys", "adv_estimator", "gamma", "lam", "num_repeat", "norm_adv_by_std_in_grpo", "config"),
    wrap=_wrap_multi_trajectories,
    importers=("verl.trainer.ppo.v1.trainer_base",),
    why="give adv_estimator=sspo verl's GRPO path for multi-output agent sessions (final output per session)",
)
