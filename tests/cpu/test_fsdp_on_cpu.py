"""verl's FSDP engine on CPU: registration for device ``cpu`` and the unpinned FSDP2 offload policy."""

from __future__ import annotations

import copy
import inspect

import pytest
from torch.distributed.fsdp import CPUOffloadPolicy

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
