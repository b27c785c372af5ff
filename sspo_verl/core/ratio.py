"""Subsentence importance ratio (spec §4; [paper]: one ratio per subsentence, [ours]: the exact form).

    ℓ(i,t)     = log π_θ(y_t) − log π_old(y_t)                              per-token log-ratio
    m(i,k)     = Σ_{t∈S(i,k)} ℓ(i,t) / |S(i,k)|                             log geometric-mean ratio
    r(i,t)     = exp(min(m(i,k(t)), 10))                                   the value, both forms

    ratio_grad = "token"   (GSPO-token, as verl's gspo):
                 log r(i,t) = sg[m(i,k(t))] + log π_θ(y_t) − sg[log π_θ(y_t)]
                 ∂ log r(i,t) / ∂ log π_θ(y_t') = 1[t' = t]
    ratio_grad = "segment" (TRL's sequence-level form):
                 log r(i,t) = m(i,k(t))   (gradient flows through the mean)
                 ∂ log r(i,t) / ∂ log π_θ(y_t') = 1[t' ∈ S(i,k(t))] / |S(i,k(t))|
    The clamp at 10 (as verl's gspo) zeroes the gradient above it.

Granularity ``token`` makes m = ℓ (verl's ``vanilla`` ratio), ``sequence`` makes m the response mean
(verl's ``gspo`` ratio). :mod:`sspo_verl.core.loss` applies the chosen gradient form.
"""

from __future__ import annotations

import torch

from sspo_verl.core.precision import compute_dtype
from sspo_verl.core.segmentation import Segments

RATIO_GRAD_MODES = ("token", "segment")
LOG_RATIO_MAX = 10.0  # same stability clamp as verl's gspo


def segment_log_ratio(log_prob: torch.Tensor, old_log_prob: torch.Tensor, segments: Segments):
    """ℓ per token and m per segment and per token.

    Args:
        log_prob: log π_θ(y_t). Shape: (B, T); must be finite (callers zero the padding). May carry grad:
            ``m`` is then differentiable (the ``segment`` gradient form).
        old_log_prob: log π_old(y_t). Shape: (B, T); padding may hold anything, it is masked here.
        segments: segment structure of the micro-batch.

    Returns:
        ``(token_log_ratio, seg_log_ratio, seg_log_ratio_tok)``: ℓ (B, T), 0 at masked tokens; m per segment
        (B·T,); m(i, k(t)) per position (B, T), masked positions carrying their enclosing segment's value. All
        in :func:`~sspo_verl.core.precision.compute_dtype` of the log-probs (float32 for bf16 ones).
    """
    dtype = compute_dtype(log_prob, old_log_prob)  # both upcast before the difference, never one cast down
    token_log_ratio = torch.where(segments.mask, log_prob.to(dtype) - old_log_prob.to(dtype), 0.0)  # ℓ, (B, T)
    seg_log_ratio = segments.mean(token_log_ratio)  # m, (B·T,)
    return token_log_ratio, seg_log_ratio, segments.broadcast(seg_log_ratio)  # ..., m(i, k(t)) (B, T)
