"""File checks: the data files are verl parquet with the columns verl reads, the model and tokenizer paths hold
what verl loads (a local directory, or a Hub id already in the local Hugging Face cache), and the reward
function's module exists and defines the function (read, not imported: no user code runs in the driver)."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
from typing import Any, Optional

from omegaconf import ListConfig

from sspo_verl.preflight.context import POLICY_LOSS, Context

__all__ = [
    "MODEL_FILES",
    "REMOTE_PREFIXES",
    "TOKENIZER_FILES",
    "check_files",
    "hub_cache_dir",
    "is_hub_id",
    "local_model_dir",
]

# Paths verl copies from remote storage itself (verl.utils.fs): not checked here.
REMOTE_PREFIXES = ("hdfs://", "s3://", "gs://", "oss://", "http://", "https://")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# What verl loads from a model directory: the config, and a tokenizer (verl.utils.hf_tokenizer).
MODEL_FILES = ("config.json",)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
MODEL_KEYS = ("actor_rollout_ref.model.path", "actor_rollout_ref.model.tokenizer_path", f"{POLICY_LOSS}.tokenizer_path")


def _as_paths(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (ListConfig, list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _looks_local(path: str) -> bool:
    return path.startswith(("/", "~", "./", "../", "file://")) or os.path.exists(path)


def _local(path: str) -> str:
    return os.path.expanduser(path.removeprefix("file://"))


def hub_cache_dir() -> str:
    """The Hugging Face hub cache as transformers in verl's workers will see it (read at call time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.join(home, "hub")


def is_hub_id(path: str) -> bool:
    """Whether a model path is a Hub id (``org/name``, not a local path)."""
    return not _looks_local(path) and bool(_HUB_ID.match(path))


def local_model_dir(path: Optional[str]) -> Optional[str]:
    """The local directory a model / tokenizer path resolves to: the path itself when it is a directory, the
    cached snapshot for a Hub id in the local Hugging Face cache, else None."""
    if not path or path.startswith(REMOTE_PREFIXES):
        return None
    if os.path.isdir(_local(path)):
        return _local(path)
    if _HUB_ID.match(path):
        from huggingface_hub import try_to_load_from_cache

        for name in MODEL_FILES + TOKENIZER_FILES:
            found = try_to_load_from_cache(path, name, cache_dir=hub_cache_dir())
            if isinstance(found, str):
                return os.path.dirname(found)
    return None


def _check_data_file(ctx: Context, key: str, path: str) -> None:
    """A local data file that exists: parquet, with the columns verl's dataset and reward read."""
    import pyarrow.parquet as pq

    from sspo_verl.data.prepare import REQUIRED_COLUMNS

    prompt_key = ctx.get("data.prompt_key", "prompt")
    try:
        schema = pq.read_schema(_local(path))
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError with its own text
        ctx.error(
            "files",
            f"{key}: {path} is not a readable parquet file ({type(exc).__name__}: {str(exc).strip()[:200]}). verl "
            "reads parquet only: convert it with `sspo-data prepare <dataset> --input <file> --out <file>.parquet`.",
        )
        return
    needed = [prompt_key, *(c for c in REQUIRED_COLUMNS if c != "prompt")]
    missing = [c for c in needed if c not in schema.names]
    if missing:
        ctx.error(
            "files",
            f"{key}: {path} lacks the column(s) {missing} that verl reads (data.prompt_key={prompt_key!r}, "
            f"data_source, reward_model.ground_truth); it has {schema.names}. Build the file with sspo-data, or set "
            "data.prompt_key to the column holding the chat prompts.",
        )


def _check_data(ctx: Context, setup_hint: Optional[str]) -> None:
    data_dir = ctx.get("data_dir")
    for key in ("data.train_files", "data.val_files"):
        for path in _as_paths(ctx.get(key)):
            if path.startswith(REMOTE_PREFIXES):
                continue
            if os.path.exists(_local(path)):
                _check_data_file(ctx, key, path)
                continue
            ctx.error(
                "files",
                f"{key}: {path} does not exist. Build it with `{setup_hint}`, or set {key} to your verl parquet "
                "file(s)." if setup_hint else
                f"{key}: {path} does not exist. Build the data sets with `sspo-data prepare-all --out-dir "
                f"{data_dir or '<data_dir>'}` (data_dir=... or SSPO_DATA_DIR points the configs elsewhere), or set "
                f"{key} to your verl parquet file(s).",
            )


def _check_model_path(ctx: Context, key: str, path: str, setup_hint: Optional[str]) -> None:
    if path.startswith(REMOTE_PREFIXES):
        return
    if _looks_local(path):
        directory = _local(path)
        if not os.path.exists(directory):
            ctx.error(
                "files",
                f"{key}={path}: no such directory. Build it with `{setup_hint}`." if setup_hint else
                f"{key}={path}: no such directory. Point it at a Hugging Face model directory (one holding "
                "config.json and the tokenizer files), or at a Hub id in the local cache.",
            )
            return
        wanted = TOKENIZER_FILES if key.endswith("tokenizer_path") else MODEL_FILES
        if not os.path.isdir(directory) or not any(os.path.isfile(os.path.join(directory, f)) for f in wanted):
            ctx.error(
                "files",
                f"{key}={path} is not a Hugging Face model directory: it has none of {list(wanted)}, which verl "
                "loads. Point it at the directory written by save_pretrained / `huggingface-cli download`.",
            )
        return
    if local_model_dir(path) is not None or ctx.get("preflight.allow_hub_download", False):
        return
    ctx.error(
        "files",
        f"{key}={path} is neither a local directory nor a Hub id in the local Hugging Face cache "
        f"({hub_cache_dir()}): every Ray worker would try to download it at start-up, and fail minutes later where "
        f"there is no network. Download it once (`huggingface-cli download {path}`, on shared storage for a "
        f"cluster: `--local-dir DIR` then {key}=DIR), or set preflight.allow_hub_download=true to let verl fetch it.",
    )


def _defines(source_file: str, name: str) -> Optional[bool]:
    """Whether a Python file defines ``name`` at top level (a def, class or assignment); None: unreadable."""
    try:
        with open(source_file, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=source_file)
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and any(
            isinstance(t, ast.Name) and t.id == name for t in targets
        ):
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
            (a.asname or a.name.split(".")[0]) == name for a in node.names
        ):
            return True
    return False


def _check_reward(ctx: Context) -> None:
    reward_path = ctx.get("reward.custom_reward_function.path")
    if not reward_path:
        return
    name = ctx.get("reward.custom_reward_function.name") or "compute_score"
    if reward_path.startswith("pkg://"):
        module = reward_path[len("pkg://"):].replace("/", ".")
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            ctx.error(
                "files",
                f"reward.custom_reward_function.path={reward_path}: module {module!r} cannot be imported here. "
                "Install the package that provides it, or set reward.custom_reward_function.path to a .py file "
                "(null: verl's default_compute_score).",
            )
            return
        source_file = spec.origin
    else:
        source_file = _local(reward_path)
        if not os.path.exists(source_file):
            ctx.error(
                "files",
                f"reward.custom_reward_function.path={reward_path}: no such file. Point it at the .py file that "
                "defines reward.custom_reward_function.name, or use pkg://sspo_verl.reward.math_reward.",
            )
            return
    if source_file and source_file.endswith(".py") and _defines(source_file, name) is False:
        ctx.error(
            "files",
            f"reward.custom_reward_function.name={name!r} is not defined in {reward_path} ({source_file}). Set "
            "reward.custom_reward_function.name to the function that computes the score (sspo-verl's: "
            "compute_score).",
        )


def _check_writable(ctx: Context, key: str) -> None:
    """``key`` names a directory sspo-train or verl will write: it, or its nearest existing parent, must be a
    writable directory (else verl or Hydra raise a traceback later)."""
    path = ctx.get(key)
    if not isinstance(path, str) or not path or path.startswith(REMOTE_PREFIXES):
        return
    probe = os.path.abspath(_local(path))
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        ctx.error("files", f"{key}={path}: {probe} is a file, not a directory. Point {key} at a directory "
                           "(SSPO_OUTPUT_DIR moves output_dir).")
    elif not os.access(probe, os.W_OK | os.X_OK):
        ctx.error("files", f"{key}={path}: {probe} is not writable by this user. Point {key} at a writable "
                           "directory (SSPO_OUTPUT_DIR moves output_dir), or fix its permissions.")


def check_files(ctx: Context) -> None:
    """Data files missing, not parquet or without verl's columns; model / tokenizer paths that are neither a
    model directory nor a cached Hub id; the reward module or function missing; an output directory that is a
    file or not writable → error."""
    if not ctx.get("preflight.check_files", True):
        return
    setup_hint = ctx.get("preflight.setup_hint")  # e.g. model=tiny: the demo builds model and data
    _check_data(ctx, setup_hint)
    for key in MODEL_KEYS:
        path = ctx.get(key)
        if isinstance(path, str) and path:
            _check_model_path(ctx, key, path, setup_hint)
    _check_reward(ctx)
    for key in ("output_dir", "trainer.default_local_dir"):
        _check_writable(ctx, key)
