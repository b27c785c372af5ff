"""The GPUs of this node as ``nvidia-smi`` reports them (index, name, memory, driver), read without creating a CUDA
context, so that the pre-flight checks (GPU count, driver, memory fit) all see one inventory."""

from __future__ import annotations

import dataclasses
import glob
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Optional

__all__ = ["GpuInfo", "parse_query", "query_gpus", "visible"]

# The columns asked for, in order; `nounits` makes memory.total a number of MiB.
QUERY = ("index", "uuid", "name", "memory.total", "driver_version")


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    """One GPU as ``nvidia-smi --query-gpu`` lists it."""

    index: int
    uuid: str
    name: str
    memory_total_bytes: int
    driver_version: str


def parse_query(text: str) -> list[GpuInfo]:
    """The rows of ``nvidia-smi --query-gpu=<QUERY> --format=csv,noheader,nounits``.

    Raises:
        ValueError: a row that is not five comma-separated fields with a numeric index and memory.
    """
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(QUERY):
            raise ValueError(f"nvidia-smi row {line!r}: expected {len(QUERY)} fields ({', '.join(QUERY)})")
        index, uuid, name, memory_mib, driver = fields
        try:
            gpus.append(GpuInfo(int(index), uuid, name, int(float(memory_mib)) * 2**20, driver))
        except ValueError:
            raise ValueError(f"nvidia-smi row {line!r}: index and memory.total must be numbers") from None
    return gpus


def visible(gpus: Sequence[GpuInfo], cuda_visible_devices: Optional[str]) -> list[GpuInfo]:
    """The GPUs a process sees under ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs, as CUDA reads it: the list stops at
    the first entry that names no GPU; unset means all)."""
    if cuda_visible_devices is None:
        return list(gpus)
    by_key = {str(g.index): g for g in gpus} | {g.uuid: g for g in gpus}
    chosen: list[GpuInfo] = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        gpu = by_key.get(entry) or next((g for g in gpus if entry and g.uuid.startswith(entry)), None)
        if gpu is None or gpu in chosen:
            break
        chosen.append(gpu)
    return chosen


def query_gpus(env: Mapping[str, str], timeout_s: float = 20) -> Optional[list[GpuInfo]]:
    """The GPUs this process could use (after ``CUDA_VISIBLE_DEVICES``), from ``nvidia-smi``.

    Returns:
        The visible GPUs; ``[]`` when there is no NVIDIA device (no ``nvidia-smi`` and no ``/dev/nvidia<N>``, or
        nvidia-smi lists none); ``None`` when it cannot tell (device files but no ``nvidia-smi``, or output it
        cannot read).

    Raises:
        RuntimeError: nvidia-smi did not answer within ``timeout_s`` (the message names the command and the knob).
    """
    smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    if smi is None:
        return None if glob.glob("/dev/nvidia[0-9]*") else []
    command = [smi, f"--query-gpu={','.join(QUERY)}", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"`{' '.join(command)}` did not answer within {timeout_s:g} s (preflight.gpu_query_timeout_s): the GPU "
            "driver may be hung. Check the node (nvidia-smi), raise preflight.gpu_query_timeout_s, or skip the "
            "check with preflight.check_cluster=false."
        ) from exc
    except OSError:
        return None
    if out.returncode != 0:
        return [] if "No devices were found" in out.stdout + out.stderr else None
    try:
        gpus = parse_query(out.stdout)
    except ValueError:
        return None
    return visible(gpus, env.get("CUDA_VISIBLE_DEVICES"))
