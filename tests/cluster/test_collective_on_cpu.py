"""sspo_verl.cluster.collective on this machine: two real processes all-reduce over loopback with gloo; an interface
this node lacks fails at once and a partner that never comes fails within the bound, both naming the interface.

Across the real 2-node Slurm cluster (network namespaces) it runs in tests/recipes/test_train_sbatch_slurm_on_cpu.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from sspo_verl.cluster.collective import CollectiveError, all_reduce_check, interface_problem
from tests.cluster.test_node_on_cpu import _closed_port

_RANK = """
import sys
from sspo_verl.cluster.collective import all_reduce_check
print("SUM", all_reduce_check(sys.argv[1], int(sys.argv[2]), 2, "gloo", 30, value=int(sys.argv[2]) + 1))
"""


def test_two_processes_all_reduce_over_loopback_with_gloo():
    address = f"127.0.0.1:{_closed_port()}"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo"}
    procs = [subprocess.Popen([sys.executable, "-c", _RANK, address, str(rank)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o.splitlines()[-1] for o, _ in outs] == ["SUM 3", "SUM 3"]  # 1 + 2 on both ranks


def test_an_interface_this_node_lacks_fails_at_once_naming_it():
    start = time.monotonic()
    with pytest.raises(CollectiveError, match=r"^GLOO_SOCKET_IFNAME=ib9 \(NET_IFACE\): no interface 'ib9' with an "
                                              r"IPv4 address on this node \(it has .*lo"):
        all_reduce_check("127.0.0.1:1", 0, 2, "gloo", 30, env={"GLOO_SOCKET_IFNAME": "ib9"})
    assert time.monotonic() - start < 5
    assert interface_problem("lo") is None and interface_problem("=lo") is None and interface_problem("^docker") is None
    assert interface_problem("l") is None and interface_problem("=l") is not None  # NCCL: prefixes unless '='


def test_a_partner_that_never_comes_fails_within_the_bound_naming_the_interface():
    address = f"127.0.0.1:{_closed_port()}"  # rank 0 never starts: nothing listens
    start = time.monotonic()
    with pytest.raises(CollectiveError) as info:
        all_reduce_check(address, 1, 2, "gloo", timeout_s=2, env={"GLOO_SOCKET_IFNAME": "lo"})
    assert time.monotonic() - start < 15
    msg = str(info.value)
    assert msg.startswith(f"all_reduce of rank 1/2 over GLOO_SOCKET_IFNAME=lo (NET_IFACE) via {address}")
    assert "nccl_timeout" in msg and "Set NET_IFACE" in msg and "COLLECTIVE_TIMEOUT" in msg
