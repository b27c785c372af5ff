"""adv_estimator=sspo in verl's registry: equal to verl's grpo, groups of size 1 included."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from verl.trainer.config import AlgoConfig
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_adv_estimator_fn


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    n_prompts = int(torch.randint(1, 6, (1,), generator=g))
    sizes = torch.randint(1, 5, (n_prompts,), generator=g).tolist()  # groups of size 1 included
    index = np.array([f"uid-{p}" for p, n in enumerate(sizes) for _ in range(n)], dtype=object)
    order = torch.randperm(len(index), generator=g).numpy()  # verl batches are not sorted by group
    index = index[order]
    B, T = len(index), int(torch.randint(1, 9, (1,), generator=g))
    rewards = torch.zeros(B, T)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None] < lengths[:, None]).float()
    rewards[torch.arange(B), lengths - 1] = torch.randint(0, 2, (B,), generator=g).float()  # 0/1 outcome
    rewards[:, 0] += 0.1 * torch.rand(B, generator=g)
    return rewards, mask, index


@pytest.mark.parametrize("norm", [True, False])
@pytest.mark.parametrize("config_kind", ["dictconfig", "algoconfig"])
def test_equals_verl_grpo(norm, config_kind):
    fn = get_adv_estimator_fn("sspo")
    config = (OmegaConf.create({"norm_adv_by_std_in_grpo": norm}) if config_kind == "dictconfig"
              else AlgoConfig(norm_adv_by_std_in_grpo=norm))
    for seed in range(40):
        rewards, mask, index = _batch(seed)
        adv, ret = fn(token_level_rewards=rewards, response_mask=mask, config=config, index=index)
        ref_adv, ref_ret = compute_grpo_outcome_advantage(rewards, mask, index, norm_adv_by_std_in_grpo=norm)
        torch.testing.assert_close(adv, ref_adv, rtol=1.3e-6, atol=1e-6)
        torch.testing.assert_close(ret, ref_ret, rtol=1.3e-6, atol=1e-6)
        assert (adv[mask == 0] == 0).all()


def test_singleton_groups_and_integer_labels():
    fn = get_adv_estimator_fn("sspo")
    rewards = torch.tensor([[0.0, 3.0], [1.0, 0.0], [0.0, 2.0]])
    mask = torch.ones(2 * 3).view(3, 2)
    adv, _ = fn(token_level_rewards=rewards, response_mask=mask, config=None, index=np.array([7, 8, 8]))
    ref, _ = compute_grpo_outcome_advantage(rewards, mask, np.array([7, 8, 8]))
    torch.testing.assert_close(adv, ref)
    # singleton: (3 - 0) / (1 + 1e-6)
    assert torch.allclose(adv[0], torch.full((2,), 3.0 / (1 + 1e-6)))


def test_missing_index_is_a_clear_error():
    with pytest.raises(ValueError, match="uid"):
        get_adv_estimator_fn("sspo")(token_level_rewards=torch.zeros(2, 2), response_mask=torch.ones(2, 2), config=None)
