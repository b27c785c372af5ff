"""sspo_verl.cluster's probe without a cluster: bounded when nobody answers, and the missing nodes named.

The probe against real Ray clusters (complete, a node missing, a head that dies or hangs) runs in
tests/recipes/test_train_sbatch_slurm_on_cpu.py.
"""

from __future__ import annotations

import socket
import time

from sspo_verl.cluster.__main__ import main
from sspo_verl.cluster.probe import ClusterView, missing_nodes, wait_for_cluster


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
