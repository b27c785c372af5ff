"""Fixtures of the report tests."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.report.fixture_runs import FIXTURE_RUNS, RUN_NAMES


def _copy(root) -> dict[str, str]:
    shutil.copytree(FIXTURE_RUNS, root)
    return {name: os.fspath(root / name) for name in RUN_NAMES}


@pytest.fixture
def fixture_runs(tmp_path):
    """A writable copy of the fixture runs: {name: path}."""
    return _copy(tmp_path / "runs")


@pytest.fixture(scope="module")
def shared_fixture_runs(tmp_path_factory):
    """One copy of the fixture runs per test module, for tests that only read it."""
    return _copy(tmp_path_factory.mktemp("shared") / "runs")
