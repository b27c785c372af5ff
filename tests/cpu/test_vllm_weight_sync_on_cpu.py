"""The trainer side of the vLLM weight sync on CPU: verl's real bucketed sender and receiver, over real ZMQ and shared
memory, with the receiver failing in each way an engine can.

The receiver runs in a thread as vLLM's worker runs it (verl's ``BucketedWeightReceiver``); the engine's RPC is
the ``concurrent.futures.Future`` that ``ObjectRef.future()`` gives the adapter. Without the watch, the sender of
each failing case blocks forever in ``recv()`` (a real trainer run with a rollout model that cannot load the
weights waited until it was killed, while the engine had failed in its first sync: the e2e test
``test_an_engine_error_in_the_first_weight_sync_fails_the_run_at_once`` shows the fixed behaviour end to end).
Each case runs in a fresh CPU-backend interpreter (``VERL_PLATFORM=cpu``, as in a trainer worker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("vllm", reason="needs the CPU build of vLLM (pip install -e '.[cpu-vllm]')")

_PROBE = textwrap.dedent(
    """
    import asyncio, glob, json, sys, threading, time, uuid
    from concurrent.futures import Future
    import torch, zmq
    import verl  # the CPU backend activates here (VERL_PLATFORM=cpu)
    from sspo_verl.cpu import vllm_weight_sync as ws
    ws.SENDER_PATCH.install()
    from verl.workers.rollout.vllm_rollout import bucketed_weight_transfer as bwt
    from verl.workers.rollout.vllm_rollout import vllm_rollout  # binds the sender as verl's ServerAdapter does

    case = sys.argv[1]
    handle = f"ipc:///tmp/sspo-test-sync-{uuid.uuid4().hex}.sock"
    weights = [(f"w{i}", torch.full((256, 1024), float(i))) for i in range(6)]  # 1 MiB each, 2 MiB buckets
    rpc, got = Future(), {}

    def verl_receiver(fail_after=None):
        load_errors = []
        def on_bucket(tensors, is_last):
            if fail_after is not None and len(got) >= fail_after:
                load_errors.append(RuntimeError("start (0) + length (256) exceeds dimension size (128)"))
                raise load_errors[-1]
            got.update((name, t.clone()) for name, t in tensors)
        try:
            bwt.BucketedWeightReceiver(handle, torch.device("cpu"), use_shm=True).receive_weights(on_bucket)
            rpc.set_result(len(got))
        except BaseException as e:
            # what CPUWorkerExtension reports: the load error, not verl's cleanup error that follows it
            rpc.set_exception(load_errors[0] if load_errors else e)

    def dying_receiver():
        # takes the buffer and one bucket, then never answers again (the vLLM worker process died); the engine
        # reports that through the RPC a moment later
        sock = zmq.Context.instance().socket(zmq.REP)
        sock.connect(handle)
        sock.recv_pyobj(); sock.send(b"")
        sock.recv_pyobj()
        time.sleep(0.5)
        rpc.set_exception(RuntimeError("EngineCore encountered an issue. See stack trace for the root cause."))

    target = {"ok": verl_receiver, "load_error": lambda: verl_receiver(fail_after=2), "dies": dying_receiver}[case]
    threading.Thread(target=target, daemon=True).start()

    async def send():
        with ws.sync_scope():
            ws.watch(rpc)
            sender = vllm_rollout.BucketedWeightSender(zmq_handle=handle, bucket_size_mb=2, use_shm=True)
            await sender.async_send_weights(iter(weights))

    start, out = time.monotonic(), {"sender": vllm_rollout.BucketedWeightSender.__name__}
    try:
        asyncio.run(send())
        out["result"] = rpc.result(timeout=10)
        out["values"] = [float(got[f"w{i}"][0, 0]) for i in range(6)]
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
    out["seconds"] = time.monotonic() - start
    out["segments_left"] = [p for p in glob.glob("/dev/shm/verl_weights_*")]
    print("STATE " + json.dumps(out))
    """
)


def _probe(case: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "VERL_USE_EXTERNAL_MODULES"}
    env["VERL_PLATFORM"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", _PROBE, case], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("STATE "))
    return json.loads(line[len("STATE ") :])


def test_a_healthy_sync_delivers_every_tensor_through_the_watched_sender():
    out = _probe("ok")
    assert out["sender"] == "WatchedWeightSender"  # what verl's ServerAdapter constructs after the patch
    assert out.get("error") is None and out["result"] == 6
    assert out["values"] == [float(i) for i in range(6)]


@pytest.mark.parametrize(
    "case, engine_error",
    [
        ("load_error", "RuntimeError: start (0) + length (256) exceeds dimension size (128)"),
        ("dies", "EngineCore encountered an issue"),
    ],
)
def test_an_engine_that_fails_mid_sync_fails_the_sync_at_once_with_its_error(case, engine_error):
    out = _probe(case)
    assert out["error"].startswith("WeightSyncError: vLLM weight sync: the rollout engine failed while the trainer")
    assert engine_error in out["error"]
    assert out["seconds"] < 5.0  # verl's own sender waits forever here
    assert not [p for p in out["segments_left"] if os.path.exists(p)]  # the bucket is unlinked on failure too
