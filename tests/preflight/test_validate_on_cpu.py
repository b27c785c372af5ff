"""sspo_verl.preflight.validate: verl's own validate_config runs right after the schema check, its refusals name the
keys, and what it refuses is refused by it alone (sspo-verl's checks do not check it again)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from sspo_verl.preflight.context import Context, PreflightReport
from sspo_verl.preflight.validate import check_verl
from tests.preflight.configs import check, config, messages
from tests.preflight.test_ranges_on_cpu import BAD

POLICY_LOSS = "actor_rollout_ref.actor.policy_loss"
# verl checks batch geometry only without dynamic batch size (the GPU presets use dynamic batch size)
STATIC = ["actor_rollout_ref.actor.use_dynamic_bsz=false", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
          "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4"]

# Inputs verl's validate_config refuses before Ray, with the keys its refusal must name (the names in verl's message
# or failing line that match one key). The first row was also refused by sspo-verl's sspo_config check until that
# check was deleted (issue 22); the others were never checked twice. Each must be refused by check "verl" alone.
REFUSED_BY_VERL = [
    ([f"{POLICY_LOSS}._target_=no.such.Class"], [f"{POLICY_LOSS}._target_"]),
    ([*STATIC, "actor_rollout_ref.actor.ppo_mini_batch_size=2048"],
     ["data.train_batch_size", "actor_rollout_ref.actor.ppo_mini_batch_size"]),
    ([*STATIC, "actor_rollout_ref.actor.ppo_micro_batch_size=4"], ["actor_rollout_ref.actor.ppo_micro_batch_size"]),
    ([*STATIC, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=null"],
     ["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"]),
    ([*STATIC, "actor_rollout_ref.rollout.log_prob_micro_batch_size=4"],
     ["actor_rollout_ref.rollout.log_prob_micro_batch_size"]),
    ([*STATIC, "trainer.n_gpus_per_node=3"], []),  # verl's names (real_train_batch_size, ...) match no key
    (["actor_rollout_ref.actor.loss_agg_mode=token_mean"], ["actor_rollout_ref.actor.loss_agg_mode"]),
    (["actor_rollout_ref.actor.optim.lr_scheduler_type=linear"], ["actor_rollout_ref.actor.optim.lr_scheduler_type"]),
    (["+actor_rollout_ref.actor.clip_ratio_middle=0.1"], ["actor_rollout_ref.actor.clip_ratio_middle"]),
    ([f"{POLICY_LOSS}.granularity=word"], [f"{POLICY_LOSS}.granularity"]),  # SSPO's own dataclass, built by verl
]


@pytest.mark.parametrize("overrides,keys", REFUSED_BY_VERL, ids=[" ".join(o)[-50:] for o, _ in REFUSED_BY_VERL])
def test_what_verl_refuses_is_refused_by_verl_alone_naming_the_keys(data_dir, overrides, keys):
    cfg, report = check(overrides)
    assert {f.check for f in report.errors} == {"verl"}, report.errors
    (msg,) = messages(report, "verl", "error")
    assert msg.startswith("verl's validate_config refused")
    for key in keys:
        assert f"{key}={OmegaConf.select(cfg, key)!r}" in msg, msg


def test_verl_runs_before_the_algorithm_checks_and_after_the_ranges(data_dir):
    _, report = check(["actor_rollout_ref.actor.loss_agg_mode=token_mean", f"{POLICY_LOSS}.loss_mode=vanila"])
    assert [f.check for f in report.errors] == ["verl", "registry"]
    # A value the range check refuses is not handed to verl, whose arithmetic on it names no key
    # ("ZeroDivisionError: integer modulo by zero" for trainer.nnodes=0): the range check refuses it alone.
    for override in ("trainer.nnodes=0", "trainer.n_gpus_per_node=0"):
        _, report = check([*STATIC, override])
        assert {f.check for f in report.errors} == {"ranges"}, report.errors


# Rows of ranges.RANGES whose bad values verl's validate_config refuses too: kept, because verl's refusal names no
# key (ZeroDivisionError: integer modulo by zero; "minimal possible batch size (1.5)").
RANGES_VERL_ALSO_REFUSES = {"trainer.nnodes", "trainer.n_gpus_per_node"}


@pytest.mark.parametrize(("key", "value"), BAD, ids=[f"{k.rsplit('.', 1)[-1]}={v}" for k, v in BAD])
def test_a_range_row_checks_what_verls_validate_config_does_not(key, value):
    """Each bad value of test_ranges' table handed to verl's check alone (the schema and range checks skipped): verl
    accepts it, so the row of ranges.RANGES checks nothing twice, unless verl's own refusal names no key."""
    cfg = config([*STATIC, f"{key}={value}"])
    ctx = Context(config=cfg, report=PreflightReport(), env={}, gpu_counter=None, cluster_probe=None)
    check_verl(ctx)
    refusals = [f.message for f in ctx.report.errors]
    if key in RANGES_VERL_ALSO_REFUSES:
        (msg,) = refusals
        assert msg.startswith("verl's validate_config refused the config:"), msg  # no key named
    else:
        assert refusals == [], f"verl refuses {key}={value!r} itself: delete its row of ranges.RANGES"
