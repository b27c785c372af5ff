"""μ, SSPO's entropy reference: the rollout batch's mean sampling-policy entropy, attached to the actor update.

The wrap of verl's ``PPOTrainer._update_actor`` runs for real in the CPU trainer runs (``tests/e2e``, where μ must
equal verl's own token-mean ``actor/entropy`` of the same batch); here its arithmetic and its choices.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from sspo_verl.adapter import entropy_reference as er


def _nested(rows):
    return torch.nested.as_nested_tensor(list(rows), layout=torch.jagged)


def test_rollout_entropy_mean_counts_valid_tokens_only():
    ent = [torch.tensor([1.0, 2.0, 30.0]), torch.tensor([4.0]), torch.tensor([50.0, 6.0])]
    mask = [torch.tensor([1, 1, 0]), torch.tensor([0]), torch.tensor([0, 1])]  # a hole, a padding row
    # (1 + 2 + 6) / 3 = 3
    assert er.rollout_entropy_mean(_nested(ent), _nested(mask)) == pytest.approx(3.0, abs=0)
    dense_ent = torch.tensor([[1.0, 2.0, 30.0], [4.0, 0.0, 0.0], [50.0, 6.0, float("nan")]])
    dense_mask = torch.tensor([[1, 1, 0], [0, 0, 0], [0, 1, 0]])
    assert er.rollout_entropy_mean(dense_ent, dense_mask) == 3.0  # NaN in padding is ignored
    assert er.rollout_entropy_mean(_nested(ent), _nested([torch.zeros(3), torch.zeros(1), torch.zeros(2)])) == 0.0
    with pytest.raises(ValueError, match="do not match"):
        er.rollout_entropy_mean(dense_ent, dense_mask[:, :2])


@pytest.mark.parametrize("policy_loss,expected", [
    ({"loss_mode": "sspo"}, True),  # the dataclass defaults: entropy_clip on, entropy_source old
    ({"loss_mode": "sspo", "entropy_clip": True, "entropy_source": "old"}, True),
    ({"loss_mode": "sspo", "entropy_source": "current"}, False),
    ({"loss_mode": "sspo", "entropy_clip": False}, False),
    ({"loss_mode": "vanilla"}, False),
])
def test_only_sspo_with_old_entropy_clipping_pays_for_mu(policy_loss, expected):
    assert er.uses_old_entropy(OmegaConf.create({"policy_loss": policy_loss})) is expected


class _Batch:
    keys, partition_id = ["a_0_0", "b_0_0"], "train"

    def __init__(self):
        self.extra_info = {}


class _Trainer:
    def __init__(self, loss_mode):
        self.config = OmegaConf.create({"actor_rollout_ref": {"actor": {"policy_loss": {"loss_mode": loss_mode}}}})

    def _update_actor(self, batch, metrics):
        self.seen = dict(batch.extra_info)
        return batch


@pytest.mark.parametrize("loss_mode", ["sspo", "vanilla"])
def test_the_wrap_attaches_mu_before_verl_dispatches_the_update(loss_mode, monkeypatch):
    from tensordict import TensorDict

    reads = []
    fields = TensorDict({"entropy": _nested([torch.tensor([1.0, 3.0]), torch.tensor([5.0])]),
                         "response_mask": _nested([torch.tensor([1, 1]), torch.tensor([1])])}, batch_size=[2])
    monkeypatch.setattr(er, "_read_batch", lambda batch: reads.append(batch.keys) or fields)
    trainer, metrics = _Trainer(loss_mode), {}
    er._wrap_update_actor(_Trainer._update_actor)(trainer, _Batch(), metrics)
    if loss_mode == "sspo":
        assert trainer.seen == {er.ENTROPY_MEAN_KEY: 3.0} and metrics == {er.METRIC: 3.0}
        assert reads == [_Batch.keys]
    else:  # GRPO / GSPO: nothing read, nothing attached
        assert trainer.seen == {} and metrics == {} and reads == []


def test_every_v1_trainer_mode_runs_the_wrapped_update_and_computes_the_old_entropy():
    """μ is attached where verl's trainer of every mode updates the actor: no registered trainer class (sync,
    colocate_async, separate_async) overrides ``_update_actor``, so the one wrap of ``PPOTrainer._update_actor``
    is on each one's path; and each one's old-log-prob pass (where H_old comes from) is ``PPOTrainer``'s own, or
    (separate_async, Decoupled PPO) calls it with π_old's weights restored."""
    import inspect

    from verl.trainer.ppo.v1 import trainer_base

    er.UPDATE_ACTOR.install()
    registry = trainer_base.TRAINER_REGISTRY
    assert {"sync", "colocate_async", "separate_async"} <= set(registry)
    for name, cls in registry.items():
        assert cls._update_actor is trainer_base.PPOTrainer._update_actor, name
        own = cls.__dict__.get("_compute_old_log_prob")
        assert own is None or "super()._compute_old_log_prob" in inspect.getsource(own), name
