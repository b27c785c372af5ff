"""One all_reduce across the job's nodes over the interface NCCL or Gloo will use, bounded in time, so that a wrong
``NET_IFACE`` fails the node check in seconds, naming the interface, instead of the trainer's first collective after
``nccl_timeout``."""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections.abc import Mapping

__all__ = ["IFACE_VARS", "CollectiveError", "all_reduce_check", "interface_problem"]

# The variable each backend reads for its socket interface (train.sbatch sets both from NET_IFACE).
IFACE_VARS = {"gloo": "GLOO_SOCKET_IFNAME", "nccl": "NCCL_SOCKET_IFNAME"}


class CollectiveError(RuntimeError):
    """The collective failed or did not finish (``hung``: its thread is still blocked in the backend); the message
    names the interface and the knob."""

    def __init__(self, message: str, hung: bool = False):
        super().__init__(message)
        self.hung = hung


def interface_problem(value: str) -> str | None:
    """Why no interface of this node matches ``value`` (an ``*_SOCKET_IFNAME``: names or prefixes, comma-separated;
    ``=name`` exact; ``^...`` excludes, not checked), or None.

    NCCL takes the names as prefixes unless they start with ``=``; Gloo wants exact names: a name that exists with
    an IPv4 address passes both.
    """
    import psutil

    value = value.strip()
    if not value or value.startswith("^"):
        return None
    exact = value.startswith("=")
    wanted = [w.strip() for w in value.lstrip("=").split(",") if w.strip()]
    interfaces = psutil.net_if_addrs()
    for name, addrs in interfaces.items():
        if any(name == w or (not exact and name.startswith(w)) for w in wanted):
            if any(a.family.name == "AF_INET" for a in addrs):
                return None
    return f"no interface {value!r} with an IPv4 address on this node (it has {', '.join(sorted(interfaces))})"


def _reduce(address: str, rank: int, world: int, backend: str, timeout_s: float, value: int, out: dict) -> None:
    import torch
    import torch.distributed as dist

    host, _, port = address.rpartition(":")
    timeout = datetime.timedelta(seconds=timeout_s)
    try:
        # Rank 0 listens on the head's port; every rank meets there, then the backend connects rank to rank over
        # its interface: the connections NCCL / Gloo will make in the trainer.
        store = dist.TCPStore(host, int(port), world, is_master=rank == 0, timeout=timeout)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
        try:
            device = "cpu"
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("SLURM_LOCALID", "0")))
                device = "cuda"
            t = torch.tensor([value], dtype=torch.int64, device=device)
            dist.all_reduce(t)
            out["sum"] = int(t.item())
        finally:
            dist.destroy_process_group()
    except BaseException as exc:  # noqa: BLE001 - reported by the caller, with the interface
        out["error"] = exc


def all_reduce_check(
    address: str,
    rank: int,
    world: int,
    backend: str = "gloo",
    timeout_s: float = 60,
    value: int = 1,
    env: Mapping[str, str] | None = None,
) -> int:
    """All-reduce (sum) ``value`` over ``world`` processes that meet at ``address`` (``HOST:PORT``; rank 0 listens).

    The interface is the backend's ``*_SOCKET_IFNAME`` in ``env`` (default ``os.environ``; the process's own
    environment is what torch reads). Bounded: rendezvous and collective within ``timeout_s``, and a thread that
    hangs past ``timeout_s + 10`` is reported too.

    Returns:
        The sum over the ranks.

    Raises:
        CollectiveError: the interface is missing here, or the rendezvous / collective failed or timed out; the
            message names the interface, its variable and ``NET_IFACE``.
    """
    env = os.environ if env is None else env
    var = IFACE_VARS[backend]
    iface = env.get(var, "")
    over = f"{var}={iface} (NET_IFACE)" if iface else f"the interface {backend} picks by itself ({var} unset, NET_IFACE empty)"
    if iface:
        missing = interface_problem(iface)
        if missing:
            raise CollectiveError(f"{var}={iface} (NET_IFACE): {missing}. Set NET_IFACE to an interface every node "
                                  "has, on the network that joins them (ip -br addr on a node lists them)")
    import torch.distributed  # noqa: F401  (imported here: the bound is for the network, not for the import)

    out: dict = {}
    start = time.monotonic()
    worker = threading.Thread(target=_reduce, args=(address, rank, world, backend, timeout_s, value, out), daemon=True)
    worker.start()
    worker.join(timeout_s + 10)
    took = time.monotonic() - start
    fix = (f"{backend.upper() if backend == 'nccl' else 'Gloo'} in the trainer would wait on it until its timeout "
           f"(nccl_timeout: 30 min). Set NET_IFACE to the interface on the network that joins the nodes (every node "
           f"must reach {address} and each other over it; ip -br addr on a node lists them), or raise "
           "COLLECTIVE_TIMEOUT if nodes are only slow to start")
    if worker.is_alive():
        raise CollectiveError(f"all_reduce of rank {rank}/{world} over {over} via {address} did not finish within "
                              f"{timeout_s + 10:g}s. {fix}", hung=True)
    if "error" in out:
        first = (str(out["error"]).strip().splitlines() or [""])[0][:300]
        raise CollectiveError(f"all_reduce of rank {rank}/{world} over {over} via {address} failed after {took:.1f}s "
                              f"({type(out['error']).__name__}: {first}). {fix}")
    return out["sum"]
