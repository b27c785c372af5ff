"""A real Slurm cluster of N nodes on this machine, each node a network namespace: for tests, or by hand.

Debian's Slurm 22.05 and munge (``apt-get install slurm-wlm munge``), root, and network namespaces are needed;
:func:`unavailable` says which is missing. One cluster, all names unique to it (``<id>``: 6 hex digits)::

    netns s<id>b      the bridge; nothing is added to the machine's own network
    netns s<id>c      the controller: eth0 10.250.0.1/24 on the bridge, hostname ctl, slurmctld
    netns s<id>n<i>   node n<i>: eth0 10.250.0.(10+i)/24 on the bridge, hostname n<i>, slurmd; a private mount
                      namespace gives it its own /etc/hosts, /tmp (node-local, as on real nodes: Ray's /tmp/ray)
                      and /dev/shm
    BASE              /var/tmp/sspo-slurm-<id>: slurm.conf, munge key and socket, state, spool, daemon logs,
                      job output (log/), the nodes' /tmp (nodes/n<i>/tmp); shared by every node like an NFS home

munged, slurmctld and each slurmd run in the foreground as children of this process. :meth:`SlurmCluster.stop`
cancels every job, stops each daemon by its pid (TERM, then KILL), kills what is left in the cluster's
namespaces (Ray, job steps), deletes the namespaces (their veths and the bridge go with them) and BASE (kept with
SSPO_SLURM_KEEP=1, to read the logs).
Slurm commands reach the controller from inside its namespace: :meth:`SlurmCluster.cmd`.

By hand (root)::

    python -m tests.recipes.slurm_cluster --nodes 2     # a shell whose Slurm commands reach the cluster;
                                                        # leaving it stops the cluster
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
         "DEADLINE")
SUBNET = "10.250.0"  # inside the cluster's own namespaces only, so every cluster may use the same one
TOOLS = ("slurmctld", "slurmd", "munged", "sbatch", "srun", "scontrol", "squeue", "sinfo", "scancel", "ip",
         "nsenter", "unshare")

SLURM_CONF = """\
# A {nnodes}-node Slurm cluster on one machine (tests/recipes/slurm_cluster.py): one network namespace per node.
ClusterName=sspo{id}
SlurmctldHost=ctl({subnet}.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire (default 120 s): a requeued job may start again cred_expire + 1 s after it ended
AuthInfo=socket={base}/munge/munge.socket,cred_expire=10
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool/%n
SlurmctldPidFile={base}/run/slurmctld.pid
SlurmdPidFile={base}/run/slurmd-%n.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd-%n.log
# pgid: at the end of a step Slurm kills its process group, which holds every Ray process of the step (also the
# agents that the raylet leaves behind when it dies; linuxproc loses those). Real clusters use cgroup.
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
# sched_interval (default 60 s): the main scheduling loop, which starts a requeued job once its begin time passed
SchedulerParameters=sched_interval=2
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# CPUs and memory below are what the nodes claim, not checked against the machine
SlurmdParameters=config_overrides
SlurmctldTimeout=30
# a node that stops answering is DOWN after 30 s (default 300), and its jobs can end
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=5
# finished jobs stay visible to `scontrol show job` for 10 min (no accounting database here)
MinJobAge=600
GresTypes=gpu
"""


def unavailable() -> str | None:
    """Why a cluster cannot start on this machine (the reason a test skips with), or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, slurmd as root)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not found: apt-get install slurm-wlm munge (Debian 12: Slurm 22.05)"
    probe = f"sspo-probe-{os.getpid()}"
    out = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if out.returncode != 0:
        return f"cannot create a network namespace (ip netns add: {out.stderr.strip()})"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _shared_under_tmp() -> list[Path]:
    """The checkout and this Python's environment, where they live under /tmp (outermost paths only)."""
    paths = sorted({Path(__file__).resolve().parents[2], Path(sys.prefix).resolve()})
    under = [p for p in paths if p.is_relative_to("/tmp") and p != Path("/tmp")]
    return [p for p in under if not any(p != q and p.is_relative_to(q) for q in under)]


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen


class SlurmCluster:
    """One cluster: ``with SlurmCluster(2) as c: job = c.sbatch(...)``. See the module docstring."""

    def __init__(self, nnodes: int = 2, cpus: int = 16, memory_mb: int = 8000, gpus: int = 1):
        if gpus not in (0, 1):
            raise ValueError("gpus: 0 or 1 per node (one /dev/null stands in for a GPU device file)")
        self.nnodes, self.cpus, self.memory_mb, self.gpus = nnodes, cpus, memory_mb, gpus
        self.id = secrets.token_hex(3)
        self.base = Path(f"/var/tmp/sspo-slurm-{self.id}")  # short: Ray's socket paths must stay < 108 bytes
        self.nodes = [f"n{i}" for i in range(1, nnodes + 1)]
        self.bridge_ns, self.ctl_ns = f"s{self.id}b", f"s{self.id}c"
        self.node_ns = {n: f"s{self.id}{n}" for n in self.nodes}
        self.addr = {"ctl": f"{SUBNET}.1", **{n: f"{SUBNET}.{10 + i}" for i, n in enumerate(self.nodes, 1)}}
        self.conf = self.base / "etc" / "slurm.conf"
        self.daemons: dict[str, Daemon] = {}
        self._namespaces: list[str] = []

    # ------------------------------------------------------------------ start / stop
    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """What a Slurm client needs (merge into a job's environment: sbatch exports it to the job)."""
        return {"SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 60) -> None:
        for sub in ("etc", "state", "log", "run", "munge", *(f"spool/{n}" for n in self.nodes),
                    *(f"nodes/{n}/tmp" for n in self.nodes)):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        for n in self.nodes:
            (self.base / "nodes" / n / "tmp").chmod(0o1777)
        self._write_config()
        self._start_network()
        key = self.base / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        m = self.base / "munge"
        self._spawn("munged", ["munged", "-F", "--force", f"--socket={m}/munge.socket", f"--key-file={key}",
                               f"--log-file={self.base}/log/munged.log", f"--pid-file={self.base}/run/munged.pid",
                               f"--seed-file={m}/munged.seed"])
        self._wait(lambda: (m / "munge.socket").exists(), 10, "munged did not create its socket")
        ctld = ["slurmctld", "-D", "-f", str(self.conf)]
        self._spawn("slurmctld", self._in_node_namespaces(self.ctl_ns, "ctl", ctld))
        for n in self.nodes:
            self._spawn(f"slurmd-{n}", self._in_node_namespaces(
                self.node_ns[n], n, ["slurmd", "-D", "-f", str(self.conf), "-N", n], private_tmp=True))
        self._wait(lambda: len(self.idle_nodes()) == self.nnodes, timeout,
                   f"not all {self.nnodes} nodes became idle")

    def _write_config(self) -> None:
        text = SLURM_CONF.format(nnodes=self.nnodes, id=self.id, subnet=SUBNET, base=self.base)
        for n in self.nodes:
            text += (f"NodeName={n} NodeHostname={n} NodeAddr={self.addr[n]} CPUs={self.cpus} "
                     f"RealMemory={self.memory_mb}{' Gres=gpu:1' if self.gpus else ''} State=UNKNOWN\n")
        text += f"PartitionName=debug Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP\n"
        self.conf.write_text(text)
        # Slurm 22.05 drops GPUs without a device file; /dev/null stands in (counted, never opened).
        (self.base / "etc" / "gres.conf").write_text(
            "".join(f"NodeName={n} Name=gpu File=/dev/null\n" for n in self.nodes) if self.gpus == 1 else "")
        hosts = "127.0.0.1 localhost\n" + "".join(f"{a} {h}\n" for h, a in self.addr.items())
        (self.base / "etc" / "hosts").write_text(hosts)

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def _start_network(self) -> None:
        for ns in (self.bridge_ns, self.ctl_ns, *self.node_ns.values()):
            self._ip("netns", "add", ns)
            self._namespaces.append(ns)
            self._ip("-n", ns, "link", "set", "lo", "up")
        self._ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        self._ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        for i, (host, ns) in enumerate([("ctl", self.ctl_ns), *self.node_ns.items()]):
            veth = f"v{i}"
            self._ip("-n", self.bridge_ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._ip("-n", self.bridge_ns, "link", "set", veth, "master", "br0", "up")
            self._ip("-n", ns, "addr", "add", f"{self.addr[host]}/24", "dev", "eth0")
            self._ip("-n", ns, "link", "set", "eth0", "up")

    def _in_node_namespaces(self, ns: str, hostname: str, argv: list[str], private_tmp: bool = False) -> list[str]:
        """argv run inside ``ns`` with its own hostname and mounts. ``nsenter --net``, not ``ip netns exec``
        (which remounts /sys: slurmd then finds no /sys/fs/cgroup). With ``private_tmp`` the node's /tmp is its
        own, but the checkout and this Python's environment stay visible where they live under /tmp (a clone in
        /tmp: the jobs' working directory and their ``sspo-train``), as a shared home is on real nodes."""
        mounts = [f"mount --bind {self.base}/etc/hosts /etc/hosts"]
        if private_tmp:
            node_tmp = self.base / "nodes" / hostname / "tmp"
            for path in _shared_under_tmp():
                (node_tmp / path.relative_to("/tmp")).mkdir(parents=True, exist_ok=True)
                mounts.append(f"mount --bind {path} {node_tmp / path.relative_to('/tmp')}")
            mounts += [f"mount --rbind {node_tmp} /tmp", "mount -t tmpfs -o mode=1777 shm /dev/shm"]
        script = " && ".join([*mounts, f"hostname {hostname}", 'exec "$@"'])
        return ["nsenter", f"--net=/run/netns/{ns}", "unshare", "--uts", "--mount", "--propagation", "private",
                "sh", "-c", script, "sh", *argv]

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.base / "log" / f"{name}.out", "ab")
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        self.daemons[name] = Daemon(name, proc)

    @staticmethod
    def _wait(ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} within {timeout:g} s")
            time.sleep(0.1)

    def stop(self) -> None:
        """Everything this cluster started, also after a failed start; safe to call twice."""
        ctld = self.daemons.get("slurmctld")
        if ctld is not None and ctld.proc.poll() is None:
            self.cmd("scancel", "--quiet", f"--user={os.getuid()}", timeout=10, check=False)
        _terminate([d.proc for d in self.daemons.values()])
        self.daemons.clear()
        for ns in self._namespaces:
            _terminate_pids(self.ns_pids(ns))
        for ns in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._namespaces.clear()
        if os.environ.get("SSPO_SLURM_KEEP") == "1":
            print(f"SSPO_SLURM_KEEP=1: kept {self.base}", file=sys.stderr)
        else:
            shutil.rmtree(self.base, ignore_errors=True)

    # ------------------------------------------------------------------ use
    def cmd(self, *argv: str, timeout: float = 30, check: bool = True, env: dict | None = None,
            cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
        """Run a command (a Slurm client, a submit script) where it reaches the controller."""
        full_env = {**os.environ, **self.env, **(env or {})}
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.ctl_ns}", *argv], capture_output=True,
                              text=True, timeout=timeout, check=check, env=full_env, cwd=cwd)

    def sbatch(self, *args: str, env: dict | None = None, cwd: str | os.PathLike | None = None) -> int:
        out = self.cmd("sbatch", "--parsable", *args, env=env, cwd=cwd)
        return int(out.stdout.strip().split(";")[0])

    def jobs(self, job_id: int | str) -> list[dict[str, str]]:
        """``scontrol show job``'s fields (JobState, ExitCode, Restarts, NodeList, ...): one dict per job, one per
        task of a job array."""
        out = self.cmd("scontrol", "--oneliner", "show", "job", str(job_id)).stdout
        return [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in out.splitlines() if line.strip()]

    def job(self, job_id: int | str) -> dict[str, str]:
        (info,) = self.jobs(job_id)
        return info

    def wait_jobs(self, job_id: int | str, timeout: float) -> list[dict[str, str]]:
        """Poll until the job (every task of an array) has ended, COMPLETING included; return its fields."""
        deadline = time.monotonic() + timeout
        while True:
            infos = self.jobs(job_id)
            if infos and all(i.get("JobState") in ENDED for i in infos):
                return infos
            if time.monotonic() > deadline:
                states = [(i.get("JobId"), i.get("JobState")) for i in infos]
                raise TimeoutError(f"job {job_id} not ended after {timeout:g} s: {states}")
            time.sleep(0.5)

    def wait_job(self, job_id: int | str, timeout: float) -> dict[str, str]:
        (info,) = self.wait_jobs(job_id, timeout)
        return info

    def idle_nodes(self) -> list[str]:
        out = self.cmd("sinfo", "--noheader", "--Node", "--states=idle", "--format=%N", check=False, timeout=10)
        return sorted(set(out.stdout.split())) if out.returncode == 0 else []

    def in_node(self, node: str, *argv: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command in a node's namespaces (network, hostname, mounts), as a process on that node would."""
        pid = str(self.daemons[f"slurmd-{node}"].proc.pid)
        return subprocess.run(["nsenter", "-t", pid, "--net", "--uts", "--mount", *argv], capture_output=True,
                              text=True, timeout=timeout, check=check)

    @staticmethod
    def ns_pids(ns: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def processes(self, node: str) -> dict[int, str]:
        """Command lines of the processes in a node's network namespace, by pid (slurmd excluded)."""
        slurmd = self.daemons[f"slurmd-{node}"].proc.pid
        found = {p: _cmdline(p) for p in self.ns_pids(self.node_ns[node]) if p != slurmd}
        return {p: c for p, c in found.items() if c}

    def wait_process(self, node: str, needle: str, timeout: float) -> int:
        """The pid of the first process on ``node`` whose command line contains ``needle``, once it exists."""
        deadline = time.monotonic() + timeout
        while True:
            found = [p for p, c in self.processes(node).items() if needle in c]
            if found:
                return min(found)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no process matching {needle!r} on {node} within {timeout:g} s")
            time.sleep(0.1)

    def add_interface(self, node: str, name: str, cidr: str) -> None:
        """A second interface on one node only (a veth pair inside its namespace), e.g. a network the others lack."""
        ns = self.node_ns[node]
        self._ip("-n", ns, "link", "add", name, "type", "veth", "peer", "name", f"{name}-peer")
        self._ip("-n", ns, "addr", "add", cidr, "dev", name)
        self._ip("-n", ns, "link", "set", f"{name}-peer", "up")
        self._ip("-n", ns, "link", "set", name, "up")

    def signal_daemon(self, name: str, sig: int) -> None:
        """SIGSTOP / SIGCONT / SIGKILL one daemon (``slurmctld``, ``slurmd-n2``): a hung or dead controller or node."""
        self.daemons[name].proc.send_signal(sig)

    def log(self, name: str) -> str:
        path = self.base / "log" / name
        return path.read_text(errors="replace") if path.exists() else ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _terminate(procs: list[subprocess.Popen], grace: float = 10) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)  # a test may have stopped it
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _terminate_pids(pids: list[int], grace: float = 10) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists() and _state(p) != "Z"]
            time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=16, help="CPUs each node claims")
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"cannot start a cluster here: {reason}", file=sys.stderr)
        return 1
    with SlurmCluster(args.nodes, cpus=args.cpus) as cluster:
        print(f"{args.nodes}-node cluster up in {cluster.base} (nodes {', '.join(cluster.nodes)}); "
              "exit this shell to stop it", file=sys.stderr)
        env = {**os.environ, **cluster.env, "PS1": f"(slurm {cluster.id}) \\w\\$ "}
        subprocess.run(["nsenter", f"--net=/run/netns/{cluster.ctl_ns}", "bash", "--norc"], env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
