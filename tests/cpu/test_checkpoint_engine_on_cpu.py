"""The ``gloo`` checkpoint engine through a real gloo group of 4 processes, driven the way verl's
``CheckpointEngineManager`` drives it: 2 trainer ranks (rank 0 sends, rank 1 only walks its weights) and 2 rollout
workers, two weight pushes (verl rebuilds the group for each), buckets small enough that weights are split."""

from __future__ import annotations

import asyncio
import multiprocessing as mp

import pytest
import torch

from sspo_verl.cpu import checkpoint_engine
from sspo_verl.cpu.checkpoint_engine import BACKEND, GlooCheckpointEngine, Rendezvous

BUCKET = 1024  # bytes: the 40x40 float32 weight (6,400 B) spans 7 buckets, the small ones share one
TRAINERS, ROLLOUTS, PUSHES = 2, 2, 2
TIMEOUT_S = 120


def _weights(push: int) -> dict[str, torch.Tensor]:
    """Different weights for every push; odd sizes and mixed dtypes so bucket offsets need alignment."""
    g = torch.Generator().manual_seed(push)
    return {
        "embed.weight": torch.randn(40, 40, generator=g),
        "norm.weight": torch.randn(7, generator=g).to(torch.bfloat16),
        "layer.bias": torch.randn(3, generator=g, dtype=torch.float64),
        "steps": torch.tensor([push, 5, 7], dtype=torch.int64),
        "head.weight": torch.randn(5, 13, generator=g),
    }


async def _collect(engine) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() async for name, tensor in engine.receive_weights()}


def _worker(role: str, index: int, conn) -> None:
    try:
        engine = GlooCheckpointEngine(BUCKET, is_master=(role == "actor" and index == 0), timeout_s=TIMEOUT_S)
        for push in range(PUSHES):
            conn.send(engine.prepare())
            engine.init_process_group(**conn.recv())
            if role == "actor":
                # a trainer rank walks its own generator (its weights may be gathered collectively)
                walked = []

                def weights():
                    for item in _weights(push).items():
                        walked.append(item[0])
                        yield item

                metrics = asyncio.run(engine.send_weights(weights(), global_steps=push))
                conn.send(("sent", engine.rank, metrics, walked))
            else:
                conn.send(("received", engine.rank, asyncio.run(_collect(engine)), None))
            engine.finalize()
    except BaseException as exc:  # noqa: BLE001 — reported to the test, which fails with it
        conn.send(("error", repr(exc), None, None))
        raise


def _call(conns, what):
    """Receive one message from every worker (a stuck group fails the test instead of hanging it)."""
    out = []
    for conn in conns:
        assert conn.poll(TIMEOUT_S), f"a worker sent nothing within {TIMEOUT_S} s ({what})"
        out.append(conn.recv())
    errors = [m for m in out if isinstance(m, tuple) and m[0] == "error"]
    assert not errors, errors
    return out


def test_weights_reach_every_rollout_worker_bit_for_bit_across_rebuilt_groups():
    ctx = mp.get_context("fork")
    roles = [("actor", i) for i in range(TRAINERS)] + [("rollout", i) for i in range(ROLLOUTS)]
    pipes = [ctx.Pipe() for _ in roles]
    procs = [ctx.Process(target=_worker, args=(role, i, child), daemon=True)
             for (role, i), (_, child) in zip(roles, pipes)]
    conns = [parent for parent, _ in pipes]
    for p in procs:
        p.start()
    try:
        for push in range(PUSHES):
            # verl's CheckpointEngineManager.build_process_group: prepare everywhere (trainers first), topology,
            # init everywhere
            metadata = _call(conns, "prepare")
            assert isinstance(metadata[0], Rendezvous) and metadata[1:] == [None] * (len(roles) - 1)
            actor_kwargs, rollout_kwargs = GlooCheckpointEngine.build_topology(TRAINERS, ROLLOUTS, metadata)
            assert actor_kwargs["rank"] == [0, -1] and rollout_kwargs["rank"] == [1, 2]
            for i, conn in enumerate(conns):
                kwargs = actor_kwargs if i < TRAINERS else rollout_kwargs
                j = i if i < TRAINERS else i - TRAINERS
                conn.send({k: v[j] for k, v in kwargs.items()})
            results = _call(conns, "transfer")
            expected = _weights(push)
            sent, walking = results[0], results[1]
            assert sent[1] == 0 and sent[2]["checkpoint_engine/gloo/bytes"] >= sum(
                t.nbytes for t in expected.values())
            assert sent[2]["checkpoint_engine/gloo/buckets"] > 2  # the big weight was split
            assert walking[1] == -1 and walking[2] == {} and walking[3] == list(expected)
            for kind, rank, received, _ in results[TRAINERS:]:
                assert kind == "received" and rank >= 1
                assert list(received) == list(expected)
                for name, tensor in expected.items():
                    got = received[name]
                    assert got.dtype == tensor.dtype and got.shape == tensor.shape, name
                    assert torch.equal(got, tensor), name
        for p in procs:
            p.join(TIMEOUT_S)
            assert p.exitcode == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()


def test_verl_finds_the_engine_by_name_through_custom_backend_module():
    from verl.checkpoint_engine.base import CheckpointEngineRegistry
    from verl.utils.import_utils import import_external_libs

    import_external_libs("sspo_verl.cpu.checkpoint_engine")  # what verl's workers and manager do with the key
    assert CheckpointEngineRegistry.get(BACKEND) is GlooCheckpointEngine
    engine = CheckpointEngineRegistry.new(BACKEND, bucket_size=1 << 20, is_master=False)
    assert engine.prepare() is None  # only trainer rank 0 hosts the store


def test_bad_use_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="update_weights_bucket_megabytes"):
        GlooCheckpointEngine(0)
    with pytest.raises(RuntimeError, match="is_master=True"):
        GlooCheckpointEngine.build_topology(1, 1, [None, None])
    engine = GlooCheckpointEngine(1024)
    with pytest.raises(RuntimeError, match="before init_process_group"):
        asyncio.run(engine.send_weights(iter([])))
    assert checkpoint_engine.BACKEND == "gloo"
