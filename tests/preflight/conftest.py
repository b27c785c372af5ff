"""Fixtures of the pre-flight tests: a data directory holding every file the configs name, and a Hugging Face
cache holding the configs' Hub models (a config.json each: what the files check looks for)."""

from __future__ import annotations

import pytest

from tests.preflight.configs import stage_training_files


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A data_dir with every parquet file the configs name (verl's columns, two rows each), the Hub models of the
    configs in a local HF cache, and an output dir; the environment points at all three."""
    return stage_training_files(tmp_path, monkeypatch)
