"""Third-party warnings sspo-verl knows to be harmless, silenced by exact message and module or logger, nothing else.

Three sets, each installed where it is known to be harmless. A ``warnings`` entry is matched by category, message
and the warning's module; a logging entry by the record's logger name and its whole rendered message (a regular
expression that must match all of it). Loggers keep their level and handlers: any other warning from these modules
and loggers, and every warning from elsewhere, still reaches the user.

:func:`silence_everywhere`, in every process that imports verl (the ``verl.plugins`` entry point,
:mod:`sspo_verl.adapter.plugin`), GPU runs included:

* "<engine> engine is not available" (``verl.workers.engine``): verl 0.9.1 warns once per optional training engine
  whose package is missing (torchtitan, veomni, automodel, mindspeed, megatron). sspo-verl trains with verl's FSDP
  engines; selecting a missing engine still fails in verl with its own error.
* "Disabled critic as algorithm.adv_estimator != gae ..." (verl's modules): verl's ``need_critic`` warns whenever
  ``critic.enable`` is unset and the estimator is not GAE, i.e. on every run of a critic-free algorithm (GRPO,
  GSPO, SSPO), three times. Setting ``critic.enable`` explicitly never warned.
* "Function 'verl.utils.import_utils.load_extern_type' is deprecated ..." (FutureWarning, verl's modules): verl's
  trainer calls its own deprecated helper. The same call from any other module still warns.
* "'set_vital' is deprecated, please do not call" (``torchdata.stateful_dataloader.stateful_dataloader``): torch
  deprecated ``set_vital`` and torchdata's ``StatefulDataLoader`` (verl's data loader) still calls it.

:func:`silence_driver_platform_probe`, in ``sspo-train``'s driver only: composing the config imports verl
(``pkg://verl.trainer.config``) and the plugin's trainer patches, so verl resolves its platform before the config
says which device the run uses; on a machine without a GPU it warns "No supported accelerator detected ... Falling
back to 'nvidia'" and "Platform 'nvidia' (PlatformCUDA) is registered but not available", and a CPU run then
replaces that platform ("Replacing already-initialised platform"). The driver runs no engine; the device is checked
by pre-flight (GPU count, CUDA) and every Ray worker resolves its own platform.

:func:`silence_cpu_backend`, in every process of a CPU run (:func:`sspo_verl.cpu.activate`), and in vLLM's engine
and worker processes, which do not import verl first, through vLLM's own logging configuration
(:func:`vllm_logging_config_path`, set as ``VLLM_LOGGING_CONFIG_PATH`` by :mod:`sspo_verl.cpu.vllm_server`). A GPU
run never installs it:

* transformers' "`Qwen2VLImageProcessor` requires torchvision (not installed); falling back to ...": the CPU install
  removes torchvision on purpose (``Makefile`` ``MEDIA_PACKAGES``: PyPI has no build that loads next to the CPU
  torch) and sspo-verl trains text-only models; vLLM's model registry imports the processor in every process.
* vLLM's "Triton is installed, but doesn't include CPU backend" / "but `triton.backends` could not be imported.
  Disabling Triton." and "Model Runner V2 requires Triton; using the V1 model runner instead.": the Triton that
  comes with torch has no CPU backend; vLLM's CPU platform runs without it. Kept on GPU, where it is a broken
  install.
* vLLM's "Enforce eager set, disabling torch.compile and CUDAGraphs" and "Inductor compilation was disabled by user
  settings": ``hardware/cpu.yaml`` sets ``enforce_eager`` on purpose (no CUDA graphs on CPU, no compile time).
* vLLM's "libtcmalloc / libiomp is not found in LD_PRELOAD. For best performance ...": a throughput hint for
  serving on CPU; the CPU backend runs small models for correctness, and neither library comes with pip. vLLM's
  GPU workers never emit it.
* vLLM's "LoRA dynamic loading & unloading is enabled in the API server. This should ONLY be used for local
  development!": verl sets ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` for every rollout, and a CPU run's servers live in
  a private local Ray cluster. Kept on GPU: there it says who on the cluster's network can load adapters.
* vLLM's "Default vLLM sampling parameters have been overridden by the model's `generation_config.json`": verl
  passes the rollout config's sampling values (``override_generation_config``) and builds every request's
  ``SamplingParams`` itself.
* vLLM's "Passing raw prompts to InputProcessor is deprecated": verl 0.9.1's server passes token prompts; no setting
  changes it.
* vLLM's "<...>RotaryEmbedding: Failed to load weights" (layerwise reload): the CPU weight sync
  (:mod:`sspo_verl.cpu.vllm_worker`) reloads through vLLM's layerwise reload, and a rotary embedding holds only its
  cos/sin cache, computed from the config and put back by vLLM. A layer with parameters that receives no weights
  fails the sync there, with its name.
* Ray's "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out ...": a CPU
  run starts its own private local cluster (:func:`sspo_verl.cpu.launch.ray_init_settings`).

Kept everywhere, because no filter reaches them: verl's ``print("Warning: Failed to set NUMA affinity: ...")``
(``verl.utils.distributed.set_numa_affinity``; on GPU nodes it says NUMA pinning is off) and vLLM's C++
``TORCH_WARN`` "NUMA binding: Using MEMBIND policy" (``init_cpu_memory_env``, written to stderr by C++).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "CPU_BACKEND_RECORDS",
    "EVERYWHERE_WARNINGS",
    "PLATFORM_LOGGER",
    "PLATFORM_PROBE_RECORDS",
    "KnownRecords",
    "cpu_backend_filter",
    "silence_cpu_backend",
    "silence_driver_platform_probe",
    "silence_everywhere",
    "vllm_logging_config_path",
    "with_cpu_backend_filters",
]

# (category, message regex, module regex) for warnings.filterwarnings: both regexes match from the start.
EVERYWHERE_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    # verl/workers/engine/__init__.py: warnings.warn(f"{name} engine is not available: {e!r}", stacklevel=1)
    (
        UserWarning,
        r"(torchtitan|veomni|automodel|mindspeed|megatron) engine is not available: ",
        r"verl\.workers\.engine\Z",
    ),
    # verl/trainer/ppo/utils.py need_critic(): stacklevel=2, i.e. attributed to verl's trainer that asks
    (
        UserWarning,
        re.escape(
            "Disabled critic as algorithm.adv_estimator != gae. If it is not intended, please set critic.enable=True"
        )
        + r"\Z",
        r"verl\.",
    ),
    # verl/utils/import_utils.py @deprecated: stacklevel=2, i.e. attributed to the caller (verl's trainer_base)
    (
        FutureWarning,
        re.escape("Warning: Function 'verl.utils.import_utils.load_extern_type' is deprecated. ") + r".*\Z",
        r"verl\.",
    ),
    # torch/__init__.py __getattr__("set_vital"): stacklevel=2, i.e. torchdata's StatefulDataLoader.__init__
    (
        UserWarning,
        re.escape("'set_vital' is deprecated, please do not call") + r"\Z",
        r"torchdata\.stateful_dataloader\.stateful_dataloader\Z",
    ),
)

# verl/plugin/platform/platform_manager.py: its three probe warnings, rendered
PLATFORM_LOGGER = "verl.plugin.platform.platform_manager"
PLATFORM_PROBE_RECORDS: dict[str, tuple[str, ...]] = {
    PLATFORM_LOGGER: (
        r"No supported accelerator detected\. Registered: .*\. Falling back to 'nvidia'\.",
        r"Platform '\w+' \(\w+\) is registered but not available\. .*",
        r"Replacing already-initialised platform '\w+' with '\w+'",
    ),
}

_VLLM_CPU_DOCS = re.escape("https://docs.vllm.ai/en/latest/getting_started/installation/cpu/")

# logger name -> rendered messages (each a regex matching the whole message); see the module docstring for why
CPU_BACKEND_RECORDS: dict[str, tuple[str, ...]] = {
    # transformers/utils/import_utils.py _LazyModule.__getattr__ (logger.warning_once of an f-string)
    "transformers.utils.import_utils": (
        r"`(\w+ImageProcessor)` requires torchvision \(not installed\); falling back to `\1Pil` for backward "
        r"compatibility\. Install torchvision to use the default backend, or import `\1Pil` directly to silence "
        r"this warning\.",
    ),
    "vllm.triton_utils.importing": (
        re.escape("Triton is installed, but doesn't include CPU backend. Disabling Triton."),
        re.escape("Triton is installed, but `triton.backends` could not be imported. Disabling Triton."),
    ),
    "vllm.config.vllm": (
        re.escape("Model Runner V2 requires Triton; using the V1 model runner instead."),
        re.escape(
            "Enforce eager set, disabling torch.compile and CUDAGraphs. This is equivalent to setting "
            "-cc.mode=none -cc.cudagraph_mode=none"
        ),
        re.escape(
            "Inductor compilation was disabled by user settings, optimizations settings that are only active "
            "during inductor compilation will be ignored."
        ),
    ),
    "vllm.v1.worker.cpu_worker": (
        r"(libtcmalloc|libiomp) is not found in LD_PRELOAD\. For best performance, please follow the section "
        r"`set LD_PRELOAD` in " + _VLLM_CPU_DOCS + r" to setup required pre-loaded libraries\.",
    ),
    "vllm.entrypoints.serve.lora.api_router": (
        re.escape(
            "LoRA dynamic loading & unloading is enabled in the API server. This should ONLY be used for local "
            "development!"
        ),
    ),
    "vllm.config.model": (
        r"Default vLLM sampling parameters have been overridden by the model's `generation_config\.json`: `\{.*\}`\. "
        r"If this is not intended, please relaunch vLLM instance with `--generation-config vllm`\.",
    ),
    "vllm.v1.engine.input_processor": (
        re.escape(
            "Passing raw prompts to InputProcessor is deprecated and will be removed in v0.18. You should instead "
            "pass the outputs of Renderer.render_cmpl() or Renderer.render_chat()."
        ),
    ),
    "vllm.model_executor.model_loader.reload.layerwise": (r"\w*RotaryEmbedding: Failed to load weights",),
    "ray._private.authentication.authentication_token_setup": (
        re.escape(
            "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out. For more "
            "information, see https://docs.ray.io/en/latest/ray-security/token-auth.html"
        ),
    ),
}


class KnownRecords(logging.Filter):
    """Drops a log record whose logger has a known message matching the record's whole rendered message."""

    def __init__(self, known: Mapping[str, Sequence[str]]):
        super().__init__()
        self.known = {name: tuple(re.compile(m) for m in messages) for name, messages in known.items()}

    def filter(self, record: logging.LogRecord) -> bool:
        patterns = self.known.get(record.name)
        if not patterns:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's to report, not a filter's to raise
            return True
        return not any(p.fullmatch(message) for p in patterns)


_PLATFORM_FILTER = KnownRecords(PLATFORM_PROBE_RECORDS)
_CPU_BACKEND_FILTER = KnownRecords(CPU_BACKEND_RECORDS)


def _install(known: KnownRecords) -> None:
    for name in known.known:
        logger = logging.getLogger(name)
        if known not in logger.filters:
            logger.addFilter(known)


def silence_everywhere() -> None:
    """Ignore the warnings of :data:`EVERYWHERE_WARNINGS` in this process (idempotent: one filter entry each)."""
    for category, message, module in EVERYWHERE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def silence_driver_platform_probe() -> None:
    """Drop verl's platform-probe warnings in this process (idempotent); for ``sspo-train``'s driver only."""
    _install(_PLATFORM_FILTER)


def silence_cpu_backend() -> None:
    """Drop the CPU backend's known records (:data:`CPU_BACKEND_RECORDS`) in this process (idempotent)."""
    _install(_CPU_BACKEND_FILTER)


def cpu_backend_filter() -> KnownRecords:
    """The CPU backend's filter; the factory a ``logging.config.dictConfig`` filter entry names."""
    return _CPU_BACKEND_FILTER


def with_cpu_backend_filters(config: Mapping) -> dict:
    """A copy of a ``logging.config.dictConfig`` dict (vLLM's ``DEFAULT_LOGGING_CONFIG``) that also installs
    :func:`silence_cpu_backend`'s filter on its loggers; nothing else in it changes."""
    config = copy.deepcopy(dict(config))
    config.setdefault("filters", {})["sspo_cpu_backend"] = {"()": f"{__name__}.cpu_backend_filter"}
    loggers = config.setdefault("loggers", {})
    for name in CPU_BACKEND_RECORDS:
        entry = loggers.setdefault(name, {})
        entry["filters"] = [*entry.get("filters", []), "sspo_cpu_backend"]
    return config


def vllm_logging_config_path() -> str | None:
    """Write vLLM's default logging configuration plus the CPU backend's filters to a file; return its path.

    None when the user configures vLLM's logging (``VLLM_LOGGING_CONFIG_PATH`` set, or ``VLLM_CONFIGURE_LOGGING=0``):
    theirs is kept. The file is named by its content, in a directory only this user can write
    (``$TMPDIR/sspo-verl-<uid>``), since vLLM's processes import what it names. Imports vllm.
    """
    import vllm.envs as envs
    from vllm.logger import DEFAULT_LOGGING_CONFIG

    if envs.VLLM_LOGGING_CONFIG_PATH or not envs.VLLM_CONFIGURE_LOGGING:
        return None
    text = json.dumps(with_cpu_backend_filters(DEFAULT_LOGGING_CONFIG), sort_keys=True, indent=1)
    folder = Path(tempfile.gettempdir()) / f"sspo-verl-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        logging.getLogger("sspo_verl").warning(
            "sspo-verl: %s is not a directory only this user can write, so vLLM's engine processes print their "
            "known CPU warnings. Remove it, or set TMPDIR to another directory.", folder
        )
        return None
    path = folder / f"vllm-logging-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        scratch = folder / f"{path.name}.{os.getpid()}"
        scratch.write_text(text, encoding="utf-8")
        os.replace(scratch, path)
    return str(path)
