"""Wait, bounded, until the job's Ray cluster has its nodes and GPUs (run on the head between the ``ray start``s)."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["ClusterView", "missing_nodes", "wait_for_cluster"]


@dataclass(frozen=True)
class ClusterView:
    """The alive nodes as Ray's GCS sees them."""

    alive: int
    gpus: int
    hosts: tuple[str, ...]

    def line(self) -> str:
        return f"SSPO_PROBE {self.alive} {self.gpus} {','.join(self.hosts) or '-'}"


def missing_nodes(expected: Sequence[str], hosts: Sequence[str]) -> list[str]:
    """Slurm node names without a Ray node of the same (short) host name."""
    short = {h.split(".")[0] for h in hosts}
    return [n for n in expected if n.split(".")[0] not in short]


def _accepts(address: str, timeout: float) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def _view() -> ClusterView:
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    gpus = int(sum(n.get("Resources", {}).get("GPU", 0) for n in alive))
    return ClusterView(len(alive), gpus, tuple(sorted(n.get("NodeManagerHostname", "?") for n in alive)))


def wait_for_cluster(
    address: str,
    nodes: int,
    gpus: int = 0,
    expected: Sequence[str] = (),
    timeout: float = 300,
    poll: float = 2,
    emit: Callable[[str], None] = print,
) -> str | None:
    """Poll the Ray cluster at ``address`` until ``nodes`` nodes are alive, then check it has ``gpus`` GPUs.

    ``emit`` gets one :meth:`ClusterView.line` per change. The head is first waited for by TCP connect:
    ``ray.init`` on an address nobody answers blocks for minutes.

    Returns:
        None when the cluster is complete, else why not (naming the missing nodes out of ``expected``).
    """
    deadline = time.monotonic() + timeout
    while not _accepts(address, timeout=min(5.0, poll + 1)):
        if time.monotonic() >= deadline:
            return f"the Ray head at {address} did not accept connections within {timeout:g}s"
        time.sleep(poll)
    import ray

    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except Exception as exc:  # refused (auth), or the head went away while connecting
        return f"could not connect to the Ray cluster at {address}: {_first_line(exc)}"
    try:
        last = None
        while True:
            try:
                view = _view()
            except Exception as exc:
                return f"lost the Ray cluster at {address}: {_first_line(exc)}"
            if view != last:
                emit(view.line())
                last = view
            if view.alive >= nodes:
                break
            if time.monotonic() >= deadline:
                lost = missing_nodes(expected, view.hosts)
                return (f"only {view.alive} of {nodes} Ray node(s) joined within {timeout:g}s (joined: "
                        f"{','.join(view.hosts) or 'none'}; missing: {','.join(lost) or '?'})")
            time.sleep(poll)
    finally:
        ray.shutdown()
    if view.gpus < gpus:
        return f"Ray counts {view.gpus} GPU(s) on {view.alive} node(s), expected {gpus}"
    return None
