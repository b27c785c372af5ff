"""sspo-verl's verl adapter: what verl loads in every process through the ``verl.plugins`` entry point.

Public API:
    SSPOPolicyLossConfig        typed SSPO fields for ``actor_rollout_ref.actor.policy_loss._target_``
    compute_policy_loss_sspo    registered as verl policy loss ``sspo``
    compute_sspo_outcome_advantage  registered as verl advantage estimator ``sspo``
    ensure_registered()         raise (with a fix) unless both registrations and the micro-batch context are live
    current_microbatch()        the micro-batch of the ``ppo_loss`` call in progress (response ids, entropy)

Patches (:mod:`sspo_verl.patching`; idempotent, marked, logged once, loud when verl moves a target):
    microbatch.PPO_LOSS              ``verl.workers.utils.losses.ppo_loss``: the micro-batch context
    diagnostics.POLICY_LOSS_LOOKUP   ``get_policy_loss_fn`` as ``ppo_loss`` binds it: ``actor/diag/*`` for every loss
    advantage.MULTI_TRAJECTORY       the V1 trainer's multi-output session path, for ``adv_estimator=sspo`` too
    entropy_reference.UPDATE_ACTOR   ``PPOTrainer._update_actor``: SSPO's entropy reference μ of the rollout batch
    config_dump.CONFIG_DUMP          ``pprint`` as ``verl.trainer.main_ppo`` binds it: verl's config dump to a file

Registration happens in :mod:`sspo_verl.adapter.plugin`, which verl's ``verl.plugins`` entry point imports in
every process that imports verl.
"""

import verl  # noqa: F401  (first: runs verl's plugin loading, which imports this package's modules in order)

from sspo_verl.adapter.advantage import compute_sspo_outcome_advantage
from sspo_verl.adapter.config import SSPOPolicyLossConfig
from sspo_verl.adapter.microbatch import current_microbatch
from sspo_verl.adapter.plugin import ensure_registered
from sspo_verl.adapter.policy_loss import compute_policy_loss_sspo

__all__ = [
    "SSPOPolicyLossConfig",
    "compute_policy_loss_sspo",
    "compute_sspo_outcome_advantage",
    "current_microbatch",
    "ensure_registered",
]
