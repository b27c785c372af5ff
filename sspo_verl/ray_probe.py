"""The one Ray cluster probe: a cluster's alive nodes and GPUs read by address, bounded, for pre-flight and Slurm.

Two uses, one connection and one view (:func:`look`):

* pre-flight (:mod:`sspo_verl.preflight.cluster`): :func:`probe_ray_cluster` runs this module in a subprocess
  (``python -m sspo_verl.ray_probe ADDRESS``, one look, killed past ``preflight.cluster_timeout_s``), so the
  driver never connects and verl's own ``ray.init`` later is unaffected;
* ``recipes/slurm/train.sbatch`` (``python -m sspo_verl.cluster probe``): :func:`wait_for_cluster` waits, bounded,
  on the head between the ``ray start``s until the job's nodes and GPUs are in Ray, naming the nodes missing.

A ``HOST:PORT`` nobody answers is found by a TCP connect first: ``ray.init`` on such an address blocks for minutes.
Imports nothing of sspo-verl; Ray only when it connects.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

__all__ = ["ClusterView", "look", "missing_nodes", "probe_ray_cluster", "wait_for_cluster"]

_NODES_LINE = "SSPO_RAY_NODES="  # what ``python -m sspo_verl.ray_probe`` prints: GPUs per alive node, JSON
_FAIL_LINE = "SSPO_RAY_FAIL "


@dataclass(frozen=True)
class ClusterView:
    """The alive nodes as Ray's GCS sees them."""

    alive: int
    gpus: int
    hosts: tuple[str, ...]
    node_gpus: tuple[float, ...] = ()  # GPUs of each alive node

    def line(self) -> str:
        return f"SSPO_PROBE {self.alive} {self.gpus} {','.join(self.hosts) or '-'}"


def missing_nodes(expected: Sequence[str], hosts: Sequence[str]) -> list[str]:
    """Slurm node names without a Ray node of the same (short) host name."""
    short = {h.split(".")[0] for h in hosts}
    return [n for n in expected if n.split(".")[0] not in short]


def _accepts(address: str, timeout: float) -> bool:
    """Whether something accepts a TCP connection at ``HOST:PORT`` (True for an address of another form, such as
    ``auto`` or ``ray://...``: ``ray.init`` is left to answer for those)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return True
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def _connect(address: str) -> Optional[str]:
    """``ray.init`` on the cluster at ``address``; why not, or None when connected."""
    import ray

    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except Exception as exc:  # refused (auth), or the head went away while connecting
        return f"could not connect to the Ray cluster at {address}: {_first_line(exc)}"
    return None


def _view() -> ClusterView:
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    node_gpus = tuple(float(n.get("Resources", {}).get("GPU", 0)) for n in alive)
    return ClusterView(len(alive), int(sum(node_gpus)), tuple(sorted(n.get("NodeManagerHostname", "?") for n in alive)),
                       node_gpus)


def look(address: str, connect_timeout: float = 5.0) -> ClusterView:
    """One view of the Ray cluster at ``address`` (this process connects, then disconnects).

    Raises:
        RuntimeError: the head does not accept connections within ``connect_timeout``, or the connection failed.
    """
    if not _accepts(address, connect_timeout):
        raise RuntimeError(f"no Ray head accepts connections at {address}")
    why = _connect(address)
    if why:
        raise RuntimeError(why)
    import ray

    try:
        return _view()
    finally:
        ray.shutdown()


def probe_ray_cluster(address: str, timeout_s: float) -> list[float]:
    """GPUs of each alive node of the Ray cluster at ``address``: :func:`look` in a subprocess bounded by
    ``timeout_s`` (pre-flight's probe); this process never connects.

    Raises:
        RuntimeError: the cluster did not answer in time or the connection failed.
    """
    try:
        out = subprocess.run([sys.executable, "-m", __name__, address], capture_output=True, text=True,
                             timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"no answer from the Ray cluster at {address!r} within {timeout_s:g} s (the ray.init(address=...) "
            "probe, bounded by preflight.cluster_timeout_s)"
        ) from exc
    lines = out.stdout.splitlines()
    for line in lines:
        if line.startswith(_NODES_LINE):
            return [float(g) for g in json.loads(line[len(_NODES_LINE):])]
    why = [line[len(_FAIL_LINE):] for line in lines if line.startswith(_FAIL_LINE)]
    if why:
        raise RuntimeError(why[-1])
    tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
    raise RuntimeError(f"could not connect to the Ray cluster at {address!r}: {' | '.join(tail) or 'no output'}")


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

    ``emit`` gets one :meth:`ClusterView.line` per change. The head is first waited for by TCP connect.

    Returns:
        None when the cluster is complete, else why not (naming the missing nodes out of ``expected``).
    """
    deadline = time.monotonic() + timeout
    while not _accepts(address, timeout=min(5.0, poll + 1)):
        if time.monotonic() >= deadline:
            return f"the Ray head at {address} did not accept connections within {timeout:g}s"
        time.sleep(poll)
    why = _connect(address)
    if why:
        return why
    import ray

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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m sspo_verl.ray_probe ADDRESS``: one look; prints ``SSPO_RAY_NODES=<GPUs per alive node, JSON>``,
    or ``SSPO_RAY_FAIL <why>`` and exits 1."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) != 1:
        print("usage: python -m sspo_verl.ray_probe HOST:PORT", file=sys.stderr)
        return 2
    try:
        view = look(argv[0])
    except RuntimeError as exc:
        print(f"{_FAIL_LINE}{exc}", flush=True)
        return 1
    print(_NODES_LINE + json.dumps(list(view.node_gpus)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
