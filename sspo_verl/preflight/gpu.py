"""This node's GPUs as ``nvidia-smi`` lists them (index, name, memory, driver) and as torch sees them (in a fresh
process), read without creating a CUDA context here, so that the pre-flight checks (GPU count, driver, memory fit,
CUDA) and the Slurm node check all see one inventory."""

from __future__ import annotations

import dataclasses
import glob
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Optional

__all__ = ["GpuInfo", "TorchCuda", "parse_query", "probe_torch_cuda", "query_gpus", "torch_cuda_here", "visible"]

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


_RESULT = "SSPO_TORCH_CUDA "
# What torch says about CUDA; nothing here touches CUDA before torch.cuda.init(), whose error is the one to report.
# Run in a fresh subprocess (PROBE_CODE) by the pre-flight, in-process by the Slurm node check (torch_cuda_here).
_REPORT_FN = """
def _torch_cuda_report():
    r = {"torch": None, "cuda": None, "available": False, "device_count": 0, "error": None}
    try:
        import torch
        r["torch"], r["cuda"] = torch.__version__, torch.version.cuda
        try:
            torch.cuda.init()
        except Exception as e:
            r["error"] = f"{type(e).__name__}: {e}"
        r["available"], r["device_count"] = torch.cuda.is_available(), torch.cuda.device_count()
    except Exception as e:
        r["error"] = f"{type(e).__name__}: {e}"
    return r
"""
PROBE_CODE = f"import json\n{_REPORT_FN}\nprint({_RESULT!r} + json.dumps(_torch_cuda_report()), flush=True)\n"


@dataclasses.dataclass(frozen=True)
class TorchCuda:
    """What torch says about CUDA in a fresh process. ``torch`` is None when torch does not import; ``cuda`` is
    ``torch.version.cuda`` (None for a CPU-only build); ``error`` is the first exception (import or
    ``torch.cuda.init()``)."""

    torch: Optional[str]
    cuda: Optional[str]
    available: bool
    device_count: int
    error: Optional[str]


def probe_torch_cuda(env: Mapping[str, str], timeout_s: float, command: Optional[Sequence[str]] = None) -> TorchCuda:
    """Import torch in a fresh subprocess (this process never initialises CUDA) and report on CUDA.

    Args:
        env: the subprocess's environment (``CUDA_VISIBLE_DEVICES`` applies).
        timeout_s: bound on the subprocess.
        command: the command to run (default: this Python with :data:`PROBE_CODE`); it must print one
            ``SSPO_TORCH_CUDA {json}`` line. Tests pass another command.

    Raises:
        RuntimeError: no answer within ``timeout_s``, or no result line (the message names the command).
    """
    argv = list(command) if command else [sys.executable, "-c", PROBE_CODE]
    shown = " ".join(argv[:2]) + (" <probe>" if not command else " ".join(argv[2:]))
    try:
        out = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"`{shown}` (import torch; torch.cuda.init()) did not finish within {timeout_s:g} s") from exc
    except OSError as exc:
        raise RuntimeError(f"`{shown}` could not start: {exc}") from exc
    for line in out.stdout.splitlines():
        if line.startswith(_RESULT):
            return TorchCuda(**json.loads(line[len(_RESULT):]))
    tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
    raise RuntimeError(f"`{shown}` exited with status {out.returncode} and no result: {' | '.join(tail) or 'no output'}")


def torch_cuda_here() -> TorchCuda:
    """What torch in this process says about CUDA (the same code as the subprocess probe)."""
    namespace: dict = {}
    exec(_REPORT_FN, namespace)  # noqa: S102 - our own constant
    return TorchCuda(**namespace["_torch_cuda_report"]())
