"""Entropy-adaptive PPO-clip bounds (spec §5; [paper]: the direction, [ours]: the formula).

    H̄(i,k)       = mean of H over the tokens of segment (i,k)            (detached)
    μ            = the entropy reference                                (detached, given or below)
    g(i,k)       = clamp((H̄(i,k) / (μ + 1e-8))^α, g_min, g_max)
    ε_low(i,k)   = min(ε_low · g(i,k), 0.99)      if adapt ∈ {both, low},  else ε_low
    ε_high(i,k)  = ε_high · g(i,k)                if adapt ∈ {both, high}, else ε_high
    clip range   = [1 − ε_low(i,k), 1 + ε_high(i,k)]

High-entropy subsentences (g > 1) get a wider trust region (explore), low-entropy ones a narrower one.
μ is passed in when the caller has it (spec §5: the mean of the sampling policy's entropy over every valid
token of the rollout batch, one number for every micro-batch, so the loss does not depend on how the batch
is split); without it, μ is the mean of H over the valid tokens of the tensors given (the micro-batch),
which makes the loss depend on the micro-batch split.
"""

from __future__ import annotations

from typing import Optional

import torch

from sspo_verl.core.precision import compute_dtype
from sspo_verl.core.segmentation import Segments

ENTROPY_ADAPT_MODES = ("both", "high", "low", "none")
ENTROPY_SOURCES = ("old", "current")  # whose entropy H is: the sampling policy's, or π_θ's in the update
ENTROPY_EPS = 1e-8
EPS_LOW_MAX = 0.99  # keeps 1 − ε_low > 0


def entropy_scale(
    entropy: torch.Tensor,
    segments: Segments,
    alpha: float = 1.0,
    scale_min: float = 0.5,
    scale_max: float = 2.0,
    mean: Optional[float | torch.Tensor] = None,
) -> torch.Tensor:
    """Per-segment entropy scale g. Shape: entropy (B, T) -> (B·T,); entries of unused segment ids are junk.

    Args:
        mean: μ, a number or a 0-dim tensor; None: the mean of ``entropy`` over the valid tokens given.

    Padding of ``entropy`` may hold anything; it is masked here. Statistics are at least float32.
    """
    mask = segments.mask
    dtype = compute_dtype(entropy)  # bf16 entropy -> fp32 statistics
    ent = torch.where(mask, entropy.detach().to(dtype), 0.0)  # (B, T)
    mu = ent.sum() / mask.sum().clamp(min=1) if mean is None else mean  # μ, scalar
    ratio = segments.mean(ent) / (mu + ENTROPY_EPS)  # H̄ / μ, (B·T,)
    if alpha != 1.0:
        ratio = ratio**alpha
    return torch.clamp(ratio, scale_min, scale_max)  # g, (B·T,)


def clip_bounds(
    clip_ratio_low: float,
    clip_ratio_high: float,
    scale: Optional[torch.Tensor] = None,
    adapt: str = "both",
) -> tuple[torch.Tensor | float, torch.Tensor | float]:
    """The clip range ``(1 − ε_low, 1 + ε_high)``: tensors shaped like ``scale`` (g, any shape) where adapted,
    Python floats otherwise."""
    if adapt not in ENTROPY_ADAPT_MODES:
        raise ValueError(f"entropy adapt must be one of {ENTROPY_ADAPT_MODES}, got {adapt!r}")
    lower, upper = 1.0 - clip_ratio_low, 1.0 + clip_ratio_high
    if scale is None or adapt == "none":
        return lower, upper
    if adapt in ("both", "low"):
        # 1 − min(ε_low·g, 0.99) as one fused add and a clamp
        lower = torch.clamp(torch.add(1.0, scale, alpha=-clip_ratio_low), min=1.0 - EPS_LOW_MAX)
    if adapt in ("both", "high"):
        upper = torch.add(1.0, scale, alpha=clip_ratio_high)  # 1 + ε_h·g
    return lower, upper
