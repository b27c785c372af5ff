"""SSPO loss matrix and its diagnostics (spec §6, §7).

    r(i,t)   subsentence ratio (``core.ratio``), ε_low/ε_high(i,k(t)) entropy-adaptive bounds (``core.clip_bounds``)
    pg1      = −A · r
    pg2      = −A · clamp(r, 1 − ε_low, 1 + ε_high)
    pg       = max(pg1, pg2)
    dual clip (as verl's vanilla, when clip_ratio_c is set):  for A < 0, pg = min(pg, −A · c)
    pg      *= rollout_is_weights (when given)

The scalar loss is ``verl.trainer.ppo.core_algos.agg_loss(pg, mask, loss_agg_mode, **global_batch_info)``,
applied by the verl adapter; this module stays framework-free.

Padding is sanitised first: NaN/inf at masked positions never reach the loss or its gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from sspo_verl.core.clip_bounds import clip_bounds, entropy_scale
from sspo_verl.core.ratio import subsentence_log_ratio
from sspo_verl.core.segmentation import Segments

# Metric names (spec §7); the verl adapter prefixes them with "actor/sspo/".
SSPO_METRIC_NAMES = (
    "clipfrac_high",
    "clipfrac_low",
    "segment_clipfrac",
    "seq_all_clipped_frac",
    "seq_none_clipped_frac",
    "segments_per_seq",
    "segment_len_mean",
    "segment_len_max",
    "ratio_min",
    "ratio_max",
    "eps_scale_mean",
    "eps_scale_min",
    "eps_scale_max",
)
# verl's conventional policy-loss metrics, same definitions as its vanilla loss.
VERL_METRIC_NAMES = ("pg_clipfrac", "pg_clipfrac_lower", "ppo_kl")


@dataclass(frozen=True)
class SSPOParams:
    """Hyper-parameters the loss matrix needs (the adapter builds this from verl's actor config).

    ``clip_ratio_c=None`` disables the dual clip.
    """

    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.28
    clip_ratio_c: Optional[float] = 3.0
    ratio_grad: str = "token"
    entropy_clip: bool = True
    entropy_alpha: float = 1.0
    entropy_scale_min: float = 0.5
    entropy_scale_max: float = 2.0
    entropy_adapt: str = "both"


@dataclass(frozen=True)
class SSPOLossStats:
    """Detached per-token / per-segment quantities the metrics are computed from.

    Attributes:
        segments: segment structure.
        token_log_ratio: ℓ = log π_θ − log π_old, unclamped, 0 at masked. (B, T)
        ratio: value of r. (B, T), 0 at masked.
        clipped_high: PPO clip active at the upper bound (A > 0, r > 1 + ε_high). (B, T) bool
        clipped_low: PPO clip active at the lower bound (A < 0, r < 1 − ε_low). (B, T) bool
        dual_clipped: dual clip active (A < 0, r > c). (B, T) bool
        scale: entropy scale g per segment (B·T,), or None without entropy clipping.
    """

    segments: Segments
    token_log_ratio: torch.Tensor
    ratio: torch.Tensor
    clipped_high: torch.Tensor
    clipped_low: torch.Tensor
    dual_clipped: torch.Tensor
    scale: Optional[torch.Tensor]


def sspo_loss_matrix(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    segments: Segments,
    params: SSPOParams,
    entropy: Optional[torch.Tensor] = None,
    rollout_is_weights: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, SSPOLossStats]:
    """Per-token SSPO policy-gradient loss (before aggregation).

    Args:
        log_prob: log π_θ(y_t), has grad. Shape: (B, T)
        old_log_prob: log π_old(y_t). Shape: (B, T)
        advantages: A. Shape: (B, T)
        segments: from :func:`sspo_verl.core.segmentation.segment_responses` (holds the mask).
        params: :class:`SSPOParams`.
        entropy: token entropy of π_θ, required when ``params.entropy_clip``. Shape: (B, T)
        rollout_is_weights: optional importance weights multiplying the loss. Shape: (B, T)

    Returns:
        ``(pg_losses, stats)``: (B, T) loss matrix, exactly 0 at masked tokens; :class:`SSPOLossStats`.
    """
    mask = segments.mask
    zeros = torch.zeros_like(log_prob)
    log_prob = torch.where(mask, log_prob, zeros)  # sanitise padding (NaN/inf never reach the graph)
    old_log_prob = torch.where(mask, old_log_prob.to(log_prob.dtype), zeros)
    advantages = torch.where(mask, advantages.to(log_prob.dtype), zeros)

    log_ratio, _ = subsentence_log_ratio(log_prob, old_log_prob, segments, params.ratio_grad)  # (B, T)
    ratio = torch.exp(log_ratio)  # (B, T)

    scale = None
    if params.entropy_clip:
        if entropy is None:
            raise ValueError(
                "SSPO entropy clipping needs the token entropy of the current policy, and none was given. "
                "Set actor_rollout_ref.actor.calculate_entropy=true, or disable entropy clipping with "
                "actor_rollout_ref.actor.policy_loss.entropy_clip=false."
            )
        entropy = torch.where(mask, entropy.detach(), torch.zeros_like(entropy))
        scale = entropy_scale(entropy, segments, params.entropy_alpha, params.entropy_scale_min,
                              params.entropy_scale_max)  # g, (B·T,)
        scale_tok = segments.broadcast(scale).to(log_prob.dtype)  # (B, T)
    else:
        scale_tok = None
    eps_low, eps_high = clip_bounds(params.clip_ratio_low, params.clip_ratio_high, scale_tok,
                                    params.entropy_adapt)  # scalars or (B, T)

    pg_losses1 = -advantages * ratio  # (B, T)
    if isinstance(eps_low, torch.Tensor) or isinstance(eps_high, torch.Tensor):
        # per-token bounds; torch.clamp takes two tensors or two numbers (full_like: no host->device copy)
        lower = 1 - (eps_low if isinstance(eps_low, torch.Tensor) else torch.full_like(ratio, eps_low))
        upper = 1 + (eps_high if isinstance(eps_high, torch.Tensor) else torch.full_like(ratio, eps_high))
        clipped_ratio = torch.clamp(ratio, lower, upper)
    else:
        clipped_ratio = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    pg_losses2 = -advantages * clipped_ratio  # (B, T)
    clip_pg_losses1 = torch.maximum(pg_losses1, pg_losses2)  # (B, T)
    ppo_clipped = torch.gt(pg_losses2, pg_losses1) & mask  # (B, T)

    if params.clip_ratio_c is not None:
        pg_losses3 = -advantages * params.clip_ratio_c  # (B, T)
        clip_pg_losses2 = torch.minimum(pg_losses3, clip_pg_losses1)
        negative = advantages < 0
        pg_losses = torch.where(negative, clip_pg_losses2, clip_pg_losses1)
        dual_clipped = torch.gt(clip_pg_losses1, pg_losses3) & negative & mask
    else:
        pg_losses = clip_pg_losses1
        dual_clipped = torch.zeros_like(mask)

    if rollout_is_weights is not None:
        pg_losses = pg_losses * torch.where(mask, rollout_is_weights.to(pg_losses.dtype), zeros)
    pg_losses = torch.where(mask, pg_losses, zeros)

    stats = SSPOLossStats(
        segments=segments,
        token_log_ratio=(log_prob - old_log_prob).detach(),
        ratio=ratio.detach(),
        clipped_high=ppo_clipped & (advantages > 0),
        clipped_low=ppo_clipped & (advantages < 0),
        dual_clipped=dual_clipped,
        scale=scale,
    )
    return pg_losses, stats


def sspo_metrics(stats: SSPOLossStats) -> dict[str, torch.Tensor]:
    """Diagnostics of one micro-batch as 0-d tensors (convert with one ``.tolist()``: one device sync).

    Weighting (spec §7): ``clipfrac_*``, ``pg_*``, ``ppo_kl``, ``ratio_*`` over valid tokens;
    ``segment_clipfrac``, ``segment_len_*``, ``eps_scale_*`` over segments; ``seq_*``, ``segments_per_seq``
    over responses with at least one valid token. A token counts as *clipped* when the clip zeroes its
    gradient: PPO clip at either bound, or the dual clip. With no valid token, fractions and counts are 0
    and ratio/scale statistics 1.
    """
    seg = stats.segments
    mask = seg.mask
    f32 = torch.float32
    n_tok = mask.sum().to(f32)
    n_tok_safe = n_tok.clamp(min=1)
    any_tok = n_tok > 0

    high = stats.clipped_high.to(f32)
    low = stats.clipped_low.to(f32)
    dual = stats.dual_clipped.to(f32)
    clipped = (stats.clipped_high | stats.clipped_low | stats.dual_clipped).to(f32)  # (B, T)

    # segment-weighted: mean over segments of the fraction of the segment's tokens clipped
    valid_seg = seg.valid  # (B·T,)
    n_seg = valid_seg.sum().to(f32)
    n_seg_safe = n_seg.clamp(min=1)
    seg_clip = seg.mean(clipped)  # (B·T,)
    segment_clipfrac = torch.where(valid_seg, seg_clip, torch.zeros_like(seg_clip)).sum() / n_seg_safe

    # response-weighted
    row_tokens = mask.sum(dim=1)  # (B,)
    row_clipped = clipped.sum(dim=1)  # (B,)
    rows = row_tokens > 0
    n_rows = rows.sum().to(f32).clamp(min=1)
    seq_all = ((row_clipped == row_tokens.to(f32)) & rows).sum().to(f32) / n_rows
    seq_none = ((row_clipped == 0) & rows).sum().to(f32) / n_rows
    segments_per_seq = seg.num_segments.to(f32).sum() / n_rows

    one = torch.ones((), dtype=f32, device=mask.device)
    ratio = stats.ratio.to(f32)
    ratio_min = torch.where(mask, ratio, torch.full_like(ratio, float("inf"))).amin()
    ratio_max = torch.where(mask, ratio, torch.full_like(ratio, float("-inf"))).amax()
    if stats.scale is not None:
        g = stats.scale.to(f32)
        eps_scale_mean = torch.where(valid_seg, g, torch.zeros_like(g)).sum() / n_seg_safe
        eps_scale_min = torch.where(valid_seg, g, torch.full_like(g, float("inf"))).amin()
        eps_scale_max = torch.where(valid_seg, g, torch.full_like(g, float("-inf"))).amax()
    else:
        eps_scale_mean = eps_scale_min = eps_scale_max = one

    metrics = {
        "pg_clipfrac": (high + low).sum() / n_tok_safe,
        "pg_clipfrac_lower": dual.sum() / n_tok_safe,
        "ppo_kl": -stats.token_log_ratio.to(f32).sum() / n_tok_safe,
        "clipfrac_high": high.sum() / n_tok_safe,
        "clipfrac_low": low.sum() / n_tok_safe,
        "segment_clipfrac": segment_clipfrac,
        "seq_all_clipped_frac": seq_all,
        "seq_none_clipped_frac": seq_none,
        "segments_per_seq": segments_per_seq,
        "segment_len_mean": n_tok / n_seg_safe,
        "segment_len_max": seg.counts.amax().to(f32),
        "ratio_min": torch.where(any_tok, ratio_min, one),
        "ratio_max": torch.where(any_tok, ratio_max, one),
        "eps_scale_mean": torch.where(any_tok, eps_scale_mean, one),
        "eps_scale_min": torch.where(any_tok, eps_scale_min, one),
        "eps_scale_max": torch.where(any_tok, eps_scale_max, one),
    }
    return metrics
