"""``loss_mode=sspo`` in verl's policy-loss registry.

verl calls the loss with keywords (``old_log_prob, log_prob, advantages, response_mask, loss_agg_mode,
config, rollout_is_weights``). SSPO also needs the response token ids and the token entropy: they come from
the micro-batch context installed by :mod:`sspo_verl.adapter.microbatch`, or from the ``response_ids`` /
``entropy`` keywords when a caller passes them directly. The per-token math is :mod:`sspo_verl.core`; the
aggregation is verl's own ``agg_loss`` with ``config.global_batch_info``, so every ``loss_agg_mode`` behaves
exactly as for verl's losses, independent of the micro-batch split and the data-parallel size.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import torch
from verl.trainer.ppo.core_algos import agg_loss, register_policy_loss

from sspo_verl.adapter.actor_config import clip_ratios, segmentation_for, sspo_policy_loss
from sspo_verl.adapter.config import SSPOPolicyLossConfig
from sspo_verl.adapter.entropy_reference import ENTROPY_MEAN_KEY
from sspo_verl.adapter.microbatch import current_microbatch
from sspo_verl.core.loss import VERL_METRIC_NAMES, SSPOParams, sspo_loss_matrix, sspo_metrics

LOSS_MODE = "sspo"
METRIC_PREFIX = "actor/sspo/"
# The SSPOParams that SSPOPolicyLossConfig holds under the same names; the clip ratios are verl's actor fields.
POLICY_LOSS_FIELDS = tuple(f.name for f in dataclasses.fields(SSPOParams) if not f.name.startswith("clip_ratio"))


def _sspo_config(config) -> SSPOPolicyLossConfig:
    policy_loss = sspo_policy_loss(config)
    if policy_loss is None:
        found = config.get("policy_loss", None) if config is not None else None
        raise TypeError(
            "loss_mode=sspo needs its typed config: set "
            "actor_rollout_ref.actor.policy_loss._target_=sspo_verl.SSPOPolicyLossConfig "
            "(the hydra preset algorithm=sspo does this). Got "
            f"{type(found).__name__}."
        )
    return policy_loss


def sspo_params(config) -> SSPOParams:
    """Build the core's hyper-parameters from verl's ``ActorConfig``."""
    pl = _sspo_config(config)
    clip_ratio_low, clip_ratio_high = clip_ratios(config)
    clip_ratio_c = config.get("clip_ratio_c", 3.0)
    if clip_ratio_c is not None and not clip_ratio_c > 1.0:
        raise ValueError(
            f"actor_rollout_ref.actor.clip_ratio_c={clip_ratio_c}: the dual-clip constant must be > 1.0 "
            "(verl default 3.0), or null to disable the dual clip."
        )
    return SSPOParams(
        clip_ratio_low=clip_ratio_low,
        clip_ratio_high=clip_ratio_high,
        clip_ratio_c=clip_ratio_c,
        **{name: getattr(pl, name) for name in POLICY_LOSS_FIELDS},
    )


def _microbatch_entropy(microbatch, source: str, width: int) -> tuple[torch.Tensor, Optional[float]]:
    """(H, μ) of the micro-batch for ``entropy_source``; μ None means the micro-batch's own mean."""
    if microbatch is None:
        raise ValueError(
            "SSPO entropy clipping is on and no entropy was given: outside verl's ppo_loss pass entropy= (and "
            "entropy_mean=), or disable it with actor_rollout_ref.actor.policy_loss.entropy_clip=false."
        )
    if source == "current":
        entropy = microbatch.entropy(width)
        if entropy is None:
            raise ValueError(
                "SSPO entropy clipping with policy_loss.entropy_source=current, but verl computed no entropy in "
                "the update. Set actor_rollout_ref.actor.calculate_entropy=true (sspo-train does), or use "
                "entropy_source=old (the sampling policy's entropy, no extra cost), or entropy_clip=false."
            )
        return entropy, None
    entropy = microbatch.old_entropy(width)
    if entropy is None:
        raise RuntimeError(
            "SSPO entropy clipping with policy_loss.entropy_source=old, but the micro-batch has no 'entropy' field "
            "(the sampling policy's entropy, which verl's V1 trainer stores at the old-log-prob pass; "
            "algorithm.rollout_correction.bypass_mode=true skips that pass). Fix: set "
            "actor_rollout_ref.actor.policy_loss.entropy_source=current, or entropy_clip=false."
        )
    entropy_mean = microbatch.entropy_mean()
    if entropy_mean is None:
        raise RuntimeError(
            f"SSPO entropy clipping with policy_loss.entropy_source=old, but the micro-batch carries no "
            f"'{ENTROPY_MEAN_KEY}' (μ of the rollout batch, which the sspo_verl plugin attaches in verl's V1 "
            "trainer, PPOTrainer._update_actor). The plugin is not active in the trainer process or the trainer "
            "is not verl's V1 (trainer.use_v1=true). Fix: run through sspo-train / with sspo-verl installed where "
            "the trainer runs, or set actor_rollout_ref.actor.policy_loss.entropy_source=current."
        )
    return entropy, entropy_mean


@register_policy_loss(LOSS_MODE)  # type: ignore[arg-type]
def compute_policy_loss_sspo(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "seq-mean-token-mean",
    config: Optional[Any] = None,
    rollout_is_weights: Optional[torch.Tensor] = None,
    response_ids: Optional[torch.Tensor] = None,
    entropy: Optional[torch.Tensor] = None,
    entropy_mean: Optional[float] = None,
    **kwargs,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SSPO policy loss (spec §4–§7).

    Args:
        old_log_prob: log π_old. Shape: (B, T)
        log_prob: log π_θ, has grad. Shape: (B, T)
        advantages: Shape: (B, T)
        response_mask: Shape: (B, T)
        loss_agg_mode: any verl mode; the SSPO preset uses ``seq-mean-token-mean`` [ours].
        config: verl ``ActorConfig`` whose ``policy_loss`` is an :class:`SSPOPolicyLossConfig`.
        rollout_is_weights: optional rollout-correction weights. Shape: (B, T)
        response_ids: response token ids; default: from the current micro-batch. Shape: (B, T)
        entropy: token entropy H; default: from the current micro-batch, per ``policy_loss.entropy_source``
            (``old``: the batch's ``entropy`` field, the sampling policy's; ``current``: π_θ's model output).
            Shape: (B, T)
        entropy_mean: μ; default: with ``entropy`` from the micro-batch and ``entropy_source=old``, the rollout
            batch's μ the trainer attached (:mod:`sspo_verl.adapter.entropy_reference`); otherwise the mean of
            ``entropy`` over this call's valid tokens.

    Returns:
        ``(loss, metrics)``: scalar loss; ``actor/pg_clipfrac``, ``actor/ppo_kl``, ``actor/pg_clipfrac_lower``
        and the ``actor/sspo/*`` diagnostics as floats (one device sync for all of them).
    """
    pl = _sspo_config(config)
    params = sspo_params(config)
    B, T = response_mask.shape
    microbatch = current_microbatch()
    explicit_ids = response_ids
    if response_ids is None:
        if microbatch is None:
            raise RuntimeError(
                "loss_mode=sspo was called outside verl's ppo_loss micro-batch context, so it cannot see the "
                "response token ids. The sspo_verl plugin is not active in this process: check that sspo-verl is "
                "installed here (pip show sspo-verl) and that VERL_USE_EXTERNAL_PLUGINS does not exclude it, or "
                "pass response_ids= explicitly."
            )
        response_ids = microbatch.response_ids(T)
    if params.entropy_clip and entropy is None:
        entropy, entropy_mean = _microbatch_entropy(microbatch, pl.entropy_source, T)
    if tuple(response_ids.shape) != (B, T):
        raise ValueError(f"response ids {tuple(response_ids.shape)} do not match the response mask {(B, T)}")

    segmentation = segmentation_for(config, pl.granularity)
    mask = response_mask.to(log_prob.device)
    if explicit_ids is None:  # the micro-batch's own ids: segmented once, shared with its diagnostics
        segments = microbatch.segments(segmentation, mask)
    else:
        segments = segmentation.segments(explicit_ids, mask)
    pg_losses, stats = sspo_loss_matrix(log_prob, old_log_prob, advantages, segments, params, entropy=entropy,
                                        rollout_is_weights=rollout_is_weights, entropy_mean=entropy_mean)
    pg_loss = agg_loss(loss_mat=pg_losses, loss_mask=response_mask, loss_agg_mode=loss_agg_mode,
                       **config.global_batch_info)

    metrics = sspo_metrics(stats)  # one device sync
    return pg_loss, {f"actor/{k}" if k in VERL_METRIC_NAMES else f"{METRIC_PREFIX}{k}": v for k, v in metrics.items()}
