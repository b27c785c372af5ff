"""Granularity diagnostics, the same for every algorithm (spec §7; issue: compare like with like).

The GSPO/SSPO debate is about where the clip bites. For one micro-batch, whatever loss trained it, this
module evaluates the PPO clip of the run's own bounds [1 − ε_low, 1 + ε_high] on the importance ratio pooled
at each granularity g ∈ {token, subsentence, sequence}:

    r_g(i,t)   = exp(min(m_g(i, k_g(t)), 10))        m_g: mean log-ratio of the unit (token / subsentence /
                                                     response) that contains t
    clipped_g  = (A > 0 and r_g > 1 + ε_high) or (A < 0 and r_g < 1 − ε_low)

and reports, per granularity (keys relative to ``actor/diag/``):

    {g}/clipfrac              token-weighted fraction of clipped tokens
    {g}/seq_all_clipped_frac  fraction of responses with every token clipped (the response is discarded)
    {g}/seq_none_clipped_frac fraction of responses with no token clipped (the response is kept whole)
    {g}/log_ratio_std         spread of the unit log-ratio m_g over units (unit-weighted std)

plus off-policyness ``kl_old_new`` = mean over tokens of −ℓ (k1 estimate of KL(π_old‖π_θ)) and
``abs_log_ratio_mean``, and ``zero_adv_seq_frac`` (responses whose advantage is 0 on every token: for the
group-relative estimators with outcome rewards, the responses of groups with zero reward variance).
Entropy-adaptive bounds are not applied here, so SSPO's entropy scale shows up as a difference between its
own ``actor/sspo/*`` metrics and ``actor/diag/subsentence/*``.
"""

from __future__ import annotations

import torch

from sspo_verl.core.precision import compute_dtype
from sspo_verl.core.ratio import LOG_RATIO_MAX
from sspo_verl.core.segmentation import Segments

DIAGNOSTIC_GRANULARITIES = ("token", "subsentence", "sequence")


def granularity_diagnostics(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    segments: dict[str, Segments],
    clip_ratio_low: float,
    clip_ratio_high: float,
) -> dict[str, torch.Tensor]:
    """Diagnostics as 0-d tensors, float32 (float64 for float64 log-probs); one ``.tolist()`` converts them all.

    Args:
        log_prob, old_log_prob, advantages: Shape: (B, T); padding may hold anything.
        segments: :class:`Segments` of this micro-batch per granularity name (same mask in all).
        clip_ratio_low, clip_ratio_high: the run's ε_low / ε_high.
    """
    with torch.no_grad():
        any_seg = next(iter(segments.values()))
        mask = any_seg.mask
        dtype = compute_dtype(log_prob, old_log_prob)  # float32 (float64 when given float64), as the loss
        log_ratio = torch.where(mask, log_prob.to(dtype) - old_log_prob.to(dtype), 0.0)  # ℓ, (B, T)
        adv = torch.where(mask, advantages.to(dtype), 0.0)
        n_tok = mask.sum().to(dtype).clamp(min=1)
        row_tokens = mask.sum(dim=1).to(dtype)  # (B,)
        rows = row_tokens > 0
        n_rows = rows.sum().to(dtype).clamp(min=1)
        lower, upper = 1.0 - clip_ratio_low, 1.0 + clip_ratio_high

        out = {
            "kl_old_new": -log_ratio.sum() / n_tok,
            "abs_log_ratio_mean": log_ratio.abs().sum() / n_tok,
            "zero_adv_seq_frac": (((adv != 0).sum(dim=1) == 0) & rows).sum().to(dtype) / n_rows,
        }
        for name, seg in segments.items():
            m_seg = seg.mean(log_ratio)  # (B·T,) unit log-ratio
            m = seg.broadcast(m_seg)  # (B, T)
            ratio = torch.exp(torch.clamp(m, max=LOG_RATIO_MAX))
            clipped = ((adv > 0) & (ratio > upper)) | ((adv < 0) & (ratio < lower))  # (B, T), never at padding
            row_clipped = clipped.sum(dim=1).to(dtype)  # (B,)
            valid = seg.counts.clamp(max=1)  # (B·T,) used units
            n_units = valid.sum().clamp(min=1)
            mean = (m_seg * valid).sum() / n_units
            var = (((m_seg - mean) ** 2) * valid).sum() / n_units
            out[f"{name}/clipfrac"] = clipped.sum().to(dtype) / n_tok
            out[f"{name}/seq_all_clipped_frac"] = ((row_clipped == row_tokens) & rows).sum().to(dtype) / n_rows
            out[f"{name}/seq_none_clipped_frac"] = ((row_clipped == 0) & rows).sum().to(dtype) / n_rows
            out[f"{name}/log_ratio_std"] = var.sqrt()
        return out
