"""Subsentence importance ratio (spec §4; [paper]: one ratio per subsentence, [ours]: the exact form).

    ℓ(i,t)     = log π_θ(y_t) − log π_old(y_t)                              per-token log-ratio
    m(i,k)     = Σ_{t∈S(i,k)} ℓ(i,t) / |S(i,k)|                             log geometric-mean ratio
    ratio_grad = "token"   (GSPO-token, as verl's gspo):
                 log r(i,t) = sg[m(i,k(t))] + log π_θ(y_t) − sg[log π_θ(y_t)]
                 value exp(m), gradient r · ∇ log π_θ(y_t)
    ratio_grad = "segment" (TRL's sequence-level form):
                 log r(i,t) = m(i,k(t))   (gradient flows through the mean)
    both: log r clamped at max 10, r = exp(log r)

Granularity ``token`` makes m = ℓ (verl's ``vanilla`` ratio), ``sequence`` makes m the response mean
(verl's ``gspo`` ratio).
"""

from __future__ import annotations

import torch

from sspo_verl.core.segmentation import Segments

RATIO_GRAD_MODES = ("token", "segment")
LOG_RATIO_MAX = 10.0  # same stability clamp as verl's gspo


def subsentence_log_ratio(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, segments: Segments, ratio_grad: str = "token"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log of the subsentence importance ratio.

    Args:
        log_prob: log π_θ(y_t), has grad. Shape: (B, T); must be finite where the mask is set and 0 (or any
            finite value) elsewhere — callers sanitise padding first.
        old_log_prob: log π_old(y_t). Shape: (B, T).
        segments: segment structure of the micro-batch.
        ratio_grad: ``"token"`` or ``"segment"``.

    Returns:
        ``(log_ratio, seg_log_ratio)``: log r (B, T), clamped at ``LOG_RATIO_MAX``, 0 at masked tokens;
        m per segment (B·T,), detached.
    """
    if ratio_grad not in RATIO_GRAD_MODES:
        raise ValueError(f"ratio_grad must be one of {RATIO_GRAD_MODES}, got {ratio_grad!r}")
    mask = segments.mask
    token_log_ratio = torch.where(mask, log_prob - old_log_prob, torch.zeros_like(log_prob))  # ℓ, (B, T)
    seg_log_ratio = segments.mean(token_log_ratio)  # m, (B·T,)
    seg_log_ratio_tok = segments.broadcast(seg_log_ratio)  # m(i, k(t)), (B, T)
    if ratio_grad == "token":
        # log r = sg[m] + log π − sg[log π]
        log_ratio = seg_log_ratio_tok.detach() + log_prob - log_prob.detach()
    else:
        log_ratio = seg_log_ratio_tok
    log_ratio = torch.where(mask, torch.clamp(log_ratio, max=LOG_RATIO_MAX), torch.zeros_like(log_ratio))
    return log_ratio, seg_log_ratio.detach()
