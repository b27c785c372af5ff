"""verl's FSDP engine on CPU: registration for device ``cpu`` and the unpinned FSDP2 offload policy."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
import torch.distributed as dist
from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard

from sspo_verl.cpu import fsdp

pytestmark = pytest.mark.filterwarnings("ignore:.*engine is not available")


def test_unpinned_policy_never_pins():
    policy = fsdp.unpinned_offload_policy(CPUOffloadPolicy)(pin_memory=True)
    assert isinstance(policy, CPUOffloadPolicy) and policy.pin_memory is False
    assert CPUOffloadPolicy(pin_memory=True).pin_memory is True  # torch's own class is untouched


def test_verl_builds_the_reference_offload_policy_through_the_patched_name():
    from verl.workers.engine.fsdp import transformer_impl

    assert fsdp.UNPINNED_OFFLOAD.original() is CPUOffloadPolicy
    # the engine builds the reference model's offload policy with pin_memory=True through that module-level name
    assert "CPUOffloadPolicy(pin_memory=True)" in inspect.getsource(transformer_impl)


def test_register_engines_adds_cpu_once(monkeypatch):
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

    monkeypatch.setattr(EngineRegistry, "_engines", copy.deepcopy(EngineRegistry._engines))  # restored
    added = fsdp.register_engines()
    assert sorted(added) == [
        ("language_model", "fsdp"),
        ("language_model", "fsdp2"),
        ("value_model", "fsdp"),
        ("value_model", "fsdp2"),
    ]
    assert EngineRegistry._engines["language_model"]["fsdp2"]["cpu"] is FSDPEngineWithLMHead
    assert EngineRegistry._engines["value_model"]["fsdp"]["cpu"] is FSDPEngineWithValueHead
    assert EngineRegistry._engines["language_model"]["fsdp2"]["cuda"] is FSDPEngineWithLMHead  # GPU entry kept
    assert fsdp.register_engines() == []


@pytest.fixture
def fsdp2_linear(tmp_path):
    """A real FSDP2-sharded module on a 1-rank gloo group (the CPU backend's trainer, in miniature)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
        fully_shard(model)
        yield model
    finally:
        dist.destroy_process_group()


def _step(model):
    with torch.no_grad():  # an optimizer step: in place, on the parameters' local shards
        for param in model.parameters():
            param._local_tensor.add_(1.0)


def test_verls_fsdp2_snapshot_aliases_the_live_weights_on_cpu(fsdp2_linear):
    """Why COPYING_SNAPSHOT exists: verl's snapshot (π_old of separate_async) moves with the optimizer on CPU."""
    save = fsdp.COPYING_SNAPSHOT.original()
    state, _ = save(fsdp2_linear)
    before = {name: shard.clone() for name, (shard, _) in state.items()}
    _step(fsdp2_linear)
    assert all(not torch.equal(state[name][0], before[name]) for name in before)


def test_the_copying_snapshot_restores_pi_old_after_an_update(fsdp2_linear):
    from verl.utils.fsdp_utils import fsdp2_sharded_load_from_cpu

    save = fsdp.copying_snapshot(fsdp.COPYING_SNAPSHOT.original())
    old = {name: p._local_tensor.clone() for name, p in fsdp2_linear.named_parameters()}
    state, spec = save(fsdp2_linear)  # DetachActorWorker.save_model_to_cpu(0): π_old
    _step(fsdp2_linear)
    moved = {name: p._local_tensor.clone() for name, p in fsdp2_linear.named_parameters()}
    assert all(not torch.equal(moved[n], old[n]) for n in old)
    fsdp2_sharded_load_from_cpu(fsdp2_linear, state, spec)  # restore_model_from_cpu(0)
    assert all(torch.equal(p._local_tensor, old[n]) for n, p in fsdp2_linear.named_parameters())

