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


def _sessions_batch(seed):
    """A V1 batch of multi-output agent sessions: keys {uid}_{session}_{index}, several outputs per session."""
    from verl.protocol import DataProto

    g = torch.Generator().manual_seed(seed)
    keys, uids = [], []
    for p in range(3):  # prompts
        for s in range(int(torch.randint(1, 4, (1,), generator=g))):  # sessions (rollout.n) per prompt
            for k in torch.randperm(int(torch.randint(1, 4, (1,), generator=g)), generator=g).tolist():
                keys.append(f"uid{p}_{s}_{k}")  # outputs of a session, not in index order
                uids.append(f"uid{p}")
    order = torch.randperm(len(keys), generator=g).tolist()
    keys, uids = [keys[i] for i in order], [uids[i] for i in order]
    B, T = len(keys), 6
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None] < lengths[:, None]).float()
    mask[0, 0] = 0.0  # first valid token not at 0
    rewards = torch.zeros(B, T)
    rewards[torch.arange(B), lengths - 1] = torch.randint(0, 3, (B,), generator=g).float()
    data = DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask},
                               non_tensors={"uid": np.array(uids, dtype=object)})
    return data, keys


@pytest.mark.parametrize("norm", [True, False])
def test_v1_multi_output_sessions_take_the_grpo_path(norm):
    """As verl's grpo under V1: only each session's final output counts, its advantage goes to every output."""
    import verl.trainer.ppo.v1.utils as v1_utils

    from sspo_verl.adapter.advantage import MULTI_TRAJECTORY

    assert MULTI_TRAJECTORY.is_installed()
    verl_fn = MULTI_TRAJECTORY.original()
    config = OmegaConf.create({"norm_adv_by_std_in_grpo": norm})
    for seed in range(10):
        data, keys = _sessions_batch(seed)
        ours = v1_utils.compute_advantage_for_multi_trajectories(
            data, keys, "sspo", norm_adv_by_std_in_grpo=norm, config=config)
        ref_data, _ = _sessions_batch(seed)
        ref = verl_fn(ref_data, keys, "grpo", norm_adv_by_std_in_grpo=norm, config=config)
        torch.testing.assert_close(ours.batch["advantages"], ref.batch["advantages"], rtol=1.3e-6, atol=1e-6)
        torch.testing.assert_close(ours.batch["returns"], ref.batch["returns"], rtol=1.3e-6, atol=1e-6)
    # what the path changes: every output as its own response gives other advantages
    data, keys = _sessions_batch(0)
    assert len({k.rsplit("_", 1)[0] for k in keys}) < len(keys)  # some session has several outputs
    naive, _ = get_adv_estimator_fn("sspo")(token_level_rewards=data.batch["token_level_rewards"],
                                            response_mask=data.batch["response_mask"], config=config,
                                            index=data.non_tensor_batch["uid"])
    ours = v1_utils.compute_advantage_for_multi_trajectories(data, keys, "sspo", config=config)
    assert not torch.allclose(naive, ours.batch["advantages"])


def test_session_final_rows_ties_and_order():
    from sspo_verl.adapter.advantage import session_final_rows

    keys = ["a_0_1", "b_0_0", "a_0_3", "a_1_0", "a_0_3", "b_0_2"]
    final, row_session = session_final_rows(keys)
    # sessions in order of appearance: a_0, b_0, a_1; a_0's largest index 3 first appears at row 2
    assert final.tolist() == [2, 5, 3] and row_session.tolist() == [0, 1, 0, 2, 0, 1]
    with pytest.raises(ValueError, match="uid"):
        session_final_rows(["no-index"])
