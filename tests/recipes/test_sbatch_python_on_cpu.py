"""The two Python snippets inside recipes/slurm/train.sbatch, run for real (the stub tests replace them).

- the cluster probe against a real one-node Ray cluster started with ``ray start --head`` (private temp dir and
  port, stopped by this test; no other Ray instance is touched);
- the per-node preflight in this environment: verl imports, SSPO is registered, ``sspo-train`` is on PATH,
  and each failure (missing command, run directory not shared, too few GPUs) is reported on one line.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.recipes.stub_cluster import TRAIN_SBATCH

pytestmark = pytest.mark.slow  # each starts Python processes that import ray / verl (10-20 s on 2 cores)

VENV_BIN = str(Path(sys.executable).parent)


def _snippet(var: str) -> str:
    """The heredoc assigned to ``VAR=$(cat <<'PY' ... PY)`` in train.sbatch."""
    text = TRAIN_SBATCH.read_text()
    match = re.search(var + r"=\$\(\n\s*cat <<'PY'\n(.*?)\nPY\n", text, re.S)
    assert match, f"{var} heredoc not found in {TRAIN_SBATCH}"
    return match.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SLURM_"))}
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def test_probe_counts_nodes_and_gpus_of_a_real_ray_cluster():
    ray_bin = shutil.which("ray", path=VENV_BIN)
    if ray_bin is None:
        pytest.skip("no ray executable next to this Python")
    probe = _snippet("PROBE_PY")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    tmp = tempfile.mkdtemp(prefix="sspo-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    # As train.sbatch exports them: explicit token auth, one token for the head and every client.
    env = _env(RAY_TMPDIR=tmp, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=os.urandom(32).hex())
    head = subprocess.Popen(
        [ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
         "--num-gpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tmp}", "--block"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        # Before the head answers the probe fails (train.sbatch counts that as 0 nodes and polls again).
        deadline = time.monotonic() + 120
        while True:
            out = subprocess.run([sys.executable, "-c", probe, address], env=env, capture_output=True, text=True,
                                 timeout=120)
            lines = [line for line in out.stdout.splitlines() if line.startswith("SSPO_PROBE ")]
            if lines:
                break
            assert time.monotonic() < deadline, f"the Ray head never answered: {out.stderr[-2000:]}"
            time.sleep(1)
        _, alive, gpus, hosts = lines[-1].split()
        assert (int(alive), int(gpus)) == (1, 2)
        assert hosts == socket.gethostname()
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops its processes on SIGTERM
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


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
