"""sspo_verl.ray_probe, the one Ray probe: bounded when nobody answers (pre-flight's subprocess and the Slurm wait),
the missing nodes named, and both uses against a real one-node Ray cluster.

The Slurm wait against real multi-node Ray clusters (complete, a node missing, a head that dies or hangs) runs in
tests/recipes/test_train_sbatch_slurm_on_cpu.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from sspo_verl.cluster.__main__ import main
from sspo_verl.ray_probe import ClusterView, missing_nodes, probe_ray_cluster, wait_for_cluster


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on return: nothing listens there


def test_no_head_is_a_bounded_error(capsys):
    address = f"127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    why = wait_for_cluster(address, nodes=2, timeout=1.0, poll=0.2)
    assert time.monotonic() - start < 10  # ray.init on this address would block for minutes
    assert why == f"the Ray head at {address} did not accept connections within 1s"
    assert main(["probe", address, "--nodes=1", "--timeout=0.5", "--poll=0.1"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("SSPO_PROBE_FAIL the Ray head at")


def test_missing_nodes_by_short_host_name():
    assert missing_nodes(["gpu001", "gpu002", "gpu003"], ["gpu001.cluster.local", "gpu003"]) == ["gpu002"]
    assert missing_nodes(["n1"], []) == ["n1"]
    assert ClusterView(2, 16, ("gpu001", "gpu002")).line() == "SSPO_PROBE 2 16 gpu001,gpu002"
    assert ClusterView(0, 0, ()).line() == "SSPO_PROBE 0 0 -"


def test_preflights_probe_is_bounded_and_never_connects_this_process():
    import ray

    address = f"127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=f"^no Ray head accepts connections at {address}$"):
        probe_ray_cluster(address, timeout_s=30)
    assert time.monotonic() - start < 15
    assert not ray.is_initialized()


def test_preflights_probe_past_its_bound_names_the_knob():
    with socket.socket() as silent:  # accepts TCP connections (the kernel's backlog) but never answers: a hung head
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.monotonic()
        with pytest.raises(RuntimeError, match=r"within 1 s .*preflight.cluster_timeout_s"):
            probe_ray_cluster(f"127.0.0.1:{silent.getsockname()[1]}", timeout_s=1)
        assert time.monotonic() - start < 10


@pytest.mark.slow
def test_both_uses_read_a_real_ray_cluster(monkeypatch):
    """A real Ray head (``ray start --head --block``, 2 logical GPUs, its own temp dir and auth token, as
    train.sbatch starts it), stopped by its pid."""
    # Ray turns token auth on when ~/.ray/auth_token exists; clients read these when ray is imported
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", os.urandom(32).hex())
    port = _closed_port()
    address = f"127.0.0.1:{port}"
    def probe(*args):  # what train.sbatch runs on the head
        out = subprocess.run([sys.executable, "-m", "sspo_verl.cluster", "probe", address, *args], text=True,
                             capture_output=True, timeout=180)
        return out.returncode, out.stdout.splitlines()

    temp_dir = tempfile.mkdtemp(prefix="sspo-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    head = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--block", f"--port={port}",
         "--num-cpus=1", "--num-gpus=2", "--include-dashboard=false", f"--temp-dir={temp_dir}",
         "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )

    try:
        rc, lines = probe("--nodes=1", "--gpus=2", "--timeout=120", "--poll=0.5")
        assert rc == 0 and lines[-1] == "SSPO_PROBE_OK" and lines[-2].startswith("SSPO_PROBE 1 2 "), lines
        host = lines[-2].split()[-1]
        assert probe_ray_cluster(address, timeout_s=120) == [2.0]  # pre-flight's subprocess
        rc, lines = probe("--nodes=2", f"--expect={host},gpu002", "--timeout=1", "--poll=0.5")
        assert rc == 1 and lines[-1] == (f"SSPO_PROBE_FAIL only 1 of 2 Ray node(s) joined within 1s (joined: {host}; "
                                         "missing: gpu002)")
    finally:
        head.terminate()  # ray start --block drains the node and stops the processes it started
        try:
            head.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, signal.SIGKILL)  # whatever of its session is left
            shutil.rmtree(temp_dir, ignore_errors=True)
