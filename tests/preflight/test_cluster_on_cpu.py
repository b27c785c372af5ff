"""sspo_verl.preflight.cluster: nodes × GPUs against Slurm, a Ray cluster (a fake probe; the real probe against a closed port) and this machine."""

from __future__ import annotations

import time

import pytest

from sspo_verl.preflight import count_visible_gpus, probe_ray_cluster
from tests.preflight.configs import NX8, FakeCluster, check, messages


def test_cluster_check_against_slurm(data_dir):
    slurm = {"SLURM_JOB_ID": "1", "SLURM_JOB_NUM_NODES": "2", "SLURM_GPUS_ON_NODE": "8"}
    _, report = check(NX8, env=slurm)
    assert messages(report, "cluster") == []
    _, report = check(NX8, env={**slurm, "SLURM_JOB_NUM_NODES": "1"})
    (msg,) = messages(report, "cluster", "error")
    assert "SLURM_JOB_NUM_NODES=1" in msg and "trainer.nnodes=1" in msg and "--nodes=2" in msg
    _, report = check(NX8, env={**slurm, "SLURM_JOB_NUM_NODES": "4"})
    assert messages(report, "cluster", "warning") and not report.errors
    _, report = check(NX8, env={**slurm, "SLURM_GPUS_ON_NODE": "4"})
    (msg,) = messages(report, "cluster", "error")
    assert "4 GPU(s) per node" in msg and "trainer.n_gpus_per_node=4" in msg
    no_on_node = {k: v for k, v in slurm.items() if k != "SLURM_GPUS_ON_NODE"}
    _, report = check(NX8, env={**no_on_node, "SLURM_GPUS_PER_NODE": "h100:8"})
    assert messages(report, "cluster") == []
    _, report = check(NX8, env={**no_on_node, "SLURM_JOB_GPUS": "0,1,2,3"})
    assert messages(report, "cluster", "error")


def test_cluster_check_against_a_ray_cluster(data_dir):
    env = {"RAY_ADDRESS": "head:6379"}
    cluster = FakeCluster([8.0, 8.0])
    _, report = check(NX8, env=env, cluster=cluster)
    assert messages(report, "cluster") == [] and cluster.calls == [("head:6379", 60.0)]
    for nodes in ([8.0], [8.0, 4.0], [0.0, 8.0]):
        _, report = check(NX8, env=env, cluster=FakeCluster(nodes))
        (msg,) = messages(report, "cluster", "error")
        assert "head:6379" in msg and "ray status" in msg, nodes
    _, report = check(NX8, env=env, cluster=FakeCluster([8.0, 8.0, 8.0]))
    assert messages(report, "cluster", "warning") and not report.errors
    _, report = check(NX8, env=env, cluster=FakeCluster(error="no answer from the Ray cluster"))
    (msg,) = messages(report, "cluster", "error")
    assert "no answer" in msg and "ray start --head" in msg
    # The address may also come from the config; "local" means verl starts its own Ray: not probed.
    cluster = FakeCluster([8.0, 8.0])
    check([*NX8, "+ray_kwargs.ray_init.address=10.0.0.1:6379"], cluster=cluster)
    assert cluster.calls == [("10.0.0.1:6379", 60.0)]


def test_cluster_check_on_this_machine(data_dir):
    _, report = check(NX8)
    (msg,) = messages(report, "cluster", "error")
    assert "no cluster is given" in msg and "RAY_ADDRESS" in msg
    _, report = check([], gpus=4)
    (msg,) = messages(report, "cluster", "error")
    assert "shows 4 GPU(s)" in msg and "trainer.n_gpus_per_node=4" in msg
    _, report = check([], gpus=16)
    assert messages(report, "cluster", "warning") and not report.errors
    _, report = check([], gpus=None)
    (msg,) = messages(report, "cluster", "warning")
    assert "no GPU is visible" in msg and "hardware=cpu" in msg
    _, report = check(["preflight.check_cluster=false"], gpus=4)
    assert messages(report, "cluster") == []


def test_cluster_check_skips_the_cpu_backend(data_dir):
    _, report = check(["hardware=cpu", "model=tiny", "rollout=hf", "preflight.check_files=false"], gpus=0,
                      env={"SLURM_JOB_ID": "1", "SLURM_JOB_NUM_NODES": "3"})
    assert messages(report, "cluster") == []


def test_count_visible_gpus_reads_cuda_visible_devices():
    assert count_visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1,2"}) == 3
    assert count_visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert count_visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == 0


def test_ray_probe_is_bounded_and_never_connects_this_process():
    import ray

    start = time.monotonic()
    with pytest.raises(RuntimeError, match="127.0.0.1:9"):
        probe_ray_cluster("127.0.0.1:9", timeout_s=5)
    assert time.monotonic() - start < 15
    assert not ray.is_initialized()
