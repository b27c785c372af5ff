"""The third-party warnings sspo-verl knows to be harmless, silenced by their exact message and module, nothing else.

Two sets, each installed where it is known to be harmless:

* :func:`silence_engine_imports`, in every process that imports verl (the ``verl.plugins`` entry point,
  :mod:`sspo_verl.adapter.plugin`): verl 0.9.1's ``verl/workers/engine/__init__.py`` warns once per optional
  training engine whose package is missing (torchtitan, veomni, automodel, mindspeed, megatron). sspo-verl trains
  with verl's FSDP engines; selecting a missing engine still fails in verl with its own error.
* :func:`silence_driver_platform_probe`, in ``sspo-train``'s driver only: composing the config imports verl
  (``pkg://verl.trainer.config``) and the plugin's trainer patches, so verl resolves its platform before the config
  says which device the run uses; on a machine without a GPU it warns "No supported accelerator detected ...
  Falling back to 'nvidia'" and "Platform 'nvidia' (PlatformCUDA) is registered but not available", and a CPU run
  then replaces that platform ("Replacing already-initialised platform"). The driver runs no engine; the device is
  checked by pre-flight (GPU count, CUDA) and every Ray worker resolves its own platform.

Any other warning from these modules, and every warning from elsewhere, still reaches the user.
"""

from __future__ import annotations

import logging
import warnings

__all__ = [
    "ENGINE_IMPORT_MESSAGE",
    "PLATFORM_LOGGER",
    "PLATFORM_PROBE_MESSAGES",
    "silence_driver_platform_probe",
    "silence_engine_imports",
]

# verl/workers/engine/__init__.py: warnings.warn(f"{name} engine is not available: {e!r}", stacklevel=1)
ENGINE_IMPORT_MESSAGE = r"(torchtitan|veomni|automodel|mindspeed|megatron) engine is not available: "
ENGINE_IMPORT_MODULE = r"verl\.workers\.engine\Z"

# verl/plugin/platform/platform_manager.py: the logger and the format strings of its three warnings
PLATFORM_LOGGER = "verl.plugin.platform.platform_manager"
PLATFORM_PROBE_MESSAGES = (
    "No supported accelerator detected. Registered: %s. Falling back to 'nvidia'.",
    "Platform '%s' (%s) is registered but not available. ",
    "Replacing already-initialised platform '%s' with '%s'",
)


def silence_engine_imports() -> None:
    """Ignore verl's "<engine> engine is not available" import warnings (idempotent: one filter entry)."""
    warnings.filterwarnings("ignore", message=ENGINE_IMPORT_MESSAGE, category=UserWarning, module=ENGINE_IMPORT_MODULE)


class _PlatformProbeFilter(logging.Filter):
    """Drops the platform manager's records whose format string is one of :data:`PLATFORM_PROBE_MESSAGES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(PLATFORM_PROBE_MESSAGES))


_PLATFORM_FILTER = _PlatformProbeFilter()


def silence_driver_platform_probe() -> None:
    """Drop verl's platform-probe warnings in this process (idempotent); for ``sspo-train``'s driver only."""
    platform_logger = logging.getLogger(PLATFORM_LOGGER)
    if _PLATFORM_FILTER not in platform_logger.filters:
        platform_logger.addFilter(_PLATFORM_FILTER)

