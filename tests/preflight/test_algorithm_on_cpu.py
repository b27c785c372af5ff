"""sspo_verl.preflight.algorithm: registry names, SSPO's typed config, and the settings under which an algorithm comparison compares nothing."""

from __future__ import annotations

import logging

import pytest

from tests.preflight.configs import ALGORITHMS, check, messages


def test_unknown_loss_mode_and_estimator_list_the_registered_ones(data_dir):
    _, report = check(["algorithm=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=vanila"])
    (msg,) = messages(report, "registry", "error")
    assert "'vanila'" in msg and "vanilla" in msg and "sspo" in msg and "gspo" in msg and "algorithm=" in msg
    _, report = check(["algorithm.adv_estimator=grpo_typo"])
    (msg,) = messages(report, "registry", "error")
    assert "'grpo_typo'" in msg and "grpo" in msg and "sspo" in msg and "rloo" in msg


def test_sspo_loss_without_its_typed_config_is_refused(data_dir):
    _, report = check(["algorithm=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=sspo"])
    (msg,) = messages(report, "sspo_config", "error")
    assert "sspo_verl.SSPOPolicyLossConfig" in msg and "algorithm=sspo" in msg


def test_sspo_tokenizer_path_is_left_to_the_worker(data_dir):
    """The worker segments with the actor's own tokenizer (verl's local copy, trust_remote_code): nothing filled."""
    cfg, report = check(["algorithm=sspo", "actor_rollout_ref.model.path=Qwen/Qwen2.5-Math-7B"])
    assert cfg.actor_rollout_ref.actor.policy_loss.tokenizer_path is None
    assert messages(report, "sspo_config") == []
    cfg, _ = check(["actor_rollout_ref.actor.policy_loss.tokenizer_path=my/tok"])
    assert cfg.actor_rollout_ref.actor.policy_loss.tokenizer_path == "my/tok"


def test_sspo_old_entropy_keeps_calculate_entropy_off(data_dir):
    cfg, report = check(["algorithm=sspo"])
    assert cfg.actor_rollout_ref.actor.policy_loss.entropy_source == "old"
    assert not cfg.actor_rollout_ref.actor.calculate_entropy  # null: the update costs what GRPO's does
    assert messages(report, "sspo_config") == []
    # switched on with no entropy bonus: an entropy backward nothing uses
    _, report = check(["algorithm=sspo", "actor_rollout_ref.actor.calculate_entropy=true"])
    (msg,) = messages(report, "sspo_config", "warning")
    assert "calculate_entropy=false" in msg and "entropy_coeff=0" in msg
    _, report = check(["algorithm=sspo", "actor_rollout_ref.actor.calculate_entropy=true",
                       "actor_rollout_ref.actor.entropy_coeff=0.001"])
    assert messages(report, "sspo_config") == []


@pytest.mark.parametrize("override,names", [
    ("trainer.use_v1=false", "trainer.use_v1=true"),
    ("algorithm.rollout_correction.bypass_mode=true", "bypass_mode=false"),
])
def test_sspo_old_entropy_where_verl_stores_none_is_refused_with_the_fix(data_dir, override, names):
    _, report = check(["algorithm=sspo", override])
    (msg,) = messages(report, "sspo_config", "error")
    assert "entropy_source=current" in msg and "entropy_clip=false" in msg and names in msg
    _, report = check(["algorithm=sspo", override, "actor_rollout_ref.actor.policy_loss.entropy_source=current"])
    assert messages(report, "sspo_config", "error") == []


def test_sspo_current_entropy_fills_calculate_entropy_and_refuses_it_off(data_dir):
    current = "actor_rollout_ref.actor.policy_loss.entropy_source=current"
    cfg, report = check([current])  # the preset leaves calculate_entropy unset (null)
    assert cfg.actor_rollout_ref.actor.calculate_entropy is True
    (msg,) = [m for m in messages(report, "sspo_config", "fix") if "entropy" in m]
    assert "calculate_entropy was unset" in msg and "entropy_source=current" in msg
    _, report = check([current, "actor_rollout_ref.actor.calculate_entropy=false"])  # set false: a contradiction
    (msg,) = messages(report, "sspo_config", "error")
    assert "calculate_entropy=False contradicts" in msg and "entropy_source=current" in msg
    cfg, report = check([current, "actor_rollout_ref.actor.calculate_entropy=false",
                         "actor_rollout_ref.actor.policy_loss.entropy_clip=false"])
    assert cfg.actor_rollout_ref.actor.calculate_entropy is False
    assert not [m for m in messages(report, "sspo_config") if "entropy" in m]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_fully_on_policy_ratio_loss_warns_loudly(data_dir, algorithm, caplog):
    with caplog.at_level(logging.WARNING, logger="sspo_verl.preflight"):
        _, report = check([f"algorithm={algorithm}", "num_mini_batches=1"])
    (msg,) = messages(report, "on_policy", "warning")
    assert "FULLY ON-POLICY" in msg and "same gradient" in msg and "num_mini_batches=4" in msg
    assert "!" * 100 in caplog.text
    _, report = check([f"algorithm={algorithm}", "actor_rollout_ref.actor.ppo_mini_batch_size=1024"])
    assert messages(report, "on_policy", "warning")
    # More than one epoch, more than one mini-batch, or an asynchronous trainer: ratios move, quiet.
    for quiet in (["num_mini_batches=1", "actor_rollout_ref.actor.ppo_epochs=2"], ["num_mini_batches=2"],
                  ["num_mini_batches=1", "trainer.v1.trainer_mode=colocate_async"]):
        _, report = check([f"algorithm={algorithm}", *quiet])
        assert messages(report, "on_policy") == [], quiet


def test_gspo_with_grpo_scale_clip_warns_unless_the_preset_says_so(data_dir):
    _, report = check(["algorithm=gspo", "actor_rollout_ref.actor.clip_ratio_low=0.2",
                       "actor_rollout_ref.actor.clip_ratio_high=0.28"])
    (msg,) = messages(report, "clip_scale", "warning")
    assert "GRPO-scale" in msg and "algorithm=gspo_wide" in msg and "3e-4 / 4e-4" in msg
    _, report = check(["algorithm=gspo_wide"])
    assert messages(report, "clip_scale") == []
    _, report = check(["algorithm=gspo"])
    assert messages(report, "clip_scale") == []


@pytest.mark.parametrize("algorithm", ["grpo", "sspo"])
def test_token_level_ratio_with_gspo_scale_clip_warns(data_dir, algorithm):
    _, report = check([f"algorithm={algorithm}", "actor_rollout_ref.actor.clip_ratio_low=3e-4",
                       "actor_rollout_ref.actor.clip_ratio_high=4e-4"])
    (msg,) = messages(report, "clip_scale", "warning")
    assert "GSPO-scale" in msg and "0.2 / 0.28" in msg


def test_loss_agg_mode_the_papers_did_not_use_warns(data_dir):
    _, report = check(["algorithm=sspo", "actor_rollout_ref.actor.loss_agg_mode=token-mean"])
    (msg,) = messages(report, "preset", "warning")
    assert "'token-mean'" in msg and "seq-mean-token-mean" in msg and "sspo" in msg
    _, report = check(["algorithm=gspo", "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum"])
    assert messages(report, "preset", "warning")
    # GRPO: token-mean (spec §9) and seq-mean-token-mean (the original GRPO) are both a paper's choice.
    _, report = check(["algorithm=grpo", "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean"])
    assert messages(report, "preset") == []


def test_switching_loss_mode_without_the_preset_warns(data_dir):
    _, report = check(["algorithm=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=gspo"])
    (msg,) = messages(report, "preset", "warning")
    assert "algorithm=grpo is a preset for loss_mode='vanilla'" in msg
    # and the clip range is judged by the loss actually used
    assert messages(report, "clip_scale", "warning")


def test_group_estimator_without_a_group_warns(data_dir):
    _, report = check(["actor_rollout_ref.rollout.n=1"])
    (msg,) = messages(report, "group_size", "warning")
    assert "rollout.n=1" in msg and "2 or more" in msg
    _, report = check(["actor_rollout_ref.rollout.n=2"])
    assert messages(report, "group_size") == []


def test_a_loss_and_an_estimator_registered_in_verl_are_accepted_without_a_change_here(data_dir, monkeypatch):
    """The names are read from verl's registries; a registered loss is taken to be ratio-based (verl hands it
    π_old), an estimator that takes verl's prompt ``index`` to be group-relative."""
    from verl.trainer.ppo import core_algos

    _, report = check(["algorithm=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=my_loss"])
    assert messages(report, "registry", "error")  # not registered yet
    for registry in ("POLICY_LOSS_REGISTRY", "ADV_ESTIMATOR_REGISTRY"):  # a copy, so the names go after the test
        monkeypatch.setattr(core_algos, registry, dict(getattr(core_algos, registry)))
    core_algos.register_policy_loss("my_loss")(core_algos.compute_policy_loss_vanilla)
    core_algos.register_adv_est("my_group_adv")(lambda token_level_rewards, response_mask, index, config=None: None)
    core_algos.register_adv_est("my_adv")(lambda token_level_rewards, response_mask, config=None, **kwargs: None)

    _, report = check(["algorithm=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=my_loss", "num_mini_batches=1",
                       "algorithm.adv_estimator=my_group_adv", "actor_rollout_ref.rollout.n=1"])
    assert report.errors == [], report.errors
    assert messages(report, "on_policy", "warning") and messages(report, "group_size", "warning")
    _, report = check(["algorithm.adv_estimator=my_adv", "actor_rollout_ref.rollout.n=1"])
    assert report.errors == [] and messages(report, "group_size") == []
    _, report = check(["actor_rollout_ref.actor.policy_loss.loss_mode=vanila"])
    (msg,) = messages(report, "registry", "error")
    assert "my_loss" in msg  # the names listed are the registry's


def test_the_loss_tables_name_registered_losses_only():
    """The two facts verl does not state are kept for names verl has: a loss renamed upstream fails here."""
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

    from sspo_verl.preflight import NO_OLD_POLICY_RATIO, RATIO_LEVEL

    assert NO_OLD_POLICY_RATIO | set(RATIO_LEVEL) <= set(POLICY_LOSS_REGISTRY)
    assert set(RATIO_LEVEL.values()) <= {"token", "sequence"}
