"""The gloo backend fix: verl asks torch for ``"cpu:gloo,cpu:gloo"`` on CPU, which torch rejects.

verl builds every process group's backend as ``f"cpu:gloo,{device}:{backend}"``
(``verl.utils.distributed.initialize_global_process_group[_ray]``). With the CPU platform that is
``"cpu:gloo,cpu:gloo"`` and ``torch.distributed.init_process_group`` raises ("Duplicate device type cpu").

The fix wraps ``torch.distributed.init_process_group`` so a backend string that names the same device twice
keeps its first entry (``"cpu:gloo,cpu:gloo"`` → ``"cpu:gloo"``). Any other call, including every valid
backend string, passes through unchanged. The wrapper is installed only by :func:`sspo_verl.cpu.activate`
(``VERL_PLATFORM=cpu``), is idempotent (the installed function carries a marker attribute) and logs once.
"""

from __future__ import annotations

import functools
import logging

import torch.distributed as dist

__all__ = ["dedupe_backend", "install", "is_installed"]

logger = logging.getLogger("sspo_verl.cpu")

_MARKER = "__sspo_verl_cpu_dedupe_backend__"


def dedupe_backend(backend):
    """Drop repeated device entries from a ``"device:backend,..."`` string; anything else is returned as is.

    >>> dedupe_backend("cpu:gloo,cpu:gloo")
    'cpu:gloo'
    >>> dedupe_backend("cpu:gloo,cuda:nccl")
    'cpu:gloo,cuda:nccl'
    """
    if not isinstance(backend, str) or "," not in backend:
        return backend
    seen, kept = set(), []
    for entry in backend.split(","):
        device = entry.split(":", 1)[0].strip() if ":" in entry else entry.strip()
        if device in seen:
            continue
        seen.add(device)
        kept.append(entry)
    return ",".join(kept)


def is_installed() -> bool:
    """Whether ``torch.distributed.init_process_group`` is currently the de-duplicating wrapper."""
    return getattr(dist.init_process_group, _MARKER, False)


def install() -> bool:
    """Wrap ``torch.distributed.init_process_group`` (idempotent). Returns True if it installed it now."""
    if is_installed():
        return False
    original = dist.init_process_group

    @functools.wraps(original)
    def init_process_group(*args, **kwargs):
        if args:  # backend is the first positional parameter of init_process_group
            args = (dedupe_backend(args[0]), *args[1:])
        if "backend" in kwargs:
            kwargs["backend"] = dedupe_backend(kwargs["backend"])
        return original(*args, **kwargs)

    setattr(init_process_group, _MARKER, True)
    init_process_group.__sspo_verl_original__ = original
    dist.init_process_group = init_process_group
    logger.debug("sspo_verl.cpu: torch.distributed.init_process_group de-duplicates 'cpu:gloo,cpu:gloo'")
    return True
