"""``python -m sspo_verl.cluster head-ip|node-check|probe``: see the package docstring."""

from __future__ import annotations

import argparse
import os
import sys

from sspo_verl.cluster.node import config_model_paths, head_ip, model_problems, node_name, node_problems
from sspo_verl.ray_probe import wait_for_cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sspo_verl.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("head-ip", help="print SSPO_HEAD_IP <address>")
    p.add_argument("--iface", default="", help="the interface that carries Ray, NCCL and Gloo (empty: by host name)")
    p = sub.add_parser("node-check", help="print SSPO_NODE_OK <node> or SSPO_NODE_FAIL <node>: <problems>")
    p.add_argument("--train-cmd", default="sspo-train")
    p.add_argument("--shared-file", required=True, help="a file in the run directory, written by the batch script")
    p.add_argument("--gpus", type=int, default=0, help="GPUs torch must see (0: do not check)")
    p.add_argument("--hub-timeout", type=float, default=10, help="seconds for the Hub to answer for a model id")
    p.add_argument("--collective", default="", help="HEAD_IP:PORT: one all_reduce across the step's tasks (empty: none)")
    p.add_argument("--collective-timeout", type=float, default=60, help="seconds for the rendezvous and all_reduce")
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto",
                   help="auto: nccl when --gpus > 0 and CUDA works here, else gloo")
    p.add_argument("--rank", type=int, default=None, help="default: SLURM_PROCID")
    p.add_argument("--world", type=int, default=None, help="default: SLURM_NTASKS")
    p.add_argument("overrides", nargs="*", help="sspo-train's overrides (after --): the model and tokenizer to load")
    p = sub.add_parser("probe", help="wait until the Ray cluster is complete; SSPO_PROBE_OK or SSPO_PROBE_FAIL <why>")
    p.add_argument("address", help="HEAD_IP:PORT")
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--gpus", type=int, default=0)
    p.add_argument("--expect", default="", help="comma-separated node names, to name the missing ones")
    p.add_argument("--timeout", type=float, required=True, help="seconds")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between looks")
    args = parser.parse_args(argv)

    if args.command == "head-ip":
        try:
            print(f"SSPO_HEAD_IP {head_ip(args.iface or None)}", flush=True)
        except LookupError as exc:
            print(f"SSPO_HEAD_IP_FAIL {exc}", flush=True)
            return 1
    elif args.command == "node-check":
        return _node_check(args)
    else:
        why = wait_for_cluster(args.address, args.nodes, args.gpus, [n for n in args.expect.split(",") if n],
                               args.timeout, args.poll, emit=lambda line: print(line, flush=True))
        if why:
            print(f"SSPO_PROBE_FAIL {why}", flush=True)
            return 1
        print("SSPO_PROBE_OK", flush=True)
    return 0


def _node_check(args: argparse.Namespace) -> int:
    """Every problem of this node on one line; with ``--collective``, every node also joins the all_reduce (also
    one with local problems: the others would wait for it)."""
    problems = node_problems(args.train_cmd, args.shared_file, args.gpus)
    if args.overrides:
        try:
            problems += model_problems(config_model_paths(args.overrides), args.hub_timeout)
        except Exception as exc:  # the trainer's own pre-flight names a bad override better; say it here too
            problems.append(f"cannot compose sspo-train's config: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    hung = False
    if args.collective:
        from sspo_verl.cluster.collective import CollectiveError, all_reduce_check

        rank = args.rank if args.rank is not None else int(os.environ.get("SLURM_PROCID", "0"))
        world = args.world if args.world is not None else int(os.environ.get("SLURM_NTASKS", "1"))
        try:
            import torch

            backend = args.backend
            if backend == "auto":
                backend = "nccl" if args.gpus and torch.cuda.is_available() else "gloo"
            total = all_reduce_check(args.collective, rank, world, backend, args.collective_timeout)
            if total != world:
                problems.append(f"the all_reduce across {world} node(s) gave {total}, expected {world}")
        except CollectiveError as exc:
            problems.append(str(exc))
            hung = exc.hung
        except ImportError as exc:  # the other nodes wait for this one until COLLECTIVE_TIMEOUT, then say so
            problems.append(f"no all_reduce from this node: {type(exc).__name__}: {exc}")
    if problems:
        print(f"SSPO_NODE_FAIL {node_name()}: {'; '.join(problems)}", flush=True)
    else:
        print(f"SSPO_NODE_OK {node_name()}", flush=True)
    if hung:  # a collective thread still blocked in the backend would keep the interpreter from exiting
        os._exit(1)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
