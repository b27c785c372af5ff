"""Throughput of the math reward (samples/s), next to verl's own math-verify reward in the same run.

    python benchmarks/bench_reward.py [--samples 400] [--procs 1,2] [--threads 8] [--csv out.csv]

Workloads (each sample unique, so math-verify's parse cache does not flatter the figures):
  exact      boxed answer identical to the ground truth (fast path, no verifier process)
  symbolic   equivalent but different form (``i/(i+1)`` vs ``\\frac{i}{i+1}``): math-verify decides
  wrong      a different value: math-verify decides
  no_box     no ``\\boxed{}``: scored 0 before any verification
  mixed      10% exact, 40% symbolic, 40% wrong, 10% no_box (every verifier-bound case weighted up)
  hang       ``9^{9^{9^{9^{i}}}}``: each costs one timeout (reported as seconds per sample)
  burst      ``--burst H,M``: H hang answers and M mixed ones submitted at once (hang first, as a burst of
             pathological answers arrives): samples/s over the burst, each sample's wall time from its call to
             its score (the verifier queue's wait included: what ``max_wait_s`` bounds), worst and median, and
             when the last sample was done (the caller threads' own queue included)

Callers are ``--threads`` threads calling ``compute_score`` (as verl's reward loop does through
``run_in_executor``). The baseline is ``verl.utils.reward_score.math_verify.compute_score`` (verl 0.9.1:
a spawn ProcessPoolExecutor of 4 workers, a 30 s ``future.result`` timeout that does not kill the worker)
on the same samples and threads; it is skipped for ``hang`` (its workers would stay busy). Its rule differs:
it parses the whole response (no ``\boxed`` needed), so ``no_box`` scores 1 there and 0 here. Both sides are
warmed up (64 verifications) before timing.
Response text is ~1.5 kB of reasoning before the answer, like a short chain of thought.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from conditions import conditions  # benchmarks/conditions.py (this script's directory)

REASONING = ("We expand the expression, collect like terms, and simplify step by step. " * 20).strip()


def make_workload(kind: str, n: int, offset: int) -> list[tuple[str, str]]:
    """(response, ground truth) pairs; ``offset`` keeps workloads disjoint."""
    pairs = []
    for j in range(n):
        i = offset + j + 2
        if kind == "exact":
            pairs.append((f"{REASONING}\nThe answer is $\\boxed{{{i}}}$.", str(i)))
        elif kind == "symbolic":
            pairs.append((f"{REASONING}\nSo $\\boxed{{{i}/{i + 1}}}$.", f"\\frac{{{i}}}{{{i + 1}}}"))
        elif kind == "wrong":
            pairs.append((f"{REASONING}\nSo $\\boxed{{\\frac{{{i + 1}}}{{{i}}}}}$.", f"\\frac{{{i}}}{{{i + 1}}}"))
        elif kind == "no_box":
            pairs.append((f"{REASONING}\nThe answer is {i}.", str(i)))
        elif kind == "hang":
            pairs.append((f"{REASONING}\n$\\boxed{{9^{{9^{{9^{{9^{{{i}}}}}}}}}}}$", "1"))
        else:
            raise ValueError(kind)
    return pairs


def make_mixed(n: int, offset: int) -> list[tuple[str, str]]:
    parts = [("exact", 0.1), ("symbolic", 0.4), ("wrong", 0.4), ("no_box", 0.1)]
    pairs = []
    for k, (kind, share) in enumerate(parts):
        pairs += make_workload(kind, int(n * share), offset + 100_000 * (k + 1))
    return pairs


def run(fn, pairs, threads: int) -> tuple[float, list]:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as executor:
        scores = list(executor.map(lambda p: fn(p[0], p[1]), pairs))
    return time.perf_counter() - start, scores


_OFFSET = [0]


def measure(impl: str, kind: str, n: int, repeats: int, threads: int, fn) -> dict:
    """Run ``repeats`` fresh batches of ``kind``; report the median rate (the machine is shared)."""
    rates, seconds_all, scores, timeouts = [], [], [], 0
    for _ in range(repeats):
        _OFFSET[0] += 1_000_000
        pairs = make_mixed(n, _OFFSET[0]) if kind == "mixed" else make_workload(kind, n, _OFFSET[0])
        seconds, results = run(fn, pairs, threads)
        rates.append(len(pairs) / seconds)
        seconds_all.append(seconds)
        scores += [_score(x) for x in results]
        timeouts += sum(int(x.get("verify_timeout", 0)) for x in results if isinstance(x, dict))
    rates.sort()
    return {
        "impl": impl, "workload": kind, "samples": len(pairs), "repeats": repeats,
        "seconds": round(sorted(seconds_all)[len(seconds_all) // 2], 3),
        "samples_per_s": round(rates[len(rates) // 2], 1), "min_per_s": round(rates[0], 1),
        "max_per_s": round(rates[-1], 1), "mean_score": round(sum(scores) / len(scores), 3), "timeouts": timeouts,
    }


def _score(result) -> float:
    return float(result["score"] if isinstance(result, dict) else result)


def _conditions(args) -> dict:
    return conditions(threads=args.threads, samples=args.samples, timeout_s=args.timeout_s)


def burst_main(args) -> int:
    """The ``burst`` workload for each ``--procs``: per-sample wall time from the burst's start, queue included."""
    from sspo_verl.reward.math_reward import DEFAULT_MAX_WAIT_S, score_response
    from sspo_verl.reward.verifier_pool import VerifierPool

    n_hang, n_mixed = (int(x) for x in args.burst.split(","))
    max_wait_s = DEFAULT_MAX_WAIT_S if args.max_wait_s is None else args.max_wait_s
    cond = {**_conditions(args), "burst": args.burst, "max_wait_s": max_wait_s}
    print("conditions: " + ", ".join(f"{k}={v}" for k, v in cond.items()), flush=True)
    print("| procs | samples (hang + mixed) | samples/s | worst wall per sample (call, verifier queue included) "
          "| median | last sample done (burst start, thread wait included) | timeouts (incl. queue) "
          "| mixed scored as in isolation |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|")
    for procs in [int(p) for p in args.procs.split(",")]:
        with VerifierPool(num_procs=procs) as pool:
            pool.verify("1", "1", timeout_s=60)
            mixed = make_mixed(n_mixed, 5 * 10**7 + procs * 10**6)
            alone = [score_response(r, g, args.timeout_s, pool)["score"] for r, g in mixed]
            pairs = make_workload("hang", n_hang, 6 * 10**7 + procs * 10**6) + mixed
            start = time.perf_counter()

            def one(pair):
                called = time.perf_counter()
                result = score_response(pair[0], pair[1], args.timeout_s, pool, max_wait_s=max_wait_s)
                done = time.perf_counter()
                return done - start, done - called, result

            with ThreadPoolExecutor(max_workers=args.threads) as executor:
                timed = list(executor.map(one, pairs))
            out = [(t, r) for t, _, r in timed]
            total = max(t for t, _ in out)
            walls = sorted(t for t, _ in out)
            calls = sorted(c for _, c, _ in timed)
            timeouts = sum(int(r["verify_timeout"]) for _, r in out)
            same = sum(r["score"] == a for (_, r), a in zip(out[n_hang:], alone))
            print(f"| {procs} | {len(pairs)} ({n_hang} + {len(mixed)}) | {len(pairs) / total:.1f} | {calls[-1]:.1f} s "
                  f"| {calls[len(calls) // 2]:.2f} s | {walls[-1]:.1f} s | {timeouts} | {same}/{len(mixed)} |", flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=400, help="samples per workload")
    parser.add_argument("--hang-samples", type=int, default=4)
    parser.add_argument("--procs", default="1,2", help="verifier process counts to measure")
    parser.add_argument("--repeats", type=int, default=3, help="fresh batches per workload; the median is reported")
    parser.add_argument("--threads", type=int, default=8, help="caller threads (verl's executor uses several)")
    parser.add_argument("--timeout-s", type=float, default=5.0)
    parser.add_argument("--no-baseline", action="store_true", help="skip verl's math_verify reward")
    parser.add_argument("--csv", default=None)
    parser.add_argument("--burst", default=None, help="H,M: only the burst workload (H hang + M mixed answers)")
    parser.add_argument("--max-wait-s", type=float, default=None, help="the reward's max_wait_s (default: its own)")
    args = parser.parse_args(argv)
    if args.burst:
        return burst_main(args)

    from sspo_verl.reward.math_reward import score_response
    from sspo_verl.reward.verifier_pool import VerifierPool

    cond = _conditions(args)
    print("conditions: " + ", ".join(f"{k}={v}" for k, v in cond.items()), flush=True)
    kinds = ["exact", "symbolic", "wrong", "no_box", "mixed"]
    rows = []
    for procs in [int(p) for p in args.procs.split(",")]:
        with VerifierPool(num_procs=procs) as pool:
            pool.verify("1", "1", timeout_s=60)  # start-up is not part of throughput
            warm = make_workload("wrong", 64, 10**7 + procs * 1000)
            run(lambda r, g: score_response(r, g, args.timeout_s, pool), warm, args.threads)
            for kind in kinds + ["hang"]:
                n = args.hang_samples if kind == "hang" else args.samples
                timeout = 1.0 if kind == "hang" else args.timeout_s
                repeats = 1 if kind == "hang" else args.repeats
                rows.append(measure(
                    f"sspo pool, {procs} proc", kind, n, repeats, args.threads,
                    lambda r, g, t=timeout: score_response(r, g, t, pool),
                ))
                print(rows[-1], flush=True)
    if not args.no_baseline:
        from verl.utils.reward_score import math_verify as verl_math_verify

        # Start all 4 of its spawn workers (created on demand) before timing anything.
        run(verl_math_verify.compute_score, make_workload("wrong", 64, 2 * 10**7), args.threads)
        for kind in kinds:
            rows.append(measure("verl math_verify (4 spawn procs)", kind, args.samples, args.repeats, args.threads,
                                verl_math_verify.compute_score))
            print(rows[-1], flush=True)
        if verl_math_verify._pool is not None:
            verl_math_verify._pool.shutdown(wait=False, cancel_futures=True)

    print()
    print("| implementation | workload | samples × repeats | samples/s (median [min, max]) | mean score | timeouts |")
    print("|:--|:--|--:|--:|--:|--:|")
    for r in rows:
        hang = r["workload"] == "hang"
        rate = (f"{r['seconds'] / r['samples']:.2f} s each (wall)" if hang
                else f"{r['samples_per_s']} [{r['min_per_s']}, {r['max_per_s']}]")
        print(f"| {r['impl']} | {r['workload']} | {r['samples']} × {r['repeats']} | {rate} | {r['mean_score']} "
              f"| {r['timeouts']} |")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) + list(cond))
            writer.writeheader()
            for r in rows:
                writer.writerow({**r, **cond})
    return 0


if __name__ == "__main__":
    sys.exit(main())
