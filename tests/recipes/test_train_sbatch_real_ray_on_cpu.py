"""train.sbatch with the real ``ray`` and ``python3`` (only srun / scontrol / hostname / sspo-train stand in).

One node: the script's own ``ray start --head`` (token auth as the script sets it up), its real probe, the trainer
stand-in, and the teardown, which must leave no Ray process of this cluster behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.recipes.stub_cluster import STUBS, StubCluster

pytestmark = pytest.mark.slow  # a real Ray head starts and stops (30-90 s on 2 busy cores)

VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_pids(marker: str) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines() if marker in line and "ps -eo" not in line]


def test_real_ray_head_probe_and_teardown(tmp_path):
    if not (VENV_BIN / "ray").exists():
        pytest.skip("no ray executable next to this Python")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("srun", "scontrol", "hostname", "sspo-train", "_record.sh"):
        (bin_dir / name).symlink_to(STUBS / name)
    # Wrappers, not symlinks: a venv's python must be started by its own path to find its packages.
    for name in ("ray", "python3"):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{VENV_BIN / name}" "$@"\n')
        (bin_dir / name).chmod(0o755)
    ray_tmp = tempfile.mkdtemp(prefix="sspo-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    cluster = StubCluster(tmp_path, 1)
    port = _free_port()
    try:
        result = cluster.run(
            "trainer.total_training_steps=1",
            timeout=600,
            PATH=f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            HEAD_IP="127.0.0.1",
            RAY_PORT=str(port),
            RAY_TMPDIR=ray_tmp,
            RAY_START_EXTRA=f"--temp-dir={ray_tmp} --include-dashboard=false",
            PREFLIGHT="0",  # the preflight snippet runs for real in test_sbatch_python_on_cpu.py
            NODE_WAIT_TIMEOUT="240",
            NODE_WAIT_POLL="2",
            PROBE_TIMEOUT="120",
            TEARDOWN_TIMEOUT="120",
        )
        assert result.returncode == 0, result.stderr[-4000:]
        assert "Ray cluster complete: 1 node(s), 8 GPU(s)" in result.stderr
        (train,) = cluster.calls("sspo-train")
        assert train.opt("trainer.nnodes") == "1"
        (env,) = cluster.calls("train-env")
        assert f"RAY_ADDRESS=127.0.0.1:{port}" in env.args and "RAY_AUTH_MODE=token" in env.args
        # The head was started with token auth; the real probe got in with the script's token.
        head_log = (cluster.runs_root / "sspo-default-sspo" / "logs" / "ray-head-gpu001.log").read_text()
        assert "Ray runtime started" in head_log
        deadline = time.monotonic() + 60
        while _ray_pids(ray_tmp) and time.monotonic() < deadline:
            time.sleep(1)
        assert not _ray_pids(ray_tmp), "Ray processes of this cluster survived the teardown"
    finally:
        for pid in _ray_pids(ray_tmp):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(ray_tmp, ignore_errors=True)
