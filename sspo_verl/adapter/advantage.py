"""``adv_estimator=sspo`` in verl's advantage registry (spec §8).

Group-relative outcome advantage, numerically verl's ``grpo`` (groups of size 1 included) but vectorised over
groups (:func:`sspo_verl.core.advantage.outcome_advantage`). verl's trainer calls it with
``config=<algorithm config>`` and ``index=<uid array>``; ``algorithm.norm_adv_by_std_in_grpo`` is read from
``config`` because verl does not pass it as a keyword on this path.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from verl.trainer.ppo.core_algos import register_adv_est

from sspo_verl.core.advantage import GRPO_EPSILON, outcome_advantage

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
