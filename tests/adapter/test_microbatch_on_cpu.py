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


def test_segments_are_kept_per_segmentation_and_equal_a_fresh_build(tiny_model_dir):
    """The loss and the diagnostics share a micro-batch's segments exactly when they segment alike: the key is the
    Segmentation that builds them, so equal configs share one build and any differing option builds its own."""
    from transformers import AutoTokenizer
    from verl.workers.config import ActorConfig

    from sspo_verl import SSPOPolicyLossConfig
    from sspo_verl.adapter.actor_config import segmentation_for

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = torch.tensor([tok.encode("Pi is 3.14, so; 1,000 ok.\nyes")])
    mask = torch.ones_like(ids, dtype=torch.bool)
    batch = mb.MicroBatch(TensorDict({"responses": ids}, batch_size=[1]), {})

    def config(**fields):
        return ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1,
                           policy_loss=SSPOPolicyLossConfig(tokenizer_path=tiny_model_dir, **fields))

    same = [segmentation_for(config(), "subsentence"), segmentation_for(config(), "subsentence")]
    assert same[0] == same[1] and batch.segments(same[0], mask) is batch.segments(same[1], mask)
    variants = [same[0], segmentation_for(config(numeric_guard=False), "subsentence"),
                segmentation_for(config(delimiters=";"), "subsentence"), segmentation_for(config(), "sentence"),
                segmentation_for(config(), "token"), segmentation_for(config(), "sequence")]
    built = [batch.segments(s, mask) for s in variants]
    assert len(set(variants)) == len(variants) == len(batch._segments)
    for s, seg in zip(variants, built):
        assert torch.equal(seg.flat, s.segments(ids, mask).flat)
    counts = [int(seg.num_segments[0]) for seg in built]
    assert counts[1] > counts[0] > counts[2] and counts[4] == ids.shape[1] and counts[5] == 1  # guard, delimiters
