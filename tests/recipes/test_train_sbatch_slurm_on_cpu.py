"""``sbatch recipes/slurm/train.sbatch`` on a real 2-node Slurm cluster (slurm_cluster.py): real srun steps, a real
2-node Ray cluster with token auth, the real verl trainer on CPU with one FSDP rank per node over gloo.

    one SSPO job, 2 nodes x 1 rank, 2 steps, a checkpoint per step; after step 1 the time-limit signal
    (scancel --signal=USR1 --batch, what --signal=B:USR1@600 sends) -> requeue -> attempt 1 resumes, runs step 2
    failures, each on a cluster of its own: the shared run directory not shared, a node whose slurmd dies, a Ray
    head that dies, a Ray head that hangs, a worker that cannot reach the head
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.recipes.slurm_cluster import SlurmCluster
from tests.recipes.slurm_jobs import TINY_RUN, assert_torn_down, submit

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------ one job, two attempts
@pytest.fixture(scope="module")
def requeued_run(slurm_cluster, slurm_tiny_dir):
    cluster = slurm_cluster
    run_dir = cluster.base / "runs" / "sspo2n"
    start = time.monotonic()
    job = submit(cluster, *TINY_RUN, "trainer.total_training_steps=2", "trainer.save_freq=1",
                 RUN_NAME="sspo2n", NET_IFACE="eth0")
    tracker = run_dir / "checkpoints" / "latest_checkpointed_iteration.txt"
    signalled = None
    while cluster.job(job)["JobState"] not in ("COMPLETED", "FAILED", "CANCELLED"):
        if signalled is None and tracker.exists() and tracker.read_text().strip() == "1":
            cluster.cmd("scancel", "--signal=USR1", "--batch", str(job))  # what Slurm sends 600 s before the limit
            signalled = time.monotonic()
        assert time.monotonic() - start < 800, f"job {job} still running: {cluster.log(f'job-{job}.out')[-3000:]}"
        time.sleep(1)
    info = cluster.wait_job(job, 60)
    output = cluster.log(f"job-{job}.out")
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", output[-6000:]
    return {"job": job, "info": info, "run_dir": run_dir, "output": output, "signalled": signalled,
            "launcher": (run_dir / "logs" / "launcher.log").read_text(), "cluster": cluster}


def test_sspo_trains_on_two_nodes_one_rank_each_and_exits_0(requeued_run):
    run_dir, cluster = requeued_run["run_dir"], requeued_run["cluster"]
    launcher = requeued_run["launcher"]
    assert "head n1 at 10.250.0.11:6379; NCCL_SOCKET_IFNAME=eth0" in launcher  # NET_IFACE, looked up on n1
    assert "Ray cluster complete: SSPO_PROBE 2 2 n1,n2" in launcher
    assert "trainer.nnodes=2 trainer.n_gpus_per_node=1" in launcher
    assert "checking 2 node(s)" not in launcher  # PREFLIGHT=0
    # Checkpoints of both FSDP ranks, each written on its own node (Ray logs are node-local: /tmp/ray per node).
    for step in (1, 2):
        actor = run_dir / "checkpoints" / f"global_step_{step}" / "actor"
        assert {p.name for p in actor.glob("model_world_size_2_rank_*.pt")} == {
            "model_world_size_2_rank_0.pt", "model_world_size_2_rank_1.pt"}
    for node, rank in (("n1", 0), ("n2", 1)):
        logs = "".join(p.read_text(errors="replace")
                       for p in (cluster.base / "nodes" / node / "tmp" / "ray").glob("session_*/logs/worker-*"))
        assert f"Saved model to {run_dir}/checkpoints/global_step_2/actor/model_world_size_2_rank_{rank}.pt" in logs
    # SSPO ran: its metrics, finite, for both steps
    records = _metrics(run_dir / "metrics.1.jsonl") + _metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        assert 0.0 <= r["data"]["actor/sspo/seq_none_clipped_frac"] <= 1.0 and r["data"]["actor/grad_norm"] > 0
    # RAY_HEAD_START_EXTRA=--include-dashboard=false reached the head only (a worker refuses the flag): the head
    # started without the dashboard (with it, `ray start` prints its address), and n2 joined.
    logs = run_dir / "logs"
    head_log, worker_log = (logs / "ray-head-n1.log").read_text(), (logs / "ray-worker-n2.log").read_text()
    assert head_log.count("Ray runtime started") == 2 and "view the dashboard at" not in head_log
    assert worker_log.count("Ray runtime started") == 2
    assert "Ray cluster stopped" in launcher.rsplit("attempt 1", 1)[1]
    assert_torn_down(cluster)


def test_time_limit_signal_requeues_and_the_next_attempt_resumes(requeued_run):
    info, launcher, run_dir = requeued_run["info"], requeued_run["launcher"], requeued_run["run_dir"]
    assert requeued_run["signalled"] is not None, "the step-1 checkpoint never appeared"
    assert info["Restarts"] == "1"
    attempt0, attempt1 = launcher.split("===== attempt 1:")
    assert "SIGUSR1: the time limit is near; stopping to requeue" in attempt0
    assert f"checkpoint advanced none -> 1: requeueing job {requeued_run['job']} (it resumes from step 1)" in attempt0
    assert "(latest checkpoint: 1)" in attempt1.splitlines()[1]
    # verl loaded the step-1 checkpoint; step 1 is not recomputed, and the attempts' metrics are kept apart
    assert "global_step_1" in (run_dir / "logs" / "train.log").read_text().split("===== attempt 1:")[1]
    assert [r["step"] for r in _metrics(run_dir / "metrics.1.jsonl")] == [1]
    assert [r["step"] for r in _metrics(run_dir / "metrics.jsonl")] == [2]
    # the requeue round trip (cred_expire=10, sched_interval=2 in slurm.conf): attempt 1 starts within a minute
    stamps = re.findall(r"\[sspo-slurm (\S+ \S+)\] (?:exit 0|job \d+ attempt 1)", launcher)
    ended, restarted = (time.mktime(time.strptime(s, "%Y-%m-%d %H:%M:%S")) for s in stamps[:2])
    assert 0 <= restarted - ended < 60


# ------------------------------------------------------------------ failure paths, each on a cluster of its own
def _wait_for_text(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"{text!r} not in {path} within {timeout:g} s"
        time.sleep(0.2)


def _fail(cluster: SlurmCluster, job: int, timeout: float = 240) -> str:
    info = cluster.wait_job(job, timeout)
    launcher = next((cluster.base / "runs").glob("*/logs/launcher.log")).read_text()
    assert info["JobState"] == "FAILED" and info["Restarts"] == "0", (info, launcher)
    return launcher


def test_run_dir_not_shared_by_a_node_is_named_before_ray_starts(fresh_slurm_cluster, tiny_model_dir):
    cluster = fresh_slurm_cluster
    (cluster.base / "runs").mkdir()
    shutil.copytree(tiny_model_dir, cluster.base / "tiny" / "model")  # model=tiny's path, seen by both nodes
    # n2 gets a node-local, empty runs directory: what RUNS_ROOT on a node's /tmp or scratch looks like
    cluster.in_node("n2", "mount", "-t", "tmpfs", "local", str(cluster.base / "runs"))
    job = submit(cluster, "model=tiny", PREFLIGHT="1", RUN_NAME="unshared", NET_IFACE="eth0")
    launcher = _fail(cluster, job)
    assert re.search(r"node check failed: n2: cannot see \S+/runs/unshared/\.visible-from-all-nodes: RUNS_ROOT must "
                     r"be on a filesystem shared by all nodes", launcher), launcher
    # n1 passed: verl imports, SSPO registered, the model loads there, and the all_reduce across both nodes over
    # eth0 (gloo) succeeded; n2 took part in it too (its only problem is the run directory)
    assert "SSPO_NODE_OK n1" in launcher and "n1:" not in launcher.split("node check failed:")[1]
    assert "all_reduce" not in launcher.split("node check failed:")[1]
    assert "ray-head-n1.log" not in {p.name for p in (cluster.base / "runs" / "unshared" / "logs").iterdir()}
    assert_torn_down(cluster)


def test_a_net_iface_that_does_not_join_the_nodes_fails_the_node_check_in_seconds(fresh_slurm_cluster, tiny_model_dir):
    """The issue's 30-minute hang: NET_IFACE names an interface every node has, on no common network. The node
    check's all_reduce (gloo over GLOO_SOCKET_IFNAME=ib0) fails within COLLECTIVE_TIMEOUT, naming it, before Ray."""
    cluster = fresh_slurm_cluster
    cluster.add_interface("n1", "ib0", "10.251.0.1/24")
    cluster.add_interface("n2", "ib0", "10.251.0.2/24")  # same subnet, other wire: n2 cannot reach n1 over it
    shutil.copytree(tiny_model_dir, cluster.base / "tiny" / "model")
    job = submit(cluster, "model=tiny", PREFLIGHT="1", RUN_NAME="wrong-iface", NET_IFACE="ib0", COLLECTIVE_TIMEOUT="10")
    launcher = _fail(cluster, job)
    failed = launcher.split("node check failed:")[1]
    for node, rank in (("n1", 0), ("n2", 1)):
        assert f"{node}: all_reduce of rank {rank}/2 over GLOO_SOCKET_IFNAME=ib0 (NET_IFACE) via 10.251.0.1:6380 " \
               "failed after" in failed, launcher
    assert "Set NET_IFACE to the interface on the network that joins the nodes" in failed
    stamps = {what: stamp for stamp, what in
              re.findall(r"\[sspo-slurm (\S+ \S+)\] (checking 2 node\(s\)|ERROR: node check failed)", launcher)}
    began, ended = (time.mktime(time.strptime(stamps[k], "%Y-%m-%d %H:%M:%S"))
                    for k in ("checking 2 node(s)", "ERROR: node check failed"))
    print(f"node check with a wrong NET_IFACE failed after {ended - began:.0f} s (COLLECTIVE_TIMEOUT=10): {failed}")
    assert ended - began < 120  # the imports on 2 shared cores + COLLECTIVE_TIMEOUT, not nccl_timeout (30 min)
    assert not (cluster.base / "runs" / "wrong-iface" / "logs" / "ray-head-n1.log").exists()
    assert_torn_down(cluster)


def test_node_whose_slurmd_dies_is_named_and_the_job_ends(fresh_slurm_cluster):
    cluster = fresh_slurm_cluster
    job = submit(cluster, "model=tiny", RUN_NAME="slurmd-down", NODE_WAIT_TIMEOUT="300")
    # n2's slurmd dies as the job starts, before the worker step is launched there (slurmctld notices only after
    # SlurmdTimeout=30 s; then it ends the job)
    while cluster.job(job)["JobState"] != "RUNNING":
        time.sleep(0.1)
    cluster.signal_daemon("slurmd-n2", signal.SIGKILL)
    start = time.monotonic()
    launcher = _fail(cluster, job)
    assert time.monotonic() - start < 120
    assert re.search(r"Ray on n2 exited \(status \d+\) before the cluster was complete; see \S+/ray-worker-n2.log: "
                     r".*failed on node n2", launcher), launcher
    assert_torn_down(cluster)


def test_ray_head_that_dies_is_noticed_at_once(fresh_slurm_cluster):
    cluster = fresh_slurm_cluster
    job = submit(cluster, "model=tiny", RUN_NAME="head-dies", NODE_WAIT_TIMEOUT="300", CMD_TIMEOUT="300")
    _wait_for_text(cluster.base / "runs" / "head-dies" / "logs" / "ray-head-n1.log", "Ray runtime started", 180)
    cluster.in_node("n1", "kill", "-KILL", str(cluster.wait_process("n1", "gcs_server", timeout=10)))
    killed = time.monotonic()
    launcher = _fail(cluster, job)
    assert time.monotonic() - killed < 60  # not after NODE_WAIT_TIMEOUT or a probe's timeout (300 s)
    assert "Ray on n1 exited" in launcher and "ray-head-n1.log" in launcher, launcher
    assert_torn_down(cluster)


def test_ray_head_that_hangs_is_an_error_naming_the_knobs(fresh_slurm_cluster):
    cluster = fresh_slurm_cluster
    job = submit(cluster, "model=tiny", RUN_NAME="head-hangs", NODE_WAIT_TIMEOUT="15", CMD_TIMEOUT="10",
                 TEARDOWN_TIMEOUT="5")
    _wait_for_text(cluster.base / "runs" / "head-hangs" / "logs" / "ray-head-n1.log", "Ray runtime started", 180)
    cluster.in_node("n1", "kill", "-STOP", str(cluster.wait_process("n1", "gcs_server", timeout=10)))
    stopped = time.monotonic()
    launcher = _fail(cluster, job)
    assert time.monotonic() - stopped < 90
    assert ("'python3 -m sspo_verl.cluster probe 10.250.0.11:6379' got no answer from the Ray head on n1 within "
            "NODE_WAIT_TIMEOUT + CMD_TIMEOUT = 25s (a hung head?)") in launcher, launcher
    assert_torn_down(cluster, timeout=60)


def test_worker_that_cannot_reach_the_head_is_named(fresh_slurm_cluster):
    cluster = fresh_slurm_cluster
    # The head's address on a network only n1 has (NET_IFACE names an interface the other nodes cannot reach)
    cluster.add_interface("n1", "ib0", "10.251.0.1/24")
    job = submit(cluster, "model=tiny", RUN_NAME="no-route", NET_IFACE="ib0", NODE_WAIT_TIMEOUT="10")
    launcher = _fail(cluster, job)
    assert "head n1 at 10.251.0.1:6379" in launcher
    assert ("only 1 of 2 Ray node(s) joined within 10s (joined: n1; missing: n2)" in launcher
            or "Ray on n2 exited" in launcher), launcher
    assert_torn_down(cluster)


def test_requeue_with_a_hung_controller_is_an_error_naming_the_knob(fresh_slurm_cluster):
    cluster = fresh_slurm_cluster
    job = submit(cluster, "model=tiny", RUN_NAME="ctld-hangs", REQUEUE_REQUIRES_PROGRESS="0", CMD_TIMEOUT="5",
                 TEARDOWN_TIMEOUT="5")
    _wait_for_text(cluster.base / "runs" / "ctld-hangs" / "logs" / "launcher.log", "Ray head is up", 180)
    batch = cluster.wait_process("n1", "slurm_script", timeout=10)  # the batch shell running train.sbatch
    cluster.signal_daemon("slurmctld", signal.SIGSTOP)
    try:
        cluster.in_node("n1", "kill", "-USR1", str(batch))  # what slurmstepd delivers for --signal=B:USR1@600
        launcher = cluster.base / "runs" / "ctld-hangs" / "logs" / "launcher.log"
        _wait_for_text(launcher, "exit 1", 60)
    finally:
        cluster.signal_daemon("slurmctld", signal.SIGCONT)
    text = launcher.read_text()
    assert "'scontrol requeue 1' did not finish within CMD_TIMEOUT=5s" in text and "resubmit by hand" in text, text
    assert cluster.wait_job(job, 120)["JobState"] == "FAILED"
    assert_torn_down(cluster)
