"""The gloo backend fix: verl asks torch for ``"cpu:gloo,cpu:gloo"`` on CPU, which torch rejects.

verl builds every process group's backend as ``f"cpu:gloo,{device}:{backend}"``
(``verl.utils.distributed.initialize_global_process_group[_ray]``). With the CPU platform that is
``"cpu:gloo,cpu:gloo"`` and ``torch.distributed.init_process_group`` raises ("Duplicate device type cpu").

:data:`INIT_PROCESS_GROUP` (a :mod:`sspo_verl.patching` patch) wraps ``torch.distributed.init_process_group`` so
a backend string that names the same device twice keeps its first entry (``"cpu:gloo,cpu:gloo"`` →
``"cpu:gloo"``). Any other call, including every valid backend string, passes through unchanged. Only
:func:`sspo_verl.cpu.activate` (``VERL_PLATFORM=cpu``) installs it.
"""

from __future__ import annotations

import functools

from sspo_verl.patching import Patch

__all__ = ["INIT_PROCESS_GROUP", "dedupe_backend"]


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


def _wrap_init_process_group(original):
    @functools.wraps(original)
    def init_process_group(*args, **kwargs):
        if args:  # backend is the first positional parameter of init_process_group
            args = (dedupe_backend(args[0]), *args[1:])
        if "backend" in kwargs:
            kwargs["backend"] = dedupe_backend(kwargs["backend"])
        return original(*args, **kwargs)

    return init_process_group


INIT_PROCESS_GROUP = Patch(
    module="torch.distributed",
    name="init_process_group",
    params=("backend", ...),  # the wrap needs backend first; the private tail (_ranks in torch 2.13) may change
    wrap=_wrap_init_process_group,
    why="turn verl's 'cpu:gloo,cpu:gloo' backend string on CPU into 'cpu:gloo'",
)
