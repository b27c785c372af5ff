"""Group-relative outcome advantage (spec §8), vectorised over prompt groups.

    R_i   = Σ_t token_level_rewards(i, t)                      outcome reward of response i
    A_i   = (R_i − mean_g(R)) / (std_g(R) + ε)                 norm_by_std (GRPO)
    A_i   =  R_i − mean_g(R)                                   otherwise (Dr. GRPO)
    A(i,t) = A_i · mask(i, t)

g is the prompt group of response i; std is the unbiased (n − 1) standard deviation; a group of size 1 has
mean 0 and std 1, exactly as verl's ``grpo`` estimator.
"""

from __future__ import annotations

import torch

GRPO_EPSILON = 1e-6


def group_relative_advantage(
    scores: torch.Tensor, group_ids: torch.Tensor, norm_by_std: bool = True, epsilon: float = GRPO_EPSILON
) -> torch.Tensor:
    """Per-response advantage from outcome scores.

    Args:
        scores: outcome reward per response. Shape: (B,)
        group_ids: prompt group of each response, integers in ``[0, G)``. Shape: (B,)
        norm_by_std: divide by the group's std.
        epsilon: added to the std.

    Returns:
        Advantage per response. Shape: (B,)
    """
    if scores.dim() != 1 or group_ids.shape != scores.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and group_ids {tuple(group_ids.shape)} must both be (B,)")
    group_ids = group_ids.long()
    num_groups = scores.shape[0]  # ids are < B after np.unique(return_inverse) or any compaction
    count = torch.zeros(num_groups, dtype=scores.dtype, device=scores.device).index_add_(
        0, group_ids, torch.ones_like(scores)
    )  # (G,)
    total = torch.zeros_like(count).index_add_(0, group_ids, scores)  # (G,)
    mean = total / count.clamp(min=1)  # (G,)
    centred = scores - mean[group_ids]  # (B,)
    sq = torch.zeros_like(count).index_add_(0, group_ids, centred * centred)  # (G,) two-pass variance
    std = torch.sqrt(sq / (count - 1).clamp(min=1))  # (G,) unbiased
    singleton = count[group_ids] == 1  # (B,)
    mean_b = torch.where(singleton, torch.zeros_like(scores), mean[group_ids])
    std_b = torch.where(singleton, torch.ones_like(scores), std[group_ids])
    if norm_by_std:
        return (scores - mean_b) / (std_b + epsilon)
    return scores - mean_b


def outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    group_ids: torch.Tensor,
    norm_by_std: bool = True,
    epsilon: float = GRPO_EPSILON,
) -> torch.Tensor:
    """Broadcast :func:`group_relative_advantage` of the summed rewards over the response mask.

    Shape: token_level_rewards, response_mask (B, T); group_ids (B,) -> (B, T).
    """
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)  # (B,)
        adv = group_relative_advantage(scores, group_ids.to(scores.device), norm_by_std, epsilon)
        return adv.unsqueeze(-1) * response_mask
