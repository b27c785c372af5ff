"""``recipes/slurm/ablation.sh`` on the real 2-node Slurm cluster (slurm_cluster.py): a real job array, grpo and
sspo, one node each (both run at once); each task reads its manifest row on its node, starts its Ray cluster and
runs ``sspo-train dry_run=true`` (compose, pre-flight, the resolved config in the run dir: training across the
cluster is test_train_sbatch_slurm_on_cpu.py's), and a submission to a hung controller."""

from __future__ import annotations

import csv
import signal
import time

import pytest
from omegaconf import OmegaConf

from tests.recipes.slurm_jobs import TINY_RUN, assert_torn_down, job_env
from tests.recipes.stub_cluster import ABLATION_SH

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_job_array_runs_each_task_in_its_own_run_dir(slurm_cluster, slurm_tiny_dir):
    cluster = slurm_cluster
    env = job_env(cluster, ALGOS="grpo sspo", SEEDS="1", NODES="1", SWEEP_NAME="abl",
                  SBATCH_ARGS="--gpus-per-node=1 --cpus-per-task=16")
    submitted = cluster.cmd("bash", str(ABLATION_SH), *TINY_RUN, "dry_run=true", env=env, cwd=cluster.base)
    job = submitted.stdout.split("job array ", 1)[1].split(",", 1)[0]
    tasks = cluster.wait_jobs(job, 600)
    sweep = cluster.base / "runs" / "abl"
    outputs = [(sweep / f"slurm-{job}_{i}.out").read_text()[-3000:] for i in (0, 1)]
    assert sorted((t["ArrayTaskId"], t["JobState"], t["ExitCode"]) for t in tasks) == [
        ("0", "COMPLETED", "0:0"), ("1", "COMPLETED", "0:0")], outputs
    lines = (sweep / "manifest.tsv").read_text().splitlines()
    rows = [dict(zip(lines[0].lstrip("# ").split("\t"), r)) for r in csv.reader(lines[1:], delimiter="\t")]
    assert [(r["index"], r["run_name"], r["algo"]) for r in rows] == [("0", "abl-grpo-seed1", "grpo"),
                                                                     ("1", "abl-sspo-seed1", "sspo")]
    for row in rows:
        run_dir = sweep / row["run_name"]
        assert row["run_dir"] == str(run_dir)
        launcher = (run_dir / "logs" / "launcher.log").read_text()
        assert f"(array task {row['index']})" in launcher and f"run {row['run_name']} in {run_dir}" in launcher
        assert "attempt 0: 1 node(s)" in launcher and "Ray cluster complete: SSPO_PROBE 1 1" in launcher
        # the manifest's algorithm, seed and run reached the trainer, which resolved them into the run dir
        config = OmegaConf.load(run_dir / "resolved_config.yaml")
        assert (config.algorithm_preset.name, config.seed) == (row["algo"], 1)
        assert config.trainer.experiment_name == row["run_name"]
        assert config.trainer.default_local_dir == f"{run_dir}/checkpoints"
        assert f"sspo-train dry run: algorithm={row['algo']}" in (run_dir / "logs" / "train.log").read_text()
    assert_torn_down(cluster)


def test_submission_to_a_hung_controller_is_an_error_naming_the_knob(fresh_slurm_cluster):
    cluster = fresh_slurm_cluster
    cluster.signal_daemon("slurmctld", signal.SIGSTOP)
    start = time.monotonic()
    try:
        result = cluster.cmd("bash", str(ABLATION_SH), env=job_env(cluster, ALGOS="sspo", SEEDS="1", CHECK="0",
                                                                    SUBMIT_TIMEOUT="3"), check=False)
    finally:
        cluster.signal_daemon("slurmctld", signal.SIGCONT)
    assert time.monotonic() - start < 9  # before Slurm's own MessageTimeout (10 s here)
    assert result.returncode != 0
    assert "sbatch did not answer within SUBMIT_TIMEOUT=3s" in result.stderr, result.stderr
