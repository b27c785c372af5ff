"""Memory-fit check: an estimate of each GPU's peak memory from the resolved config and the model's config.json
(FSDP shards, AdamW state, the largest micro-batch's logits and activations, the colocated vLLM's share), printed
at start-up and refused when it cannot fit the card.

The formula (README "Memory per GPU"; every assumption below is [ours], read from verl 0.9.1 and vLLM 0.24's code,
not measured on a GPU here). P parameters, N = FSDP shard group (``trainer.nnodes × n_gpus_per_node``, or
``fsdp_config.fsdp_size``), T tokens of the largest micro-batch, V vocabulary, b the compute dtype's bytes (FSDP
``mixed_precision.param_dtype``, bf16 by default), m the master dtype's bytes (``fsdp_config.model_dtype``, fp32):

    update phase (vLLM asleep: free_cache_engine releases weights and KV cache, sleep level 2):
        params m·P/N + grads m·P/N + AdamW 2·m·P/N                         (offload flags do not help here: verl
                                                                            loads both back for the update)
      + gathered   b·(2·root + 3·layer)        FSDP's unsharded units in flight: the root unit (embeddings, lm_head,
                                               final norm) with its unsharded gradient, two decoder layers, one
                                               layer's gradient
      + logits     c·T·V·b                     c copies of the (T, V) logits (LOGIT_COPIES: the path verl takes)
      + activations T·(L·H·b + 2·a) with gradient checkpointing, T·(L + 1)·a without; a per token and layer:
                   2·(8 + b)·H (two RMSNorms, upcast to fp32) + b·(3·H + 3·kv + 4·I) (q/k/v, rotary, attention
                   output, SwiGLU), kv = num_key_value_heads · head_dim, I = intermediate_size
      + runtime    RUNTIME_OVERHEAD (CUDA contexts of the trainer and the vLLM process, NCCL buffers, the CUDA
                   graphs vLLM keeps asleep, allocator slack)
      (+ vLLM's whole share when free_cache_engine / enable_sleep_mode is off: it never releases it)
    rollout phase (vLLM awake, its share u·card holds its weights, activations and KV cache):
        resident actor (params unless param_offload, AdamW unless optimizer_offload) + runtime + u·card ≤ card
    vLLM inside its share: weights 2·P/tp + one max_model_len sequence of KV cache ≤ u·card
    log-prob phase: like the update without grads and activations, at log_prob_max_token_len_per_gpu

The card it must fit: ``preflight.gpu_memory_gib`` when set, else the smallest GPU ``nvidia-smi`` lists here
(preflight/gpu.py); with neither (a CPU machine, a driver on a node without GPUs) the estimate is printed and
nothing is refused. The reference model (use_kl_loss / use_kl_in_reward) is forward-only in verl 0.9.1 with its
parameters offloaded to CPU (FSDP CPUOffload forced), so it adds a log-prob-like phase, not resident memory.

Public API: ``estimate(config, model_config) -> MemoryEstimate``; ``ModelShape.from_config_json``;
``relative_error(estimate, measured_bytes, phase)``; ``check_memory(ctx)``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
from collections.abc import Mapping
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from sspo_verl.preflight.context import ACTOR, Context
from sspo_verl.preflight.files import read_model_config
from sspo_verl.preflight.ranges import in_range

__all__ = [
    "GIB",
    "LOGIT_COPIES",
    "RUNTIME_OVERHEAD",
    "MemoryEstimate",
    "ModelShape",
    "check_memory",
    "estimate",
    "relative_error",
]

logger = logging.getLogger("sspo_verl.preflight")

GIB = 2**30
ROLLOUT = "actor_rollout_ref.rollout"
MODEL = "actor_rollout_ref.model"

# CUDA context of the trainer process (~0.5 GiB with torch's kernels), NCCL buffers, the vLLM process's context
# and the CUDA graphs it keeps while asleep, allocator slack. [ours] A guess, not measured here (no GPU).
RUNTIME_OVERHEAD = 3 * GIB

# Copies of the (T, V) logits alive at the peak of one micro-batch's forward + backward, by the path verl 0.9.1's
# FSDP engine takes (prepare_model_outputs → verl.utils.torch_functional). [ours], read from the code:
LOGIT_COPIES = {
    # flash-attn's Triton cross-entropy, inplace_backward (calculate_entropy off): the logits, their gradient
    # written into the same storage
    "flash_ce": 1,
    # flash-attn's cross-entropy without inplace_backward (verl turns it off when entropy is computed): + a gradient
    "flash_ce_entropy_grad": 2,
    # logprobs_from_logits_v2 (no flash-attn): the logits, the per-row log_softmax outputs (bf16) or the gather's
    # gradient (fp32), the gradient rows stacked back into (T, V)
    "v2": 3,
    # entropy_from_logits: softmax saved, pd·logits, and their gradients in the backward
    "entropy": 3,
    # temperature ≠ 1: logits / T is a new tensor
    "temperature": 1,
    # forward only (old / ref log-probs, entropy included): the logits, softmax, one temporary
    "forward": 3,
}

_DTYPE_BYTES = {"fp32": 4, "float32": 4, "float": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2, "half": 2}


# --------------------------------------------------------------------------------------------------- the model


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer (Qwen2 / Llama family) that decide its memory."""

    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool
    qkv_bias: bool
    o_bias: bool = False
    mlp_bias: bool = False

    @classmethod
    def from_config_json(cls, cfg: Mapping[str, Any]) -> "ModelShape":
        """Read a Hugging Face config.json (dict); a multimodal one's ``text_config``.

        Raises:
            ValueError: a field missing or not a positive integer (the message names it), or a mixture of experts.
        """
        cfg = cfg.get("text_config") or cfg
        for key in ("num_experts", "num_local_experts", "n_routed_experts"):
            if isinstance(cfg.get(key), int) and cfg[key] > 1:
                raise ValueError(f"{key}={cfg[key]}: mixtures of experts are not modelled")

        def need(key: str, default: Any = None) -> int:
            value = cfg.get(key, default)
            if value is None:
                raise ValueError(f"config.json has no {key!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or value != int(value):
                raise ValueError(f"config.json {key}={value!r} is not a positive integer")
            return int(value)

        hidden, heads = need("hidden_size"), need("num_attention_heads")
        # Qwen2 has q/k/v biases always; Llama-like models say so in attention_bias (q/k/v/o) and mlp_bias.
        attention_bias = bool(cfg.get("attention_bias", False))
        qkv_bias = cfg.get("model_type") in ("qwen2", "qwen2_5_vl") or attention_bias
        return cls(
            vocab=need("vocab_size"),
            hidden=hidden,
            layers=need("num_hidden_layers"),
            intermediate=need("intermediate_size"),
            heads=heads,
            kv_heads=need("num_key_value_heads", heads),
            head_dim=need("head_dim", hidden // heads),
            # absent: untied, the larger count (Qwen2Config's default; PretrainedConfig's is tied)
            tied=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=qkv_bias,
            o_bias=attention_bias,
            mlp_bias=bool(cfg.get("mlp_bias", False)),
        )

    @property
    def layer_params(self) -> int:
        """One decoder layer: q, k, v, o projections (+ q/k/v biases), SwiGLU MLP, two RMSNorms."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention = self.hidden * (q + 2 * kv) + q * self.hidden
        biases = (q + 2 * kv if self.qkv_bias else 0) + (self.hidden if self.o_bias else 0)
        mlp = 3 * self.hidden * self.intermediate + ((2 * self.intermediate + self.hidden) if self.mlp_bias else 0)
        return attention + biases + mlp + 2 * self.hidden

    @property
    def root_params(self) -> int:
        """Embeddings, lm_head when untied, the final norm: FSDP's root unit."""
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    @property
    def parameters(self) -> int:
        return self.root_params + self.layers * self.layer_params

    def activation_bytes_per_token_layer(self, b: int) -> int:
        """Bytes one decoder layer saves for backward per token (flash / SDPA attention: no T² term)."""
        kv = self.kv_heads * self.head_dim
        return 2 * (8 + b) * self.hidden + b * (3 * self.hidden + 3 * kv + 4 * self.intermediate)

    def kv_cache_bytes_per_token(self, b: int) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * b


# ------------------------------------------------------------------------------------------------ the estimate


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per GPU, by phase and component; ``card_bytes`` None when the card is unknown.

    ``phases[name]`` maps component → bytes; the components of vLLM's share are fractions of the card, so a phase
    that holds it is only summed when the card is known (``required_card_bytes`` solves for the card instead).
    """

    shape: ModelShape
    world: int
    phases: dict[str, dict[str, int]]
    vllm_share: float  # fraction of the card vLLM takes while awake (0: no colocated vLLM)
    vllm_in_update: bool  # vLLM keeps its share during the update (no sleep)
    vllm_min_bytes: int  # weights / tp + one max_model_len sequence of KV cache
    notes: tuple[str, ...]

    def _holds_vllm(self, phase: str) -> bool:
        return self.vllm_share > 0 and (phase == "rollout" or self.vllm_in_update)

    def total(self, phase: str) -> int:
        """A phase's bytes without vLLM's share."""
        return sum(self.phases[phase].values())

    def required_card_bytes(self) -> int:
        """The smallest card every phase fits: update (+ vLLM's share if it never sleeps), rollout (resident actor
        + runtime + share), vLLM's own minimum inside its share."""
        u = self.vllm_share
        need = []
        for name in self.phases:
            share = u if self._holds_vllm(name) else 0.0
            need.append(math.ceil(self.total(name) / (1 - share)) if share < 1 else math.inf)
        if u > 0:
            need.append(math.ceil(self.vllm_min_bytes / u))
        return max(need)

    def peak_bytes(self, card_bytes: int) -> int:
        """The largest phase on a card of ``card_bytes`` (vLLM's share included where it is held)."""
        share = int(self.vllm_share * card_bytes)
        return max(self.total(n) + (share if self._holds_vllm(n) else 0) for n in self.phases)

    def table(self, card_bytes: Optional[int] = None) -> str:
        """A few lines for the start-up log: each phase's components in GiB."""
        s = self.shape
        lines = [
            f"model: {self.shape.parameters / 1e9:.3f}B parameters (V={s.vocab}, H={s.hidden}, L={s.layers}, "
            f"I={s.intermediate}, heads {s.heads}/{s.kv_heads}, {'tied' if s.tied else 'untied'} embeddings); "
            f"FSDP over {self.world} GPU(s)"
        ]
        for name, parts in self.phases.items():
            body = ", ".join(f"{k} {v / GIB:.2f}" for k, v in parts.items() if v)
            extra = ""
            if self._holds_vllm(name):
                extra = f" + vLLM {self.vllm_share:g} × card" + (
                    f" ({self.vllm_share * card_bytes / GIB:.2f})" if card_bytes else "")
            lines.append(f"  {name}: {self.total(name) / GIB:.2f} GiB{extra} = {body}")
        req = self.required_card_bytes()
        lines.append(f"  needs a card of ≥ {req / GIB:.1f} GiB" + (
            f"; the card: {card_bytes / GIB:.1f} GiB, peak {self.peak_bytes(card_bytes) / GIB:.1f} GiB"
            if card_bytes else ""))
        lines += [f"  ({n})" for n in self.notes]
        return "\n".join(lines)


def _get(config: DictConfig, key: str, default: Any = None) -> Any:
    value = OmegaConf.select(config, key, default=default)
    return default if value is None else value


def _int(config: DictConfig, key: str, default: Any = None) -> int:
    value = _get(config, key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{key}={value!r} is not an integer")
    return int(value)


def _dtype_bytes(config: DictConfig, key: str, default: str) -> int:
    value = str(_get(config, key, default)).removeprefix("torch.")
    if value not in _DTYPE_BYTES:
        raise ValueError(f"{key}={value!r} is not one of {sorted(_DTYPE_BYTES)}")
    return _DTYPE_BYTES[value]


def _tokens_per_micro_batch(config: DictConfig, dynamic_key: str, budget_key: str, micro_key: str) -> int:
    """T: the token budget under dynamic batching, else micro-batch size × the longest prompt + response."""
    if _get(config, dynamic_key, False):
        return _int(config, budget_key)
    longest = _int(config, "data.max_prompt_length") + _int(config, "data.max_response_length")
    return _int(config, micro_key, 1) * longest


def _logit_copies(config: DictConfig, entropy: bool, flash_ce: bool, fused: bool) -> tuple[int, str]:
    if fused:
        return 0, "use_fused_kernels: logits computed in chunks, not held whole (counted as 0)"
    if flash_ce:
        copies, path = (LOGIT_COPIES["flash_ce_entropy_grad"] if entropy else LOGIT_COPIES["flash_ce"]), "flash-attn CE"
    else:
        copies, path = LOGIT_COPIES["v2"], "log_softmax rows (no flash-attn)"
    if entropy:
        copies += LOGIT_COPIES["entropy"]
        path += " + entropy"
    if float(_get(config, f"{ROLLOUT}.temperature", 1.0)) != 1.0:
        copies += LOGIT_COPIES["temperature"]
        path += " + temperature"
    return copies, f"logits: {copies} × T × V ({path})"


def estimate(config: DictConfig, model_config: Mapping[str, Any], *, flash_ce: Optional[bool] = None) -> MemoryEstimate:
    """Per-GPU bytes of a resolved training config on the model of ``model_config`` (its config.json).

    Args:
        config: the composed ``sspo_trainer`` config.
        model_config: the model's config.json as a dict.
        flash_ce: whether verl's workers take flash-attn's cross-entropy (default: flash_attn importable here on a
            cuda config).

    Raises:
        ValueError: a config.json field or a config value the estimate needs is missing or not a number.
    """
    shape = ModelShape.from_config_json(model_config)
    cuda = _get(config, "trainer.device", "cuda") != "cpu"
    world = _int(config, "trainer.nnodes") * _int(config, "trainer.n_gpus_per_node")
    fsdp_size = _int(config, f"{ACTOR}.fsdp_config.fsdp_size", -1)
    shards = fsdp_size if 0 < fsdp_size <= world else world
    m = _dtype_bytes(config, f"{ACTOR}.fsdp_config.model_dtype", "fp32")
    b = _dtype_bytes(config, f"{ACTOR}.fsdp_config.mixed_precision.param_dtype", "bf16")
    optimizer = str(_get(config, f"{ACTOR}.optim.optimizer", "AdamW"))
    states = 2 if "adam" in optimizer.lower() else 1
    notes = []
    if states == 1:
        notes.append(f"optimizer {optimizer}: one state per parameter assumed")
    P, H, L = shape.parameters, shape.hidden, shape.layers
    params = m * P // shards
    grads = m * P // shards
    optim = states * m * P // shards
    gathered = b * (2 * shape.root_params + 3 * shape.layer_params)

    # logits of the largest micro-batch
    if flash_ce is None:
        flash_ce = cuda and importlib.util.find_spec("flash_attn") is not None
    entropy = (bool(_get(config, f"{ACTOR}.calculate_entropy", False))
               or float(_get(config, f"{ACTOR}.entropy_coeff", 0)) != 0)
    fused = bool(_get(config, f"{MODEL}.use_fused_kernels", False))
    copies, logit_note = _logit_copies(config, entropy, flash_ce, fused)
    notes.append(logit_note)
    T = _tokens_per_micro_batch(config, f"{ACTOR}.use_dynamic_bsz", f"{ACTOR}.ppo_max_token_len_per_gpu",
                                f"{ACTOR}.ppo_micro_batch_size_per_gpu")
    logits = copies * T * shape.vocab * b

    a = shape.activation_bytes_per_token_layer(b)
    if _get(config, f"{MODEL}.enable_gradient_checkpointing", True):
        activations = T * (L * H * b + 2 * a)
    else:
        activations = T * (L + 1) * a
        notes.append("gradient checkpointing off: every layer's activations saved")

    runtime = RUNTIME_OVERHEAD if cuda else 0
    phases = {
        "update": {"params": params, "grads": grads, "optimizer": optim, "gathered": gathered, "logits": logits,
                   "activations": activations, "runtime": runtime},
    }
    T_lp = _tokens_per_micro_batch(config, f"{ROLLOUT}.log_prob_use_dynamic_bsz",
                                   f"{ROLLOUT}.log_prob_max_token_len_per_gpu",
                                   f"{ROLLOUT}.log_prob_micro_batch_size_per_gpu")
    phases["log_prob"] = {"params": params, "optimizer": optim,
                          "gathered": b * (shape.root_params + 2 * shape.layer_params),
                          "logits": LOGIT_COPIES["forward"] * T_lp * shape.vocab * b,
                          "activations": T_lp * a, "runtime": runtime}

    # the colocated vLLM (GPU only: the CPU backend's rollouts live in RAM, sized by its own check)
    rollout_name = _get(config, f"{ROLLOUT}.name")
    vllm_share, vllm_in_update, vllm_min = 0.0, False, 0
    if cuda and rollout_name == "vllm":
        vllm_share = float(_get(config, f"{ROLLOUT}.gpu_memory_utilization", 0.5))
        sleeps = bool(_get(config, f"{ROLLOUT}.free_cache_engine", True)) and bool(
            _get(config, f"{ROLLOUT}.enable_sleep_mode", True))
        vllm_in_update = not sleeps
        if vllm_in_update:
            notes.append("vLLM never sleeps (free_cache_engine / enable_sleep_mode off): its share stays during "
                         "the update")
        tp = _int(config, f"{ROLLOUT}.tensor_model_parallel_size", 1)
        rb = _dtype_bytes(config, f"{ROLLOUT}.dtype", "bfloat16")
        max_len = _get(config, f"{ROLLOUT}.max_model_len") or (
            _int(config, "data.max_prompt_length") + _int(config, "data.max_response_length"))
        vllm_min = rb * P // tp + int(max_len) * shape.kv_cache_bytes_per_token(rb) // tp
        resident = {
            "params": 0 if _get(config, f"{ACTOR}.fsdp_config.param_offload", False) else params,
            "optimizer": 0 if _get(config, f"{ACTOR}.fsdp_config.optimizer_offload", False) else optim,
            "runtime": runtime,
        }
        phases["rollout"] = resident
    elif cuda and rollout_name is not None:
        notes.append(f"rollout.name={rollout_name}: its memory is not modelled")
    if _get(config, f"{ACTOR}.use_kl_loss", False) or _get(config, "algorithm.use_kl_in_reward", False):
        notes.append("reference model: forward-only with CPU-offloaded parameters in verl 0.9.1 (a log_prob-like "
                     "phase)")
    return MemoryEstimate(shape, shards, phases, vllm_share, vllm_in_update, vllm_min, tuple(notes))


def relative_error(est: MemoryEstimate, measured_bytes: int, phase: str = "update",
                   exclude: tuple[str, ...] = ("runtime",)) -> tuple[int, float]:
    """The phase's estimate without ``exclude`` (torch's ``max_memory_allocated`` holds no CUDA context) against a
    measurement: ``(estimated_bytes, (estimated - measured) / measured)``."""
    est_bytes = sum(v for k, v in est.phases[phase].items() if k not in exclude)
    return est_bytes, (est_bytes - measured_bytes) / measured_bytes


# --------------------------------------------------------------------------------------------------- the check


def _card_bytes(ctx: Context) -> tuple[Optional[int], str]:
    """The card to fit: preflight.gpu_memory_gib (a finite positive number: its row of ranges.RANGES, checked
    first), else the smallest visible GPU; (None, why) when unknown."""
    asked = ctx.get("preflight.gpu_memory_gib")
    if asked is not None:
        return int(asked * GIB), f"preflight.gpu_memory_gib={asked:g}"
    from sspo_verl.preflight.gpu import query_gpus

    try:
        gpus = query_gpus(ctx.env, float(ctx.get("preflight.gpu_query_timeout_s", 20)))
    except RuntimeError as exc:
        return None, str(exc)
    if not gpus:
        return None, "no GPU visible here (nvidia-smi: " + ("cannot tell" if gpus is None else "none") + ")"
    small = min(gpus, key=lambda g: g.memory_total_bytes)
    return small.memory_total_bytes, f"{small.name} with {small.memory_total_bytes / GIB:.1f} GiB (nvidia-smi)"


def _knobs(config: DictConfig, est: MemoryEstimate, phase: str) -> str:
    """The settings that shrink ``phase``, with their values now."""
    fsdp = f"{ACTOR}.fsdp_config"
    knobs = []
    if phase == "update":
        dynamic = _get(config, f"{ACTOR}.use_dynamic_bsz", False)
        key = f"{ACTOR}.ppo_max_token_len_per_gpu" if dynamic else f"{ACTOR}.ppo_micro_batch_size_per_gpu"
        knobs.append(f"{key} (now {_get(config, key)}; the logits and activations scale with it)")
        if not _get(config, f"{MODEL}.enable_gradient_checkpointing", True):
            knobs.append(f"{MODEL}.enable_gradient_checkpointing=true")
    if phase == "log_prob":
        dynamic = _get(config, f"{ROLLOUT}.log_prob_use_dynamic_bsz", False)
        key = f"{ROLLOUT}.log_prob_max_token_len_per_gpu" if dynamic else f"{ROLLOUT}.log_prob_micro_batch_size_per_gpu"
        knobs.append(f"{key} (now {_get(config, key)})")
    if phase == "rollout" or est.vllm_in_update:
        knobs.append(f"{ROLLOUT}.gpu_memory_utilization (now {est.vllm_share:g})")
        for key in ("param_offload", "optimizer_offload"):
            if not _get(config, f"{fsdp}.{key}", False):
                knobs.append(f"{fsdp}.{key}=true (frees the rollout phase, not the update)")
    knobs.append("more GPUs: trainer.n_gpus_per_node / trainer.nnodes (params, grads and AdamW shard over them)")
    return "; ".join(knobs)


def check_memory(ctx: Context) -> None:
    """Log the per-GPU estimate; refuse a config whose estimate exceeds the card (``preflight.gpu_memory_gib`` or
    the smallest GPU here), naming the knobs. No card known, or no readable config.json: logged, not blocked."""
    if not ctx.get("preflight.check_memory", True):
        return
    asked = ctx.get("preflight.gpu_memory_gib")
    if asked is not None and not in_range("preflight.gpu_memory_gib", asked):
        return  # refused by its row of ranges.RANGES (the schema check, first)
    model_config, source = read_model_config(ctx.get(f"{MODEL}.path"))
    if model_config is None:
        logger.warning("sspo-train pre-flight: memory estimate skipped: %s.path=%s", MODEL, source)
        return
    try:
        est = estimate(ctx.config, model_config)
    except (ValueError, TypeError) as exc:
        logger.warning("sspo-train pre-flight: memory estimate skipped: %s (%s)", exc, source)
        return
    cuda = ctx.get("trainer.device", "cuda") != "cpu"
    card, card_source = _card_bytes(ctx) if cuda else (None, "trainer.device=cpu")
    logger.info("sspo-train pre-flight: memory per GPU (estimate, GiB; README 'Memory per GPU'):\n%s",
                est.table(card))
    if card is None:
        logger.info("sspo-train pre-flight: memory fit not checked: %s. preflight.gpu_memory_gib=<GiB> checks "
                    "against a card size (e.g. on a Ray cluster's head without GPUs).", card_source)
        return
    if est.vllm_share and est.vllm_min_bytes > est.vllm_share * card:
        ctx.error(
            "memory",
            f"vLLM's share {ROLLOUT}.gpu_memory_utilization={est.vllm_share:g} of the card ({card_source}) is "
            f"{est.vllm_share * card / GIB:.1f} GiB, less than its weights and one max_model_len sequence of KV "
            f"cache ({est.vllm_min_bytes / GIB:.1f} GiB per GPU): vLLM would refuse to start. Raise "
            f"{ROLLOUT}.gpu_memory_utilization or {ROLLOUT}.tensor_model_parallel_size.",
        )
    for name, parts in est.phases.items():
        share = est.vllm_share if est._holds_vllm(name) else 0.0
        need = est.total(name) + int(share * card)
        if need <= card:
            continue
        listed = ", ".join(f"{k} {v / GIB:.1f}" for k, v in parts.items() if v)
        ctx.error(
            "memory",
            f"the {name} phase needs {need / GIB:.1f} GiB per GPU by the estimate ({listed}"
            f"{f', vLLM {share:g} × card = {share * card / GIB:.1f}' if share else ''} GiB), more than the card: "
            f"{card_source}. Turn: {_knobs(ctx.config, est, name)}. If you know better: "
            "preflight.check_memory=false.",
        )
