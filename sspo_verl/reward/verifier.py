"""Symbolic answer equivalence with math-verify, and the worker process that runs it.

:func:`is_equivalent` is the verification itself: both answers are wrapped in ``\\boxed{}``, parsed by
math-verify (LaTeX first, then plain expressions) and compared with ``math_verify.verify`` (gold first: the
comparison is not symmetric). math-verify's own timeouts are **disabled** (``parsing_timeout=None``,
``timeout_seconds=None``): they use ``signal.alarm``, which raises in any thread but the main one (math-verify
turns that into an error, verl PRs #5635, #5839, #6673) and cannot interrupt long C-level work such as
``9^{9^{9^{9^9}}}`` anyway. The real per-sample timeout is the caller's: it kills this process
(:mod:`sspo_verl.reward.verifier_pool`).

Worker protocol (``python -m sspo_verl.reward.verifier --serve FD_IN FD_OUT``): pickled tuples over two pipe
file descriptors (``multiprocessing.connection.Connection`` framing). The worker answers one
``("ready", pid)`` after a self-test, then for each ``("verify", gold, pred)`` one ``("ok", bool)`` or
``("error", message)``. EOF on FD_IN ends it. It imports only math-verify (no torch, no verl).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

_SELF_TEST = ("\\frac{1}{2}", "0.5")


def _quiet_math_verify() -> None:
    # math-verify warns once that its timeout is off (we time out from outside) and logs parse failures of
    # junk answers; neither is actionable here.
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)


def is_equivalent(gold: str, pred: str) -> bool:
    """Whether ``pred`` equals ``gold`` mathematically (math-verify, no timeout: call it in a worker).

    Args:
        gold: the reference answer, LaTeX or plain (``"\\frac{1}{2}"``, ``"0.5"``, ``"(1,2)"``).
        pred: the extracted model answer (content of its last ``\\boxed``).
    """
    from math_verify import parse, verify
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

    targets = (LatexExtractionConfig(), ExprExtractionConfig())
    gold_parsed = parse("\\boxed{" + gold + "}", extraction_config=targets, parsing_timeout=None)
    pred_parsed = parse("\\boxed{" + pred + "}", extraction_config=targets, parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _set_memory_limit(memory_limit_mb: int) -> None:
    """Cap the address space so a runaway sympy computation raises MemoryError instead of eating the node."""
    if memory_limit_mb <= 0:
        return
    import resource

    limit = memory_limit_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the thread that started it ends (the pool's spawner thread)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except Exception:  # best effort; EOF on the request pipe also ends the worker
        pass


def serve(fd_in: int, fd_out: int, memory_limit_mb: int, parent_pid: int) -> int:
    """Worker main loop: answer verify requests until EOF. Returns the exit code."""
    from multiprocessing.connection import Connection

    _die_with_parent()
    if parent_pid and os.getppid() != parent_pid:
        return 3  # the parent died before prctl took effect
    requests = Connection(fd_in, writable=False)
    replies = Connection(fd_out, readable=False)
    _quiet_math_verify()
    try:
        ok = is_equivalent(*_SELF_TEST)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
        replies.send(("error", f"math-verify self-test raised {type(exc).__name__}: {exc}"))
        return 2
    if not ok:
        replies.send(("error", f"math-verify self-test failed: {_SELF_TEST[0]} != {_SELF_TEST[1]}"))
        return 2
    _set_memory_limit(memory_limit_mb)  # after imports: the limit is for the work, not for loading sympy
    replies.send(("ready", os.getpid()))
    while True:
        try:
            message = requests.recv()
        except (EOFError, OSError):
            return 0
        try:
            op = message[0]
            if op == "verify":
                replies.send(("ok", is_equivalent(message[1], message[2])))
            else:
                replies.send(("error", f"unknown op {op!r}"))
        except MemoryError:
            replies.send(("error", "MemoryError"))
        except RecursionError:
            replies.send(("error", "RecursionError"))
        except Exception as exc:  # noqa: BLE001 - a bad answer must not end the worker
            replies.send(("error", f"{type(exc).__name__}: {str(exc)[:200]}"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="math-verify worker process (started by VerifierPool)")
    parser.add_argument("--serve", nargs=2, type=int, metavar=("FD_IN", "FD_OUT"), required=True)
    parser.add_argument("--memory-limit-mb", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, default=0)
    args = parser.parse_args(argv)
    return serve(args.serve[0], args.serve[1], args.memory_limit_mb, args.parent_pid)


if __name__ == "__main__":
    sys.exit(main())
