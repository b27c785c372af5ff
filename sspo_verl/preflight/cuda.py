"""CUDA check: torch, imported in a fresh subprocess on a node with NVIDIA GPUs, can use CUDA — else the run is
refused before Ray starts, naming torch's CUDA, the node's driver and the minimum driver that CUDA needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from sspo_verl.preflight.context import Context
from sspo_verl.preflight.gpu import GpuInfo, TorchCuda

__all__ = ["MIN_DRIVER", "check_cuda", "cuda_problem", "min_driver"]

# The oldest Linux driver each CUDA major runs on under minor-version compatibility, which is what pip's torch
# wheels rely on (they carry their own CUDA runtime, so the driver only has to reach the floor of that runtime's
# major). Source: NVIDIA, "CUDA Compatibility: Minor Version Compatibility", Table 1 "CUDA Toolkit 11.x, 12.x, and
# 13.x Driver Version Ranges" (https://docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html):
# 13.x >= 580, 12.x >= 525 (525.60.13, the driver of CUDA 12.0 GA in the toolkit release notes), 11.x >= 450.80.02
# (the note under the same table).
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580"}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def min_driver(cuda: str) -> Optional[str]:
    """The oldest Linux driver for torch built with CUDA ``cuda`` (``"13.0"``): :data:`MIN_DRIVER` of its major."""
    major = _version(cuda)[:1]
    return MIN_DRIVER.get(major[0]) if major else None


def _driver_cuda_major(driver: str) -> Optional[int]:
    """The newest CUDA major a driver runs (the inverse of :data:`MIN_DRIVER`)."""
    fits = [major for major, floor in MIN_DRIVER.items() if _version(driver) >= _version(floor)]
    return max(fits) if fits else None


def check_cuda(ctx: Context) -> None:
    """``trainer.device=cuda`` on a node with NVIDIA GPUs where torch, in a fresh process, cannot use them: a
    CPU-only torch, a driver older than torch's CUDA needs, or any other CUDA init error → error with the fix. A
    probe that does not answer in time is an error naming its knob. Skipped without NVIDIA devices (the cluster
    check refuses a GPU run there) and for ``trainer.device=cpu``."""
    if not ctx.get("preflight.check_cuda", True) or ctx.get("trainer.device", "cuda") != "cuda":
        return
    try:
        gpus = ctx.gpu_query(ctx.env, float(ctx.get("preflight.gpu_query_timeout_s", 20)))
    except RuntimeError:
        return  # a hung nvidia-smi: the cluster check reports it
    if gpus == []:
        return  # no NVIDIA device on this node (the cluster check's concern): nothing for torch to use
    timeout_s = float(ctx.get("preflight.cuda_probe_timeout_s", 120))
    try:
        torch_cuda = ctx.cuda_probe(ctx.env, timeout_s)
    except RuntimeError as exc:
        ctx.error(
            "cuda",
            f"trainer.device=cuda: {exc} (preflight.cuda_probe_timeout_s={timeout_s:g}). A CUDA initialisation that "
            "hangs here hangs every worker: check the node (nvidia-smi, dmesg); raise preflight.cuda_probe_timeout_s "
            "if torch only imports slowly, or skip the check with preflight.check_cuda=false.",
        )
        return
    problem = cuda_problem(torch_cuda, gpus, ctx.env.get("CUDA_VISIBLE_DEVICES"))
    if problem:
        ctx.error("cuda", f"trainer.device=cuda, {problem}")


def cuda_problem(torch_cuda: TorchCuda, gpus: Optional[Sequence[GpuInfo]], cuda_visible_devices: Optional[str]) -> Optional[str]:
    """Why torch cannot use this node's GPUs, with the fix (None: it can). Shared by this check (the driver's node)
    and the Slurm node check (every node).

    Args:
        torch_cuda: what torch says (:func:`~sspo_verl.preflight.gpu.probe_torch_cuda`, or
            :func:`~sspo_verl.preflight.gpu.torch_cuda_here`).
        gpus: the node's inventory (:func:`sspo_verl.preflight.gpu.query_gpus`; None: unknown).
        cuda_visible_devices: the process's ``CUDA_VISIBLE_DEVICES``, for the message.
    """
    driver = gpus[0].driver_version if gpus else None
    where = (f"this node has {len(gpus)} NVIDIA GPU(s), driver {driver}" if gpus else
             "this node's NVIDIA driver is unknown (no readable nvidia-smi)")
    if torch_cuda.torch is None:
        return (f"{where}, but torch does not import in a fresh Python ({torch_cuda.error}). Install the GPU "
                'stack: pip install -e ".[gpu,math]" (torch 2.11 built for CUDA 13.0).')
    if torch_cuda.cuda is None:
        return (f"{where}, but torch {torch_cuda.torch} is a CPU-only build (torch.version.cuda is None): every "
                'GPU worker would fail. Install the GPU stack in this environment (pip install -e ".[gpu,math]": '
                "torch 2.11 built for CUDA 13.0, from PyPI), or run the CPU backend with hardware=cpu.")
    if torch_cuda.available and torch_cuda.device_count > 0:
        return None
    need = min_driver(torch_cuda.cuda)
    if driver and need and _version(driver) < _version(need):
        runs = _driver_cuda_major(driver)
        return (f"but the NVIDIA driver {driver} on this node is too old for torch {torch_cuda.torch}, built for "
                f"CUDA {torch_cuda.cuda}: CUDA {torch_cuda.cuda.split('.')[0]}.x needs driver >= {need} (NVIDIA's "
                f"minor-version compatibility table). torch.cuda.init(): {torch_cuda.error}. Upgrade the driver to "
                f">= {need}, or install a torch built for CUDA {runs if runs else 'that your driver supports'}.x "
                f"(the cu{runs or ''}* indexes of https://download.pytorch.org/whl/; vLLM then needs its build for "
                "that CUDA too).")
    return (f"{where}, but torch {torch_cuda.torch} (CUDA {torch_cuda.cuda}) cannot use them: "
            f"is_available={torch_cuda.available}, device_count={torch_cuda.device_count}, torch.cuda.init(): "
            f"{torch_cuda.error}. CUDA_VISIBLE_DEVICES={cuda_visible_devices}. Check the node (nvidia-smi, a GPU in "
            "an error state, the container's --gpus / --nv), or run the CPU backend with hardware=cpu.")
