"""``python -m sspo_verl.cluster head-ip|node-check|probe``: see the package docstring."""

from __future__ import annotations

import argparse
import sys

from sspo_verl.cluster.node import head_ip, node_name, node_problems
from sspo_verl.cluster.probe import wait_for_cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sspo_verl.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("head-ip", help="print SSPO_HEAD_IP <address>")
    p.add_argument("--iface", default="", help="the interface that carries Ray, NCCL and Gloo (empty: by host name)")
    p = sub.add_parser("node-check", help="print SSPO_NODE_OK <node> or SSPO_NODE_FAIL <node>: <problems>")
    p.add_argument("--train-cmd", default="sspo-train")
    p.add_argument("--shared-file", required=True, help="a file in the run directory, written by the batch script")
    p.add_argument("--gpus", type=int, default=0, help="GPUs torch must see (0: do not check)")
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
        problems = node_problems(args.train_cmd, args.shared_file, args.gpus)
        if problems:
            print(f"SSPO_NODE_FAIL {node_name()}: {'; '.join(problems)}", flush=True)
            return 1
        print(f"SSPO_NODE_OK {node_name()}", flush=True)
    else:
        why = wait_for_cluster(args.address, args.nodes, args.gpus, [n for n in args.expect.split(",") if n],
                               args.timeout, args.poll, emit=lambda line: print(line, flush=True))
        if why:
            print(f"SSPO_PROBE_FAIL {why}", flush=True)
            return 1
        print("SSPO_PROBE_OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
