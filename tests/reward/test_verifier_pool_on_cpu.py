"""The verifier pool's real timeout: from non-main threads, kill and replace, crashes, start-up errors."""

import os
import signal
import sys
import threading
import time

import pytest

from sspo_verl.reward.verifier import is_equivalent
from sspo_verl.reward.verifier_pool import VerifierPool, VerifierStartError

# sympy evaluates this power tower for hours in C code; no signal interrupts it (checked by hand: > 15 s
# with math-verify's timeout disabled, and math-verify's own alarm cannot run outside the main thread).
HANG = r"9^{9^{9^{9^{9}}}}"


def _in_thread(fn):
    """Run fn() in a fresh non-main thread (as verl's run_in_executor does) and return its result."""
    box = {}

    def target():
        box["thread"] = threading.current_thread() is not threading.main_thread()
        box["value"] = fn()

    t = threading.Thread(target=target)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive(), "verification hung"
    assert box["thread"]
    return box["value"]


def test_is_equivalent_in_process():
    assert is_equivalent(r"\frac{1}{2}", "0.5")
    assert not is_equivalent("2", "3")


def test_timeout_from_non_main_thread_kills_and_replaces(pool):
    pool.verify("1", "1", timeout_s=30)  # make sure workers are up: the timing below is the request only
    before = set(pool.worker_pids())
    start = time.monotonic()
    outcome = _in_thread(lambda: pool.verify("1", HANG, timeout_s=1.0))
    elapsed = time.monotonic() - start
    assert outcome.status == "timeout" and outcome.equivalent is False
    assert 1.0 <= elapsed < 10.0
    after = set(pool.worker_pids())
    assert len(after) == 2 and after != before  # one worker killed, one new
    for pid in before - after:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # the pool keeps working, and the replacement answers correctly
    ok = _in_thread(lambda: pool.verify(r"\frac{1}{2}", "0.5", timeout_s=30))
    assert ok.status == "ok" and ok.equivalent


def test_many_threads_mixed_hangs_and_answers(pool):
    results = {}

    def work(i):
        pred, gold = (HANG, "1") if i % 4 == 0 else (str(i), str(i) + ".0")
        results[i] = pool.verify(gold, pred, timeout_s=1.0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert time.monotonic() - start < 60
    assert len(results) == 12
    for i, outcome in results.items():
        if i % 4 == 0:
            assert outcome.status == "timeout" and not outcome.equivalent
        else:
            assert outcome.status == "ok" and outcome.equivalent, (i, outcome)


def test_worker_crash_is_an_outcome_not_an_exception():
    # one worker, ready before the kill: the request it is running must come back as a "crash" outcome
    pool = VerifierPool(num_procs=1)
    pool.verify("1", "1", timeout_s=30)
    victims = pool.worker_pids()

    def kill_soon():
        time.sleep(0.5)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    killer = threading.Thread(target=kill_soon)
    killer.start()
    outcome = pool.verify("1", HANG, timeout_s=20)
    killer.join()
    try:
        assert outcome.status == "crash" and not outcome.equivalent
        assert outcome.seconds < 10
        # the crashed worker is replaced: later requests succeed
        for _ in range(3):
            again = pool.verify("4", r"\sqrt{16}", timeout_s=30)
            assert again.status == "ok" and again.equivalent
    finally:
        pool.close()


def test_memory_limit_turns_blowup_into_a_fast_zero():
    # Without a limit, expanding (x+1)^100000 grows past 600 MB and runs > 15 s. With RLIMIT_AS the
    # allocation fails, math-verify reports "not equal", and the worker lives on.
    with VerifierPool(num_procs=1, memory_limit_mb=300) as small:
        outcome = small.verify("1", r"(x+1)^{100000}", timeout_s=10)
        assert outcome.status == "ok" and not outcome.equivalent
        assert small.verify("2", "2.0", timeout_s=30).equivalent
        assert small.stats["spawned"] == 1


def test_workers_are_recycled():
    with VerifierPool(num_procs=1, max_tasks_per_proc=2) as p:
        for i in range(5):
            assert p.verify(str(i), str(i), timeout_s=30).equivalent
        assert p.stats["spawned"] >= 3


def test_start_failure_is_raised_clearly(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with VerifierPool(num_procs=1, start_timeout_s=20) as broken:
        with pytest.raises(VerifierStartError, match="failed to start"):
            broken.verify("1", "1", timeout_s=5)
        with pytest.raises(VerifierStartError):  # and again, at once
            broken.verify("1", "1", timeout_s=5)


def test_bad_arguments():
    with pytest.raises(ValueError):
        VerifierPool(num_procs=0)
    with VerifierPool(num_procs=1) as p, pytest.raises(ValueError):
        p.verify("1", "1", timeout_s=0)


def test_a_worker_killed_while_starting_is_replaced_not_fatal():
    # A worker that dies before its ready signal (OOM killer, a stray signal) gets one fresh replacement;
    # only an installation problem (the replacement failing too) makes the pool give up.
    with VerifierPool(num_procs=1) as p:
        p._ensure_started()
        for pid in p.worker_pids():
            os.kill(pid, signal.SIGKILL)
        outcome = p.verify("4", r"\sqrt{16}", timeout_s=30)
        assert outcome.status == "ok" and outcome.equivalent
        assert p.verify("2", "2", timeout_s=30).equivalent


def test_a_worker_that_died_while_idle_is_replaced_on_next_use():
    with VerifierPool(num_procs=1) as p:
        assert p.verify("1", "1", timeout_s=30).equivalent
        (pid,) = p.worker_pids()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0):
            time.sleep(0.05)
        outcome = p.verify("4", r"\sqrt{16}", timeout_s=30)
        assert outcome.status == "ok" and outcome.equivalent and p.worker_pids() != [pid]
