"""loss_mode=sspo through verl's registry on CUDA: verl's vanilla / gspo on the same GPU tensors, and syncs.

Skipped without a CUDA GPU (``gpu`` marker, see ``tests/conftest.py``).
"""

import math

import pytest
import torch
from verl.trainer.ppo.core_algos import agg_loss, get_policy_loss_fn

from tests.adapter.test_policy_loss_on_cpu import AGG_MODES, actor_config, make_batch, vocab  # noqa: F401
from tests.cuda_sync import count_device_syncs

pytestmark = pytest.mark.gpu


def _cuda(b):
    return {k: v.to("cuda") for k, v in b.items()}


def _loss(mode, config, b, **extra):
    lp = b["lp"].clone().requires_grad_(True)
    loss, metrics = get_policy_loss_fn(mode)(old_log_prob=b["old"], log_prob=lp, advantages=b["adv"],
                                             response_mask=b["mask"], loss_agg_mode=config.loss_agg_mode,
                                             config=config, rollout_is_weights=None, **extra)
    loss.backward()
    return loss.detach(), lp.grad, metrics


def _sspo(config, b, entropy=True):
    return _loss("sspo", config, b, response_ids=b["ids"], entropy=b["ent"] if entropy else None)


@pytest.mark.parametrize("agg", AGG_MODES)
def test_token_and_sequence_granularity_equal_verl_vanilla_and_gspo_on_cuda(vocab, agg):  # noqa: F811
    for seed in range(4):
        b = _cuda(make_batch(vocab, seed, B=8, T=64, scale=0.6))
        ours = _sspo(actor_config(vocab["path"], loss_agg_mode=agg, granularity="token", entropy_clip=False), b)
        ref = _loss("vanilla", actor_config(vocab["path"], loss_mode="vanilla", loss_agg_mode=agg), b)
        torch.testing.assert_close(ours[0], ref[0], rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(ours[1], ref[1], rtol=1e-12, atol=1e-15)
        for k in ("actor/pg_clipfrac", "actor/pg_clipfrac_lower", "actor/ppo_kl"):
            assert math.isclose(ours[2][k], ref[2][k], rel_tol=1e-6, abs_tol=1e-7), k

        ours = _sspo(actor_config(vocab["path"], loss_agg_mode=agg, clip_c=1e9, granularity="sequence",
                                  entropy_clip=False), b)
        ref = _loss("gspo", actor_config(vocab["path"], loss_mode="gspo", loss_agg_mode=agg), b)
        torch.testing.assert_close(ours[0], ref[0], rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(ours[1], ref[1], rtol=1e-12, atol=1e-15)


def test_subsentence_on_cuda_equals_the_same_call_on_cpu(vocab):  # noqa: F811
    cfg = actor_config(vocab["path"], loss_agg_mode="seq-mean-token-mean")
    for seed in range(4):
        b = make_batch(vocab, seed, B=8, T=64, holes=seed % 2 == 1)
        on_cpu, on_gpu = _sspo(cfg, b), _sspo(cfg, _cuda(b))
        torch.testing.assert_close(on_gpu[0].cpu(), on_cpu[0], rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(on_gpu[1].cpu(), on_cpu[1], rtol=1e-10, atol=1e-13)
        for k, v in on_cpu[2].items():
            assert math.isclose(on_gpu[2][k], v, rel_tol=1e-6, abs_tol=1e-7), k


@pytest.mark.parametrize("entropy", [False, True])
def test_sspo_syncs_once_for_its_metrics_where_verl_vanilla_syncs_per_metric(vocab, entropy):  # noqa: F811
    """Beyond verl's own aggregation, SSPO leaves the device once per call: its metrics in one ``.tolist()``.

    The boundary table is built and moved to the device on the first call (cached), so a warm-up call comes
    first; verl's vanilla is measured alongside (one ``.item()`` per metric).
    """
    b = _cuda(make_batch(vocab, 3, B=16, T=256))
    cfg = actor_config(vocab["path"], loss_agg_mode="seq-mean-token-mean", entropy_clip=entropy)
    vanilla_cfg = actor_config(vocab["path"], loss_mode="vanilla", loss_agg_mode="seq-mean-token-mean")
    _sspo(cfg, b, entropy)  # warm-up: table built and cached on the device
    with count_device_syncs() as sspo:
        _sspo(cfg, b, entropy)
    with count_device_syncs() as vanilla:
        _loss("vanilla", vanilla_cfg, b)
    with count_device_syncs() as aggregation:
        lp = b["lp"].clone().requires_grad_(True)
        agg_loss(loss_mat=lp * b["adv"], loss_mask=b["mask"], loss_agg_mode=cfg.loss_agg_mode,
                 **cfg.global_batch_info).backward()
    print(f"host-device syncs per call: sspo {sspo.n}, vanilla {vanilla.n}, verl agg_loss alone {aggregation.n}")
    assert sspo.n == aggregation.n + 1
    assert vanilla.n >= aggregation.n + 3  # verl: .item() per metric (pg_clipfrac, ppo_kl, pg_clipfrac_lower)
