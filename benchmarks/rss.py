"""Peak resident memory of one call in this process (Linux ``/proc``), for the benchmarks' fresh-process columns.

Run the process with ``MALLOC_MMAP_THRESHOLD_=65536`` (``CHILD_ENV``): every block of 64 KiB or more is mmap'd and
returned on free, so resident memory follows live tensors.
"""

from __future__ import annotations

from collections.abc import Callable

CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_growth(fn: Callable[[], object]) -> int:
    """Bytes the resident high-water mark rose above the resident size before one ``fn()`` (call it once before,
    to warm up)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    base = status_kib("VmRSS")
    fn()
    return max(0, status_kib("VmHWM") - base) * 1024
