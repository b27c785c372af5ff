"""Leaked shared-memory segments: only those nothing holds any more, that changed since the run started, go."""

from __future__ import annotations

import os
import time

from sspo_verl.cpu import shm


def test_only_unheld_idle_segments_of_the_run_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(shm, "SHM_DIR", str(tmp_path))
    old = tmp_path / "psm_before"
    old.write_bytes(b"x")
    os.utime(old, (1, 1))  # mtime only; ctime records when it changed: backdate the run's start instead
    since = time.time()
    time.sleep(0.05)
    held = tmp_path / "verl_weights_held"
    left = tmp_path / "verl_weights_left"
    other = tmp_path / "not_ours"
    for path in (held, left, other):
        path.write_bytes(b"\0" * 64)
    with open(held, "rb"):  # open, as a live creator holds its segment
        assert shm.leaked_segments(since, str(tmp_path)) == []  # all too recently written to count
        time.sleep(shm.MIN_IDLE_S + 0.1)
        assert shm.leaked_segments(since, str(tmp_path)) == [str(left)]
        assert shm.remove_leaked(since, str(tmp_path)) == [str(left)]
    assert not left.exists() and held.exists() and other.exists() and old.exists()


def test_a_mapped_segment_is_held():
    from multiprocessing import shared_memory

    seg = shared_memory.SharedMemory(create=True, size=4096)
    try:
        path = os.path.join("/dev/shm", seg.name)
        assert shm._held_paths({path}) == {path}
    finally:
        seg.close()
        seg.unlink()
