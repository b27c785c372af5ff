"""Find the Hugging Face model to evaluate: an HF model directory, or a verl checkpoint merged by verl.

Accepted ``--model`` paths:
- an HF model directory (``config.json`` plus ``*.safetensors`` / ``pytorch_model*.bin``);
- a verl trainer checkpoint root (``latest_checkpointed_iteration.txt``: its latest step is used);
- ``global_step_N`` or ``global_step_N/actor``: if ``actor/huggingface/`` already holds weights
  (``checkpoint.save_contents`` included ``hf_model``) it is used as is; otherwise the FSDP shards
  (``model_world_size_W_rank_R.pt`` + ``fsdp_config.json``) are merged by verl's own
  ``python -m verl.model_merger merge --backend fsdp`` into ``merged_dir`` (reused on later runs).
Megatron checkpoints (``dist_ckpt``) need GPUs to merge: merge them with verl's merger and pass the result.

:func:`training_run` names the run a checkpoint belongs to (algorithm, seed, step) from the run directory's
``resolved_config.yaml`` (``<run dir>/checkpoints/global_step_N``, sspo-train's layout), read the way
``sspo-report`` reads it (:mod:`sspo_verl.report.runs`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MERGE_MARKER = ".sspo_merged_from.json"
WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")


class ModelSourceError(Exception):
    """The model path is neither an HF model nor a usable verl checkpoint; the message says what to pass."""


@dataclass(frozen=True)
class ResolvedModel:
    hf_path: str  # directory loadable by transformers / vLLM
    kind: str  # "hf", "verl-hf" (weights saved by verl), "verl-fsdp-merged"
    source: str  # what the user passed
    step: int | None = None  # verl global step, when known
    checkpoint: str | None = None  # absolute path of the verl checkpoint's global_step_N directory, if one


def has_weights(directory: Path) -> bool:
    return (directory / "config.json").is_file() and any(any(directory.glob(g)) for g in WEIGHT_GLOBS)


def _step_of(path: Path) -> int | None:
    for part in reversed(path.parts):
        match = re.fullmatch(r"global_step_(\d+)", part)
        if match:
            return int(match.group(1))
    return None


def _actor_dir(path: Path) -> Path | None:
    if (path / "latest_checkpointed_iteration.txt").is_file():
        text = (path / "latest_checkpointed_iteration.txt").read_text().strip()
        if not text.isdigit():
            raise ModelSourceError(f"{path}/latest_checkpointed_iteration.txt holds {text!r}, not a step number")
        path = path / f"global_step_{text}"
        if not path.is_dir():
            raise ModelSourceError(f"latest checkpoint {path} does not exist (deleted? pass a global_step_N dir)")
    if (path / "actor").is_dir():
        path = path / "actor"
    if (path / "fsdp_config.json").is_file() or any(path.glob("model_world_size_*_rank_*.pt")):
        return path
    if (path / "dist_ckpt").is_dir() or (path / "model" / "dist_ckpt").is_dir():
        raise ModelSourceError(
            f"{path} is a Megatron checkpoint; merge it first with `python -m verl.model_merger merge --backend "
            f"megatron --local_dir {path} --target_dir MERGED` (needs the Megatron stack) and pass MERGED"
        )
    if path.name == "actor" or _step_of(path) is not None:
        return path
    return None


RUN_KEYS = ("name", "algorithm", "seed", "step", "run_dir", "checkpoint")


def training_run(checkpoint: str | os.PathLike | None, step: int | None) -> dict:
    """``{name, algorithm, seed, step, run_dir, checkpoint}`` of the run that saved ``checkpoint``
    (a ``global_step_N`` directory): the first of its parent and grandparent holding ``resolved_config.yaml``,
    with the algorithm and seed ``sspo-report`` derives. Every value None for a plain HF model (no checkpoint);
    only ``step`` and ``checkpoint`` when no run directory is found (a checkpoint copied out of its run)."""
    from sspo_verl.report.runs import _identity, _read_config
    from sspo_verl.rundir import RECORD

    run = dict.fromkeys(RUN_KEYS)
    if checkpoint is None:
        return run
    checkpoint = Path(checkpoint).resolve()
    run.update(step=step, checkpoint=str(checkpoint))
    for run_dir in (checkpoint.parent, checkpoint.parent.parent):
        if (run_dir / RECORD).is_file():
            algorithm, seed, _ = _identity(run_dir.name, _read_config(str(run_dir)))
            run.update(name=run_dir.name, algorithm=algorithm, seed=seed, run_dir=str(run_dir))
            break
    return run


def checkpoint_stamp(checkpoint: str | os.PathLike | None) -> str | None:
    """Which save of a ``global_step_N`` directory this is (its inode and change time): a run trained again into
    the same directory (``sspo-train`` moves the earlier attempt to ``superseded/``) saves a new one, so an
    evaluation or a merge of the earlier weights is not taken for one of these."""
    if checkpoint is None:
        return None
    st = os.stat(checkpoint)
    return f"{st.st_ino}-{st.st_ctime_ns}"


def _checkpoint_dir(actor: Path) -> Path:
    """The ``global_step_N`` directory of an actor directory (itself when it is not named ``actor``)."""
    return actor.parent if actor.name == "actor" else actor


def locate_checkpoint(model: str) -> tuple[str | None, int | None]:
    """``(global_step_N directory, step)`` that ``model`` names, ``(None, None)`` for an HF model directory or a
    path that is neither (:func:`resolve_model` says what is wrong with it); nothing is merged or written."""
    path = Path(model).expanduser()
    if not path.exists() or has_weights(path):
        return None, None
    try:
        actor = _actor_dir(path)
    except ModelSourceError:
        return None, None
    if actor is None:
        return None, None
    return str(_checkpoint_dir(actor).resolve()), _step_of(actor)


def merge_fsdp_checkpoint(actor_dir: Path, target_dir: Path, timeout_s: float = 3600) -> None:
    """Run verl's model merger in a subprocess (its own process: it loads every shard into CPU memory)."""
    if not (actor_dir / "fsdp_config.json").is_file():
        raise ModelSourceError(f"{actor_dir}: no fsdp_config.json; not a complete verl FSDP checkpoint")
    if not (actor_dir / "huggingface" / "config.json").is_file():
        raise ModelSourceError(f"{actor_dir}/huggingface/config.json missing; verl's merger needs the saved HF config")
    tmp = target_dir.with_name(target_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
        "--local_dir", str(actor_dir), "--target_dir", str(tmp),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelSourceError(f"verl.model_merger did not finish within {timeout_s} s on {actor_dir}") from None
    if proc.returncode != 0 or not has_weights(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelSourceError(
            f"verl.model_merger failed on {actor_dir} (exit {proc.returncode}): the checkpoint is incomplete or "
            "corrupt (a run ended while saving?); evaluate another global_step_N of the run, or fix what the "
            f"merger says.\ncommand: {' '.join(cmd)}\nstderr (tail):\n{proc.stderr[-3000:]}"
        )
    (tmp / MERGE_MARKER).write_text(json.dumps({"actor_dir": str(actor_dir.resolve()),
                                                "stamp": checkpoint_stamp(_checkpoint_dir(actor_dir))}))
    if target_dir.is_dir():
        target_dir.rmdir()  # empty (checked by the caller)
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target_dir)


def check_safetensors(directory: str | os.PathLike) -> None:
    """Each ``*.safetensors`` file in ``directory`` is whole: its 8-byte header length, its JSON header, and the
    data its tensors' offsets span fit the file's size exactly (a truncated copy fails here in microseconds, not
    as a deserialisation traceback after the model started loading).

    Raises:
        ModelSourceError: the file that is truncated or corrupt, with what was expected.
    """
    import struct

    for path in sorted(Path(directory).glob("*.safetensors")):
        size = path.stat().st_size
        try:
            with open(path, "rb") as f:
                (header_len,) = struct.unpack("<Q", f.read(8))
                if header_len > size - 8:
                    raise ValueError(f"its header claims {header_len} bytes, the file has {size}")
                header = json.loads(f.read(header_len))
            ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
            expected = 8 + header_len + max(ends, default=0)
            if expected != size:
                raise ValueError(f"{size} bytes, its tensors need {expected}")
        except (struct.error, ValueError, KeyError, TypeError, IndexError) as exc:
            raise ModelSourceError(
                f"{path}: truncated or corrupt safetensors file ({exc}). Copy it again, or re-merge the checkpoint "
                "(remove the merged directory and rerun)."
            ) from None


def resolve_model(model: str, merged_dir: str | os.PathLike) -> ResolvedModel:
    """Resolve ``model`` to an HF directory, merging a verl FSDP checkpoint into ``merged_dir`` if needed.

    Raises:
        ModelSourceError: with what was found and what is expected.
    """
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelSourceError(
            f"--model {model!r} does not exist; pass an HF model directory or a verl checkpoint "
            "(checkpoint root, global_step_N or global_step_N/actor). Hub ids are not downloaded here."
        )
    if has_weights(path):
        check_safetensors(path)
        return ResolvedModel(str(path), "hf", model, _step_of(path))
    actor = _actor_dir(path)
    if actor is None:
        raise ModelSourceError(
            f"{path} is neither an HF model (config.json + *.safetensors/pytorch_model*.bin) nor a verl checkpoint "
            "(global_step_N/actor with model_world_size_*_rank_*.pt and fsdp_config.json)"
        )
    step = _step_of(actor)
    if has_weights(actor / "huggingface"):
        check_safetensors(actor / "huggingface")
        return ResolvedModel(str(actor / "huggingface"), "verl-hf", model, step, str(_checkpoint_dir(actor).resolve()))
    if not any(actor.glob("model_world_size_*_rank_*.pt")):
        raise ModelSourceError(f"{actor}: no model_world_size_*_rank_*.pt shards and no huggingface/ weights")
    target = Path(merged_dir)
    if target.is_dir() and any(target.iterdir()):
        marker = target / MERGE_MARKER
        recorded = json.loads(marker.read_text()) if marker.is_file() else {}
        source = recorded.get("actor_dir")
        same_save = recorded.get("stamp") == checkpoint_stamp(_checkpoint_dir(actor))
        if source == str(actor.resolve()) and same_save and has_weights(target):
            check_safetensors(target)
            # merged by an earlier run
            return ResolvedModel(str(target), "verl-fsdp-merged", model, step, str(_checkpoint_dir(actor).resolve()))
        raise ModelSourceError(
            f"merge target {target} is not empty and is not a merge of {actor} as saved now (it holds a merge of "
            f"{source}{'' if same_save else ', an earlier save'}); remove it or pass another --merged-dir"
        )
    merge_fsdp_checkpoint(actor, target)
    return ResolvedModel(str(target), "verl-fsdp-merged", model, step, str(_checkpoint_dir(actor).resolve()))
