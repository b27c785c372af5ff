"""verl platform ``cpu``: device ``cpu``, collective backend ``gloo``, one fake Ray ``GPU`` per rank.

verl 0.9.1 ships platforms for nvidia / huawei (npu) / amd only and falls back to ``nvidia`` (torch.cuda,
NCCL) when none is detected. :class:`CPUPlatform` is registered under the name ``cpu`` by
:func:`sspo_verl.cpu.activate` and selected by ``VERL_PLATFORM=cpu`` (verl's own override variable).

Two choices matter:

* ``current_device()`` returns ``torch.device("cpu")``, not an index: verl does ``tensor.to(get_device_id())``
  and an int would mean "accelerator #0".
* Ray placement: verl's resource pools ask for the platform's Ray resource per rank. The CPU platform keeps
  the resource name ``GPU`` and the launcher starts Ray with ``num_gpus=<ranks>`` (a logical count, no GPU
  is touched): verl's scheduling code stays unchanged.

``device_module`` stands in for ``torch.cuda``. It provides exactly the attributes verl calls on
``get_torch_device()`` (``tests/cpu/test_verl_internals_on_cpu.py`` checks verl's source for new ones).
Memory queries report the process's resident set size, so verl's ``perf/max_memory_allocated_gb`` is the
worker's peak RSS on CPU.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import types
from typing import Any, Optional

import psutil
import torch
from verl.plugin.platform import PlatformBase

__all__ = ["PLATFORM_NAME", "CPUDeviceModule", "CPUPlatform"]

PLATFORM_NAME = "cpu"


def _rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def _peak_rss_bytes() -> int:
    # ru_maxrss: KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _noop(*args, **kwargs) -> None:
    return None


class CPUDeviceModule(types.ModuleType):
    """The ``torch.cuda`` stand-in verl gets from ``get_torch_device()`` on the CPU platform.

    Streams, events, ``synchronize``, ``is_available`` and ``device_count`` come from ``torch.cpu``; cache and
    allocator controls are no-ops; memory figures are the process RSS (current and peak). Any other attribute
    raises ``AttributeError`` naming it, so ``hasattr`` checks in verl keep their meaning.
    """

    _FROM_TORCH_CPU = (
        "synchronize",
        "current_stream",
        "stream",
        "Stream",
        "Event",
        "is_available",
        "device_count",
        "set_device",
        "current_device",
        "StreamContext",
    )
    _NOOPS = (
        "empty_cache",
        "ipc_collect",
        "reset_peak_memory_stats",
        "reset_max_memory_allocated",
        "reset_max_memory_cached",
        "reset_accumulated_memory_stats",
        "set_per_process_memory_fraction",
        "init",
    )

    def __init__(self) -> None:
        super().__init__("sspo_verl_cpu_device")

    def __getattr__(self, name: str):
        if name in CPUDeviceModule._FROM_TORCH_CPU and hasattr(torch.cpu, name):
            return getattr(torch.cpu, name)
        if name in CPUDeviceModule._NOOPS:
            return _noop
        table = {
            "memory_allocated": lambda *a, **k: _rss_bytes(),
            "memory_reserved": lambda *a, **k: _rss_bytes(),
            "max_memory_allocated": lambda *a, **k: _peak_rss_bytes(),
            "max_memory_reserved": lambda *a, **k: _peak_rss_bytes(),
            "mem_get_info": lambda *a, **k: (psutil.virtual_memory().available, psutil.virtual_memory().total),
            "memory_stats": lambda *a, **k: {},
            "manual_seed": lambda seed: torch.manual_seed(seed),
            "manual_seed_all": lambda seed: torch.manual_seed(seed),
            "get_rng_state": lambda *a, **k: torch.get_rng_state(),
            "set_rng_state": lambda state, *a, **k: torch.set_rng_state(state),
            "get_device_name": lambda *a, **k: "cpu",
            "get_device_properties": lambda *a, **k: types.SimpleNamespace(
                name="cpu", total_memory=psutil.virtual_memory().total
            ),
            "is_initialized": lambda: True,
        }
        if name in table:
            return table[name]
        raise AttributeError(
            f"sspo_verl.cpu: verl asked the CPU device module (its torch.cuda stand-in) for {name!r}, which it does "
            "not provide. Add it to sspo_verl/cpu/platform.py::CPUDeviceModule."
        )


_DEVICE_MODULE = CPUDeviceModule()


class CPUPlatform(PlatformBase):
    """verl ``PlatformBase`` for CPU-only training (registered as ``cpu``)."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return _DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Never auto-detected: the CPU platform is chosen explicitly with VERL_PLATFORM=cpu.
        return False

    def current_device(self) -> torch.device:  # type: ignore[override]
        return torch.device("cpu")

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray sets CUDA_VISIBLE_DEVICES for actors holding a (fake) GPU; nothing reads it on CPU.
        return "CUDA_VISIBLE_DEVICES"

    @contextlib.contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def is_ipc_supported(self) -> bool:
        # verl's vLLM weight sync then goes through POSIX shared memory instead of CUDA IPC
        return False

    def rollout_env_vars(self) -> dict[str, str]:
        # verl passes these to every rollout server actor it starts (vLLMReplica.launch_servers)
        from sspo_verl.cpu.vllm_rollout import ENGINE_ENV_VARS

        return dict(ENGINE_ENV_VARS)

    def cudart(self) -> Any:
        return None
