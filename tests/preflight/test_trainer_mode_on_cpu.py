"""sspo_verl.preflight.trainer_mode: the asynchronous trainer modes, refused before Ray where verl would assert (or
wait forever) inside it, with the key, the value and the fix; the shipped mode presets pass."""

from __future__ import annotations

import pytest

from tests.preflight.configs import check, messages

CPU = ["hardware=cpu", "model=tiny", "rollout=vllm", "preflight.check_files=false"]
# 4 trainer + 4 rollout GPUs on an 8-GPU node: the separate_async layout that fits gpu_1x8
SPLIT = ["trainer.n_gpus_per_node=4", "actor_rollout_ref.rollout.n_gpus_per_node=4"]


@pytest.mark.parametrize("mode", ["sync", "colocate_async"])
def test_sync_and_colocate_async_pass_on_gpu_and_cpu(data_dir, mode):
    for overrides in ([f"mode={mode}"], [f"mode={mode}", *CPU]):
        cfg, report = check(overrides)
        assert messages(report, "trainer_mode") == [], overrides
        assert cfg.trainer.v1.trainer_mode == mode


def test_separate_async_passes_when_its_pool_fits(data_dir):
    cfg, report = check(["mode=separate_async", *SPLIT])
    assert messages(report, "trainer_mode") == []
    # the preset's geometry is verl's: train_batch_size == parameter_sync_step × ppo_mini_batch_size
    train, mini = cfg.data.train_batch_size, cfg.actor_rollout_ref.actor.ppo_mini_batch_size
    assert train == cfg.trainer.v1.separate_async.parameter_sync_step * mini


def test_a_geometry_verl_asserts_on_is_refused(data_dir):
    _, report = check(["mode=separate_async", *SPLIT, "trainer.v1.separate_async.parameter_sync_step=2"])
    (msg,) = messages(report, "trainer_mode", "error")
    assert "trainer.v1.separate_async.parameter_sync_step" in msg and "!= 2 ×" in msg
    assert "parameter_sync_step=4" in msg  # the fix: train_batch_size / ppo_mini_batch_size
    _, report = check(["mode=separate_async", *SPLIT, "trainer.v1.separate_async.parameter_sync_step=3"])
    (msg,) = messages(report, "trainer_mode", "error")
    assert "does not divide data.train_batch_size" in msg


def test_log_prob_micro_batches_that_do_not_divide_a_mini_batch_are_refused_in_separate_async(data_dir):
    # model=tiny: 8 prompts / 4 mini-batches = 2 prompts × 8 responses = 16 samples per mini-batch and rank;
    # sync and colocate_async compute log-probs over the whole rollout batch (64 samples), where 32 divides
    for section in ("actor_rollout_ref.rollout", "actor_rollout_ref.ref"):
        bad = [*CPU, f"{section}.log_prob_micro_batch_size_per_gpu=32", "actor_rollout_ref.actor.use_kl_loss=true"]
        _, report = check(["mode=separate_async", *bad, "actor_rollout_ref.rollout.checkpoint_engine.backend=gloo"])
        (msg,) = messages(report, "trainer_mode", "error")
        assert f"{section}.log_prob_micro_batch_size_per_gpu=32 does not divide" in msg and "=16." in msg, msg
        _, report = check(["mode=colocate_async", *bad])
        assert messages(report, "trainer_mode") == []


def test_a_standalone_pool_that_cannot_exist_or_fit_is_refused(data_dir):
    _, report = check(["mode=separate_async"])  # 8 trainer + 8 rollout GPUs on an 8-GPU machine
    (msg,) = messages(report, "trainer_mode", "error")
    assert "shows 8" in msg and "trainer.n_gpus_per_node=4" in msg and "rollout.n_gpus_per_node=4" in msg
    _, report = check(["mode=separate_async", *SPLIT, "actor_rollout_ref.rollout.nnodes=0"])
    (msg,) = messages(report, "trainer_mode", "error")
    assert "actor_rollout_ref.rollout.nnodes=1" in msg
    _, report = check(["mode=separate_async", *SPLIT, "actor_rollout_ref.rollout.checkpoint_engine.backend=naive"])
    (msg,) = messages(report, "trainer_mode", "error")
    assert "backend='naive'" in msg and "backend=nccl" in msg
    _, report = check(["mode=separate_async", *SPLIT, "actor_rollout_ref.hybrid_engine=false"])
    (msg,) = messages(report, "trainer_mode", "error")
    assert "hybrid_engine=false" in msg and "Keep actor_rollout_ref.hybrid_engine=true" in msg
    _, report = check(["mode=separate_async", *SPLIT, "actor_rollout_ref.rollout.tensor_model_parallel_size=3"])
    assert any("tensor_model_parallel_size=3" in m for m in messages(report, "trainer_mode", "error"))


def test_separate_async_on_cpu_takes_the_gloo_engine_and_the_hf_rollout_is_refused_in_any_async_mode(data_dir):
    # what sspo-train hands the pre-flight: the CPU launcher has put the gloo engine in place of the mode's nccl
    gloo = "actor_rollout_ref.rollout.checkpoint_engine.backend=gloo"
    _, report = check(["mode=separate_async", *CPU, gloo])
    assert messages(report, "trainer_mode") == []  # no GPU count either: on CPU the pool's slots are logical
    for backend, fix in (("nccl", "backend=gloo"), ("nixl", "backend=gloo"), ("naive", "backend=gloo")):
        _, report = check(["mode=separate_async", *CPU, f"actor_rollout_ref.rollout.checkpoint_engine.backend={backend}"])
        (msg,) = messages(report, "trainer_mode", "error")
        assert f"backend={backend!r}" in msg.replace('"', "'") and fix in msg, msg
    for mode in ("colocate_async", "separate_async"):
        _, report = check([f"mode={mode}", *CPU, "rollout=hf", gloo])
        assert any("name='hf'" in m and "rollout=vllm" in m for m in messages(report, "trainer_mode", "error"))


def test_an_unknown_mode_or_the_legacy_trainer_is_refused(data_dir):
    _, report = check(["trainer.v1.trainer_mode=fully_async"])
    (msg,) = messages(report, "trainer_mode", "error")
    assert "colocate_async, separate_async, sync" in msg
    _, report = check(["mode=colocate_async", "trainer.use_v1=false"])
    assert any("trainer.use_v1=false" in m for m in messages(report, "trainer_mode", "error"))
