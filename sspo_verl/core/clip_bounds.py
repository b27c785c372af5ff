"""Entropy-adaptive PPO-clip bounds (spec §5; [paper]: the direction, [ours]: the formula).

    H̄(i,k)       = mean of H over the tokens of segment (i,k)            (detached)
    μ            = mean of H over all valid tokens of the micro-batch   (detached)
    g(i,k)       = clamp((H̄(i,k) / (μ + 1e-8))^α, g_min, g_max)
    ε_low(i,k)   = min(ε_low · g(i,k), 0.99)      if adapt ∈ {both, low},  else ε_low
    ε_high(i,k)  = ε_high · g(i,k)                if adapt ∈ {both, high}, else ε_high

High-entropy subsentences (g > 1) get a wider trust region (explore), low-entropy ones a narrower one.
"""

from __future__ import annotations

from typing import Optional

import torch

from sspo_verl.core.segmentation import Segments

ENTROPY_ADAPT_MODES = ("both", "high", "low", "none")
ENTROPY_EPS = 1e-8
EPS_LOW_MAX = 0.99  # keeps 1 − ε_low > 0


def entropy_scale(
    entropy: torch.Tensor, segments: Segments, alpha: float = 1.0, scale_min: float = 0.5, scale_max: float = 2.0
) -> torch.Tensor:
    """Per-segment entropy scale g. Shape: entropy (B, T) -> (B·T,) (1.0 at unused segment ids).

    ``entropy`` must be finite at valid tokens; padding is ignored.
    """
    mask = segments.mask
    dtype = torch.promote_types(entropy.dtype, torch.float32)  # bf16 entropy -> fp32 statistics
    ent = torch.where(mask, entropy.detach(), torch.zeros_like(entropy)).to(dtype)  # (B, T)
    mu = ent.sum() / mask.sum().clamp(min=1)  # μ, scalar
    seg_ent = segments.mean(ent)  # H̄, (B·T,)
    g = torch.clamp((seg_ent / (mu + ENTROPY_EPS)) ** alpha, scale_min, scale_max)  # (B·T,)
    return torch.where(segments.valid, g, torch.ones_like(g))


def clip_bounds(
    clip_ratio_low: float,
    clip_ratio_high: float,
    scale: Optional[torch.Tensor],
    adapt: str = "both",
) -> tuple[torch.Tensor | float, torch.Tensor | float]:
    """(ε_low, ε_high), per token when ``scale`` (g broadcast to (B, T)) is given, scalars otherwise."""
    if adapt not in ENTROPY_ADAPT_MODES:
        raise ValueError(f"entropy adapt must be one of {ENTROPY_ADAPT_MODES}, got {adapt!r}")
    if scale is None or adapt == "none":
        return clip_ratio_low, clip_ratio_high
    eps_low = torch.clamp(clip_ratio_low * scale, max=EPS_LOW_MAX) if adapt in ("both", "low") else clip_ratio_low
    eps_high = clip_ratio_high * scale if adapt in ("both", "high") else clip_ratio_high
    return eps_low, eps_high
