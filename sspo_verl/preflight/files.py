"""File checks: the data files, a local model or tokenizer directory, and the reward function's module exist."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from omegaconf import ListConfig

from sspo_verl.preflight.context import Context

__all__ = ["REMOTE_PREFIXES", "check_files"]

# Paths verl copies from remote storage itself (verl.utils.fs): not checked here.
REMOTE_PREFIXES = ("hdfs://", "s3://", "gs://", "oss://", "http://", "https://")


def _as_paths(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (ListConfig, list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _looks_local(path: str) -> bool:
    return path.startswith(("/", "~", "./", "../", "file://")) or os.path.exists(path)


def check_files(ctx: Context) -> None:
    """data.train_files / data.val_files / a local model path / the reward module missing → error."""
    if not ctx.get("preflight.check_files", True):
        return
    data_dir = ctx.get("data_dir")
    setup_hint = ctx.get("preflight.setup_hint")  # e.g. model=tiny: the demo builds model and data
    for key in ("data.train_files", "data.val_files"):
        missing = [
            p for p in _as_paths(ctx.get(key))
            if not p.startswith(REMOTE_PREFIXES) and not os.path.exists(os.path.expanduser(p.removeprefix("file://")))
        ]
        for path in missing:
            ctx.error(
                "files",
                f"{key}: {path} does not exist. Build it with `{setup_hint}`, or set {key} to your verl parquet "
                "file(s)." if setup_hint else
                f"{key}: {path} does not exist. Build the data sets with `sspo-data prepare-all --out-dir "
                f"{data_dir or '<data_dir>'}` (data_dir=... or SSPO_DATA_DIR points the configs elsewhere), or set "
                f"{key} to your verl parquet file(s).",
            )
    for key in ("actor_rollout_ref.model.path", "actor_rollout_ref.model.tokenizer_path"):
        path = ctx.get(key)
        if isinstance(path, str) and path and _looks_local(path) and not path.startswith(REMOTE_PREFIXES):
            if not os.path.exists(os.path.expanduser(path.removeprefix("file://"))):
                ctx.error(
                    "files",
                    f"{key}={path}: no such directory. Build it with `{setup_hint}`." if setup_hint else
                    f"{key}={path}: no such directory. Point it at a Hugging Face model directory or a hub id "
                    "such as Qwen/Qwen2.5-Math-1.5B (model=qwen2.5-math-1.5b).",
                )
    reward_path = ctx.get("reward.custom_reward_function.path")
    if reward_path:
        if reward_path.startswith("pkg://"):
            module = reward_path[len("pkg://"):].replace("/", ".")
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                ctx.error(
                    "files",
                    f"reward.custom_reward_function.path={reward_path}: module {module!r} cannot be imported here. "
                    "Install the package that provides it, or set reward.custom_reward_function.path to a .py file "
                    "(null: verl's default_compute_score).",
                )
        elif not os.path.exists(os.path.expanduser(reward_path.removeprefix("file://"))):
            ctx.error(
                "files",
                f"reward.custom_reward_function.path={reward_path}: no such file. Point it at the .py file that "
                "defines reward.custom_reward_function.name, or use pkg://sspo_verl.reward.math_reward.",
            )
