"""Shared fixtures for the eval tests: one tiny random model and the fixture benchmarks as verl parquet."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from sspo_verl.demo.tiny_model import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("tiny_model")), seed=0)


@pytest.fixture(scope="session")
def eval_data(tmp_path_factory):
    from sspo_verl.data.cli import main as data_main

    out = tmp_path_factory.mktemp("eval_data")
    assert data_main(["prepare-all", "--input-dir", str(FIXTURES), "--out-dir", str(out), "--datasets", "eval"]) == 0
    return out
