"""Every verl symbol the CPU backend relies on, in one place, resolved loudly.

The CPU backend targets verl 0.9.1 (:data:`sspo_verl.verl_version.SUPPORTED_VERL_VERSION`). It uses verl's extension points
where they exist (platform registry, engine registry, rollout-replica registry, verl's subclass hooks of its vLLM
rollout) and the private names listed below where they do not. When verl moves any of them, :func:`resolve` raises :class:`VerlInternalsError` naming the symbol,
what the CPU backend uses it for, and the installed verl version; ``tests/cpu/test_verl_internals_on_cpu.py``
resolves all of them, so an upgrade fails there first, not inside a Ray worker. The names the backend replaces
are :mod:`sspo_verl.patching` patches, which check their own targets.

Behavioural contracts that are not single symbols (the attributes verl calls on ``get_torch_device()``, the
methods verl calls on a rollout server handle) are checked by the same test against verl's source.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from sspo_verl.verl_version import SUPPORTED_VERL_VERSION

__all__ = [
    "PRIVATE_SYMBOLS",
    "PUBLIC_SYMBOLS",
    "VerlInternalsError",
    "VerlSymbol",
    "check_all",
    "resolve",
    "resolve_module",
]


@dataclass(frozen=True)
class VerlSymbol:
    """A dotted verl name (module path, then attributes) and why the CPU backend needs it."""

    path: str
    used_by: str
    why: str


PRIVATE_SYMBOLS: tuple[VerlSymbol, ...] = (
    VerlSymbol(
        "verl.workers.rollout.base._ROLLOUT_REGISTRY",
        "sspo_verl.cpu.rollout.register, sspo_verl.cpu.vllm_rollout.register, sspo_verl.preflight.ranges",
        "maps (rollout.name, mode) to the BaseRollout class built in each trainer worker; verl 0.9.1 has no "
        "public register function for it, so the 'hf' adapter is added to the dict and on CPU ('vllm', 'async') "
        "points at CPUServerAdapter; the pre-flight reads its keys (the rollout names and modes verl accepts)",
    ),
    VerlSymbol(
        "verl.workers.rollout.vllm_rollout.vllm_async_server.vLLMHttpServer._get_worker_extension_cls",
        "sspo_verl.cpu.vllm_server.CPUvLLMHttpServer",
        "verl's hook for the worker extension vLLM loads; overridden to load the CPU weight sync",
    ),
    VerlSymbol(
        "verl.workers.rollout.vllm_rollout.vllm_rollout.ServerAdapter._execute_method",
        "sspo_verl.cpu.vllm_server.CPUServerAdapter",
        "starts the engine's update_weights_from_ipc RPC; overridden to hand its future to the weight-sync watch",
    ),
    VerlSymbol(
        "verl.workers.rollout.vllm_rollout.utils.vLLMColocateWorkerExtension._update_weights",
        "sspo_verl.cpu.vllm_worker.CPUWorkerExtension",
        "verl's per-bucket loader (model.load_weights + buffers), called inside vLLM's layerwise reload",
    ),
    VerlSymbol(
        "verl.workers.rollout.vllm_rollout.utils.vLLMColocateWorkerExtension._get_zmq_handle",
        "sspo_verl.cpu.vllm_worker.CPUWorkerExtension",
        "the ZMQ endpoint the trainer's sender binds",
    ),
    VerlSymbol(
        "verl.workers.rollout.vllm_rollout.bucketed_weight_transfer.BucketedWeightSender._init_socket",
        "sspo_verl.cpu.vllm_weight_sync.WatchedWeightSender",
        "creates the sender's ZMQ socket; extended to wrap it in the watched socket",
    ),
    VerlSymbol(
        "verl.workers.engine.base.EngineRegistry._engines",
        "sspo_verl.cpu.fsdp.register_engines, sspo_verl.preflight.ranges",
        "read to keep registration idempotent: EngineRegistry.register asserts on a duplicate key; the pre-flight "
        "reads its backends (the actor / ref strategies verl accepts)",
    ),
    VerlSymbol(
        "verl.checkpoint_engine.base.CheckpointEngineRegistry._registry",
        "sspo_verl.preflight.ranges",
        "the checkpoint engines registered (rollout.checkpoint_engine.backend); verl 0.9.1 lists them only in "
        "the error of CheckpointEngineRegistry.get",
    ),
)

PUBLIC_SYMBOLS: tuple[VerlSymbol, ...] = (
    VerlSymbol(
        "verl.workers.rollout.vllm_rollout.vllm_async_server.vLLMReplica",
        "sspo_verl.cpu.vllm_server",
        "base of CPUvLLMReplica (its server_class attribute)",
    ),
    VerlSymbol(
        "verl.workers.rollout.vllm_rollout.vllm_rollout.ServerAdapter.update_weights",
        "sspo_verl.cpu.vllm_server.CPUServerAdapter",
        "the trainer side of the sync, wrapped in the weight-sync scope",
    ),
    VerlSymbol(
        "verl.workers.rollout.vllm_rollout.bucketed_weight_transfer.BucketedWeightReceiver",
        "sspo_verl.cpu.vllm_worker",
        "verl's shared-memory receiver the CPU weight sync uses as it is",
    ),
    VerlSymbol(
        "verl.utils.vllm.vllm_quant_utils.is_quantized_model",
        "sspo_verl.cpu.vllm_worker",
        "a quantized model takes verl's own loader, not the layerwise reload",
    ),
    VerlSymbol(
        "verl.workers.rollout.replica.RolloutReplicaRegistry",
        "sspo_verl.cpu.vllm_rollout.register",
        "registers 'vllm' -> CPUvLLMReplica on CPU runs",
    ),
    VerlSymbol("verl.plugin.platform.PlatformBase", "sspo_verl.cpu.platform", "base class of CPUPlatform"),
    VerlSymbol("verl.plugin.platform.PlatformRegistry.register", "sspo_verl.cpu.activate", "registers 'cpu'"),
    VerlSymbol("verl.plugin.platform.get_platform", "sspo_verl.cpu.activate", "checks the resolved platform"),
    VerlSymbol("verl.plugin.platform.set_platform", "sspo_verl.cpu.activate", "replaces a platform resolved early"),
    VerlSymbol("verl.workers.engine.base.EngineRegistry.register", "sspo_verl.cpu.fsdp", "registers FSDP on cpu"),
    VerlSymbol(
        "verl.workers.engine.fsdp.transformer_impl.FSDPEngineWithLMHead", "sspo_verl.cpu.fsdp", "actor/ref engine"
    ),
    VerlSymbol(
        "verl.workers.engine.fsdp.transformer_impl.FSDPEngineWithValueHead", "sspo_verl.cpu.fsdp", "critic engine"
    ),
    VerlSymbol("verl.workers.rollout.base.BaseRollout", "sspo_verl.cpu.rollout", "base of HFServerAdapter"),
    VerlSymbol("verl.workers.rollout.replica.RolloutReplica", "sspo_verl.cpu.rollout", "base of HFReplica"),
    VerlSymbol(
        "verl.workers.rollout.replica.RolloutReplicaRegistry.register", "sspo_verl.cpu.rollout", "registers 'hf'"
    ),
    VerlSymbol("verl.workers.rollout.replica.TokenOutput", "sspo_verl.cpu.hf_server", "generate() return type"),
    VerlSymbol("verl.utils.config.omega_conf_to_dataclass", "sspo_verl.cpu.hf_server", "rollout config"),
    VerlSymbol("verl.utils.normalize_token_ids", "sspo_verl.cpu.hf_server", "prompt ids as verl's servers read them"),
    VerlSymbol(
        "verl.trainer.ppo.v1.replay_buffer.ReplayBuffer",
        "sspo_verl.cpu.replay_buffer",
        "base of CPUReplayBuffer (trainer.v1.sampler.custom_sampler); its poll_interval constructor argument",
    ),
    VerlSymbol(
        "verl.trainer.ppo.v1.replay_buffer.ReplayBufferAsync",
        "sspo_verl.cpu.replay_buffer",
        "base of CPUReplayBufferAsync (asynchronous trainer modes); its poll_interval constructor argument",
    ),
)


class VerlInternalsError(RuntimeError):
    """A verl symbol the CPU backend relies on is missing from the installed verl."""


def _verl_version() -> str:
    try:
        from importlib.metadata import version

        return version("verl")
    except Exception:  # pragma: no cover - verl not installed as a distribution
        return "unknown"


def _symbol(path: str) -> VerlSymbol:
    for sym in PRIVATE_SYMBOLS + PUBLIC_SYMBOLS:
        if sym.path == path:
            return sym
    raise KeyError(
        f"{path!r} is not listed in sspo_verl/cpu/verl_internals.py; list every verl symbol the CPU backend "
        "relies on there (PRIVATE_SYMBOLS or PUBLIC_SYMBOLS)."
    )


def _split(path: str):
    parts = path.split(".")
    last_error = None
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        try:
            return importlib.import_module(module_name), parts[i:]
        except ModuleNotFoundError as e:
            last_error = e
            continue
    raise ModuleNotFoundError(f"no importable module prefix in {path!r}") from last_error


def _error(sym: VerlSymbol, detail: str) -> VerlInternalsError:
    return VerlInternalsError(
        f"sspo_verl's CPU backend relies on verl symbol {sym.path} ({sym.used_by}: {sym.why}), but {detail} in the "
        f"installed verl {_verl_version()}. sspo-verl supports verl {SUPPORTED_VERL_VERSION}: install it "
        f"(pip install 'verl[verl-core]=={SUPPORTED_VERL_VERSION}') or update sspo_verl/cpu for this verl."
    )


def resolve(path: str):
    """Return the object at the dotted verl ``path`` (which must be listed above), or raise naming it."""
    sym = _symbol(path)
    if sym.path.startswith(("verl.workers.rollout.vllm_rollout.", "verl.utils.vllm.")):
        from sspo_verl.cpu import vllm_distribution

        vllm_distribution.install()  # the package refuses to import without a 'vllm' distribution
    try:
        obj, attrs = _split(sym.path)
    except ModuleNotFoundError as e:
        raise _error(sym, f"its module cannot be imported ({e})") from e
    for i, attr in enumerate(attrs):
        if not hasattr(obj, attr):
            where = ".".join(sym.path.split(".")[: len(sym.path.split(".")) - len(attrs) + i])
            raise _error(sym, f"{where} has no attribute {attr!r}")
        obj = getattr(obj, attr)
    return obj


def resolve_module(path: str):
    """Return the module that holds the module-level name ``path`` (checking that the name exists)."""
    resolve(path)
    return importlib.import_module(path.rpartition(".")[0])


def check_all() -> list[str]:
    """Resolve every listed symbol; return one error message per missing symbol (empty when all resolve)."""
    problems = []
    for sym in PRIVATE_SYMBOLS + PUBLIC_SYMBOLS:
        try:
            resolve(sym.path)
        except VerlInternalsError as e:
            problems.append(str(e))
    return problems
