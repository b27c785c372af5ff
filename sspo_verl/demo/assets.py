"""The embedded default on disk: the tiny model + tokenizer and the task's parquet files, from a seed.

Layout of ``tiny_dir`` (what ``model=tiny`` reads through ``SSPO_TINY_DIR``)::

    model/              tokenizer + random-weight Qwen2 (sspo_verl.demo.tiny_model.build_tiny_model)
    data/train.parquet  sspo_verl.data.tiny_task.write_dataset
    data/val.parquet
    data/tiny_eval.parquet  the held-out evaluation split (``sspo-eval --benchmarks tiny_eval --data-dir data``)
    BUILD.json          what was built (seed, sizes); a rebuild happens only when it differs
"""

from __future__ import annotations

import json
import os
import shutil

__all__ = ["DEFAULT_TINY_DIR", "build_assets"]

DEFAULT_TINY_DIR = os.path.join("runs", "tiny")
_STAMP = "BUILD.json"


def build_assets(
    tiny_dir: str = DEFAULT_TINY_DIR, seed: int = 0, n_train: int = 512, n_val: int = 32, n_eval: int = 64
) -> dict:
    """Build (or reuse) the tiny model and the task data in ``tiny_dir``; return the build description.

    Deterministic: the same arguments give the same files. Existing files are reused only when ``BUILD.json``
    records the same arguments and every file is present; otherwise the directory's model and data are rebuilt.
    """
    from sspo_verl.data.tiny_task import EVAL_SPLIT, write_dataset
    from sspo_verl.demo.tiny_model import build_tiny_model

    tiny_dir = os.path.abspath(tiny_dir)
    # format 2: the tiny model has 2 heads of 32 (format 1 had 4 of 16, which vLLM's CPU attention refuses)
    wanted = {"seed": seed, "n_train": n_train, "n_val": n_val, "n_eval": n_eval, "format": 2}
    stamp_path = os.path.join(tiny_dir, _STAMP)
    files = [
        os.path.join(tiny_dir, "model", "config.json"),
        os.path.join(tiny_dir, "model", "tokenizer.json"),
        os.path.join(tiny_dir, "data", "train.parquet"),
        os.path.join(tiny_dir, "data", "val.parquet"),
        os.path.join(tiny_dir, "data", f"{EVAL_SPLIT}.parquet"),
    ]
    if os.path.exists(stamp_path) and all(os.path.exists(f) for f in files):
        with open(stamp_path, encoding="utf-8") as fh:
            if json.load(fh) == wanted:
                return {**wanted, "tiny_dir": tiny_dir, "reused": True}
    for sub in ("model", "data"):
        shutil.rmtree(os.path.join(tiny_dir, sub), ignore_errors=True)
    os.makedirs(tiny_dir, exist_ok=True)
    build_tiny_model(os.path.join(tiny_dir, "model"), seed=seed)
    write_dataset(os.path.join(tiny_dir, "data"), n_train=n_train, n_val=n_val, seed=seed, n_eval=n_eval)
    with open(stamp_path, "w", encoding="utf-8") as fh:
        json.dump(wanted, fh)
    return {**wanted, "tiny_dir": tiny_dir, "reused": False}
