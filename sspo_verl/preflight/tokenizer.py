"""Tokenizer checks: SSPO's tokenizer is the model's (its subsentence boundaries are read from the vocabulary),
and no prompt is longer than ``data.max_prompt_length`` when the config says not to truncate.

verl's V1 agent loop left-truncates an over-long prompt with a log line in a worker, whatever
``data.truncation`` says; only ``data.filter_overlong_prompts=true`` (verl drops them when it loads the data)
keeps them out. So with ``truncation=error`` and no filter, the pre-flight reads the prompts and refuses.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional

from sspo_verl.preflight.context import POLICY_LOSS, Context
from sspo_verl.preflight.files import REMOTE_PREFIXES, _as_paths, _local, local_model_dir

__all__ = ["check_prompt_lengths", "check_sspo_tokenizer", "vocab_fingerprint"]

MODEL_TOKENIZER_KEYS = ("actor_rollout_ref.model.tokenizer_path", "actor_rollout_ref.model.path")


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
    from transformers import AutoTokenizer

    prompt_key = ctx.get("data.prompt_key", "prompt")
    tokenizer = None
    for key in ("data.train_files", "data.val_files"):
        for path in _as_paths(ctx.get(key)):
            if path.startswith(REMOTE_PREFIXES) or not os.path.isfile(_local(path)):
                continue
            try:
                prompts = pq.read_table(_local(path), columns=[prompt_key]).column(prompt_key).to_pylist()
                if tokenizer is None:
                    tokenizer = AutoTokenizer.from_pretrained(directory)
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
