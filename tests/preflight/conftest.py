"""Fixtures of the pre-flight tests: a data directory holding every file the configs name."""

from __future__ import annotations

import pytest

DATA_FILES = ("math_l35", "math500", "aime24", "amc23", "minerva_math", "olympiadbench")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A data_dir holding every file the configs name (existence is all the pre-flight checks)."""
    out = tmp_path / "data"
    out.mkdir()
    for name in DATA_FILES:
        (out / f"{name}.parquet").write_bytes(b"PAR1")
    monkeypatch.setenv("SSPO_DATA_DIR", str(out))
    monkeypatch.setenv("SSPO_OUTPUT_DIR", str(tmp_path / "out"))
    return out
