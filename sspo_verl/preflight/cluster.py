"""Cluster check: ``trainer.nnodes × trainer.n_gpus_per_node`` against what there is — a Ray cluster given by
address (read by :func:`sspo_verl.ray_probe.probe_ray_cluster` in a subprocess with a timeout; this process never
connects), a Slurm allocation, or the GPUs visible on this machine — so that verl never waits for GPUs that will
not come."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Optional

from sspo_verl.preflight.context import Context
from sspo_verl.preflight.gpu import query_gpus

__all__ = ["check_cluster", "count_visible_gpus"]

_SLURM_NODES_VARS = ("SLURM_JOB_NUM_NODES", "SLURM_NNODES")


def count_visible_gpus(env: Mapping[str, str], timeout_s: float = 20) -> Optional[int]:
    """GPUs this process could use: the node's GPU inventory (:func:`sspo_verl.preflight.gpu.query_gpus`: one
    nvidia-smi query, ``CUDA_VISIBLE_DEVICES`` applied); without nvidia-smi, the entries of ``CUDA_VISIBLE_DEVICES``
    when it is set (what Slurm's GRES hands out), else 0 without an NVIDIA device file and None (cannot tell) with one.

    Raises:
        RuntimeError: nvidia-smi did not answer within ``timeout_s`` (the message names the command and the knob).
    """
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and shutil.which("nvidia-smi", path=env.get("PATH")) is None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    gpus = query_gpus(env, timeout_s)
    return None if gpus is None else len(gpus)


def _slurm_gpus_per_node(env: Mapping[str, str]) -> Optional[int]:
    """GPUs per node of the Slurm allocation: SLURM_GPUS_ON_NODE, else SLURM_GPUS_PER_NODE (``8``, ``h100:8``),
    else SLURM_JOB_GPUS / SLURM_STEP_GPUS (a comma list of indices). None when the job did not request GPUs."""
    if env.get("SLURM_GPUS_ON_NODE", "").strip().isdigit():
        return int(env["SLURM_GPUS_ON_NODE"])
    per_node = env.get("SLURM_GPUS_PER_NODE", "").strip()
    if per_node:
        last = per_node.split(",")[0].split(":")[-1].split("(")[0]
        if last.isdigit():
            return int(last)
    for key in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        if env.get(key, "").strip():
            return len([g for g in env[key].split(",") if g.strip()])
    return None


def _ray_address(ctx: Context) -> Optional[str]:
    address = ctx.get("ray_kwargs.ray_init.address") or ctx.env.get("RAY_ADDRESS") or None
    if address in (None, "", "local"):
        return None
    return str(address)


def check_cluster(ctx: Context) -> None:
    """The requested nodes × GPUs against the Ray cluster at an address, else the Slurm allocation, else this
    machine; skipped for the CPU backend (it sets up its own logical GPU slots: sspo_verl.cpu.launch)."""
    if not ctx.get("preflight.check_cluster", True) or ctx.get("trainer.device") == "cpu":
        return
    nnodes = int(ctx.get("trainer.nnodes"))
    per_node = int(ctx.get("trainer.n_gpus_per_node"))
    address = _ray_address(ctx)
    if address is not None:
        _check_ray_cluster(ctx, address, nnodes, per_node)
    elif any(ctx.env.get(k) for k in ("SLURM_JOB_ID",) + _SLURM_NODES_VARS):
        _check_slurm(ctx, nnodes, per_node)
    else:  # no cluster named: verl starts a local Ray with the GPUs of this machine
        _check_this_machine(ctx, nnodes, per_node)


def _want(nnodes: int, per_node: int) -> str:
    return f"trainer.nnodes={nnodes} × trainer.n_gpus_per_node={per_node}"


def _check_ray_cluster(ctx: Context, address: str, nnodes: int, per_node: int) -> None:
    want = _want(nnodes, per_node)
    timeout_s = float(ctx.get("preflight.cluster_timeout_s", 60))
    try:
        node_gpus = ctx.cluster_probe(address, timeout_s)
    except RuntimeError as exc:
        ctx.error(
            "cluster",
            f"{exc}. Start the cluster first (ray start --head; workers: ray start --address=HEAD:6379), fix "
            "RAY_ADDRESS / ray_kwargs.ray_init.address, or unset both to let verl start a local Ray.",
        )
        return
    fitting = [g for g in node_gpus if g >= per_node]
    if len(fitting) < nnodes:
        ctx.error(
            "cluster",
            f"{want}, but the Ray cluster at {address} has {len(node_gpus)} alive node(s) with GPUs "
            f"{[int(g) for g in node_gpus]}; only {len(fitting)} node(s) have {per_node}. verl would wait for "
            "them. Set trainer.nnodes / trainer.n_gpus_per_node to the cluster, or wait until every node joined "
            "(ray status).",
        )
    elif sum(node_gpus) > nnodes * per_node:
        ctx.warning(
            "cluster",
            f"{want} = {nnodes * per_node} GPUs, but the Ray cluster at {address} has {int(sum(node_gpus))}: "
            "the rest stay idle. Raise trainer.nnodes / trainer.n_gpus_per_node to use them.",
        )


def _check_slurm(ctx: Context, nnodes: int, per_node: int) -> None:
    want = _want(nnodes, per_node)
    nodes_var = next((k for k in _SLURM_NODES_VARS if ctx.env.get(k, "").strip().isdigit()), None)
    if nodes_var is not None:
        slurm_nodes = int(ctx.env[nodes_var])
        if nnodes > slurm_nodes:
            ctx.error(
                "cluster",
                f"{want}, but the Slurm allocation has {nodes_var}={slurm_nodes} node(s). Set "
                f"trainer.nnodes={slurm_nodes}, or request {nnodes} nodes (#SBATCH --nodes={nnodes}).",
            )
        elif nnodes < slurm_nodes:
            ctx.warning(
                "cluster",
                f"{want}, but the Slurm allocation has {nodes_var}={slurm_nodes} nodes: "
                f"{slurm_nodes - nnodes} stay idle. Set trainer.nnodes={slurm_nodes}.",
            )
    slurm_gpus = _slurm_gpus_per_node(ctx.env)
    if slurm_gpus is not None:
        if per_node > slurm_gpus:
            ctx.error(
                "cluster",
                f"{want}, but Slurm gives {slurm_gpus} GPU(s) per node. Set trainer.n_gpus_per_node={slurm_gpus}, "
                f"or request {per_node} (#SBATCH --gpus-per-node={per_node}).",
            )
        elif per_node < slurm_gpus:
            ctx.warning(
                "cluster",
                f"{want}, but Slurm gives {slurm_gpus} GPUs per node: {slurm_gpus - per_node} per node stay idle. "
                f"Set trainer.n_gpus_per_node={slurm_gpus}.",
            )


def _check_this_machine(ctx: Context, nnodes: int, per_node: int) -> None:
    want = _want(nnodes, per_node)
    if nnodes > 1:
        ctx.error(
            "cluster",
            f"{want}, but no cluster is given: no RAY_ADDRESS, no ray_kwargs.ray_init.address, no Slurm allocation. "
            "verl would start a one-node Ray here and wait for the other nodes forever. Start a Ray cluster and "
            "export RAY_ADDRESS=HEAD:6379 (or RAY_ADDRESS=auto on the head), use recipes/slurm/train.sbatch, or set "
            "trainer.nnodes=1.",
        )
        return
    try:
        visible = ctx.gpu_counter(ctx.env, float(ctx.get("preflight.gpu_query_timeout_s", 20)))
    except RuntimeError as exc:
        ctx.error("cluster", str(exc))
        return
    if visible == 0 and ctx.get("trainer.device", "cuda") == "cuda":
        ctx.error(
            "cluster",
            f"trainer.device=cuda with {want}, but this machine has no GPU (no NVIDIA device; CUDA_VISIBLE_DEVICES "
            "unset or empty): verl would wait for GPUs that never come. On a machine without GPUs run the CPU "
            "backend: add hardware=cpu (with model=tiny rollout=hf for the tiny demo model); on a GPU node, check "
            "the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES.",
        )
    elif visible is None or visible == 0:
        ctx.warning(
            "cluster",
            f"{want}, but no GPU is visible here ({'no nvidia-smi' if visible is None else 'nvidia-smi lists none'}"
            "; CUDA_VISIBLE_DEVICES unset): cannot check the GPU count. On a machine without GPUs use hardware=cpu "
            "(with model=tiny rollout=hf).",
        )
    elif per_node > visible:
        ctx.error(
            "cluster",
            f"{want}, but this machine shows {visible} GPU(s). Set trainer.n_gpus_per_node={visible} (keep "
            "data.train_batch_size × rollout.n divisible by it), or run where there are more.",
        )
    elif per_node < visible:
        ctx.warning(
            "cluster",
            f"{want}, but this machine shows {visible} GPUs: {visible - per_node} stay idle. Set "
            f"trainer.n_gpus_per_node={visible}, or CUDA_VISIBLE_DEVICES to the ones to use.",
        )
