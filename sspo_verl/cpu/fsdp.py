"""verl's FSDP engine on CPU: engine registration for device ``cpu``, unpinned FSDP2 CPU offload, and FSDP2
weight snapshots that copy.

1. verl registers its FSDP / FSDP2 engines for devices ``cuda`` and ``npu`` only
   (``EngineRegistry.get_engine_cls`` → "No engine registered for device='cpu'"). :func:`register_engines`
   registers the same classes, unchanged, for ``cpu`` through verl's public ``EngineRegistry.register``.
   They run on CPU as they are: the device comes from the platform, the collectives from gloo.
2. verl's FSDP2 engine builds ``CPUOffloadPolicy(pin_memory=True)`` for forward-only models (the reference
   policy). Pinning needs an accelerator ("Cannot access accelerator device when none is available").
   :data:`UNPINNED_OFFLOAD` (a :mod:`sspo_verl.patching` patch) rebinds the name ``CPUOffloadPolicy`` inside
   verl's engine module to a subclass that always sets ``pin_memory=False``; torch's class and every other
   user of it are untouched.
3. verl's ``separate_async`` trainer keeps π_old (the weights of the last push) for a whole push cycle with
   ``DetachActorWorker.save_model_to_cpu`` → ``verl.utils.fsdp_utils.fsdp2_sharded_save_to_cpu``, which copies
   each shard with ``tensor.detach().cpu()``. On a GPU that is a copy; on CPU ``.cpu()`` returns the tensor
   itself, so the "snapshot" is the live parameters, the optimizer moves it, and every mini-batch after the first
   computes ``old_log_probs`` with the current weights instead of π_old (measured: a restored snapshot equals
   the weights after the update). :data:`COPYING_SNAPSHOT` clones what it returns.

All are applied only by :func:`sspo_verl.cpu.activate`, after the CPU platform is registered (importing the
engine module resolves verl's platform).
"""

from __future__ import annotations

import functools
import logging

from sspo_verl.cpu import verl_internals
from sspo_verl.patching import Patch

__all__ = ["COPYING_SNAPSHOT", "UNPINNED_OFFLOAD", "copying_snapshot", "register_engines", "unpinned_offload_policy"]

logger = logging.getLogger("sspo_verl.cpu")

_ENGINES = {"language_model": "FSDPEngineWithLMHead", "value_model": "FSDPEngineWithValueHead"}
_BACKENDS = ("fsdp", "fsdp2")


def unpinned_offload_policy(cpu_offload_policy: type) -> type:
    """A subclass of torch's ``CPUOffloadPolicy`` that never pins memory (pinning needs an accelerator)."""

    class UnpinnedCPUOffloadPolicy(cpu_offload_policy):
        """``CPUOffloadPolicy`` that never pins memory (pinning needs an accelerator)."""

        def __init__(self, pin_memory: bool = True):
            super().__init__(pin_memory=False)

    return UnpinnedCPUOffloadPolicy


UNPINNED_OFFLOAD = Patch(
    module="verl.workers.engine.fsdp.transformer_impl",
    name="CPUOffloadPolicy",
    params=("pin_memory",),
    wrap=unpinned_offload_policy,
    why="FSDP2 reference-model CPU offload without pinned memory (pinning needs an accelerator)",
)


def copying_snapshot(sharded_save_to_cpu):
    """``fsdp2_sharded_save_to_cpu`` whose shards are copies, also where ``.cpu()`` returns the tensor itself."""

    @functools.wraps(sharded_save_to_cpu)
    def fsdp2_sharded_save_to_cpu(model):
        state, global_spec = sharded_save_to_cpu(model)
        return {name: (shard.clone(), spec) for name, (shard, spec) in state.items()}, global_spec

    return fsdp2_sharded_save_to_cpu


COPYING_SNAPSHOT = Patch(
    module="verl.utils.fsdp_utils",
    name="fsdp2_sharded_save_to_cpu",
    params=("model",),
    wrap=copying_snapshot,
    why="separate_async's π_old snapshot is a copy on CPU, not the live parameters",
)


def register_engines() -> list[tuple[str, str]]:
    """Register verl's FSDP engines for device ``cpu`` (idempotent); return the (model_type, backend) added."""
    # (verl's warnings about uninstalled optional engines are silenced by the plugin: sspo_verl.known_warnings)
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp import transformer_impl

    engines = verl_internals.resolve("verl.workers.engine.base.EngineRegistry._engines")
    added = []
    for model_type, class_name in _ENGINES.items():
        engine_cls = getattr(transformer_impl, class_name)
        missing = [b for b in _BACKENDS if "cpu" not in engines.get(model_type, {}).get(b, {})]
        if missing:
            EngineRegistry.register(model_type=model_type, backend=missing, device="cpu")(engine_cls)
            added += [(model_type, b) for b in missing]
    if added:
        logger.debug("sspo_verl.cpu: verl's FSDP engines registered for device 'cpu': %s", added)
    return added
