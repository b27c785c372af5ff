"""Path checks: every path-valued key of the resolved config names something that exists and loads (read here,
nothing imported or written), and every directory the run writes into can be created.

A key is a path key when its name says so: ``path`` or ``file`` or a name ending in ``_path``, ``_file``,
``_files`` or ``_dir`` (verl's dataclasses type their paths as plain ``str``; the names are what tells them
apart), at any depth, with a value that is not null. Nothing lists the keys: a ``*_path`` key added to verl's
config or ours is checked without new code. Not checked: remote URLs (``hdfs://``, ``s3://``, ...; verl copies
them itself); keys in a part of the config that is switched off (a section whose ``enable``/``enabled`` is false
or whose profiler ``tool`` is null, the critic when verl's ``need_critic`` says no, ``trainer.resume_from_path``
unless ``trainer.resume_mode=resume_path``); a key other path keys are built from (``${output_dir}``), checked
through them; and sspo-train's own top-level knobs (``data_dir``, ``output_dir``: verl ignores them), which matter
only through the keys built from them (Hydra itself creates the run directory under ``output_dir`` at launch).

A key is written (an output) when its name says so: ``*_dir``, or ``save``, ``dump``, ``output`` or ``timeline``
in it, or a bare ``file`` (vLLM's Prometheus file): its nearest existing ancestor must be a writable directory.
Every other path key is read (an input) and must exist and load, by what it is:

- data files (``data.*_files``): parquet whose schema (not the rows) pyarrow reads, with the columns verl reads;
- model paths (``path`` under a ``model`` section, ``model_path``, ``hf_config_path``): a directory whose
  ``config.json`` parses, or a Hub id in the local Hugging Face cache; tokenizer paths (``*tokenizer*``): a
  directory holding tokenizer files (``sspo_verl.preflight.tokenizer`` then loads it with transformers);
- code (a ``path`` next to a ``name``: the reward function, verl's custom sampler / dataset / reward manager):
  a ``.py`` file or ``pkg://`` module whose source compiles (``compile``, never run) and defines ``name`` at top
  level (``ast``); no user code runs in the driver;
- a checkpoint to resume from (``*resume*``): verl's ``global_step_<N>`` directory with ``actor/`` inside;
- any other file by its suffix: ``.parquet`` (schema), ``.py`` (compiles), ``.json`` and ``.yaml`` (parse).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import os
import re
from typing import Any, Optional

from omegaconf import OmegaConf

from sspo_verl.preflight.context import Context

__all__ = [
    "MODEL_FILES",
    "REMOTE_PREFIXES",
    "TOKENIZER_FILES",
    "PathKey",
    "check_files",
    "hub_cache_dir",
    "is_hub_id",
    "local_model_dir",
    "model_path_keys",
    "path_keys",
    "read_model_config",
]

# Paths verl copies from remote storage itself (verl.utils.fs): not checked here.
REMOTE_PREFIXES = ("hdfs://", "s3://", "gs://", "oss://", "http://", "https://")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# What verl loads from a model directory: the config, and a tokenizer (verl.utils.hf_tokenizer).
MODEL_FILES = ("config.json",)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")

_PATH_NAME = re.compile(r"(^|_)(path|file|files|dir)$")
_WRITTEN_NAME = re.compile(r"_dir$|save|dump|output|timeline|^file$")
_REFERENCE = re.compile(r"\$\{(?:oc\.select:)?\s*([A-Za-z_][\w.]*)")
_FILES = "files"


@dataclasses.dataclass(frozen=True)
class PathKey:
    """One path-valued key of the resolved config.

    Attributes:
        key: the dotted key.
        value: its resolved value (a list of paths for ``*_files``).
        written: whether the run writes there (else it reads it).
        kind: ``data``, ``model``, ``tokenizer``, ``code`` (a ``path`` next to a ``name``), ``checkpoint`` or
            ``file``, from the key's name and its section.
        bases: the path keys its value is built from (``${output_dir}``), with their values, for messages.
    """

    key: str
    value: Any
    written: bool
    kind: str
    bases: tuple[tuple[str, Any], ...] = ()

    @property
    def paths(self) -> list[str]:
        """The value as a list of path strings."""
        if isinstance(self.value, (list, tuple)):
            return [str(v) for v in self.value]
        return [str(self.value)]


def _kind(parts: list[str], section: dict) -> str:
    name, parent = parts[-1], (parts[-2] if len(parts) > 1 else "")
    if "tokenizer" in name:
        return "tokenizer"
    if "resume" in name:
        return "checkpoint"
    if name == "path" and "name" in section:
        return "code"
    if name in ("model_path", "hf_config_path") or (name == "path" and parent.endswith("model")):
        return "model"
    if name.endswith(_FILES) and parts[0] == "data":
        return "data"
    return "file"


def _switched_off(ctx: Context, prefix: str, section: dict) -> bool:
    """Whether the config section at ``prefix`` is unused by this run, as the section itself says."""
    for flag in ("enable", "enabled"):
        if flag in section and _resolved(ctx, f"{prefix}.{flag}") is False:
            return True
    if "tool" in section and section.get("_target_", "").endswith("ProfilerConfig") and _resolved(
        ctx, f"{prefix}.tool"
    ) is None:
        return True
    if prefix == "critic" and section.get("enable") is None:
        import warnings

        from verl.trainer.ppo.utils import need_critic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # verl warns "Disabled critic as ..." each time it is asked
            try:
                return not need_critic(ctx.config)
            except Exception:  # a config verl cannot read: the schema / verl checks report it
                return False
    return False


def _resolved(ctx: Context, key: str) -> Any:
    """The resolved value at ``key``; ``...`` (Ellipsis) when it cannot be resolved (the schema check reports it)."""
    try:
        value = OmegaConf.select(ctx.config, key, throw_on_resolution_failure=True, throw_on_missing=True)
    except Exception:
        return ...
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _is_path_value(value: Any) -> bool:
    """A string or a list of strings, not Hydra's ``???`` (missing): what a path key holds when it is set."""
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, str) for v in value)
    return isinstance(value, str) and value not in ("", "???")


def path_keys(ctx: Context) -> list[PathKey]:
    """Every path key of the config that this run reads or writes (see the module docstring for the rules)."""
    raw = OmegaConf.to_container(ctx.config, resolve=False, throw_on_missing=False)
    found: list[tuple[list[str], Any, dict]] = []

    def walk(node: dict, parts: list[str]) -> None:
        if parts and _switched_off(ctx, ".".join(parts), node):
            return
        for name, value in node.items():
            if not isinstance(name, str):
                continue
            if isinstance(value, dict):
                walk(value, [*parts, name])
            elif _PATH_NAME.search(name) and _is_path_value(value):
                found.append(([*parts, name], value, node))

    walk(raw, [])
    raw_values = {".".join(parts): value for parts, value, _ in found}
    references = {
        ref: key
        for key, value in raw_values.items()
        for text in (value if isinstance(value, list) else [value])
        if isinstance(text, str)
        for ref in _REFERENCE.findall(text)
        if ref in raw_values and ref != key
    }
    resume_mode = _resolved(ctx, "trainer.resume_mode")
    keys = []
    for parts, _, section in found:
        key = ".".join(parts)
        if key in references or len(parts) == 1:  # checked through the keys built from it
            continue
        kind = _kind(parts, section)
        if kind == "checkpoint" and resume_mode != "resume_path":
            continue  # verl reads trainer.resume_from_path only with resume_mode=resume_path
        value = _resolved(ctx, key)
        if value is ... or value is None or value == "" or value == []:
            continue
        bases = tuple(
            (ref, _resolved(ctx, ref))
            for ref in _REFERENCE.findall(json.dumps(raw_values[key]))
            if ref in raw_values and ref != key
        )
        keys.append(PathKey(key, value, bool(_WRITTEN_NAME.search(parts[-1])), kind, bases))
    return keys


def model_path_keys(ctx: Context) -> dict[str, str]:
    """The model and tokenizer paths of the config (key -> value) that this run loads."""
    return {
        pk.key: str(pk.value) for pk in path_keys(ctx) if pk.kind in ("model", "tokenizer") and not pk.written
    }


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


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def read_model_config(path: Optional[str]) -> tuple[Optional[dict], str]:
    """A model path's config.json (a local directory, or a Hub id in the local cache) and the file it was read
    from; ``(None, why)`` when there is none to read (:func:`check_files` reports a broken one, naming the key)."""
    directory = local_model_dir(path) if isinstance(path, str) else None
    if directory is None:
        return None, f"{path!r} is not a local directory or a cached Hub id"
    file = os.path.join(directory, "config.json")
    try:
        with open(file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        return None, f"{file} is not readable JSON ({_short(exc)})"
    return (data, file) if isinstance(data, dict) else (None, f"{file} is not a JSON object")


def _check_parquet(ctx: Context, pk: PathKey, path: str) -> None:
    """A parquet file whose schema pyarrow reads (the footer, not the rows); a data file has verl's columns."""
    import pyarrow.parquet as pq

    from sspo_verl.data.prepare import REQUIRED_COLUMNS

    try:
        schema = pq.read_schema(_local(path))
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError with its own text
        ctx.error(
            "files",
            f"{pk.key}: {path} is not a readable parquet file ({_short(exc)}). verl reads parquet only: convert it "
            "with `sspo-data prepare <dataset> --input <file> --out <file>.parquet`, or rebuild a truncated file.",
        )
        return
    if pk.kind != "data":
        return
    prompt_key = ctx.get("data.prompt_key", "prompt")
    needed = [prompt_key, *(c for c in REQUIRED_COLUMNS if c != "prompt")]
    missing = [c for c in needed if c not in schema.names]
    if missing:
        ctx.error(
            "files",
            f"{pk.key}: {path} lacks the column(s) {missing} that verl reads (data.prompt_key={prompt_key!r}, "
            f"data_source, reward_model.ground_truth); it has {schema.names}. Build the file with sspo-data, or set "
            "data.prompt_key to the column holding the chat prompts.",
        )


def _check_missing_data(ctx: Context, pk: PathKey, path: str) -> None:
    setup_hint = ctx.get("preflight.setup_hint")
    data_dir = ctx.get("data_dir")
    ctx.error(
        "files",
        f"{pk.key}: {path} does not exist. Build it with `{setup_hint}`, or set {pk.key} to your verl parquet "
        "file(s)." if setup_hint else
        f"{pk.key}: {path} does not exist. Build the data sets with `sspo-data prepare-all --out-dir "
        f"{data_dir or '<data_dir>'}` (data_dir=... or SSPO_DATA_DIR points the configs elsewhere), or set "
        f"{pk.key} to your verl parquet file(s).",
    )


def _check_model_path(ctx: Context, pk: PathKey, path: str) -> None:
    """A model / tokenizer path: a local directory holding what verl loads (a parseable config.json, tokenizer
    files), or a Hub id in the local Hugging Face cache."""
    key, setup_hint = pk.key, ctx.get("preflight.setup_hint")
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
        wanted = TOKENIZER_FILES if pk.kind == "tokenizer" else MODEL_FILES
        if not os.path.isdir(directory) or not any(os.path.isfile(os.path.join(directory, f)) for f in wanted):
            ctx.error(
                "files",
                f"{key}={path} is not a Hugging Face {'tokenizer' if pk.kind == 'tokenizer' else 'model'} directory: "
                f"it has none of {list(wanted)}, which verl loads. Point it at the directory written by "
                "save_pretrained / `huggingface-cli download`.",
            )
            return
    elif local_model_dir(path) is None:
        if ctx.get("preflight.allow_hub_download", False):
            return
        ctx.error(
            "files",
            f"{key}={path} is neither a local directory nor a Hub id in the local Hugging Face cache "
            f"({hub_cache_dir()}): every Ray worker would try to download it at start-up, and fail minutes later "
            f"where there is no network. Download it once (`huggingface-cli download {path}`, on shared storage for "
            f"a cluster: `--local-dir DIR` then {key}=DIR), or set preflight.allow_hub_download=true to let verl "
            "fetch it.",
        )
        return
    if pk.kind == "model":
        file = os.path.join(local_model_dir(path) or _local(path), "config.json")
        if os.path.isfile(file):
            _check_json(ctx, pk, file, what=f"{key}={path}: its config.json")


def _check_json(ctx: Context, pk: PathKey, file: str, *, what: Optional[str] = None) -> None:
    try:
        with open(file, encoding="utf-8") as f:
            json.load(f)
    except (OSError, ValueError) as exc:
        ctx.error("files", f"{what or f'{pk.key}: {file}'} is not readable JSON ({_short(exc)}): {file} is corrupt "
                           f"or truncated. Restore the file (download it again), or point {pk.key} elsewhere.")


def _check_yaml(ctx: Context, pk: PathKey, file: str) -> None:
    import yaml

    try:
        with open(file, encoding="utf-8") as f:
            yaml.safe_load(f)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        ctx.error("files", f"{pk.key}: {file} is not readable YAML ({_short(exc)}). Fix the file, or point {pk.key} "
                           "elsewhere.")


def _compiles(ctx: Context, pk: PathKey, path: str, source_file: str) -> Optional[ast.Module]:
    """The module's syntax tree if its source compiles (``compile``: nothing runs, no .pyc written), else an error."""
    try:
        with open(source_file, encoding="utf-8") as f:
            source = f.read()
        compile(source, source_file, "exec", dont_inherit=True)
        return ast.parse(source, filename=source_file)
    except (OSError, SyntaxError, ValueError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        ctx.error("files", f"{pk.key}={path}: {source_file} does not compile{where}: {_short(exc)}. verl would fail "
                           f"importing it inside a Ray worker; fix the file, or point {pk.key} elsewhere.")
        return None


def _defines(tree: ast.Module, name: str) -> bool:
    """Whether a module defines ``name`` at top level (a def, class, assignment or import)."""
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


def _check_code(ctx: Context, pk: PathKey, path: str) -> None:
    """A ``path`` + ``name`` pair verl imports (``pkg://a.b`` or a .py file): the source compiles and defines
    ``name`` at top level. Read, never imported: a module's own code does not run in the driver."""
    section = pk.key.rsplit(".", 1)[0]
    if path.startswith("pkg://"):
        module = path[len("pkg://"):].replace("/", ".")
        try:
            spec = importlib.util.find_spec(module)  # imports the parent packages (installed code), not the module
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            ctx.error(
                "files",
                f"{pk.key}={path}: module {module!r} cannot be imported here. Install the package that provides it, "
                f"or set {pk.key} to a .py file (null: verl's default).",
            )
            return
        source_file = spec.origin
    else:
        source_file = path.removeprefix("file://")  # verl's load_module: no ~ expansion
        if source_file.startswith("~"):
            ctx.error("files", f"{pk.key}={path}: verl opens this path as written and does not expand '~'. Write it "
                               f"out: {pk.key}={os.path.expanduser(source_file)}.")
            return
        if not os.path.isfile(source_file):
            ctx.error(
                "files",
                f"{pk.key}={path}: no such file. Point it at the .py file that defines {section}.name"
                + (", or use pkg://sspo_verl.reward.math_reward." if "reward" in section else "."),
            )
            return
    if not source_file:
        return  # a namespace package: nothing to read
    if not source_file.endswith(".py"):
        if not path.startswith("pkg://"):  # verl imports a file path with spec_from_file_location: .py only
            ctx.error("files", f"{pk.key}={path}: not a .py file, so verl cannot import it. Point it at the Python "
                               f"file that defines {section}.name.")
        return  # pkg:// of an extension module: importable, but not readable here
    tree = _compiles(ctx, pk, path, source_file)
    name = ctx.get(f"{section}.name")
    if tree is not None and isinstance(name, str) and name and not _defines(tree, name):
        ctx.error(
            "files",
            f"{section}.name={name!r} is not defined in {path} ({source_file}). Set {section}.name to a function or "
            "class the module defines at top level"
            + (" (sspo-verl's reward: compute_score)." if "reward" in section else "."),
        )


def _check_checkpoint(ctx: Context, pk: PathKey, path: Optional[str]) -> None:
    """``trainer.resume_from_path`` with resume_mode=resume_path: verl parses the step from the text after the
    last ``global_step_`` and loads ``<path>/actor`` (and ``<path>/critic`` with a critic)."""
    directory = os.path.abspath(_local(path)) if path else ""  # verl joins a relative path with the working dir
    step = path.split("global_step_")[-1] if path and "global_step_" in path else None
    problem = None
    if step is None or not step.isdigit():
        problem = "verl needs the path of a global_step_<N> directory (it reads the step N from the name)"
    elif not os.path.isdir(directory):
        problem = "no such directory"
    elif not os.path.isdir(os.path.join(directory, "actor")):
        problem = "it has no actor/ directory, so it is not a checkpoint verl wrote"
    if problem:
        ctx.error(
            "files",
            f"{pk.key}={path} with trainer.resume_mode=resume_path: {problem}. Point it at a checkpoint such as "
            "<run dir>/checkpoints/global_step_<N> (no trailing slash), or set trainer.resume_mode=auto to resume "
            "from the run's latest checkpoint.",
        )


def _check_input(ctx: Context, pk: PathKey, path: str) -> None:
    if path.startswith(REMOTE_PREFIXES):
        return
    if pk.kind in ("model", "tokenizer"):
        _check_model_path(ctx, pk, path)
        return
    if pk.kind == "code":
        _check_code(ctx, pk, path)
        return
    if pk.kind == "checkpoint":
        _check_checkpoint(ctx, pk, path)
        return
    local = _local(path)
    if not os.path.exists(local):
        if pk.kind == "data":
            _check_missing_data(ctx, pk, path)
        else:
            origin = "".join(f" (its value comes from {k}={v})" for k, v in pk.bases)
            ctx.error("files", f"{pk.key}={path}{origin}: no such file or directory. Fix the path, or set {pk.key}=null"
                               f"{' (or ' + pk.bases[0][0] + '=null)' if pk.bases else ''}.")
        return
    if pk.kind == "data" or local.endswith(".parquet"):
        _check_parquet(ctx, pk, path)
    elif local.endswith(".py"):
        _compiles(ctx, pk, path, local)
    elif local.endswith(".json"):
        _check_json(ctx, pk, local)
    elif local.endswith((".yaml", ".yml")):
        _check_yaml(ctx, pk, local)


def _check_writable(ctx: Context, pk: PathKey, path: str) -> None:
    """A directory the run writes into: it, or its nearest existing ancestor, must be a writable directory (else
    verl or Hydra raise a traceback later)."""
    if path.startswith(REMOTE_PREFIXES):
        return
    probe = os.path.abspath(_local(path))
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    built = "".join(f"; it is built from {k}={v}" for k, v in pk.bases)
    moves = " (SSPO_OUTPUT_DIR moves output_dir)" if any(k == "output_dir" for k, _ in pk.bases) or \
        pk.key == "output_dir" else ""
    if not os.path.isdir(probe):
        ctx.error("files", f"{pk.key}={path}: {probe} is a file, not a directory{built}. Point {pk.key} at a "
                           f"directory{moves}.")
    elif not os.access(probe, os.W_OK | os.X_OK):
        ctx.error("files", f"{pk.key}={path}: {probe} is not writable by this user{built}. Point {pk.key} at a "
                           f"writable directory{moves}, or fix its permissions.")


def check_files(ctx: Context) -> None:
    """Every path key (:func:`path_keys`): an input that does not exist or does not load, an output whose nearest
    existing ancestor is a file or not writable → error naming the key, the value and the fix."""
    if not ctx.get("preflight.check_files", True):
        return
    if ctx.get("trainer.resume_mode") == "resume_path" and not ctx.get("trainer.resume_from_path"):
        _check_checkpoint(ctx, PathKey("trainer.resume_from_path", None, False, "checkpoint"), None)
    for pk in path_keys(ctx):
        for path in pk.paths:
            if pk.written:
                _check_writable(ctx, pk, path)
            else:
                _check_input(ctx, pk, path)
