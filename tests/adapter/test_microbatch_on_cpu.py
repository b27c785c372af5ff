"""The ppo_loss micro-batch context (the patch's discipline is tests/test_patching_on_cpu.py)."""

import pytest
import torch
from tensordict import TensorDict

import sspo_verl.adapter.microbatch as mb
from sspo_verl.adapter.diagnostics import POLICY_LOSS_LOOKUP
from verl.workers.utils import losses


@pytest.fixture
def restore_patch():
    yield
    mb.PPO_LOSS.install()
    assert mb.PPO_LOSS.is_installed()


def test_installed_by_the_entry_point_everywhere_ppo_loss_is_bound():
    import verl.trainer.distillation.losses as distill
    import verl.workers.engine_workers as engine_workers

    assert mb.PPO_LOSS.is_installed() and POLICY_LOSS_LOOKUP.is_installed()
    assert mb.PPO_LOSS.original().__module__ == "verl.workers.utils.losses"
    assert engine_workers.ppo_loss is losses.ppo_loss and distill.ppo_loss is losses.ppo_loss


def test_sspo_outside_the_context_fails_loudly(restore_patch, tiny_model_dir):
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.workers.config import ActorConfig

    from sspo_verl import SSPOPolicyLossConfig

    mb.PPO_LOSS.uninstall()
    config = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1,
                         policy_loss=SSPOPolicyLossConfig(tokenizer_path=tiny_model_dir))
    x = torch.zeros(1, 3)
    with pytest.raises(RuntimeError, match="plugin is not active"):
        get_policy_loss_fn("sspo")(old_log_prob=x, log_prob=x, advantages=x, response_mask=x.bool(),
                                   loss_agg_mode="token-mean", config=config)


def test_context_is_set_only_during_the_call_and_nested_ids_are_padded():
    assert mb.current_microbatch() is None
    responses = torch.nested.as_nested_tensor([torch.tensor([5, 6, 7]), torch.tensor([8])], layout=torch.jagged)
    data = TensorDict({"responses": responses}, batch_size=[2])
    with mb.microbatch_context(data, {}):
        view = mb.current_microbatch()
        assert view.response_ids(4).tolist() == [[5, 6, 7, 0], [8, 0, 0, 0]]
        assert view.response_ids(2).tolist() == [[5, 6], [8, 0]]
        assert view.entropy(4) is None
    assert mb.current_microbatch() is None


def test_min_max_metrics_get_min_max_aggregation():
    from verl.utils.metric import AggregationType, Metric

    metrics = {k: Metric(AggregationType.MEAN, 1.0) for k in
               ("actor/sspo/ratio_max", "actor/sspo/ratio_min", "actor/sspo/clipfrac_high", "actor/pg_clipfrac",
                "actor/any_loss/ratio_max")}
    out = mb._tag_min_max(metrics)
    assert out["actor/sspo/ratio_max"].aggregation == AggregationType.MAX
    assert out["actor/sspo/ratio_min"].aggregation == AggregationType.MIN
    assert out["actor/sspo/clipfrac_high"].aggregation == AggregationType.MEAN
    assert out["actor/pg_clipfrac"].aggregation == AggregationType.MEAN
    assert out["actor/sspo/ratio_max"].values == [1.0]
    assert out["actor/any_loss/ratio_max"].aggregation == AggregationType.MAX  # by name, as verl's reduce_metrics
