"""The ``hf`` rollout's verl side: the adapter in each trainer worker that forwards synced weights to its server."""

from __future__ import annotations

import asyncio
import types

import pytest
import torch

from sspo_verl.cpu import rollout as hf_rollout
from sspo_verl.cpu.rollout import HFServerAdapter


def _rollout_config(**overrides):
    from verl.workers.config import RolloutConfig

    kwargs = dict(name="hf", prompt_length=32, response_length=12, dtype="float32", tensor_model_parallel_size=1)
    kwargs.update(overrides)
    return RolloutConfig(**kwargs)


def test_server_names_are_per_replica_and_kind():
    assert hf_rollout.server_name(0) == "sspo_hf_server_0"
    assert hf_rollout.server_name(1, "_x", "reward") == "sspo_hf_server_reward_1_x"


class _FakeServerHandle:
    """Stands in for the Ray handle: ``update_weights.remote(...)`` returns an awaitable, calls are recorded."""

    def __init__(self):
        self.calls = []
        self.update_weights = types.SimpleNamespace(remote=self._remote)

    def _remote(self, bucket, is_last, global_steps):
        self.calls.append((sorted(bucket), is_last, global_steps))

        async def done():
            return {"received": len(bucket)}

        return done()


class _Sharded:
    """A DTensor-like value: the adapter must call ``full_tensor()`` (a collective on every rank)."""

    def __init__(self, tensor):
        self.tensor, self.gathered = tensor, False

    def full_tensor(self):
        self.gathered = True
        return self.tensor


def _adapter(monkeypatch, rank):
    monkeypatch.setenv("RANK", str(rank))
    return HFServerAdapter(_rollout_config(), types.SimpleNamespace(path="unused"), device_mesh=None)


def test_adapter_sends_full_tensors_in_buckets_from_rank_zero_only(monkeypatch):
    monkeypatch.setattr(hf_rollout, "WEIGHT_BUCKET_BYTES", 2 * 4 * 4)  # two 4-float tensors per bucket
    weights = [(f"w{i}", _Sharded(torch.full((4,), float(i)))) for i in range(5)]
    adapter = _adapter(monkeypatch, rank=0)
    assert adapter.replica_rank == 0 and adapter.rollout_rank == 0
    handle = _FakeServerHandle()
    adapter.server_handle = handle
    asyncio.run(adapter.update_weights(iter(weights), global_steps=3))
    assert handle.calls == [(["w0", "w1"], False, 3), (["w2", "w3"], False, 3), (["w4"], True, 3)]
    assert all(w.gathered for _, w in weights)

    # rank 1 is replica 1's only rank here (rollout world size 1): it sends to its own server
    other = _adapter(monkeypatch, rank=1)
    assert other.replica_rank == 1 and other.rollout_rank == 0


def test_adapter_refuses_lora_and_delta_wire_formats(monkeypatch):
    adapter = _adapter(monkeypatch, rank=0)
    adapter.server_handle = _FakeServerHandle()
    with pytest.raises(NotImplementedError, match="LoRA"):
        asyncio.run(adapter.update_weights(iter([]), peft_config={"r": 8}))
    with pytest.raises(NotImplementedError, match="wire format"):
        asyncio.run(adapter.update_weights(iter([]), wire_format="delta_flush"))


def test_adapter_refuses_rollout_tensor_parallelism(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="tensor_model_parallel_size=1"):
        HFServerAdapter(_rollout_config(tensor_model_parallel_size=2), types.SimpleNamespace(path="x"), None)
