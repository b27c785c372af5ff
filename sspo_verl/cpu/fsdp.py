"""verl's FSDP engine on CPU: engine registration for device ``cpu`` and unpinned FSDP2 CPU offload.

1. verl registers its FSDP / FSDP2 engines for devices ``cuda`` and ``npu`` only
   (``EngineRegistry.get_engine_cls`` → "No engine registered for device='cpu'"). :func:`register_engines`
   registers the same classes, unchanged, for ``cpu`` through verl's public ``EngineRegistry.register``.
   They run on CPU as they are: the device comes from the platform, the collectives from gloo.
2. verl's FSDP2 engine builds ``CPUOffloadPolicy(pin_memory=True)`` for forward-only models (the reference
   policy). Pinning needs an accelerator ("Cannot access accelerator device when none is available").
   :func:`install_unpinned_offload` rebinds the name ``CPUOffloadPolicy`` inside verl's engine module to a
   subclass that always sets ``pin_memory=False``; torch's class and every other user of it are untouched.

Both run only from :func:`sspo_verl.cpu.activate`, after the CPU platform is registered (importing the
engine module resolves verl's platform).
"""

from __future__ import annotations

import logging
import warnings

from sspo_verl.cpu import verl_internals

__all__ = ["UnpinnedCPUOffloadPolicy", "install_unpinned_offload", "register_engines"]

logger = logging.getLogger("sspo_verl.cpu")

_ENGINES = {"language_model": "FSDPEngineWithLMHead", "value_model": "FSDPEngineWithValueHead"}
_BACKENDS = ("fsdp", "fsdp2")


def _offload_policy_class():
    from torch.distributed.fsdp import CPUOffloadPolicy

    class UnpinnedCPUOffloadPolicy(CPUOffloadPolicy):
        """``CPUOffloadPolicy`` that never pins memory (pinning needs an accelerator)."""

        __sspo_verl_unpinned__ = True

        def __init__(self, pin_memory: bool = True):
            super().__init__(pin_memory=False)

    return UnpinnedCPUOffloadPolicy


UnpinnedCPUOffloadPolicy = _offload_policy_class()


def register_engines() -> list[tuple[str, str]]:
    """Register verl's FSDP engines for device ``cpu`` (idempotent); return the (model_type, backend) added."""
    with warnings.catch_warnings():
        # verl.workers.engine's __init__ warns once per uninstalled optional engine (torchtitan, veomni, automodel,
        # megatron, mindspeed): noise on a CPU install, and this import would repeat it in every Ray process.
        warnings.filterwarnings("ignore", message=r".* engine is not available", category=UserWarning)
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


def install_unpinned_offload() -> bool:
    """Point verl's FSDP engine module at :class:`UnpinnedCPUOffloadPolicy` (idempotent)."""
    module = verl_internals.resolve_module("verl.workers.engine.fsdp.transformer_impl.CPUOffloadPolicy")
    current = verl_internals.resolve("verl.workers.engine.fsdp.transformer_impl.CPUOffloadPolicy")
    if getattr(current, "__sspo_verl_unpinned__", False):
        return False
    module.CPUOffloadPolicy = UnpinnedCPUOffloadPolicy
    logger.debug("sspo_verl.cpu: verl's FSDP2 CPUOffloadPolicy no longer pins memory")
    return True
