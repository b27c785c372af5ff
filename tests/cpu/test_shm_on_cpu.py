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


def test_after_a_run_that_left_nothing_there_is_no_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(shm, "SHM_DIR", str(tmp_path))
    (tmp_path / "psm_other_run").write_bytes(b"x")
    start = time.monotonic()
    assert shm.remove_after_run(time.time() + 1) == []  # nothing changed since the run started
    assert time.monotonic() - start < shm.MIN_IDLE_S / 2
    assert (tmp_path / "psm_other_run").exists()
    time.sleep(0.05)  # the other run's segment changed (ctime) before this run started
    since = time.time()
    (tmp_path / "verl_weights_x").write_bytes(b"\0" * 64)
    assert shm.remove_after_run(since) == [str(tmp_path / "verl_weights_x")]  # waited until it was idle
