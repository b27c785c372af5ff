"""verl's own vLLM rollout classes, specialised for vLLM's CPU platform through verl's subclass hooks.

Everything that runs is verl 0.9.1's vLLM rollout — ``vLLMHttpServer`` (the async engine behind an HTTP server, in
its own Ray actor), ``vLLMReplica`` (one server per replica), ``ServerAdapter`` (in each trainer worker: weight
sync over ZMQ + shared memory, since the CPU platform reports no IPC), verl's agent loop calling ``generate`` —
with three small specialisations:

* :class:`CPUvLLMHttpServer` overrides verl's ``_get_worker_extension_cls`` hook: vLLM's workers load
  :class:`sspo_verl.cpu.vllm_worker.CPUWorkerExtension`, whose weight sync works with the CPU platform's packed
  weights.
  It also points vLLM's engine and worker processes at vLLM's default logging configuration plus the CPU backend's
  known-warning filters (``VLLM_LOGGING_CONFIG_PATH``: :func:`sspo_verl.known_warnings.vllm_logging_config_path`):
  vLLM spawns them and they do not import verl first, so :func:`sspo_verl.cpu.activate` has not run there when
  vLLM warns.
* :class:`CPUvLLMReplica` sets verl's ``server_class`` to that server.
* :class:`CPUServerAdapter` registers the engine's receive RPC with :mod:`sspo_verl.cpu.vllm_weight_sync`, so a
  sync whose engine fails raises the engine's error at once instead of blocking.

:func:`sspo_verl.cpu.vllm_rollout.register` points verl's registries at them on CPU runs only. This module
imports vllm (through verl's modules): it is loaded lazily by those registries, never by ``activate()``; importing it
installs the ``vllm`` distribution alias (:mod:`sspo_verl.cpu.vllm_distribution`) that verl's modules need.
"""

from __future__ import annotations

import os

from sspo_verl.cpu import vllm_distribution

vllm_distribution.install()  # verl's vllm_rollout package refuses to import without a 'vllm' distribution

import ray  # noqa: E402
from verl.workers.rollout.vllm_rollout.vllm_async_server import vLLMHttpServer, vLLMReplica  # noqa: E402
from verl.workers.rollout.vllm_rollout.vllm_rollout import ServerAdapter  # noqa: E402

from sspo_verl.cpu import vllm_weight_sync  # noqa: E402
from sspo_verl.cpu.vllm_worker import WORKER_EXTENSION  # noqa: E402
from sspo_verl.known_warnings import vllm_logging_config_path  # noqa: E402

__all__ = ["CPUServerAdapter", "CPUvLLMHttpServer", "CPUvLLMReplica"]


class CPUvLLMHttpServer(vLLMHttpServer):
    """verl's vLLM server actor; its engine's workers use the CPU worker extension, its engine processes the CPU
    backend's known-warning filters."""

    def __init__(self, *args, **kwargs):
        path = vllm_logging_config_path()
        if path is not None:
            os.environ["VLLM_LOGGING_CONFIG_PATH"] = path  # read by vLLM in the processes this actor spawns
        super().__init__(*args, **kwargs)

    def _get_worker_extension_cls(self) -> str:
        return WORKER_EXTENSION


class CPUvLLMReplica(vLLMReplica):
    """verl's vLLM replica whose server actor is :class:`CPUvLLMHttpServer`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.server_class = ray.remote(CPUvLLMHttpServer)


class CPUServerAdapter(ServerAdapter):
    """verl's vLLM ``ServerAdapter`` whose weight sync watches the engine's receive (fails fast, never hangs)."""

    def __init__(self, *args, **kwargs):
        vllm_weight_sync.SENDER_PATCH.install()
        super().__init__(*args, **kwargs)

    async def update_weights(self, weights, global_steps: int = None, wire_format: str = "named_tensors", **kwargs):
        with vllm_weight_sync.sync_scope():
            return await super().update_weights(weights, global_steps=global_steps, wire_format=wire_format, **kwargs)

    async def _execute_method(self, method: str, non_block: bool = False, timeout=None, args=(), kwargs=None):
        result = await super()._execute_method(method, non_block=non_block, timeout=timeout, args=args, kwargs=kwargs)
        if method == "update_weights_from_ipc" and non_block and result is not None:
            vllm_weight_sync.watch(result.future())
        return result
