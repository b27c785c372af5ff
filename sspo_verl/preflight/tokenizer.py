"""Tokenizer and length checks: the model's tokenizer loads and its ids fit the model's vocabulary, the lengths fit
the positions the model's config.json sets, SSPO's tokenizer is the model's (its subsentence boundaries are read
from the vocabulary), and no prompt is longer than ``data.max_prompt_length`` when the config says not to truncate.

verl's V1 agent loop left-truncates an over-long prompt with a log line in a worker, whatever
``data.truncation`` says; only ``data.filter_overlong_prompts=true`` (verl drops them when it loads the data)
keeps them out. So with ``truncation=error`` and no filter, the pre-flight reads the prompts and refuses.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from typing import Any, Optional

from omegaconf import OmegaConf

from sspo_verl.preflight.context import POLICY_LOSS, Context
from sspo_verl.preflight.files import REMOTE_PREFIXES, TOKENIZER_FILES, _local, local_model_dir, read_model_config

__all__ = [
    "check_model_limits",
    "check_prompt_lengths",
    "check_sspo_tokenizer",
    "load_tokenizer",
    "position_limit",
    "vocab_fingerprint",
]

logger = logging.getLogger("sspo_verl.preflight")

MODEL = "actor_rollout_ref.model"
ROLLOUT = "actor_rollout_ref.rollout"
MODEL_TOKENIZER_KEYS = (f"{MODEL}.tokenizer_path", f"{MODEL}.path")
# The keys of a Hugging Face config that bound the sequence length, as vLLM reads them
# (vllm/transformers_utils/model_arch_config_convertor.py derive_max_model_len_and_key: the smallest one present).
POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                 "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len")


def vocab_fingerprint(directory: str) -> Optional[str]:
    """sha256 of a tokenizer's vocabulary (token → id, added tokens included) from the files in ``directory``:
    ``tokenizer.json``, else ``vocab.json`` (+ ``added_tokens.json``), else ``tokenizer.model``; None when there
    is none of them. Reads JSON, loads no tokenizer."""
    digest = hashlib.sha256()
    path = os.path.join(directory, "tokenizer.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        vocab = (spec.get("model") or {}).get("vocab")
        added = sorted((t.get("id"), t.get("content")) for t in spec.get("added_tokens") or [])
        digest.update(json.dumps([sorted(vocab.items()) if isinstance(vocab, dict) else vocab, added]).encode())
        return digest.hexdigest()
    path = os.path.join(directory, "vocab.json")
    if os.path.isfile(path):
        for name in ("vocab.json", "added_tokens.json"):
            if os.path.isfile(os.path.join(directory, name)):
                with open(os.path.join(directory, name), encoding="utf-8") as f:
                    digest.update(json.dumps(sorted(json.load(f).items())).encode())
        return digest.hexdigest()
    path = os.path.join(directory, "tokenizer.model")
    if os.path.isfile(path):
        with open(path, "rb") as f:
            digest.update(f.read())
        return digest.hexdigest()
    return None


def load_tokenizer(directory: str, trust_remote_code: bool = False):
    """The tokenizer in ``directory`` as verl loads it (``transformers.AutoTokenizer``), from local files only;
    loaded once per process while the directory's files stay the same."""
    stamp = tuple(sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(directory)
                         if e.is_file()))
    return _load_tokenizer(directory, trust_remote_code, stamp)


@functools.lru_cache(maxsize=4)
def _load_tokenizer(directory: str, trust_remote_code: bool, stamp: tuple):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory, local_files_only=True, trust_remote_code=trust_remote_code)


def _model_tokenizer(ctx: Context) -> tuple[Optional[str], Optional[str]]:
    """(key, path) of the model's tokenizer as verl loads it: model.tokenizer_path, else model.path."""
    for key in MODEL_TOKENIZER_KEYS:
        if ctx.get(key):
            return key, str(ctx.get(key))
    return None, None


def check_sspo_tokenizer(ctx: Context) -> None:
    """``policy_loss.tokenizer_path`` with a different vocabulary than the model's tokenizer → error naming both
    paths (``preflight.allow_tokenizer_mismatch=true`` for a deliberate choice)."""
    if ctx.get(f"{POLICY_LOSS}.loss_mode") != "sspo" or ctx.get("preflight.allow_tokenizer_mismatch", False):
        return
    sspo_path = ctx.get(f"{POLICY_LOSS}.tokenizer_path")
    model_key, model_path = _model_tokenizer(ctx)
    if not sspo_path or not model_path or str(sspo_path) == model_path:
        return
    sspo_dir, model_dir = local_model_dir(str(sspo_path)), local_model_dir(model_path)
    if sspo_dir is None or model_dir is None:
        return  # not here to read (remote, or a Hub id not cached): the files check reports what it can
    sspo_print, model_print = vocab_fingerprint(sspo_dir), vocab_fingerprint(model_dir)
    if sspo_print is None or model_print is None or sspo_print == model_print:
        return
    ctx.error(
        "tokenizer",
        f"{POLICY_LOSS}.tokenizer_path={sspo_path} has a different vocabulary than the model's tokenizer "
        f"({model_key}={model_path}): SSPO would read subsentence boundaries from the wrong token pieces and train "
        f"on wrong segments without a word. Leave {POLICY_LOSS}.tokenizer_path unset (the model's tokenizer), point "
        "it at the model's tokenizer, or set preflight.allow_tokenizer_mismatch=true if this is deliberate.",
    )


def _prompt_lengths_over(tokenizer, prompts, limit: int) -> list[tuple[int, int]]:
    """(row, tokens) of each chat prompt longer than ``limit`` tokens, as verl renders it (chat template with the
    generation prompt). A prompt whose rendered text has at most ``limit - 2`` bytes cannot exceed it (a token
    covers at least one byte; 2 for a BOS the tokenizer may add), so only longer ones are tokenized."""
    over = []
    for row, messages in enumerate(prompts):
        text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        if len(text.encode("utf-8")) <= limit - 2:
            continue
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if n > limit:
            over.append((row, n))
    return over


def check_prompt_lengths(ctx: Context) -> None:
    """With ``data.truncation=error`` and ``data.filter_overlong_prompts=false``: a prompt of a local data file
    longer than ``data.max_prompt_length`` tokens → error naming the file, the rows and the three ways out."""
    if not ctx.get("preflight.check_files", True) or ctx.report.errors:
        return
    if ctx.get("data.truncation", "error") != "error" or ctx.get("data.filter_overlong_prompts", False):
        return
    limit = ctx.get("data.max_prompt_length")
    _, tokenizer_path = _model_tokenizer(ctx)
    directory = local_model_dir(tokenizer_path)
    if not isinstance(limit, int) or directory is None or vocab_fingerprint(directory) is None:
        return  # no tokenizer here to count with (the files check reports a path that lacks one)
    import pyarrow.parquet as pq

    prompt_key = ctx.get("data.prompt_key", "prompt")
    tokenizer = None
    for key in ("data.train_files", "data.val_files"):
        value = ctx.get(key)
        for path in [str(v) for v in value] if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else (
            [str(value)] if value else []
        ):
            if path.startswith(REMOTE_PREFIXES) or not os.path.isfile(_local(path)):
                continue
            try:
                prompts = pq.read_table(_local(path), columns=[prompt_key]).column(prompt_key).to_pylist()
                if tokenizer is None:
                    tokenizer = load_tokenizer(directory, bool(ctx.get(f"{MODEL}.trust_remote_code", False)))
                over = _prompt_lengths_over(tokenizer, prompts, limit)
            except Exception as exc:  # a tokenizer without a chat template, prompts that are not chat lists, ...
                ctx.warning(
                    "prompt_length",
                    f"{key}: could not count the prompt tokens of {path} with the tokenizer at {directory} "
                    f"({type(exc).__name__}: {str(exc)[:160]}); prompts longer than data.max_prompt_length={limit} "
                    "would be left-truncated. Set data.filter_overlong_prompts=true to have verl drop them.",
                )
                return
            if not over:
                continue
            rows = ", ".join(f"row {r}: {n} tokens" for r, n in over[:3]) + (" ..." if len(over) > 3 else "")
            ctx.error(
                "prompt_length",
                f"{key}: {path} has {len(over)} prompt(s) longer than data.max_prompt_length={limit} tokens ({rows}) "
                "and data.truncation=error; verl's rollout would left-truncate them silently. Drop them with "
                "data.filter_overlong_prompts=true (verl filters them when it loads the data), rebuild the file "
                f"with `sspo-data ... --max-prompt-tokens {limit} --tokenizer {tokenizer_path}` (which reports what "
                "it drops), or raise data.max_prompt_length.",
            )


def _positive_int(value: Any) -> Optional[int]:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and value == int(value)
    return int(value) if ok else None


def position_limit(model_config: dict) -> tuple[Optional[int], str]:
    """(the longest sequence the model takes, the config.json key that sets it): the smallest of vLLM's length
    keys present (:data:`POSITION_KEYS`); (None, "") when there is none. RoPE scaling does not raise it: verl
    0.9.1's vLLM server caps ``max_model_len`` at ``max_position_embeddings`` and refuses a larger one
    (verl/workers/rollout/vllm_rollout/vllm_async_server.py ``_validate_configs``)."""
    found = [(n, key) for key in POSITION_KEYS if (n := _positive_int(model_config.get(key))) is not None]
    return min(found) if found else (None, "")


def _rope_note(model_config: dict) -> str:
    rope = model_config.get("rope_scaling") or model_config.get("rope_parameters") or {}
    factor = rope.get("factor") if isinstance(rope, dict) else None
    if isinstance(factor, (int, float)) and factor > 1:
        return (f" (its rope scaling factor {factor:g} does not extend this: verl 0.9.1's vLLM server caps "
                f"{ROLLOUT}.max_model_len at max_position_embeddings and refuses a larger value)")
    return ""


def _config_loads(ctx: Context, model_path: str, model_dir: str, file: str) -> bool:
    """Whether transformers' ``AutoConfig`` (what verl's HFModelConfig calls) loads the model's config.json: an
    unknown ``model_type`` (a model newer than this transformers) or a malformed field fails here, not in every Ray
    worker. With ``trust_remote_code=true`` it is not loaded (that would run the model's own code in the driver)."""
    if ctx.get(f"{MODEL}.trust_remote_code", False):
        logger.info("sspo-train pre-flight: %s not loaded with transformers (trust_remote_code=true)", file)
        return True
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except Exception as exc:  # ValueError (unknown model_type), OSError, TypeError from a config class
        ctx.error(
            "model_limits",
            f"{MODEL}.path={model_path}: transformers cannot load its config ({file}: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:240]}); verl would fail the same way in every Ray worker. Fix config.json "
            "(model_type names the architecture), or install the transformers version the model needs "
            "(or set trust_remote_code=true for a model that ships its own code).",
        )
        return False
    return True


def _check_lengths(ctx: Context, model_path: str, file: str, model_config: dict) -> None:
    limit, limit_key = position_limit(model_config)
    if limit is None:
        logger.info("sspo-train pre-flight: lengths not checked: %s has none of %s", file, ", ".join(POSITION_KEYS))
        return
    where = f"the model's {limit_key}={limit} ({file}){_rope_note(model_config)}"
    pairs = [("data.max_prompt_length", "data.max_response_length"),
             (f"{ROLLOUT}.prompt_length", f"{ROLLOUT}.response_length")]
    seen = set()
    for prompt_key, response_key in pairs:
        prompt, response = _positive_int(ctx.get(prompt_key)), _positive_int(ctx.get(response_key))
        if prompt is None or response is None or (prompt, response) in seen:
            continue  # not numbers (the schema check refuses them) or the same values checked already
        seen.add((prompt, response))
        if prompt + response > limit:
            ctx.error(
                "model_limits",
                f"{prompt_key}={prompt} + {response_key}={response} = {prompt + response} tokens exceeds {where}: "
                f"vLLM would cut each response at {limit} - prompt tokens without a word (or refuse to start), and "
                f"the model was never trained on positions past {limit}. Lower {response_key} to at most "
                f"{max(limit - prompt, 0)} (or {prompt_key}), or use a model with a longer context "
                f"({MODEL}.path={model_path}).",
            )
    max_model_len = _positive_int(ctx.get(f"{ROLLOUT}.max_model_len"))
    if max_model_len is not None and max_model_len > limit:
        ctx.error(
            "model_limits",
            f"{ROLLOUT}.max_model_len={max_model_len} exceeds {where}: verl's vLLM server refuses it inside a Ray "
            f"worker. Set {ROLLOUT}.max_model_len to at most {limit}, or leave it null (verl uses {limit}).",
        )


def _check_vocab(ctx: Context, key: str, path: str, directory: str, file: str, model_config: dict) -> None:
    vocab_size = _positive_int(model_config.get("vocab_size"))
    if vocab_size is None:
        return
    try:
        tokenizer = load_tokenizer(directory, bool(ctx.get(f"{MODEL}.trust_remote_code", False)))
    except Exception as exc:  # OSError, ValueError, json errors, a missing tokenizers backend, ...
        ctx.error(
            "model_limits",
            f"{key}={path}: transformers cannot load a tokenizer from {directory} ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}); verl would fail loading it in every Ray worker. Point {key} at a "
            "directory written by save_pretrained (tokenizer.json / tokenizer_config.json), or restore its files.",
        )
        return
    size = len(tokenizer)
    if size > vocab_size:
        ctx.error(
            "model_limits",
            f"{key}={path}: its tokenizer has {size} tokens (ids up to {size - 1}), more than the model's "
            f"vocab_size={vocab_size} ({file}): an id past the embedding table fails inside a Ray worker. Use the "
            f"model's own tokenizer ({MODEL}.tokenizer_path=null reads it from {MODEL}.path), or a model whose "
            "embeddings cover it.",
        )


def check_model_limits(ctx: Context) -> None:
    """With a readable config.json at ``actor_rollout_ref.model.path``: ``data.max_prompt_length +
    data.max_response_length`` (and the rollout's own lengths, ``rollout.max_model_len``) beyond the model's
    positions → error; the model's tokenizer (``tokenizer_path``, else ``path``; SSPO's
    ``policy_loss.tokenizer_path``) that transformers cannot load, or with more tokens than the model's
    ``vocab_size`` → error."""
    if not ctx.get("preflight.check_files", True):
        return
    model_path = ctx.get(f"{MODEL}.path")
    model_config, file = read_model_config(model_path)
    if model_config is None:  # remote, a Hub id not cached, or no readable config.json (the files check reports it)
        logger.info("sspo-train pre-flight: lengths and tokenizer not checked against the model: %s.path=%s",
                    MODEL, file)
        return
    model_dir = os.path.dirname(file)
    if isinstance(model_config.get("text_config"), dict):  # a multimodal model: its language model's limits
        model_config = {**model_config, **model_config["text_config"]}
    if not _config_loads(ctx, str(model_path), model_dir, file):
        return
    _check_lengths(ctx, str(model_path), file, model_config)
    checked = set()
    model_key, _ = _model_tokenizer(ctx)
    for key in (model_key, f"{POLICY_LOSS}.tokenizer_path"):
        path = ctx.get(key) if key else None
        if not isinstance(path, str) or not path or path.startswith(REMOTE_PREFIXES):
            continue
        directory = local_model_dir(path)
        if directory is None or directory in checked:
            continue
        checked.add(directory)
        if not any(os.path.isfile(os.path.join(directory, f)) for f in TOKENIZER_FILES):
            # the files check asks a model path for config.json only; a Hub id's missing files are downloaded
            if key == f"{MODEL}.path" and os.path.isdir(_local(path)):
                ctx.error(
                    "model_limits",
                    f"{key}={path} holds no tokenizer (none of {list(TOKENIZER_FILES)}) and {MODEL}.tokenizer_path "
                    f"is unset, so verl loads the tokenizer from it and fails in every Ray worker. Save the "
                    f"tokenizer into {directory} (tokenizer.save_pretrained), or set {MODEL}.tokenizer_path.",
                )
            continue
        _check_vocab(ctx, key, path, directory, file, model_config)
