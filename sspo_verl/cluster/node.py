"""What a node says about itself: its address for the cluster, and whether it can run the trainer."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket

__all__ = ["head_ip", "node_name", "node_problems"]


def node_name() -> str:
    """The node's Slurm name (``SLURMD_NODENAME`` in a step), else its host name."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def _ipv4(addrs) -> list[str]:
    return [a.address for a in addrs if a.family == socket.AF_INET]


def head_ip(iface: str | None = None) -> str:
    """This node's IPv4 address for Ray, NCCL and Gloo.

    With ``iface``: that interface's first IPv4 address. Without: the address the host name resolves to, unless
    that is a loopback one (Debian maps the host name to 127.0.1.1), else the first non-loopback IPv4 address of
    the node's interfaces.

    Raises:
        LookupError: no such interface, or no usable address (the message names the knob to set).
    """
    import psutil

    interfaces = psutil.net_if_addrs()
    if iface:
        if iface not in interfaces:
            raise LookupError(f"NET_IFACE={iface}: no such interface on {node_name()} (it has {', '.join(interfaces)})")
        found = _ipv4(interfaces[iface])
        if not found:
            raise LookupError(f"NET_IFACE={iface}: the interface has no IPv4 address on {node_name()}")
        return found[0]
    try:
        resolved = [i[4][0] for i in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    except socket.gaierror:
        resolved = []
    for candidates in (resolved, [a for addrs in interfaces.values() for a in _ipv4(addrs)]):
        usable = [a for a in candidates if not ipaddress.ip_address(a).is_loopback]
        if usable:
            return usable[0]
    raise LookupError(f"no non-loopback IPv4 address on {node_name()}: set NET_IFACE=<interface> or HEAD_IP")


def node_problems(train_cmd: str, shared_file: str, want_gpus: int) -> list[str]:
    """Why this node cannot run its part of the job (empty: it can).

    Args:
        train_cmd: the trainer command, which must be on PATH.
        shared_file: a file the batch script just wrote in the run directory: visible only on shared storage.
        want_gpus: GPUs torch must see (0: do not ask torch).
    """
    problems = []
    if shutil.which(train_cmd) is None:
        problems.append(f"{train_cmd} is not on PATH (install sspo-verl on every node, or use the image)")
    if not os.path.exists(shared_file):
        problems.append(f"cannot see {shared_file}: RUNS_ROOT must be on a filesystem shared by all nodes")
    try:
        import verl  # noqa: F401  (loads the verl.plugins entry points and VERL_USE_EXTERNAL_MODULES)

        from sspo_verl.adapter.plugin import ensure_registered

        ensure_registered()
    except Exception as exc:  # every node's problem, not the first traceback
        problems.append(f"{type(exc).__name__}: {exc}")
    if want_gpus:
        try:
            import torch

            n = torch.cuda.device_count()
            if n < want_gpus:
                problems.append(f"torch sees {n} GPU(s), expected {want_gpus} "
                                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')})")
        except Exception as exc:
            problems.append(f"cannot count GPUs: {type(exc).__name__}: {exc}")
    return problems
