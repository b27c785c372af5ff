"""Group-relative advantage (spec §8): hand-worked, the float64 loop reference."""

import pytest
import torch

from sspo_verl.core.advantage import group_relative_advantage, outcome_advantage
from tests.sspo_reference import ref_grpo_advantage


def test_hand_worked_group():
    # group 0: scores (1, 0, 0, 1): mean 0.5, unbiased std sqrt(4·0.25/3) = 0.57735 -> ±0.5/0.57735 = ±0.86603
    # group 1: a single response: mean 0, std 1 -> A = score / (1 + 1e-6)
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0], dtype=torch.float64)
    gid = torch.tensor([0, 0, 0, 0, 1])
    adv = group_relative_advantage(scores, gid)
    a = 0.5 / (0.5773502691896258 + 1e-6)
    torch.testing.assert_close(adv, torch.tensor([a, -a, -a, a, 2.0 / (1 + 1e-6)], dtype=torch.float64))
    # Dr. GRPO: no std
    torch.testing.assert_close(group_relative_advantage(scores, gid, norm_by_std=False),
                               torch.tensor([0.5, -0.5, -0.5, 0.5, 2.0], dtype=torch.float64))


def test_zero_variance_group_gives_zero_advantage():
    adv = group_relative_advantage(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0, 0, 0]))
    assert (adv == 0).all()


@pytest.mark.parametrize("norm_by_std", [True, False])
def test_matches_loop_reference(norm_by_std):
    for seed in range(30):
        g = torch.Generator().manual_seed(seed)
        B = int(torch.randint(1, 24, (1,), generator=g))
        T = int(torch.randint(1, 8, (1,), generator=g))
        labels = torch.randint(0, max(1, B // 3), (B,), generator=g).tolist()
        rewards = torch.zeros(B, T, dtype=torch.float64)
        rewards[:, -1] = torch.randint(0, 3, (B,), generator=g).double()  # outcome on the last token
        rewards[:, 0] += torch.rand(B, generator=g, dtype=torch.float64)  # plus a shaped part
        mask = (torch.rand(B, T, generator=g) > 0.3).double()
        ids = torch.tensor(labels)
        got = outcome_advantage(rewards, mask, ids, norm_by_std)
        ref = ref_grpo_advantage(rewards, mask, labels, norm_by_std)
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
