"""sspo_verl.cluster's node commands for real on this machine: the head address and the per-node check.

The real 2-node Slurm tests (tests/recipes/test_train_sbatch_slurm_on_cpu.py) run them on every node through srun.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

import pytest

from sspo_verl.cluster import node
from sspo_verl.cluster.__main__ import main

VENV_BIN = str(Path(sys.executable).parent)


def test_head_ip_of_an_interface_and_of_the_host_name():
    assert node.head_ip("lo") == "127.0.0.1"
    assert not ipaddress.ip_address(node.head_ip()).is_loopback


def test_head_ip_skips_a_host_name_that_resolves_to_loopback(monkeypatch):
    # Debian maps the host name to 127.0.1.1: the node's first non-loopback interface address is used instead
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(socket.AF_INET, 0, 0, "", ("127.0.1.1", 0))])
    assert not ipaddress.ip_address(node.head_ip()).is_loopback


def test_head_ip_of_a_missing_interface_names_the_knob(monkeypatch, capsys):
    monkeypatch.setenv("SLURMD_NODENAME", "gpu007")
    with pytest.raises(LookupError, match=r"NET_IFACE=ib9: no such interface on gpu007 \(it has .*lo"):
        node.head_ip("ib9")
    assert main(["head-ip", "--iface=ib9"]) == 1
    assert capsys.readouterr().out.startswith("SSPO_HEAD_IP_FAIL NET_IFACE=ib9: no such interface")
    assert main(["head-ip", "--iface=lo"]) == 0
    assert capsys.readouterr().out == "SSPO_HEAD_IP 127.0.0.1\n"


def test_node_check_passes_here(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + os.environ["PATH"])  # sspo-train
    monkeypatch.setenv("SLURMD_NODENAME", "n7")
    shared = tmp_path / "shared"
    shared.touch()
    assert node.node_problems("sspo-train", str(shared), 0) == []  # verl imports, SSPO registered
    assert main(["node-check", f"--shared-file={shared}"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "SSPO_NODE_OK n7"


def test_node_check_reports_every_problem_on_one_line(monkeypatch, tmp_path, capsys):
    import sspo_verl.adapter.plugin as plugin

    def broken():
        raise RuntimeError("loss_mode=sspo is not registered")

    monkeypatch.setattr(plugin, "ensure_registered", broken)
    monkeypatch.setenv("SLURMD_NODENAME", "n7")
    missing = tmp_path / "absent"
    assert main(["node-check", "--train-cmd=no-such-trainer", f"--shared-file={missing}", "--gpus=1"]) == 1
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("SSPO_NODE_FAIL n7: no-such-trainer is not on PATH")
    assert f"cannot see {missing}: RUNS_ROOT must be on a filesystem shared by all nodes" in line
    assert "RuntimeError: loss_mode=sspo is not registered" in line
    assert "torch sees 0 GPU(s), expected 1" in line  # CPU-only torch here
