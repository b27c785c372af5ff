"""SSPOPolicyLossConfig: spec defaults, a real subclass of verl's PolicyLossConfig, errors that say how to fix."""

import pytest
from omegaconf import OmegaConf
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import PolicyLossConfig

from sspo_verl import SSPOPolicyLossConfig


def test_spec_defaults_and_subclass():
    c = SSPOPolicyLossConfig()
    assert isinstance(c, PolicyLossConfig) and c.loss_mode == "sspo"
    assert (c.granularity, c.numeric_guard, c.ratio_grad, c.entropy_clip) == ("subsentence", True, "token", True)
    assert (c.entropy_alpha, c.entropy_scale_min, c.entropy_scale_max, c.entropy_adapt) == (1.0, 0.5, 2.0, "both")
    assert c.delimiters == ",.;:!?，。；：！？、" and c.tokenizer_path is None


def test_every_loss_hyper_parameter_of_the_core_is_a_config_field_with_its_default():
    from sspo_verl.adapter.policy_loss import POLICY_LOSS_FIELDS
    from sspo_verl.core.loss import SSPOParams

    assert "ratio_grad" in POLICY_LOSS_FIELDS and "entropy_alpha" in POLICY_LOSS_FIELDS
    config, core = SSPOPolicyLossConfig(), SSPOParams()
    assert {n: getattr(config, n) for n in POLICY_LOSS_FIELDS} == {n: getattr(core, n) for n in POLICY_LOSS_FIELDS}


def test_built_from_yaml_through_target_like_verl_does():
    node = OmegaConf.create({"_target_": "sspo_verl.SSPOPolicyLossConfig", "loss_mode": "sspo",
                             "granularity": "sentence", "entropy_alpha": 2.0, "tokenizer_path": "/m"})
    cfg = omega_conf_to_dataclass(node)
    assert isinstance(cfg, SSPOPolicyLossConfig) and cfg.granularity == "sentence" and cfg.entropy_alpha == 2.0


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("granularity", "word", "granularity='word' is not one of"),
        ("ratio_grad", "seq", "ratio_grad='seq' is not one of"),
        ("entropy_adapt", "up", "entropy_adapt='up' is not one of"),
        ("delimiters", "", "non-empty string"),
        ("delimiters", ", .", "contains a space or tab"),
        ("entropy_scale_min", 0.0, "must be > 0"),
        ("entropy_scale_max", 0.1, "must be >= entropy_scale_min"),
        ("entropy_alpha", -1.0, "must be >= 0"),
    ],
)
def test_invalid_values_fail_at_construction_with_the_fix(field, value, match):
    with pytest.raises(ValueError, match=match) as err:
        SSPOPolicyLossConfig(**{field: value})
    assert "actor_rollout_ref.actor.policy_loss" in str(err.value)


def test_frozen_like_verl_configs():
    from dataclasses import FrozenInstanceError

    with pytest.raises(FrozenInstanceError):
        SSPOPolicyLossConfig().granularity = "token"
