"""A pretend Slurm allocation for what the real cluster of slurm_cluster.py cannot show here: many nodes, GPU
counts, container runtimes, and the launch scripts' argument plumbing, in seconds.

The stand-in commands in ``stubs/`` (``srun``, ``scontrol``, ``sbatch``, ``ray``, ``python3``, ``sspo-train``,
``apptainer``) come first on PATH. Each records its node and arguments as one file per
call; :meth:`StubCluster.calls` reads them back in call order. ``srun`` runs its command with ``STUB_NODE``
set to the node it was sent to, so the records say where each command ran.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STUBS = Path(__file__).resolve().parent / "stubs"
TRAIN_SBATCH = REPO / "recipes" / "slurm" / "train.sbatch"
ABLATION_SH = REPO / "recipes" / "slurm" / "ablation.sh"


@dataclass(frozen=True)
class Call:
    """One recorded command: its name, the node it ran on (``batch``: the batch shell) and its arguments."""

    name: str
    node: str
    args: tuple[str, ...]

    def opt(self, key: str) -> str | None:
        """Value of a ``key=value`` argument (``--nodelist``, ``trainer.nnodes``), or None."""
        for arg in self.args:
            if arg.startswith(key + "="):
                return arg[len(key) + 1 :]
        return None


class StubCluster:
    """Environment and helpers for one pretend job on ``nnodes`` nodes named gpu001, gpu002, ..."""

    def __init__(self, tmp_path: Path, nnodes: int, gpus_per_node: int = 8, cpus_per_task: int = 32):
        self.tmp = tmp_path
        self.stub_dir = tmp_path / "stub"
        for sub in ("calls", "alive", "pids"):
            (self.stub_dir / sub).mkdir(parents=True, exist_ok=True)
        self.hosts = [f"gpu{i:03d}" for i in range(1, nnodes + 1)]
        self.runs_root = tmp_path / "runs"
        self.env = {
            # A clean environment: nothing from the test runner's shell (ALGO, SLURM_*, a real ray) leaks in.
            "PATH": f"{STUBS}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "STUB_DIR": str(self.stub_dir),
            "STUB_HOSTNAMES": " ".join(self.hosts),
            "SLURM_JOB_ID": "1001",
            "SLURM_JOB_NAME": "sspo",
            "SLURM_JOB_NODELIST": f"gpu[001-{nnodes:03d}]" if nnodes > 1 else "gpu001",
            "SLURM_JOB_NUM_NODES": str(nnodes),
            "SLURM_GPUS_ON_NODE": str(gpus_per_node),
            "SLURM_CPUS_PER_TASK": str(cpus_per_task),
            "SLURM_SUBMIT_DIR": str(tmp_path),
            "RUNS_ROOT": str(self.runs_root),
            # Bounds small enough for tests that take seconds, not minutes.
            "NODE_WAIT_TIMEOUT": "10",
            "NODE_WAIT_POLL": "0.05",
            "CMD_TIMEOUT": "10",
            "PREFLIGHT_TIMEOUT": "10",
            "TEARDOWN_TIMEOUT": "5",
        }

    def _env(self, overrides: dict[str, str | None]) -> dict[str, str]:
        env = dict(self.env)
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def run(self, *args: str, script: Path = TRAIN_SBATCH, timeout: float = 60, **env: str | None):
        """Run ``script args...`` to completion; keyword arguments set (str) or unset (None) variables."""
        return subprocess.run(
            ["bash", str(script), *args],
            cwd=self.tmp,
            env=self._env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str, script: Path = TRAIN_SBATCH, **env: str | None) -> subprocess.Popen:
        """Start the script in the background (for signal tests)."""
        return subprocess.Popen(
            ["bash", str(script), *args],
            cwd=self.tmp,
            env=self._env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def signal_when(self, ready: str, sig: int, *args: str, **env: str | None) -> tuple[int, str]:
        """Start the script, send ``sig`` once ``stub_dir/ready`` exists, return (exit status, stderr)."""
        proc = self.start(*args, **env)
        try:
            self.wait_for_file(self.stub_dir / ready)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        return proc.returncode, err

    def wait_for_file(self, path: Path, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
            time.sleep(0.02)

    def calls(self, name: str | None = None) -> list[Call]:
        """Recorded calls in call order, optionally only those of one command."""
        out = []
        for f in sorted((self.stub_dir / "calls").iterdir()):
            if f.suffix == ".tmp":
                continue
            fields = f.read_bytes().split(b"\0")[:-1]
            call = Call(fields[0].decode(), fields[1].decode(), tuple(x.decode() for x in fields[2:]))
            if name is None or call.name == name:
                out.append(call)
        return out

    def index(self, call: Call) -> int:
        """Position of a call in the overall call order."""
        return self.calls().index(call)

    def ray_pids(self) -> dict[str, int]:
        return {f.name.removeprefix("ray-"): int(f.read_text()) for f in (self.stub_dir / "pids").iterdir()}

    @staticmethod
    def pid_alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def assert_torn_down(self) -> None:
        """Every Ray stand-in that was started got SIGTERM (recorded) and no longer runs."""
        stopped = {c.node for c in self.calls("event") if c.args == ("ray-stopped",)}
        pids = self.ray_pids()
        assert stopped == set(pids), f"Ray stopped on {sorted(stopped)}, started on {sorted(pids)}"
        deadline = time.monotonic() + 5
        while any(self.pid_alive(p) for p in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not [n for n, p in pids.items() if self.pid_alive(p)], "Ray stand-ins still running after exit"
