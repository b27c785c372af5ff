"""Answer generation: vLLM on GPU, Hugging Face ``generate`` on CPU (tests, tiny models).

Both backends build prompts identically: the tokenizer's chat template over the row's ``prompt`` messages
with ``add_generation_prompt=True`` (what verl's rollout does), tokenized without extra special tokens, so
the two backends see the same token ids. ``vllm`` is imported only when the vLLM backend runs.
"""

from __future__ import annotations

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
    """Engine options for the vLLM backend (see ``vllm.LLM``)."""

    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None
    dtype: str = "auto"
    enforce_eager: bool = False


class BackendUnavailableError(RuntimeError):
    """The requested generation backend is not installed here (the message says how to get it or what to use)."""


def _find(module: str):
    """``importlib.util.find_spec``, counting a module already in ``sys.modules`` without a spec as present."""
    import importlib.util

    try:
        return importlib.util.find_spec(module)
    except ValueError:
        return sys.modules.get(module)


def choose_backend(requested: str) -> str:
    """``auto`` → vLLM when a CUDA GPU and the vllm package are present, else HF generate.

    Raises:
        BackendUnavailableError: ``vllm`` requested where the vllm package is not installed.
    """
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}; choose one of {BACKENDS}")
    if requested == "vllm" and _find("vllm") is None:
        raise BackendUnavailableError(
            "--backend vllm: the vllm package is not installed here (pip install -e '.[vllm]', or the project's "
            "GPU image); use --backend hf (transformers generate) or --backend auto"
        )
    if requested != "auto":
        return requested

    import torch

    if torch.cuda.is_available() and _find("vllm") is not None:
        return "vllm"
    logger.warning("no CUDA GPU with vLLM: generating with HF transformers (slow; fine for tiny models and tests)")
    return "hf"


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
    llm = LLM(
        model=model_path,
        tokenizer=model_path,
        tensor_parallel_size=options.tensor_parallel_size,
        gpu_memory_utilization=options.gpu_memory_utilization,
        max_model_len=options.max_model_len,
        dtype=options.dtype,
        enforce_eager=options.enforce_eager,
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
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in token_ids], params)
    if len(outputs) != len(prompts):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
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
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
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
