"""The embedded default is reproducible from its seed and rebuilt only when asked for something else."""

from __future__ import annotations

import hashlib
import os

from sspo_verl.demo.assets import build_assets


def _digest(path):
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f != "BUILD.json")
    h = hashlib.sha256()
    for f in files:
        h.update(os.path.relpath(f, path).encode())
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = build_assets(str(tmp_path / "a"), seed=0, n_train=16, n_val=4)
    b = build_assets(str(tmp_path / "b"), seed=0, n_train=16, n_val=4)
    assert not a["reused"] and not b["reused"]
    assert _digest(a["tiny_dir"]) == _digest(b["tiny_dir"])
    again = build_assets(str(tmp_path / "a"), seed=0, n_train=16, n_val=4)
    assert again["reused"]
    c = build_assets(str(tmp_path / "a"), seed=1, n_train=16, n_val=4)  # a different request rebuilds in place
    assert not c["reused"] and _digest(c["tiny_dir"]) != _digest(b["tiny_dir"])
    for name in ("model/config.json", "model/tokenizer.json", "data/train.parquet", "data/val.parquet",
                 "data/tiny_eval.parquet"):
        assert os.path.exists(os.path.join(c["tiny_dir"], name))
