"""The preflight snippet inside recipes/slurm/train.sbatch, run for real (the stub tests replace it).

In this environment verl imports, SSPO is registered and ``sspo-train`` is on PATH; each failure (missing
command, run directory not shared, too few GPUs) is reported on one line. The cluster probe runs for real in
test_train_sbatch_real_ray_on_cpu.py.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.recipes.stub_cluster import TRAIN_SBATCH

pytestmark = pytest.mark.slow  # two Python processes import verl (10-30 s on 2 busy cores)

VENV_BIN = str(Path(sys.executable).parent)


def _snippet(var: str) -> str:
    """The heredoc assigned to ``VAR=$(cat <<'PY' ... PY)`` in train.sbatch."""
    text = TRAIN_SBATCH.read_text()
    match = re.search(var + r"=\$\(\n\s*cat <<'PY'\n(.*?)\nPY\n", text, re.S)
    assert match, f"{var} heredoc not found in {TRAIN_SBATCH}"
    return match.group(1)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SLURM_"))}
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def test_preflight_passes_here_and_reports_every_problem(tmp_path):
    preflight = _snippet("PREFLIGHT_PY")
    marker = tmp_path / "marker"
    marker.touch()
    env = _env(VERL_USE_EXTERNAL_MODULES="sspo_verl.adapter.plugin")
    ok = subprocess.Popen([sys.executable, "-c", preflight, "sspo-train", str(marker), "0"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bad = subprocess.Popen([sys.executable, "-c", preflight, "no-such-trainer", str(tmp_path / "absent"), "1"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ok_out, ok_err = ok.communicate(timeout=300)
    bad_out, _ = bad.communicate(timeout=300)

    assert ok.returncode == 0, ok_out + ok_err
    assert ok_out.strip().splitlines()[-1] == f"SSPO_PREFLIGHT_OK {socket.gethostname()}"

    assert bad.returncode == 1
    line = bad_out.strip().splitlines()[-1]
    assert line.startswith(f"SSPO_PREFLIGHT_FAIL {socket.gethostname()}: ")
    assert "no-such-trainer is not on PATH" in line
    assert "RUNS_ROOT must be on a filesystem shared by all nodes" in line
    assert "torch sees 0 GPU(s), expected 1" in line  # CPU-only torch here
