"""sspo_verl.preflight.cluster: nodes × GPUs against Slurm, a Ray cluster (a fake probe; the real one:
tests/test_ray_probe_on_cpu.py) and this machine."""

from __future__ import annotations

import time

import pytest

from sspo_verl.preflight import count_visible_gpus
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


def test_no_gpu_here_without_hardware_cpu_is_refused_with_the_fix(data_dir):
    """The issue's hang: a GPU config on a machine without GPUs made verl wait > 5 min with no word."""
    _, report = check([], gpus=0)
    (msg,) = messages(report, "cluster", "error")
    assert "trainer.device=cuda" in msg and "no GPU" in msg and "hardware=cpu" in msg


def test_this_machine_counts_as_no_gpu_without_nvidia_smi_or_device_files(tmp_path, monkeypatch):
    import glob

    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    if glob.glob("/dev/nvidia[0-9]*"):
        pytest.skip("this machine has NVIDIA device files")
    assert count_visible_gpus({}) == 0


def test_a_hung_nvidia_smi_is_an_error_naming_the_command_and_the_knob(tmp_path, monkeypatch, data_dir):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nsleep 30\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"nvidia-smi --query-gpu=\S+ .*` did not answer within 1 s \(preflight.gpu_q"):
        count_visible_gpus({}, timeout_s=1)
    assert time.monotonic() - start < 10
    from tests.preflight.configs import config
    from sspo_verl.preflight import run_preflight

    report = run_preflight(config(["preflight.gpu_query_timeout_s=1"]), env={}, raise_on_error=False,
                           cluster_probe=FakeCluster())
    (msg,) = messages(report, "cluster", "error")
    assert "preflight.gpu_query_timeout_s" in msg and "preflight.check_cluster=false" in msg


def test_the_gpu_count_is_the_nvidia_smi_inventory_with_cuda_visible_devices_applied(tmp_path, data_dir):
    """count_visible_gpus reads preflight.gpu.query_gpus (a stand-in nvidia-smi on PATH: 2 GPUs), through the real
    check on the composed 1 node x 8 GPUs config."""
    from tests.preflight.configs import config
    from tests.preflight.test_gpu_on_cpu import ROWS, _fake_smi
    from sspo_verl.preflight import run_preflight

    env = _fake_smi(tmp_path, f"cat <<'EOF'\n{ROWS}EOF\n")
    assert count_visible_gpus(env) == 2
    assert count_visible_gpus({**env, "CUDA_VISIBLE_DEVICES": "1"}) == 1
    assert count_visible_gpus({**env, "CUDA_VISIBLE_DEVICES": "0,1,5"}) == 2  # CUDA stops at the GPU that is not there
    report = run_preflight(config(["preflight.check_cuda=false"]), env=env, cluster_probe=FakeCluster(),
                           raise_on_error=False)
    (msg,) = messages(report, "cluster", "error")
    assert "this machine shows 2 GPU(s)" in msg and "trainer.n_gpus_per_node=2" in msg
