"""``sspo-report RUN_DIR... [--out DIR]``: figures and tables comparing runs, grouped by algorithm and seed.

    sspo-report outputs/sspo/grpo-qwen2.5-math-1.5b-seed1 outputs/sspo/sspo-qwen2.5-math-1.5b-seed1 ...
    sspo-report outputs/sspo                      # every run directory below it
    sspo-report runs/demo --out runs/demo/report  # the CPU demo's runs
    sspo-report RUN_DIR... --source tensorboard --smooth 5
    sspo-report runs/ablation                     # a sweep: training curves and, once `sspo-eval sweep` ran, its
                                                  # evaluation (table, accuracy per algorithm, against step)

Reads verl's file logger (``metrics.jsonl`` and the ``metrics.<n>.jsonl`` parts of resumed attempts) or,
without it, TensorBoard event files (``<run dir>/tensorboard``, or event files in the directory itself). Exit
status 2 with a message naming the directory when one holds no metrics.
"""

from __future__ import annotations

import argparse
import os
import sys

from sspo_verl.report.evaluation import find_summaries
from sspo_verl.report.logs import SOURCES, MetricsNotFoundError
from sspo_verl.report.report import expand_run_dirs, write_report

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sspo-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directories, or directories whose subdirectories are runs")
    parser.add_argument("--out", default="sspo_report", help="output directory (default ./sspo_report)")
    parser.add_argument("--source", choices=SOURCES, default="auto",
                        help="metrics to read: auto (JSONL when present, else TensorBoard), jsonl, tensorboard")
    parser.add_argument("--smooth", type=int, default=1, metavar="N",
                        help="figures: trailing moving average over N logged points (default 1: none)")
    parser.add_argument("--title", default="GRPO / GSPO / SSPO runs", help="heading of report.md")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smooth < 1:
        print(f"sspo-report: --smooth {args.smooth}: expected a positive integer", file=sys.stderr)
        return EXIT_BAD_INPUT
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"sspo-report: --out {args.out} is a file; give a directory (it is created if needed)", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        run_dirs = expand_run_dirs(args.run_dirs)
        report = write_report(run_dirs, args.out, title=args.title, source=args.source, window=args.smooth,
                              evaluations=find_summaries(args.run_dirs))
    except (MetricsNotFoundError, ValueError) as e:
        print(f"sspo-report: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:  # an --out that cannot be created or written (a file in the path, permissions, disk)
        print(f"sspo-report: cannot write the report to --out {args.out}: {e.strerror or e} "
              f"({e.filename or args.out}). Give a writable directory.", file=sys.stderr)
        return EXIT_BAD_INPUT
    for label, runs in report.groups.items():
        seeds = ", ".join(str(r.seed) if r.seed is not None else "?" for r in runs)
        print(f"{label}: {len(runs)} run(s), seeds {seeds}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"wrote {report.markdown}, {len(report.figures)} figure(s), {report.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
