"""sspo_verl.preflight.validate: verl's own validate_config runs as part of the pre-flight."""

from __future__ import annotations

from tests.preflight.configs import check, messages


def test_verl_validate_config_runs_as_part_of_preflight(data_dir):
    _, report = check(["actor_rollout_ref.actor.use_dynamic_bsz=false",
                       "actor_rollout_ref.actor.ppo_mini_batch_size=2048",
                       "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
                       "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4"])
    (msg,) = messages(report, "verl", "error")
    assert "validate_config" in msg and "train_batch_size (1024) must be >= actor.ppo_mini_batch_size (2048)" in msg
    # SSPOPolicyLossConfig's own validation surfaces through verl's instantiation of the actor config.
    _, report = check(["actor_rollout_ref.actor.policy_loss.granularity=word"])
    (msg,) = messages(report, "verl", "error")
    assert "granularity='word'" in msg and "subsentence" in msg
