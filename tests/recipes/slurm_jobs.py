"""How the real-cluster tests submit the project's jobs: their environment, a small training run, and the check
that nothing is left behind."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.recipes.slurm_cluster import SlurmCluster
from tests.recipes.stub_cluster import TRAIN_SBATCH

VENV_BIN = str(Path(sys.executable).parent)

TINY_RUN = (  # the e2e tests' small run: 4 prompts x 4 responses of 16 tokens, 2 per rank per mini-batch
    "model=tiny", "rollout=hf", "trainer.total_epochs=100", "trainer.val_before_train=false", "trainer.test_freq=-1",
    "data.train_batch_size=4", "actor_rollout_ref.rollout.n=4", "data.max_response_length=16",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
)


def submit(cluster: SlurmCluster, *overrides: str, nodes: int = 2, **knobs: str) -> int:
    # --gpus-per-node=1: Slurm's GPU GRES (a /dev/null device) sets CUDA_ and ROCR_VISIBLE_DEVICES as on GPU nodes
    return cluster.sbatch(f"--nodes={nodes}", "--gpus-per-node=1", "--cpus-per-task=16",
                          f"--output={cluster.base}/log/job-%j.out", str(TRAIN_SBATCH), *overrides,
                          env=job_env(cluster, **knobs), cwd=cluster.base)


def job_env(cluster: SlurmCluster, **knobs: str) -> dict[str, str]:
    """A clean environment for a job (sbatch exports it to every step): this venv first on PATH, the CPU
    hardware preset, the cluster's run root; the node check skipped (PREFLIGHT=0) unless a test asks for it."""
    return {
        "PATH": f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(cluster.base),
        "LANG": "C.UTF-8",
        **cluster.env,
        "RUNS_ROOT": str(cluster.base / "runs"),
        "SSPO_TINY_DIR": str(cluster.base / "tiny"),
        "HARDWARE": "cpu",
        "CHECK_GPUS": "0",
        "PREFLIGHT": "0",
        "RAY_HEAD_START_EXTRA": "--include-dashboard=false",
        "NODE_WAIT_POLL": "1",
        **knobs,
    }


def _ray_processes(cluster: SlurmCluster) -> dict[str, list[str]]:
    return {n: [c for c in cluster.processes(n).values() if "ray" in c] for n in cluster.nodes}


def assert_torn_down(cluster: SlurmCluster, timeout: float = 30) -> None:
    """No job is left, and no Ray process on any node."""
    deadline = time.monotonic() + timeout
    while any(_ray_processes(cluster).values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(_ray_processes(cluster).values()), _ray_processes(cluster)
    assert cluster.cmd("squeue", "--noheader").stdout.strip() == ""
