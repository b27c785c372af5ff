"""The ``hf`` rollout's server: batched transformers generation on CPU, and weight updates.

:class:`HFServer` runs as a Ray actor (launched by :class:`sspo_verl.cpu.rollout.HFReplica`). verl's agent loop
calls ``generate(prompt_ids=..., sampling_params=..., request_id=...)`` concurrently; the server groups the
requests waiting with the same sampling settings into one left-padded ``model.generate`` call and returns a
verl ``TokenOutput`` with the sampled ids and their log-probs ``log_softmax(logits / temperature)``. Weights
arrive through :meth:`HFServer.update_weights` in buckets; the last bucket checks that every parameter of the
model was written, so a renamed or missing tensor fails loudly instead of leaving the rollout on stale weights.

This module imports no verl at import time (only inside methods): Ray imports it first thing in the server's
process, and importing verl from here would run verl's plugins, which activate the CPU backend, which imports
this module again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

__all__ = ["BATCH_MAX_WAIT_S", "BATCH_QUIET_S", "HFServer"]

logger = logging.getLogger("sspo_verl.cpu")

# Batching: a batch starts once no request has arrived for BATCH_QUIET_S, or BATCH_MAX_WAIT_S after the first
# waiting one. verl's agent loop sends a step's requests as a burst spread over tens of milliseconds (each goes
# through its load balancer first); a fixed 5 ms window split it (measured: batches of 4 then 60), and every
# extra batch costs a full decode loop.
BATCH_QUIET_S = 0.02
BATCH_MAX_WAIT_S = 0.2
_SUPPORTED_SAMPLING_KEYS = {
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "logprobs",
    "max_tokens",
    "max_new_tokens",
    "stop_token_ids",
    "n",
}


def _model_path(model_config) -> str:
    """``local_path`` (verl's HFModelConfig) or ``path`` (the DictConfig the replica receives)."""
    for key in ("local_path", "path"):
        value = model_config.get(key) if hasattr(model_config, "get") else getattr(model_config, key, None)
        if value:
            return str(value)
    raise ValueError("hf rollout: actor_rollout_ref.model.path is not set")


@dataclass
class _Request:
    prompt_ids: list[int]
    max_tokens: int
    want_logprobs: bool
    future: asyncio.Future = field(repr=False)


def _sampling_key(sp: dict) -> tuple:
    temperature = float(sp.get("temperature", 1.0) or 0.0)
    top_p = float(sp.get("top_p", 1.0) if sp.get("top_p") is not None else 1.0)
    top_k = int(sp.get("top_k", -1) if sp.get("top_k") is not None else -1)
    rep = float(sp.get("repetition_penalty", 1.0) or 1.0)
    stop = tuple(int(t) for t in (sp.get("stop_token_ids") or ()))
    return temperature, top_p, top_k, rep, stop


class HFServer:
    """Ray actor: batched transformers generation on CPU plus weight updates (see module docstring)."""

    def __init__(self, config, model_config, replica_rank: int = 0):
        from verl.utils.config import omega_conf_to_dataclass

        self.config = omega_conf_to_dataclass(config)
        self.model_config = model_config
        self.replica_rank = replica_rank
        self.global_steps: Optional[int] = None
        self.model = None
        self._lock = asyncio.Lock()  # one model call (generate or weight load) at a time
        self._queues: dict[tuple, list[_Request]] = {}
        self._drainer: Optional[asyncio.Task] = None
        self._last_arrival = 0.0
        self._pending_names: set[str] = set()
        self._warned_keys: set[str] = set()
        self.stats = {"requests": 0, "batches": 0, "generate_s": 0.0, "weight_updates": 0}

    # ---- lifecycle --------------------------------------------------------------------------------
    def init(self) -> dict:
        from transformers import AutoModelForCausalLM

        path = _model_path(self.model_config)
        dtype = getattr(torch, str(self.config.dtype)) if isinstance(self.config.dtype, str) else self.config.dtype
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
        self.model.eval()
        self.model.requires_grad_(False)
        torch.manual_seed(int(self.config.seed) + self.replica_rank)
        gc = self.model.generation_config
        eos = gc.eos_token_id if gc is not None else None
        eos = eos if eos is not None else self.model.config.eos_token_id
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        if not self.eos_ids:
            raise ValueError(
                f"hf rollout: the model at {path} defines no eos_token_id (generation_config or config); "
                "generation could not stop. Set eos_token_id in its generation_config.json."
            )
        pad = gc.pad_token_id if gc is not None else None
        self.pad_id = pad if pad is not None else self.eos_ids[0]
        self.max_batch = max(1, int(self.config.max_num_seqs))
        return {"path": path, "dtype": str(dtype), "params": sum(p.numel() for p in self.model.parameters())}

    def get_server_address(self):
        return "127.0.0.1", 0  # no HTTP endpoint: verl routes by actor handle

    # ---- generation ----------------------------------------------------------------------------
    def _max_tokens(self, prompt_len: int, sp: dict) -> int:
        max_model_len = self.config.max_model_len or (self.config.prompt_length + self.config.response_length)
        limit = sp.get("max_tokens", sp.get("max_new_tokens"))
        if limit is None:
            limit = self.config.response_length
        return max(1, min(int(limit), max_model_len - prompt_len))

    async def generate(
        self,
        prompt_ids,
        sampling_params: dict,
        request_id: str,
        image_data=None,
        video_data=None,
        audio_data=None,
        mm_processor_kwargs=None,
        priority: int = 0,
        **kwargs,
    ):
        """Token-in/token-out generation of one request (batched with concurrent ones)."""
        from verl.utils import normalize_token_ids

        if image_data is not None or video_data is not None or audio_data is not None:
            raise NotImplementedError("hf rollout: multimodal inputs are not supported on the CPU backend")
        prompt_ids = list(normalize_token_ids(prompt_ids))
        sp = dict(sampling_params or {})
        for key in sp:
            if key not in _SUPPORTED_SAMPLING_KEYS and key not in self._warned_keys:
                self._warned_keys.add(key)
                logger.warning("hf rollout: sampling parameter %r is not supported and is ignored", key)
        if int(sp.get("n", 1) or 1) != 1:
            raise ValueError("hf rollout: sampling_params['n'] must be 1 (verl sends one request per sample)")
        request = _Request(
            prompt_ids=prompt_ids,
            max_tokens=self._max_tokens(len(prompt_ids), sp),
            want_logprobs=bool(sp.get("logprobs", False)),
            future=asyncio.get_running_loop().create_future(),
        )
        self._queues.setdefault(_sampling_key(sp), []).append(request)
        self._last_arrival = time.monotonic()
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await request.future

    async def _wait_for_burst(self) -> None:
        start = time.monotonic()
        while True:
            await asyncio.sleep(BATCH_QUIET_S / 2)
            now = time.monotonic()
            if now - self._last_arrival >= BATCH_QUIET_S or now - start >= BATCH_MAX_WAIT_S:
                return

    async def _drain(self) -> None:
        while self._queues:
            await self._wait_for_burst()
            key = next(iter(self._queues))
            queue = self._queues[key]
            batch, rest = queue[: self.max_batch], queue[self.max_batch :]
            if rest:
                self._queues[key] = rest
            else:
                del self._queues[key]
            try:
                async with self._lock:
                    outputs = await asyncio.to_thread(self._generate_batch, key, batch)
            except Exception as e:  # deliver the error to every waiting request, never hang them
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(e)
                continue
            for r, out in zip(batch, outputs, strict=True):
                if not r.future.done():
                    r.future.set_result(out)

    @torch.no_grad()
    def _generate_batch(self, key: tuple, batch: list[_Request]):
        from verl.workers.rollout.replica import TokenOutput

        temperature, top_p, top_k, rep, stop = key
        t0 = time.perf_counter()
        lengths = [len(r.prompt_ids) for r in batch]
        width = max(lengths)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)  # (B, L) left-padded
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)  # (B, L)
        for i, r in enumerate(batch):
            input_ids[i, width - lengths[i] :] = torch.tensor(r.prompt_ids, dtype=torch.long)
            attention_mask[i, width - lengths[i] :] = 1
        eos_ids = list(dict.fromkeys(self.eos_ids + list(stop)))
        do_sample = temperature > 0
        gen_kwargs = dict(
            max_new_tokens=max(r.max_tokens for r in batch),
            do_sample=do_sample,
            num_beams=1,
            eos_token_id=eos_ids,
            pad_token_id=self.pad_id,
            repetition_penalty=rep,
            return_dict_in_generate=True,
            output_logits=True,
        )
        if do_sample:
            gen_kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k if top_k > 0 else 0)
        out = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **gen_kwargs)
        new_tokens = out.sequences[:, width:]  # (B, T)
        logits = torch.stack(out.logits, dim=1).float()  # (B, T, V) raw logits
        if do_sample:
            logits = logits / temperature
        token_lp = torch.log_softmax(logits, dim=-1).gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)  # (B, T)
        eos_set = set(eos_ids)
        results = []
        for i, r in enumerate(batch):
            ids = new_tokens[i].tolist()[: r.max_tokens]
            end = next((j + 1 for j, t in enumerate(ids) if t in eos_set), len(ids))  # keep the EOS token
            ids = ids[:end]
            log_probs = token_lp[i, :end].tolist() if r.want_logprobs else None
            results.append(
                TokenOutput(
                    token_ids=ids,
                    log_probs=log_probs,
                    stop_reason="completed",
                    extra_fields={"global_steps": self.global_steps},
                )
            )
        self.stats["requests"] += len(batch)
        self.stats["batches"] += 1
        self.stats["generate_s"] += time.perf_counter() - t0
        return results

    # ---- weight sync ---------------------------------------------------------------------------
    async def update_weights(self, named_tensors: dict, is_last: bool, global_steps: Optional[int] = None) -> dict:
        """Copy a bucket of full tensors into the model; on the last bucket, check every parameter was written."""
        async with self._lock:
            params = dict(self.model.named_parameters(remove_duplicate=False))
            buffers = dict(self.model.named_buffers())
            unknown = [n for n in named_tensors if n not in params and n not in buffers]
            if unknown:
                raise KeyError(
                    f"hf rollout weight sync: {len(unknown)} tensor(s) from the trainer have no counterpart in the "
                    f"rollout model, e.g. {unknown[:3]}. The trainer's and the rollout's model definitions differ."
                )
            with torch.no_grad():
                for name, tensor in named_tensors.items():
                    target = params.get(name, buffers.get(name))
                    if tuple(target.shape) != tuple(tensor.shape):
                        raise ValueError(
                            f"hf rollout weight sync: {name} has shape {tuple(tensor.shape)} from the trainer, "
                            f"{tuple(target.shape)} in the rollout model."
                        )
                    target.copy_(tensor.to(dtype=target.dtype))
            self._pending_names.update(named_tensors)
            if not is_last:
                return {"received": len(named_tensors)}
            written = {params[n].data_ptr() for n in self._pending_names if n in params}
            missing = [n for n, p in params.items() if p.data_ptr() not in written]
            self._pending_names = set()
            if missing:
                raise KeyError(
                    f"hf rollout weight sync: {len(missing)} parameter(s) of the rollout model were not sent by "
                    f"the trainer, e.g. {missing[:3]}; the rollout would generate with stale weights."
                )
            if global_steps is not None:
                self.global_steps = global_steps
            self.stats["weight_updates"] += 1
            return {"received": len(named_tensors), "parameters": len(params), "global_steps": global_steps}

    def get_stats(self) -> dict:
        return dict(self.stats)

    # ---- the rest of the server surface verl calls (no KV cache, nothing to sleep) ----------------
    async def wake_up(self, tags=None):
        return None

    async def sleep(self):
        return None

    async def clear_kv_cache(self):
        return None

    async def release_kv_cache(self):
        return None

    async def resume_kv_cache(self):
        return None

    async def set_global_steps(self, global_steps: int):
        self.global_steps = global_steps

    async def wait_for_requests_to_drain(self):
        while self._queues or (self._drainer is not None and not self._drainer.done()):
            await asyncio.sleep(0.01)

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False):
        return {"aborted_count": 0, "request_ids": []}

    async def abort_request(self, request_id: str, reset_prefix_cache: bool = True):
        return {"aborted": False, "request_id": request_id}

    async def resume_generation(self):
        return None

    async def start_profile(self, **kwargs):
        return None

    async def stop_profile(self):
        return None
