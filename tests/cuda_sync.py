"""Count the synchronizing CUDA calls a block makes (``torch.cuda.set_sync_debug_mode('warn')``)."""

from __future__ import annotations

import contextlib
import warnings

import torch

SYNC_MESSAGE = "called a synchronizing CUDA operation"


class SyncCount:
    n: int = -1  # set when the block exits


@contextlib.contextmanager
def count_device_syncs():
    """Yield a :class:`SyncCount` whose ``n`` is the number of host-device syncs the block made.

    Every synchronizing call (``.item()``, ``.tolist()``, ``nonzero``, blocking host<->device copies, ...)
    raises one warning in ``warn`` mode; warnings from the autograd engine's threads reach this thread too.
    """
    count = SyncCount()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.synchronize()  # nothing pending from before the block
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield count
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    count.n = sum(SYNC_MESSAGE in str(w.message) for w in caught)
