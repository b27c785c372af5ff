"""Every launch script under recipes/ (and the test stand-ins) runs as a program: executable, with a bash shebang
(shellcheck checks them in make lint)."""

from __future__ import annotations

import os

import pytest

from tests.recipes.stub_cluster import REPO, STUBS

SCRIPTS = sorted(p for p in (REPO / "recipes").rglob("*") if p.suffix in (".sh", ".sbatch"))
STAND_INS = sorted(p for p in STUBS.iterdir() if p.is_file() and p.name != "_record.sh")  # _record.sh is sourced


@pytest.mark.parametrize("path", [*SCRIPTS, *STAND_INS], ids=lambda p: str(p.relative_to(REPO)))
def test_executable_with_a_bash_shebang(path):
    assert os.access(path, os.X_OK), f"chmod +x {path.relative_to(REPO)}"
    first = path.read_text().splitlines()[0]
    assert first in ("#!/bin/bash", "#!/usr/bin/env bash"), first
