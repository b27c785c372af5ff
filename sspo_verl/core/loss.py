"""SSPO loss matrix and its diagnostics (spec §6, §7).

    r(i,t)   subsentence ratio (``core.ratio``), ε_low/ε_high(i,k(t)) entropy-adaptive bounds (``core.clip_bounds``)
    pg1      = −A · r
    pg2      = −A · clamp(r, 1 − ε_low, 1 + ε_high)
    pg       = max(pg1, pg2)
    dual clip (as verl's vanilla, when clip_ratio_c is set):  for A < 0, pg = min(pg, −A · c)
    pg      *= rollout_is_weights (when given)

The scalar loss is ``verl.trainer.ppo.core_algos.agg_loss(pg, mask, loss_agg_mode, **global_batch_info)``,
applied by the verl adapter; this module stays framework-free.

Gradient, written out (the pattern of fused losses such as Liger-Kernel's): the value of ``pg`` is computed
without autograd, and its exact derivative with respect to log r is

    ∂pg/∂log r = −A · r · w · 1[PPO clip inactive] · 1[dual clip inactive] · 1[m ≤ 10]

(the clamp of the unclipped branch and the max/min pass the gradient only where they select the r-dependent
term). The returned matrix is ``pg + sg[∂pg/∂log r] · (x − sg[x])``: its value is exactly ``pg`` and autograd
sees two cheap ops instead of the whole clip chain; x = log π_θ for ``ratio_grad="token"`` and x = m(i, k(t))
(differentiable segment mean) for ``"segment"``. The float64 reference in ``tests/`` checks this gradient
against autograd of the direct formula.

Padding is sanitised first: NaN/inf at masked positions never reach the loss or its gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from sspo_verl.core.clip_bounds import clip_bounds, entropy_scale
from sspo_verl.core.precision import compute_dtype
from sspo_verl.core.ratio import LOG_RATIO_MAX, RATIO_GRAD_MODES, segment_log_ratio
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
    """Detached quantities the metrics are computed from (no metric work happens in the loss itself).

    Attributes:
        segments: segment structure.
        token_log_ratio: ℓ = log π_θ − log π_old, unclamped, 0 at masked. (B, T)
        seg_log_ratio: m per segment. (B·T,)
        advantages: A, 0 at masked. (B, T)
        ppo_clipped: PPO clip active, at either bound (0 at masked). (B, T) bool
        dual_clipped: dual clip active (A < 0, r > c). (B, T) bool
        scale: entropy scale g per segment (B·T,), or None without entropy clipping.
    """

    segments: Segments
    token_log_ratio: torch.Tensor
    seg_log_ratio: torch.Tensor
    advantages: torch.Tensor
    ppo_clipped: torch.Tensor
    dual_clipped: torch.Tensor
    scale: Optional[torch.Tensor]


class _ValueWithGradient(torch.autograd.Function):
    """``value`` in the forward pass; in the backward pass ∂out/∂x = ``grad`` elementwise.

    The same as ``value + grad · (x − sg[x])`` (module docstring), without its three forward ops and their
    backward: one multiply in the backward pass.
    """

    @staticmethod
    def forward(ctx, x, value, grad):
        ctx.save_for_backward(grad)
        return value.view_as(value)

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad_output * grad, None, None


def sspo_loss_matrix(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    segments: Segments,
    params: SSPOParams,
    entropy: Optional[torch.Tensor] = None,
    rollout_is_weights: Optional[torch.Tensor] = None,
    entropy_mean: Optional[float | torch.Tensor] = None,
) -> tuple[torch.Tensor, SSPOLossStats]:
    """Per-token SSPO policy-gradient loss (before aggregation).

    Args:
        log_prob: log π_θ(y_t), has grad. Shape: (B, T)
        old_log_prob: log π_old(y_t). Shape: (B, T)
        advantages: A. Shape: (B, T)
        segments: from :func:`sspo_verl.core.segmentation.segment_responses` (holds the mask).
        params: :class:`SSPOParams`.
        entropy: token entropy H, required when ``params.entropy_clip`` (the sampling policy's or the
            current one's; spec §5). Shape: (B, T)
        rollout_is_weights: optional importance weights multiplying the loss. Shape: (B, T)
        entropy_mean: μ, the entropy reference of the clip-bound scale (a number or 0-dim tensor); None: the
            mean of ``entropy`` over this micro-batch's valid tokens (the loss then depends on the split).

    Returns:
        ``(pg_losses, stats)``: (B, T) loss matrix in :func:`~sspo_verl.core.precision.compute_dtype` of the
        log-probs (float32 for bf16 ones), 0 at masked tokens, differentiable in ``log_prob``;
        :class:`SSPOLossStats`. Padding of every input may hold NaN/inf: it never reaches the loss or the
        gradient.
    """
    if params.ratio_grad not in RATIO_GRAD_MODES:
        raise ValueError(f"ratio_grad must be one of {RATIO_GRAD_MODES}, got {params.ratio_grad!r}")
    if params.entropy_clip and entropy is None:
        raise ValueError(
            "SSPO entropy clipping needs a token entropy, and none was given: pass entropy=, or disable "
            "entropy clipping (actor_rollout_ref.actor.policy_loss.entropy_clip=false)."
        )
    mask = segments.mask
    dtype = compute_dtype(log_prob, old_log_prob)  # float32 for a bf16 engine, float64 kept
    # sanitise padding before anything differentiable; bf16 -> float32 is exact (autograd casts the gradient back)
    log_prob = torch.where(mask, log_prob, 0.0).to(dtype)
    segment_grad = params.ratio_grad == "segment"
    with torch.set_grad_enabled(segment_grad and log_prob.requires_grad):
        token_log_ratio, seg_log_ratio, seg_log_ratio_tok = segment_log_ratio(
            log_prob, old_log_prob, segments
        )  # ℓ (B, T), m (B·T,), m(i, k(t)) (B, T), all in dtype

    with torch.no_grad():
        advantages = torch.where(mask, advantages.to(dtype), 0.0)  # A = 0 makes padded losses 0
        m = seg_log_ratio_tok.detach()
        ratio = torch.exp(torch.clamp(m, max=LOG_RATIO_MAX))  # r, (B, T)

        scale = None
        if params.entropy_clip:
            scale = entropy_scale(entropy, segments, params.entropy_alpha, params.entropy_scale_min,
                                  params.entropy_scale_max, mean=entropy_mean)  # g, (B·T,)
            lower, upper = clip_bounds(params.clip_ratio_low, params.clip_ratio_high,
                                       segments.broadcast(scale).to(ratio.dtype), params.entropy_adapt)
        else:
            lower, upper = clip_bounds(params.clip_ratio_low, params.clip_ratio_high)
        if isinstance(lower, torch.Tensor) or isinstance(upper, torch.Tensor):
            # torch.clamp takes two tensors or two numbers (full_like: a fill, no host-to-device copy)
            lower = lower if isinstance(lower, torch.Tensor) else torch.full_like(ratio, lower)
            upper = upper if isinstance(upper, torch.Tensor) else torch.full_like(ratio, upper)

        neg_adv = -advantages
        pg_losses1 = neg_adv * ratio  # −A·r
        pg_losses2 = neg_adv * torch.clamp(ratio, lower, upper)  # −A·clip(r)
        ppo_clipped = pg_losses2 > pg_losses1  # (B, T); never at padding, where A = 0
        pg_losses = torch.maximum(pg_losses1, pg_losses2)
        if params.clip_ratio_c is not None:
            pg_losses3 = neg_adv * params.clip_ratio_c  # −A·c
            dual_clipped = (pg_losses > pg_losses3) & (advantages < 0)  # for A < 0: min(pg, −A·c)
            pg_losses = torch.where(dual_clipped, pg_losses3, pg_losses)
            active = ~(ppo_clipped | dual_clipped)
        else:
            dual_clipped = torch.zeros_like(mask)
            active = ~ppo_clipped
        # ∂pg/∂log r: −A·r where the r-dependent branch is selected and the clamp at 10 is not active
        grad_log_ratio = torch.where(active & (m <= LOG_RATIO_MAX), pg_losses1, 0.0)
        if rollout_is_weights is not None:
            weights = torch.where(mask, rollout_is_weights.to(pg_losses.dtype), 0.0)
            pg_losses = pg_losses * weights
            grad_log_ratio = grad_log_ratio * weights

    x = seg_log_ratio_tok if segment_grad else log_prob  # what log r moves with (see module docstring)
    if x.requires_grad:
        pg_losses = _ValueWithGradient.apply(x, pg_losses, grad_log_ratio)  # value pg, gradient ∂pg/∂log r · ∂x

    stats = SSPOLossStats(segments=segments, token_log_ratio=token_log_ratio.detach(),
                          seg_log_ratio=seg_log_ratio.detach(), advantages=advantages, ppo_clipped=ppo_clipped,
                          dual_clipped=dual_clipped, scale=scale)
    return pg_losses, stats


_BIG = 1e30  # pushes unused segment ids out of min/max without where() on a bool mask

# Layout of the vector sspo_metric_sums returns (exact integers where counts): these segment statistics, then
# ROW_SUMS, B values each (the host reduces the rows: no device kernel per row statistic).
METRIC_SUMS = (
    "n_seg", "sum_seg_clipped_share", "max_seg_len", "min_m", "max_m",  # over used segments; m = log ratio
    "sum_scale", "min_scale", "max_scale",  # entropy scale g over used segments (n_seg, 1, 1 without)
)
ROW_SUMS = ("tok", "ppo", "high", "dual", "clipped", "log_ratio")  # per response: valid tokens, flags, Σ ℓ


def sspo_metric_sums(stats: SSPOLossStats) -> torch.Tensor:
    """Every reduction the metrics are built from, as one vector on the loss's device (no sync).

    The token flags are reduced per row in one stacked sum, the segment statistics in a few reductions;
    :func:`sspo_metrics_from_sums` reduces the rows and does the per-metric arithmetic on the host after the one
    copy, so no kernel is launched per metric. Layout: :data:`METRIC_SUMS`, then :data:`ROW_SUMS` (B each).
    Shape: (8 + 6·B,), dtype of ℓ (at least float32).
    """
    seg = stats.segments
    B, T = seg.mask.shape
    dtype = compute_dtype(stats.token_log_ratio)
    # PPO clip needs A ≠ 0: at 1 + ε_high when A > 0 (the high bound), at 1 − ε_low when A < 0
    high = stats.ppo_clipped & (stats.advantages > 0)
    clipped = stats.ppo_clipped | stats.dual_clipped  # zero-gradient tokens
    # bool flags summed through a uint8 view with the cast inside the reduction: no float copy of the flags
    # (the CPU's fast path; on CUDA the same single kernel as on bool)
    flags = torch.stack([stats.ppo_clipped, high, stats.dual_clipped, clipped]).view(torch.uint8)  # (4, B, T)
    row_tokens = seg.counts.view(B, T).sum(dim=1, dtype=dtype).unsqueeze(0)  # (1, B) valid tokens per row
    row_log_ratio = stats.token_log_ratio.sum(dim=1, dtype=dtype).unsqueeze(0)  # (1, B)
    rows = torch.cat([row_tokens, flags.sum(dim=2, dtype=dtype), row_log_ratio])  # (6, B) row sums

    valid = seg.counts.clamp(max=1)  # (B·T,) 1 for used segment ids
    unused = (1.0 - valid) * _BIG  # (B·T,) pushes unused ids out of min / max
    m = stats.seg_log_ratio
    n_seg = valid.sum(dtype=dtype)
    segment = [
        n_seg,
        # Σ_segments clipped share = Σ_tokens clipped / |segment of the token| (no per-segment scatter)
        (clipped.view(torch.uint8).to(dtype) * seg.broadcast(1.0 / seg.denominators.to(dtype))).sum(),
        seg.counts.amax(),
        (m + unused).amin(),
        (m - unused).amax(),
    ]
    if stats.scale is not None:
        g = stats.scale
        segment += [(g * valid).sum(dtype=dtype), (g + unused).amin(), (g - unused).amax()]
    else:
        one = n_seg.new_ones(())
        segment += [n_seg, one, one]
    return torch.cat([torch.stack(segment).to(dtype), rows.view(-1)])


def sspo_metrics_from_sums(sums) -> dict[str, float]:
    """The metrics (spec §7) from :func:`sspo_metric_sums` once on the host (any sequence of numbers).

    Weighting: ``clipfrac_*``, ``pg_*``, ``ppo_kl`` over valid tokens; ``segment_clipfrac``,
    ``segment_len_*``, ``ratio_*`` (the segment ratio exp(min(m, 10))), ``eps_scale_*`` over segments;
    ``seq_*``, ``segments_per_seq`` over responses with at least one valid token. A token counts as
    *clipped* when the clip zeroes its gradient: PPO clip at either bound, or the dual clip. With no valid
    token, fractions and counts are 0 and ratio/scale statistics 1.
    """
    values = [float(x) for x in sums]
    n_head, n_row_sums = len(METRIC_SUMS), len(ROW_SUMS)
    if len(values) < n_head or (len(values) - n_head) % n_row_sums:
        raise ValueError(f"expected {n_head} sums ({', '.join(METRIC_SUMS)}) and {n_row_sums} x B row sums "
                         f"({', '.join(ROW_SUMS)}), got {len(values)} values")
    v = dict(zip(METRIC_SUMS, values))
    B = (len(values) - n_head) // n_row_sums
    rows = dict(zip(ROW_SUMS, (values[n_head + k * B: n_head + (k + 1) * B] for k in range(n_row_sums))))
    for key in ROW_SUMS:
        v["n_" + key if key != "log_ratio" else "sum_log_ratio"] = math.fsum(rows[key])
    has_tok = [(tok, clip) for tok, clip in zip(rows["tok"], rows["clipped"]) if tok > 0]
    v["n_rows"] = float(len(has_tok))
    v["n_rows_all_clipped"] = float(sum(clip == tok for tok, clip in has_tok))
    v["n_rows_none_clipped"] = float(sum(clip == 0 for _, clip in has_tok))
    n_tok, n_seg, n_rows = max(v["n_tok"], 1.0), max(v["n_seg"], 1.0), max(v["n_rows"], 1.0)
    any_tok = v["n_tok"] > 0

    def or_one(x):
        return x if any_tok else 1.0

    return {
        "pg_clipfrac": v["n_ppo"] / n_tok,
        "pg_clipfrac_lower": v["n_dual"] / n_tok,
        "ppo_kl": -v["sum_log_ratio"] / n_tok,
        "clipfrac_high": v["n_high"] / n_tok,
        "clipfrac_low": (v["n_ppo"] - v["n_high"]) / n_tok,
        "segment_clipfrac": v["sum_seg_clipped_share"] / n_seg,
        "seq_all_clipped_frac": v["n_rows_all_clipped"] / n_rows,
        "seq_none_clipped_frac": v["n_rows_none_clipped"] / n_rows,
        "segments_per_seq": v["n_seg"] / n_rows,  # Σ_rows segments = all segments
        "segment_len_mean": v["n_tok"] / n_seg,
        "segment_len_max": v["max_seg_len"],
        "ratio_min": or_one(math.exp(min(v["min_m"], LOG_RATIO_MAX))),
        "ratio_max": or_one(math.exp(min(v["max_m"], LOG_RATIO_MAX))),
        "eps_scale_mean": or_one(v["sum_scale"] / n_seg),
        "eps_scale_min": or_one(v["min_scale"]),
        "eps_scale_max": or_one(v["max_scale"]),
    }


def sspo_metrics(stats: SSPOLossStats) -> dict[str, float]:
    """The metrics of one micro-batch as floats: :func:`sspo_metric_sums`, one device-to-host copy, and
    :func:`sspo_metrics_from_sums`."""
    return sspo_metrics_from_sums(sspo_metric_sums(stats).tolist())
