"""μ, SSPO's entropy reference (spec §5): one number per rollout batch, computed by the trainer, carried to every
micro-batch.

With ``policy_loss.entropy_source=old`` the entropy H that scales SSPO's clip bounds is the sampling policy's:
verl's V1 trainer computes it at the old-log-prob pass (``PPOTrainer._compute_old_log_prob`` asks the actor for
``calculate_entropy: True``) and stores it in TransferQueue as the per-response field ``entropy``, which every
actor micro-batch then carries. The reference μ of the scale g = clamp((H̄ / μ)^α, ...) must not depend on how
the batch is split, so it is the mean of that entropy over every valid token of the rollout batch:

    μ = Σ_{i,t} H_old(i,t) · M(i,t) / Σ_{i,t} M(i,t)        over the whole rollout batch (every rank's rows)

Where it is computed, and why there: only the trainer (driver) sees the whole rollout batch; a worker sees its
rank's rows, and a micro-batch fewer still. ``PPOTrainer._update_actor(batch, metrics)`` is where verl itself
attaches the actor update's batch-level settings (``calculate_entropy``, ``global_batch_size``, ...) to
``batch.extra_info``, which verl's dispatch turns into non-tensor entries of the TensorDict every actor rank
receives and which follow each mini-batch and micro-batch into ``ppo_loss``. :data:`UPDATE_ACTOR` wraps that
method: before it runs, it reads the batch's ``entropy`` and ``response_mask`` from TransferQueue (one
read of two per-token fields on the driver, no GPU work), computes μ and adds it to ``batch.extra_info`` under
:data:`ENTROPY_MEAN_KEY` and to the step's metrics as ``actor/sspo/entropy_mean``. The loss reads it from its
micro-batch (:meth:`sspo_verl.adapter.microbatch.MicroBatch.entropy_mean`), so every micro-batch of every rank,
mini-batch and epoch uses the same μ: no collective, no extra forward pass, exact invariance to the
micro-batch split, dynamic batching and the data-parallel and Ulysses sizes.

Neither existing driver-side hook can do this: ``compute_advantage`` (and the ``sspo`` estimator behind it)
sees a batch read without the ``entropy`` field and writes back only advantages and returns, so it can neither
compute μ nor carry it to the actor. The wrap does nothing unless the actor's policy loss is SSPO with entropy
clipping and ``entropy_source=old`` (GRPO and GSPO runs pay nothing). verl's batch-padding rows have an
all-zero response mask and do not count.

Public API:
    ENTROPY_MEAN_KEY                        the non-tensor key μ travels under
    rollout_entropy_mean(entropy, mask)     μ of one batch (nested or padded tensors)
    UPDATE_ACTOR                            the patch of ``PPOTrainer._update_actor``
"""

from __future__ import annotations

import functools

import torch

from sspo_verl.patching import Patch

ENTROPY_MEAN_KEY = "sspo_entropy_mean"
METRIC = "actor/sspo/entropy_mean"
OLD_ENTROPY_FIELD = "entropy"  # what PPOTrainer._compute_old_log_prob writes into TransferQueue


def rollout_entropy_mean(entropy: torch.Tensor, response_mask: torch.Tensor) -> float:
    """μ: mean of ``entropy`` over the valid tokens of a batch, accumulated in float64.

    Shape: entropy, response_mask: (B, T) dense or (B, j) jagged nested with the same offsets. A batch with no
    valid token has μ = 0 (every segment then has no token either).
    """
    ent = entropy.values() if entropy.is_nested else entropy
    mask = response_mask.values() if response_mask.is_nested else response_mask
    if ent.shape != mask.shape:
        raise ValueError(f"entropy {tuple(ent.shape)} and response_mask {tuple(mask.shape)} do not match")
    valid = mask.bool()
    total = torch.where(valid, ent, 0).sum(dtype=torch.float64)
    count = valid.sum()
    return float(total / count.clamp(min=1))


def uses_old_entropy(actor_config) -> bool:
    """True when the actor's policy loss is SSPO with entropy clipping on the sampling policy's entropy."""
    policy_loss = actor_config.get("policy_loss", None) if actor_config is not None else None
    if policy_loss is None or policy_loss.get("loss_mode", None) != "sspo":
        return False
    return bool(policy_loss.get("entropy_clip", True)) and policy_loss.get("entropy_source", "old") == "old"


def _read_batch(batch):
    import transfer_queue as tq  # as verl's V1 trainer imports it

    try:
        return tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                               select_fields=[OLD_ENTROPY_FIELD, "response_mask"])
    except Exception as e:  # TransferQueue names the missing field in its own words
        raise RuntimeError(
            "SSPO (policy_loss.entropy_source=old) needs the sampling policy's token entropy, which verl's V1 "
            "trainer stores as the batch field 'entropy' at the old-log-prob pass, but it could not be read "
            f"({type(e).__name__}: {e}). That pass is skipped with algorithm.rollout_correction.bypass_mode=true; "
            "fix: set actor_rollout_ref.actor.policy_loss.entropy_source=current, or entropy_clip=false."
        ) from e


def _wrap_update_actor(original):
    @functools.wraps(original)
    def _update_actor(self, batch, metrics):
        if uses_old_entropy(self.config.actor_rollout_ref.actor):
            data = _read_batch(batch)
            mu = rollout_entropy_mean(data[OLD_ENTROPY_FIELD], data["response_mask"])
            batch.extra_info[ENTROPY_MEAN_KEY] = mu
            metrics[METRIC] = mu
        return original(self, batch, metrics)

    return _update_actor


UPDATE_ACTOR = Patch(
    module="verl.trainer.ppo.v1.trainer_base",
    owner="PPOTrainer",
    name="_update_actor",
    params=("self", "batch", "metrics"),
    wrap=_wrap_update_actor,
    why="attach μ, the rollout batch's mean sampling-policy entropy, to SSPO's actor update (entropy_source=old)",
)
