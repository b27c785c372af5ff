"""The gloo backend fix: ``"cpu:gloo,cpu:gloo"`` (what verl builds on CPU) becomes a valid backend string."""

from __future__ import annotations

import pytest
import torch.distributed as dist

from sspo_verl.cpu import process_group


@pytest.mark.parametrize(
    "given, expected",
    [
        ("cpu:gloo,cpu:gloo", "cpu:gloo"),  # what verl builds with the CPU platform
        ("cpu:gloo,cuda:nccl", "cpu:gloo,cuda:nccl"),  # a GPU run's string is untouched
        ("gloo", "gloo"),
        ("nccl", "nccl"),
        (None, None),
        ("cpu:gloo,cpu:mpi", "cpu:gloo"),  # first entry per device wins
    ],
)
def test_dedupe_backend(given, expected):
    assert process_group.dedupe_backend(given) == expected


def _init(backend, tmp_path, name):
    dist.init_process_group(backend=backend, init_method=f"file://{tmp_path / name}", rank=0, world_size=1)
    try:
        return dist.get_backend()
    finally:
        dist.destroy_process_group()


def test_torch_rejects_verls_cpu_backend_string_without_the_fix(tmp_path):
    """Documents why the fix exists; if torch starts accepting the string, the fix can go."""
    assert not process_group.INIT_PROCESS_GROUP.is_installed()
    with pytest.raises((ValueError, RuntimeError)):
        _init("cpu:gloo,cpu:gloo", tmp_path, "store0")
    if dist.is_initialized():
        dist.destroy_process_group()


def test_the_patch_fixes_the_string_keyword_and_positional(tmp_path):
    patch = process_group.INIT_PROCESS_GROUP
    patch.install()
    try:
        assert _init("cpu:gloo,cpu:gloo", tmp_path, "store1") == "cpu:gloo"
        dist.init_process_group("cpu:gloo,cpu:gloo", init_method=f"file://{tmp_path / 'store2'}", rank=0,
                                world_size=1)
        dist.destroy_process_group()
    finally:
        patch.uninstall()
