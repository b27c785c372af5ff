"""The trainer's side of the vLLM weight sync on CPU: verl's bucketed sender, failing fast when the engine fails.

verl's ``ServerAdapter.update_weights`` (verl/workers/rollout/vllm_rollout/vllm_rollout.py) starts the engine's
receive as a non-blocking RPC (``update_weights_from_ipc``), then pushes the weights through
``BucketedWeightSender``, whose every bucket waits on a blocking ZMQ ``recv()`` for the receiver's ack, and only
then awaits the RPC. When the receiver fails — an exception while loading, or the vLLM worker / EngineCore
process dying — no ack ever comes: the trainer blocks forever (one rank) or until another rank's collective
times out (600 s), and the engine's own error is never read.

:class:`WatchedWeightSender` is verl's sender whose socket waits in short polls and, between polls, looks at the
engine's RPC: once that has failed, the sync raises :class:`WeightSyncError` with the engine's error at once.
:class:`sspo_verl.cpu.vllm_server.CPUServerAdapter` hands it the RPC through :func:`watch` (a context
variable inside :func:`sync_scope`, so only the sync that started the RPC watches it); without one, the sender behaves exactly as verl's.

verl constructs the sender by its module-level name, so :data:`SENDER_PATCH` (the one patch helper,
:mod:`sspo_verl.patching`) rebinds ``BucketedWeightSender`` to the subclass. It is installed by the CPU adapter
when verl builds it, i.e. only in the trainer workers of a CPU run with ``rollout=vllm``.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from concurrent.futures import Future
from typing import Any, Optional

import zmq

from sspo_verl.cpu import vllm_distribution
from sspo_verl.patching import Patch

# The patch target lives in verl's vllm_rollout package, which refuses to import without a 'vllm' distribution.
vllm_distribution.install()

__all__ = ["POLL_MS", "SENDER_PATCH", "WatchedSocket", "WeightSyncError", "sync_scope", "watch"]

# How long one poll of the sender's socket waits before it looks at the engine's RPC again.
POLL_MS = 100
# After the engine's RPC returned without error, how long an ack may still take to arrive (it is sent first).
_LATE_ACK_S = 5.0

_RECEIVER_RPC: contextvars.ContextVar[Optional[Future]] = contextvars.ContextVar("sspo_vllm_receiver_rpc",
                                                                                  default=None)


class WeightSyncError(RuntimeError):
    """The rollout engine failed (or stopped answering) during a weight sync; the message carries its error."""


@contextlib.contextmanager
def sync_scope():
    """One weight sync: what :func:`watch` registers inside it is forgotten when it ends."""
    token = _RECEIVER_RPC.set(None)
    try:
        yield
    finally:
        _RECEIVER_RPC.reset(token)


def watch(rpc: Future) -> None:
    """Make the senders created from now on in this sync watch ``rpc``, the engine's ``update_weights_from_ipc``."""
    _RECEIVER_RPC.set(rpc)


class WatchedSocket:
    """A ZMQ socket whose blocking ``send*`` / ``recv*`` give up as soon as ``rpc`` has failed.

    Every other attribute is the socket's own. ``rpc`` is a ``concurrent.futures.Future`` (``ObjectRef.future()``):
    Ray completes it from its own threads, so it is seen while the caller's event loop is blocked here.
    """

    def __init__(self, socket: zmq.Socket, rpc: Future, poll_ms: int = POLL_MS):
        self._socket = socket
        self._rpc = rpc
        self._poll_ms = poll_ms

    def __getattr__(self, name: str) -> Any:
        return getattr(self._socket, name)

    def _wait(self, event: int, what: str) -> None:
        done_at = None
        while not self._socket.poll(self._poll_ms, event):
            if not self._rpc.done():
                continue
            error = self._rpc.exception()
            if error is not None:
                raise WeightSyncError(
                    f"vLLM weight sync: the rollout engine failed while the trainer was {what}; its error: "
                    f"{type(error).__name__}: {error}"
                ) from error
            done_at = done_at or time.monotonic()
            if time.monotonic() - done_at > _LATE_ACK_S:
                raise WeightSyncError(
                    f"vLLM weight sync: the rollout engine's receive returned while the trainer was still {what}; "
                    "sender and receiver disagree on the transfer (verl's bucketed protocol changed?)."
                )

    def send_pyobj(self, obj, *args, **kwargs):
        self._wait(zmq.POLLOUT, "sending a bucket")
        return self._socket.send_pyobj(obj, *args, **kwargs)

    def send(self, data, *args, **kwargs):
        self._wait(zmq.POLLOUT, "sending a bucket")
        return self._socket.send(data, *args, **kwargs)

    def recv(self, *args, **kwargs):
        self._wait(zmq.POLLIN, "waiting for the engine to take a bucket")
        return self._socket.recv(*args, **kwargs)

    def recv_pyobj(self, *args, **kwargs):
        self._wait(zmq.POLLIN, "waiting for the engine to take a bucket")
        return self._socket.recv_pyobj(*args, **kwargs)


def _wrap_sender(original: type) -> type:
    class WatchedWeightSender(original):
        """verl's ``BucketedWeightSender`` whose socket watches the engine's receive RPC (see the module)."""

        def _init_socket(self):
            super()._init_socket()
            rpc = _RECEIVER_RPC.get()
            if rpc is not None:
                self.socket = WatchedSocket(self.socket, rpc)

    WatchedWeightSender.__module__ = __name__
    WatchedWeightSender.__qualname__ = "WatchedWeightSender"
    return WatchedWeightSender


SENDER_PATCH = Patch(
    module="verl.workers.rollout.vllm_rollout.bucketed_weight_transfer",
    name="BucketedWeightSender",
    params=("zmq_handle", "bucket_size_mb", "use_shm"),
    wrap=_wrap_sender,
    importers=("verl.workers.rollout.vllm_rollout.vllm_rollout",),
    why="vLLM-CPU weight sync fails fast with the engine's error instead of blocking on a dead receiver",
)
