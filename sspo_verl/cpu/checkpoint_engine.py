"""verl checkpoint engine ``gloo``: the trainer's weights broadcast to verl's standalone rollout workers over a gloo
process group of their own, so ``mode=separate_async`` runs on the CPU backend.

verl 0.9.1's ``separate_async`` trainer pushes the actor's weights to its standalone rollout pool through a
checkpoint engine (``verl.checkpoint_engine``); each one it ships moves device memory (nccl/hccl through
``ray.util.collective`` and cupy, nixl, mooncake, kimi) and ``naive`` works only inside one process. verl's own
contract (``verl/checkpoint_engine/base.py``) is what runs here, once per weight push, driven by verl's
``CheckpointEngineManager``:

    prepare            trainer rank 0 starts a ``torch.distributed.TCPStore`` (a free port of its node); it returns
                       the address (:class:`Rendezvous`), the other workers return None
    build_topology     the group: trainer rank 0 (rank 0, the sender) + every rollout worker (ranks 1..R); the
                       other trainer ranks get rank -1 (they only walk the weight generator, whose FSDP gathers
                       are collective over the trainer group)
    init_process_group a ``ProcessGroupGloo`` on that store (new every push, as verl rebuilds the group)
    send_weights       verl's ``split_weight_chunks`` packs the weights into a bucket of
                       ``update_weights_bucket_megabytes``; per bucket, its metadata goes into the store and the
                       bytes through one gloo broadcast
    receive_weights    the same buckets, unpacked by verl's ``merge_weight_chunks`` into ``(name, tensor)`` for the
                       rollout's server adapter (on CPU: verl's vLLM ``ServerAdapter`` → shared memory → vLLM)
    finalize           the group, store and bucket are dropped

It is registered under :data:`BACKEND` in verl's ``CheckpointEngineRegistry`` when imported; verl imports it in
every process that builds or looks up an engine through ``checkpoint_engine.custom_backend_module``
(``hardware/cpu.yaml``), and ``sspo_verl.cpu.launch.apply_to_config`` selects it for ``mode=separate_async``.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, AsyncGenerator, Generator, Optional

import torch
import torch.distributed as dist
from verl.checkpoint_engine.base import (
    CheckpointEngine,
    CheckpointEngineRegistry,
    TensorMeta,
    merge_weight_chunks,
    split_weight_chunks,
)
from verl.workers.rollout.utils import ensure_async_iterator

__all__ = ["BACKEND", "GlooCheckpointEngine", "Rendezvous"]

logger = logging.getLogger("sspo_verl.cpu")

BACKEND = "gloo"
# Bucket offsets are rounded up to this many bytes, so every chunk can be viewed as its dtype in place.
_ALIGN = 16
# How long a worker waits for the others (store connection, group rendezvous, the next bucket) before it fails.
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Rendezvous:
    """Where the group's ``TCPStore`` listens (trainer rank 0's node)."""

    host: str
    port: int


def _node_ip() -> str:
    import ray

    return ray.util.get_node_ip_address().strip("[]")


def _key(index: int) -> str:
    return f"bucket/{index}"


async def _in_thread(fn, *args):
    """Run a blocking call (a store wait, a gloo ``Work.wait``) off the worker's event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


@CheckpointEngineRegistry.register(BACKEND)
class GlooCheckpointEngine(CheckpointEngine):
    """Weights from trainer rank 0 to every rollout worker through gloo broadcasts (see the module).

    Args:
        bucket_size: bytes per broadcast (verl passes ``update_weights_bucket_megabytes << 20``).
        is_master: whether this is trainer rank 0 (verl passes it to the trainer's engines; rollout workers'
            engines are built without it).
        timeout_s: how long any wait on the other workers may take (``checkpoint_engine.engine_kwargs.gloo``).
    """

    def __init__(self, bucket_size: int, is_master: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if bucket_size <= 0:
            raise ValueError(f"checkpoint engine {BACKEND!r}: bucket_size={bucket_size} must be positive "
                             "(actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes)")
        self.bucket_size = int(bucket_size)
        self.is_master = is_master
        self.timeout = timedelta(seconds=float(timeout_s))
        self.rank: Optional[int] = None
        self.world_size: Optional[int] = None
        self._store: Optional[dist.TCPStore] = None
        self._group: Optional[dist.ProcessGroupGloo] = None

    # -- topology (verl's CheckpointEngineManager.build_process_group) ------------------------------------------

    def prepare(self) -> Optional[Rendezvous]:
        """Trainer rank 0: start the group's store and return its address; every other worker: None."""
        if not self.is_master:
            return None
        host = _node_ip()
        self._store = dist.TCPStore(host, 0, is_master=True, wait_for_workers=False, timeout=self.timeout)
        return Rendezvous(host=host, port=int(self._store.port))

    @classmethod
    def build_topology(
        cls, actor_wg_world_size: int, rollout_world_size: int, metadata: list
    ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        """Rank 0 = trainer rank 0 (whose ``prepare`` returned the :class:`Rendezvous`), ranks 1..R = rollout."""
        rendezvous = metadata[0]
        if not isinstance(rendezvous, Rendezvous):
            raise RuntimeError(
                f"checkpoint engine {BACKEND!r}: trainer rank 0 returned {rendezvous!r} from prepare(), not the "
                "group's address; it must be built with is_master=True (verl's ActorRolloutRefWorker does this)."
            )
        world_size = 1 + rollout_world_size
        actor = {
            "rank": [0] + [-1] * (actor_wg_world_size - 1),
            "world_size": [world_size] * actor_wg_world_size,
            "rendezvous": [rendezvous] * actor_wg_world_size,
        }
        rollout = {
            "rank": list(range(1, world_size)),
            "world_size": [world_size] * rollout_world_size,
            "rendezvous": [rendezvous] * rollout_world_size,
        }
        return actor, rollout

    def init_process_group(self, rank: int, world_size: int, rendezvous: Rendezvous) -> None:
        """Join the group (blocks until all ``world_size`` members have joined); rank -1 stays out."""
        self.rank, self.world_size = rank, world_size
        if rank < 0:
            return
        if rank > 0:
            self._store = dist.TCPStore(rendezvous.host, rendezvous.port, is_master=False, timeout=self.timeout)
        elif self._store is None:
            raise RuntimeError(f"checkpoint engine {BACKEND!r}: rank 0 joined without prepare() (no store)")
        self._group = dist.ProcessGroupGloo(self._store, rank, world_size, self.timeout)

    def finalize(self) -> None:
        """Drop the group, the store and the rank (verl rebuilds them for the next push)."""
        self._group = None
        self._store = None
        self.rank = self.world_size = None

    # -- transfer ------------------------------------------------------------------------------------------------

    def _broadcast(self, bucket: torch.Tensor) -> "dist.Work":
        options = dist.BroadcastOptions()
        options.rootRank = 0
        return self._group.broadcast([bucket], options)

    def _check_joined(self, what: str) -> None:
        if self.rank is None:
            raise RuntimeError(f"checkpoint engine {BACKEND!r}: {what} before init_process_group")

    @torch.no_grad()
    async def send_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        global_steps: int | None = None,
    ) -> dict[str, float]:
        """Broadcast ``weights`` bucket by bucket (rank 0); a rank -1 trainer worker only walks the generator.

        Returns:
            ``checkpoint_engine/gloo/{bytes,buckets,send_s}`` on rank 0 (verl adds them to the step's metrics).
        """
        self._check_joined("send_weights")
        if self.rank != 0:
            if self.rank > 0:
                raise RuntimeError(f"checkpoint engine {BACKEND!r}: rollout rank {self.rank} cannot send weights")
            async for _ in ensure_async_iterator(weights):  # each weight is gathered collectively across trainers
                pass
            return {}
        start = time.perf_counter()
        bucket = torch.empty(self.bucket_size, dtype=torch.uint8)
        index, offset, total, metas = 0, 0, 0, []
        async for meta, chunk in split_weight_chunks(weights, self.bucket_size):
            offset = -(-offset // _ALIGN) * _ALIGN
            if offset + meta.chunk_size > self.bucket_size:
                await self._send_bucket(index, bucket, metas, offset, is_last=False)
                total += offset
                index, offset, metas = index + 1, 0, []
            meta.offset = offset
            bucket[offset: offset + meta.chunk_size].copy_(chunk)
            metas.append(meta)
            offset += meta.chunk_size
        await self._send_bucket(index, bucket, metas, offset, is_last=True)
        total += offset
        seconds = time.perf_counter() - start
        logger.debug("checkpoint engine gloo: sent %d bytes in %d bucket(s), %.2f s", total, index + 1, seconds)
        return {"checkpoint_engine/gloo/bytes": float(total), "checkpoint_engine/gloo/buckets": float(index + 1),
                "checkpoint_engine/gloo/send_s": seconds}

    async def _send_bucket(self, index: int, bucket: torch.Tensor, metas: list[TensorMeta], length: int,
                           is_last: bool) -> None:
        self._store.set(_key(index), pickle.dumps({"metas": metas, "length": length, "is_last": is_last}))
        if length:
            await _in_thread(self._broadcast(bucket[:length]).wait)

    @torch.no_grad()
    async def receive_weights(self, global_steps: int | None = None) -> AsyncGenerator[tuple[str, torch.Tensor], None]:
        """The sender's weights as ``(name, tensor)``, each valid until the next one is asked for (verl's
        server adapter copies it into its own bucket at once)."""
        self._check_joined("receive_weights")
        if self.rank <= 0:
            raise RuntimeError(f"checkpoint engine {BACKEND!r}: rank {self.rank} does not receive weights")
        async for name, weight in merge_weight_chunks(self._receive_chunks(), self.bucket_size):
            yield name, weight

    async def _receive_chunks(self) -> AsyncGenerator[tuple[TensorMeta, torch.Tensor], None]:
        bucket = torch.empty(self.bucket_size, dtype=torch.uint8)
        index = 0
        while True:
            header = pickle.loads(await _in_thread(self._store.get, _key(index)))
            received = bucket[: header["length"]]
            if header["length"]:
                await _in_thread(self._broadcast(received).wait)
            for meta in header["metas"]:
                yield meta, received[meta.offset: meta.offset + meta.chunk_size]
            if header["is_last"]:
                return
            index += 1
