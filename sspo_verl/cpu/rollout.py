"""The ``hf`` rollout: token-in/token-out generation with transformers on CPU, with weight sync.

verl 0.9.1 generates only through vLLM / SGLang / TensorRT-LLM servers, none of which runs in verl on CPU.
``actor_rollout_ref.rollout.name=hf`` plugs a small server into the same three slots those backends use:

* :class:`~sspo_verl.cpu.hf_server.HFServer` (its own module) — a Ray actor holding a transformers
  ``AutoModelForCausalLM``. verl's agent loop calls ``generate(prompt_ids=..., sampling_params=...,
  request_id=...)`` concurrently; the server groups the requests that are waiting with the same sampling
  settings into one left-padded ``model.generate`` call (a batch per decode, not a request per decode) and
  returns a ``TokenOutput`` with the sampled ids and their log-probs. Weights arrive in buckets; the last
  bucket checks that every parameter of the model was written, so a renamed or missing tensor fails loudly
  instead of leaving the rollout on stale weights.
* :class:`HFReplica` — verl ``RolloutReplica`` that launches one server per replica (``launch_servers``).
* :class:`HFServerAdapter` — verl ``BaseRollout`` built inside every trainer worker; verl calls its
  ``update_weights`` after each actor update with the full (un-sharded) tensors; the replica's rank-0 worker
  forwards them to its server.

Log-probs are ``log_softmax(logits / temperature)`` of the raw logits at the sampled token: the value verl's
actor computes for the same token at the same temperature (top-p / top-k truncation is not reflected, as in
the actor). LoRA weight sync (``peft_config``) is not supported and fails with a clear error.

Registered under ``hf`` by :func:`register`, which only :func:`sspo_verl.cpu.activate` calls.
"""

from __future__ import annotations

import logging
import os

import ray
import torch

from sspo_verl.cpu import verl_internals
from sspo_verl.cpu.hf_server import HFServer

__all__ = ["ROLLOUT_NAME", "HFReplica", "HFServer", "HFServerAdapter", "register", "server_name"]

logger = logging.getLogger("sspo_verl.cpu")

ROLLOUT_NAME = "hf"
# Weight sync sends tensors in buckets of about this many bytes (bounded memory on the sender).
WEIGHT_BUCKET_BYTES = 256 << 20


def server_name(replica_rank: int, name_suffix: str = "", kind: str = "") -> str:
    """Ray actor name of a replica's server (``kind``: "" for the policy, "reward" or "teacher")."""
    middle = f"{kind}_" if kind else ""
    return f"sspo_hf_server_{middle}{replica_rank}{name_suffix}"


def _replica_base():
    return verl_internals.resolve("verl.workers.rollout.replica.RolloutReplica")


class HFReplica(_replica_base()):
    """verl ``RolloutReplica`` with one :class:`HFServer` actor per replica."""

    def _kind(self) -> str:
        return "reward" if self.is_reward_model else ("teacher" if self.is_teacher_model else "")

    async def launch_servers(self):
        if self.nnodes != 1:
            raise ValueError(
                "hf rollout: a replica must fit on one node (rollout tensor/data/pipeline parallel sizes of 1)."
            )
        name = server_name(self.replica_rank, self.name_suffix, self._kind())
        server = (
            ray.remote(HFServer)
            .options(name=name, num_cpus=0, max_concurrency=self.max_concurrency)
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        info = await server.init.remote()
        logger.info("hf rollout server %s ready: %s", name, info)
        self.servers = [server]
        self._server_handle = server
        self._server_address = name  # routing key only

    def rollout_worker_use_gpu(self) -> bool:
        return False


def _adapter_base():
    return verl_internals.resolve("verl.workers.rollout.base.BaseRollout")


class HFServerAdapter(_adapter_base()):
    """verl ``BaseRollout`` in each trainer worker: forwards synced weights to its replica's :class:`HFServer`."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1, **kwargs):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", 0))
        world = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        if world != 1:
            raise ValueError(
                "hf rollout: set actor_rollout_ref.rollout.tensor_model_parallel_size=1 (and data/pipeline "
                f"parallel sizes 1); got a rollout world size of {world}. Each trainer rank gets its own replica."
            )
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.rollout_rank = rank % world
        self.server_handle = None
        self.sleep_level = 1

    def _server(self):
        if self.rollout_rank != 0:
            return None
        if self.server_handle is None:
            self.server_handle = ray.get_actor(server_name(self.replica_rank))
        return self.server_handle

    async def resume(self, tags: list[str]):
        return None

    async def release(self):
        return None

    @torch.no_grad()
    async def update_weights(self, weights, wire_format: str = "named_tensors", **kwargs):
        """Send full tensors to the server in buckets (every rank iterates: un-sharding is collective)."""
        if wire_format != "named_tensors":
            raise NotImplementedError(
                f"hf rollout: weight wire format {wire_format!r} is not supported; use "
                "actor_rollout_ref.rollout.checkpoint_engine.backend=naive."
            )
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError("hf rollout: LoRA adapter sync is not supported; use full fine-tuning on CPU.")
        global_steps = kwargs.get("global_steps")
        server = self._server()
        bucket, size = {}, 0
        for name, tensor in weights:
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            if server is None:
                continue
            bucket[name] = tensor.detach().to("cpu", copy=True)
            size += tensor.numel() * tensor.element_size()
            if size >= WEIGHT_BUCKET_BYTES:
                await server.update_weights.remote(bucket, False, global_steps)
                bucket, size = {}, 0
        if server is not None:
            report = await server.update_weights.remote(bucket, True, global_steps)
            logger.debug("hf rollout weight sync (replica %d): %s", self.replica_rank, report)


def register() -> bool:
    """Register ``rollout.name=hf`` in verl (idempotent). Returns True if it registered it now."""
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    registry = verl_internals.resolve("verl.workers.rollout.base._ROLLOUT_REGISTRY")
    fqn = f"{HFServerAdapter.__module__}.{HFServerAdapter.__name__}"
    if registry.get((ROLLOUT_NAME, "async")) == fqn:
        return False
    registry[(ROLLOUT_NAME, "async")] = fqn
    RolloutReplicaRegistry.register(ROLLOUT_NAME, lambda: HFReplica)
    logger.debug("sspo_verl.cpu: rollout backend %r registered (transformers generate on CPU)", ROLLOUT_NAME)
    return True
