"""sspo_verl.known_warnings: verl's known, harmless warnings are dropped by exact message and module; any other
warning, also a look-alike from another module or another message from the same one, still reaches the user."""

from __future__ import annotations

import logging
import warnings

from sspo_verl import known_warnings

ENGINE_MODULE = "verl.workers.engine"  # where verl 0.9.1 warns (stacklevel=1 in its __init__)


def _shown(message: str, module: str) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        known_warnings.silence_engine_imports()
        warnings.warn_explicit(message, UserWarning, "engine/__init__.py", 32, module=module, registry={})
    return bool(caught)


def test_verls_engine_import_warnings_are_dropped_and_nothing_else():
    for engine in ("torchtitan", "veomni", "automodel", "mindspeed", "megatron"):
        assert not _shown(f"{engine} engine is not available: ModuleNotFoundError('x')", ENGINE_MODULE)
    assert _shown("megatron engine is not available: ModuleNotFoundError('x')", "my_project.engines")
    assert _shown("fsdp engine is not available: x", ENGINE_MODULE)
    assert _shown("a real warning", ENGINE_MODULE)


def test_verls_platform_probe_warnings_are_dropped_in_the_driver_and_nothing_else():
    platform_logger = logging.getLogger(known_warnings.PLATFORM_LOGGER)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    platform_logger.addHandler(handler)
    try:
        known_warnings.silence_driver_platform_probe()
        known_warnings.silence_driver_platform_probe()  # idempotent
        platform_logger.warning(known_warnings.PLATFORM_PROBE_MESSAGES[0], ("nvidia", "huawei", "amd"))
        platform_logger.warning(
            "Platform '%s' (%s) is registered but not available. This may be due to this ray actor being a "
            "CPU-only actor.", "nvidia", "PlatformCUDA",
        )
        platform_logger.warning("Replacing already-initialised platform '%s' with '%s'", "cuda", "cpu")
        platform_logger.warning("Unknown platform '%s'", "tpu")  # any other message still shows
        assert len(platform_logger.filters) == 1
    finally:
        platform_logger.removeHandler(handler)
        for f in list(platform_logger.filters):
            platform_logger.removeFilter(f)
    assert [r.getMessage() for r in records] == ["Unknown platform 'tpu'"]
