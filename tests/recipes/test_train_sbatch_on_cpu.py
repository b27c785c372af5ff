"""recipes/slurm/train.sbatch under stand-in srun / scontrol / ray / python3 / sspo-train (see stub_cluster.py).

What a real cluster would show is asserted from the recorded calls: which node ran the Ray head and the workers
and with which resources, that the trainer started only once every node had joined, its exact command line,
that every Ray node was stopped on every exit path, and the error paths (a node that never joins, a node whose
Ray dies, a broken node, preemption, the time limit).
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.recipes.stub_cluster import Call, StubCluster

GPUS = 8
CPUS = 32


def _ray_starts(cluster: StubCluster) -> tuple[list[Call], list[Call]]:
    starts = [c for c in cluster.calls("ray") if c.args[:1] == ("start",)]
    return [c for c in starts if "--head" in c.args], [c for c in starts if "--head" not in c.args]


def _only(calls: list[Call]) -> Call:
    assert len(calls) == 1, calls
    return calls[0]


@pytest.mark.parametrize("nnodes", [1, 2, 4])
def test_cluster_trainer_and_teardown(tmp_path, nnodes):
    cluster = StubCluster(tmp_path, nnodes, gpus_per_node=GPUS, cpus_per_task=CPUS)
    result = cluster.run("data.train_batch_size=64", "+extra.list=[1,2]")
    assert result.returncode == 0, result.stderr

    head_ip = f"10.1.0.1:{6379}"
    # Nodes come from scontrol, not from parsing SLURM_JOB_NODELIST ourselves.
    assert _only(cluster.calls("scontrol")).args == ("show", "hostnames", cluster.env["SLURM_JOB_NODELIST"])

    head, workers = _ray_starts(cluster)
    head = _only(head)
    assert head.node == "gpu001"
    for flag in ("--head", "--node-ip-address=10.1.0.1", "--port=6379", f"--num-cpus={CPUS}",
                 f"--num-gpus={GPUS}", "--block"):
        assert flag in head.args
    assert sorted(w.node for w in workers) == cluster.hosts[1:]
    for w in workers:
        for flag in (f"--address={head_ip}", f"--num-cpus={CPUS}", f"--num-gpus={GPUS}", "--block"):
            assert flag in w.args
    # The Ray steps run one task per node with the node's CPUs and GPUs.
    ray_steps = [c for c in cluster.calls("srun") if "ray" in c.args]
    assert sorted(c.opt("--nodelist") for c in ray_steps) == cluster.hosts
    for step in ray_steps:
        assert {"--nodes=1", "--ntasks=1", f"--cpus-per-task={CPUS}", f"--gpus-per-node={GPUS}"} <= set(step.args)

    train = _only(cluster.calls("sspo-train"))
    assert train.node == "gpu001"
    run_dir = f"{cluster.runs_root}/sspo-default-sspo"
    assert train.args == (
        "algorithm=sspo",
        "hardware=gpu_nx8",
        "preflight.strict=true",
        f"trainer.nnodes={nnodes}",
        f"trainer.n_gpus_per_node={GPUS}",
        "trainer.resume_mode=auto",
        "trainer.experiment_name=sspo-default-sspo",
        f"trainer.default_local_dir={run_dir}/checkpoints",
        f"hydra.run.dir={run_dir}",
        "ray_kwargs.ray_init.num_cpus=null",
        "data.train_batch_size=64",
        "+extra.list=[1,2]",
    )
    env = dict(a.split("=", 1) for a in _only(cluster.calls("train-env")).args)
    assert env["RAY_ADDRESS"] == head_ip
    assert env["VERL_USE_EXTERNAL_MODULES"] == "sspo_verl.adapter.plugin"
    # One Ray auth token for the head, every worker and the trainer; never in the logs.
    ray_envs = [dict(a.split("=", 1) for a in c.args) for c in cluster.calls("ray-env")]
    assert len(ray_envs) == nnodes
    token = env["RAY_AUTH_TOKEN"]
    assert len(token) == 64 and env["RAY_AUTH_MODE"] == "token"
    assert all(e["RAY_AUTH_MODE"] == "token" and e["RAY_AUTH_TOKEN"] == token for e in ray_envs)
    assert all(e["VERL_USE_EXTERNAL_MODULES"] == "sspo_verl.adapter.plugin" for e in ray_envs)
    assert token not in result.stderr + result.stdout
    assert not [f for f in (cluster.runs_root / "sspo-default-sspo" / "logs").iterdir() if token in f.read_text()]

    # Order: head, wait until the head answers, workers, wait until all joined, trainer. The probe runs on
    # the head node against the head's address; each probe records how many nodes it saw.
    probes = [c for c in cluster.calls("python3") if "ray.nodes()" in c.args[1]]
    assert probes and all(p.node == "gpu001" and p.args[2] == head_ip for p in probes)
    seen = [(cluster.index(c), int(c.args[0])) for c in cluster.calls("probe")]
    head_up = min(i for i, n in seen if n >= 1)
    all_up = min(i for i, n in seen if n == nnodes)
    assert cluster.index(head) < head_up
    assert all(head_up < cluster.index(w) < all_up for w in workers)
    assert all_up < cluster.index(train)

    # Preflight ran once on every node, before any Ray node started.
    preflight = [c for c in cluster.calls("python3") if "ensure_registered" in c.args[1]]
    assert sorted(c.node for c in preflight) == cluster.hosts
    assert max(cluster.index(c) for c in preflight) < cluster.index(head)

    cluster.assert_torn_down()
    logs = cluster.runs_root / "sspo-default-sspo" / "logs"
    assert "sspo-train stub: training on gpu001" in (logs / "train.log").read_text()
    assert "Ray cluster stopped" in (logs / "launcher.log").read_text()
    assert (logs / "ray-head-gpu001.log").exists()


def test_node_that_never_joins_times_out_with_its_name(tmp_path):
    cluster = StubCluster(tmp_path, 4)
    start = time.monotonic()
    result = cluster.run(STUB_DEAD_NODES="gpu003", NODE_WAIT_TIMEOUT="3")
    assert result.returncode != 0
    assert time.monotonic() - start < 60  # bounded: no hang (the stand-ins take ~1 s on an idle machine)
    assert "only 3 of 4 Ray node(s) joined within NODE_WAIT_TIMEOUT=3s" in result.stderr
    assert "missing: gpu003" in result.stderr
    assert not cluster.calls("sspo-train")
    cluster.assert_torn_down()


def test_head_that_never_answers_times_out(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(STUB_DEAD_NODES="gpu001", NODE_WAIT_TIMEOUT="1")
    assert result.returncode != 0
    assert "only 0 of 1 Ray node(s) joined" in result.stderr
    assert not [c for c in cluster.calls("ray") if "--head" not in c.args], "workers started without a head"
    cluster.assert_torn_down()


def test_ray_step_that_dies_fails_fast_with_its_log(tmp_path):
    cluster = StubCluster(tmp_path, 4)
    start = time.monotonic()
    result = cluster.run(STUB_FAIL_NODES="gpu002", NODE_WAIT_TIMEOUT="600", timeout=300)
    assert result.returncode != 0
    assert time.monotonic() - start < 120, "waited for the timeout instead of noticing the dead step"
    assert "Ray on gpu002 exited (status 1)" in result.stderr
    assert "ray-worker-gpu002.log" in result.stderr
    assert "simulated start failure on gpu002" in result.stderr  # the log's tail is in the message
    assert not cluster.calls("sspo-train")
    cluster.assert_torn_down()


def test_too_few_gpus_in_ray_is_an_error(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(STUB_RAY_GPUS="0")
    assert result.returncode != 0
    assert "Ray counts 0 GPU(s) on 2 node(s), expected 16" in result.stderr
    assert not cluster.calls("sspo-train")
    cluster.assert_torn_down()


def test_preflight_names_the_broken_node_before_starting_ray(tmp_path):
    cluster = StubCluster(tmp_path, 4)
    result = cluster.run(STUB_BROKEN_NODES="gpu004")
    assert result.returncode != 0
    assert "preflight failed" in result.stderr
    assert "gpu004: ModuleNotFoundError: No module named 'sspo_verl'" in result.stderr
    assert not cluster.calls("ray")
    assert not cluster.calls("sspo-train")


def test_preflight_can_be_skipped(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(PREFLIGHT="0", STUB_BROKEN_NODES="gpu002")
    assert result.returncode == 0, result.stderr
    assert not [c for c in cluster.calls("python3") if "ensure_registered" in c.args[1]]


def test_trainer_failure_is_reported_and_cluster_torn_down(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(STUB_TRAIN_RC="3")
    assert result.returncode != 0
    assert "the trainer exited with status 3" in result.stderr
    cluster.assert_torn_down()


def test_knobs_reach_the_trainer(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(
        "trainer.total_training_steps=5",
        ALGO="grpo", MODEL="qwen2.5-math-7b", EXPERIMENT="paper_qwen2.5_math_7b", SEED="3", RUN_NAME="my-run",
        PROJECT_NAME="proj", HARDWARE="gpu_1x8", PREFLIGHT_STRICT="0",
    )
    assert result.returncode == 0, result.stderr
    train = _only(cluster.calls("sspo-train"))
    assert train.args[:6] == ("algorithm=grpo", "hardware=gpu_1x8", "model=qwen2.5-math-7b",
                              "experiment=paper_qwen2.5_math_7b", "seed=3", "trainer.project_name=proj")
    assert "preflight.strict=true" not in train.args
    assert train.opt("trainer.experiment_name") == "my-run"
    assert train.opt("trainer.project_name") == "proj"
    assert train.opt("trainer.default_local_dir") == f"{cluster.runs_root}/my-run/checkpoints"
    assert train.args[-1] == "trainer.total_training_steps=5"


def test_requeued_attempt_reuses_run_dir_and_appends_logs(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    first = cluster.run(RUN_NAME="r1", SLURM_JOB_ID="1001", STUB_TRAIN_CKPT_STEP="10")
    second = cluster.run(RUN_NAME="r1", SLURM_JOB_ID="1001", SLURM_RESTART_COUNT="1")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    a, b = cluster.calls("sspo-train")
    assert a.opt("trainer.default_local_dir") == b.opt("trainer.default_local_dir")
    assert "trainer.resume_mode=auto" in a.args and "trainer.resume_mode=auto" in b.args
    assert a.opt("hydra.run.dir") == b.opt("hydra.run.dir") == f"{cluster.runs_root}/r1"
    log = (cluster.runs_root / "r1" / "logs" / "train.log").read_text()
    assert "attempt 0: job 1001" in log and "attempt 1: job 1001" in log
    assert log.count("sspo-train stub: training") == 2
    assert "latest checkpoint: 10" in second.stderr


def test_apptainer_wraps_every_step(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(CONTAINER_RUNTIME="apptainer", CONTAINER_IMAGE="/img/sspo.sif", CONTAINER_MOUNTS="/data:/data")
    assert result.returncode == 0, result.stderr
    wrapped = {c.args[c.args.index("/img/sspo.sif") + 1] for c in cluster.calls("apptainer")}
    assert wrapped == {"python3", "ray", "env"}  # preflight + probe, Ray nodes, trainer
    for c in cluster.calls("apptainer"):
        assert c.args[:3] == ("exec", "--nv", f"--bind={cluster.runs_root},/data:/data")
    cluster.assert_torn_down()


@pytest.mark.parametrize("runs_inside_submit_dir", [True, False])
def test_enroot_passes_pyxis_flags(tmp_path, runs_inside_submit_dir):
    cluster = StubCluster(tmp_path, 2)
    runs_root = str(cluster.runs_root) if runs_inside_submit_dir else f"{tmp_path}-runs"
    result = cluster.run(CONTAINER_RUNTIME="enroot", CONTAINER_IMAGE="/img/sspo.sqsh", CONTAINER_MOUNTS="/d:/d",
                         RUNS_ROOT=runs_root)
    assert result.returncode == 0, result.stderr
    # The submit directory (the steps' working directory) and RUNS_ROOT are mounted, once each.
    mounts = f"{tmp_path},/d:/d" if runs_inside_submit_dir else f"{tmp_path},{runs_root},/d:/d"
    steps = [c for c in cluster.calls("srun") if "ray" in c.args or "env" in c.args]
    assert len(steps) == 3
    for c in steps:
        assert c.opt("--container-image") == "/img/sspo.sqsh"
        assert c.opt("--container-name") == "sspo-1001"
        assert c.opt("--container-mounts") == mounts
        assert c.opt("--container-workdir") == str(tmp_path)
    cluster.assert_torn_down()


def test_head_name_resolving_to_loopback_falls_back_to_interface_addresses(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(STUB_LOOPBACK_NAME="1")
    assert result.returncode == 0, result.stderr
    head, workers = _ray_starts(cluster)
    assert "--node-ip-address=172.16.0.1" in _only(head).args
    assert "--address=172.16.0.1:6379" in _only(workers).args


def test_time_limit_requeues_without_progress_check_when_disabled(tmp_path):
    cluster = StubCluster(tmp_path, 1)
    returncode, err = cluster.signal_when("train-started", signal.SIGUSR1, STUB_TRAIN_BLOCK="1",
                                          REQUEUE_REQUIRES_PROGRESS="0")
    assert returncode == 0, err
    assert [c.args for c in cluster.calls("scontrol") if c.args[0] == "requeue"] == [("requeue", "1001")]


def test_net_iface_sets_head_address_and_nccl(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(NET_IFACE="ib0", NCCL_IB_HCA="mlx5_0")
    assert result.returncode == 0, result.stderr
    head, workers = _ray_starts(cluster)
    assert "--node-ip-address=192.168.7.1" in _only(head).args
    assert "--address=192.168.7.1:6379" in _only(workers).args
    env = dict(a.split("=", 1) for a in _only(cluster.calls("train-env")).args)
    assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "ib0"
    assert env["NCCL_IB_HCA"] == "mlx5_0"
    assert env["RAY_ADDRESS"] == "192.168.7.1:6379"


def test_ray_auth_can_be_disabled_or_given(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    assert cluster.run(RAY_AUTH="disabled", RAY_AUTH_TOKEN="stale").returncode == 0
    assert cluster.run(RAY_AUTH_TOKEN="f" * 64).returncode == 0
    envs = [dict(a.split("=", 1) for a in c.args) for c in cluster.calls("ray-env")]
    assert [(e["RAY_AUTH_MODE"], e["RAY_AUTH_TOKEN"]) for e in envs] == [("disabled", "")] * 2 + [("token", "f" * 64)] * 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SLURM_JOB_ID": None}, "submit with sbatch"),
        ({"SLURM_GPUS_ON_NODE": None}, "submit with --gpus-per-node=N or set GPUS_PER_NODE"),
        ({"SLURM_CPUS_PER_TASK": None}, "submit with --cpus-per-task=N or set RAY_NUM_CPUS"),
        ({"SLURM_JOB_NUM_NODES": "3"}, "scontrol lists 2 hosts"),
        ({"ALGO": "ppo"}, "ALGO=ppo: expected grpo, gspo, gspo_wide or sspo"),
        ({"RUN_NAME": "a/b"}, "RUN_NAME=a/b"),
        ({"SEED": "x"}, "SEED=x: expected an integer"),
        ({"CONTAINER_RUNTIME": "docker"}, "CONTAINER_RUNTIME=docker: expected none, apptainer or enroot"),
        ({"CONTAINER_RUNTIME": "apptainer"}, "needs CONTAINER_IMAGE"),
        ({"NODE_WAIT_POLL": "soon"}, "NODE_WAIT_POLL=soon"),
        ({"RAY_AUTH": "none"}, "RAY_AUTH=none: expected token or disabled"),
        ({"NET_IFACE": "eth9", "STUB_BAD_IFACE": "eth9"}, "cannot read NET_IFACE=eth9"),
        ({"SSPO_MANIFEST": "/nonexistent"}, "SLURM_ARRAY_TASK_ID is not"),
    ],
)
def test_bad_input_fails_at_start_with_a_fix(tmp_path, env, message):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(**env)
    assert result.returncode != 0
    assert message in result.stderr
    assert not cluster.calls("ray")


def test_gpus_from_typed_slurm_gpus_per_node(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(SLURM_GPUS_ON_NODE=None, SLURM_GPUS_PER_NODE="h100:4")
    assert result.returncode == 0, result.stderr
    assert _only(cluster.calls("sspo-train")).opt("trainer.n_gpus_per_node") == "4"


def test_sigterm_stops_trainer_and_cluster_without_requeue(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    returncode, err = cluster.signal_when("train-started", signal.SIGTERM, STUB_TRAIN_BLOCK="1")
    assert returncode == 143
    assert "preempted or cancelled" in err
    assert [c.args for c in cluster.calls("event") if c.name == "event" and c.args == ("train-stopped",)]
    assert not [c for c in cluster.calls("scontrol") if c.args[0] == "requeue"]
    cluster.assert_torn_down()


def test_time_limit_requeues_when_a_checkpoint_was_written(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    returncode, err = cluster.signal_when("train-started", signal.SIGUSR1, STUB_TRAIN_BLOCK="1",
                                          STUB_TRAIN_CKPT_STEP="20", SLURM_JOB_ID="777")
    assert returncode == 0, err
    assert "checkpoint advanced none -> 20: requeueing job 777" in err
    requeue = _only([c for c in cluster.calls("scontrol") if c.args[0] == "requeue"])
    assert requeue.args == ("requeue", "777")
    # The cluster was down before the requeue (Slurm kills the job on requeue).
    stops = [c for c in cluster.calls("event") if c.args == ("ray-stopped",)]
    assert max(cluster.index(c) for c in stops) < cluster.index(requeue)
    cluster.assert_torn_down()


def test_time_limit_without_new_checkpoint_does_not_requeue(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    returncode, err = cluster.signal_when("train-started", signal.SIGUSR1, STUB_TRAIN_BLOCK="1")
    assert returncode == 1
    assert "wrote no new checkpoint" in err and "lower trainer.save_freq" in err
    assert not [c for c in cluster.calls("scontrol") if c.args[0] == "requeue"]
    cluster.assert_torn_down()


def test_signal_while_waiting_for_nodes_tears_down(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    returncode, err = cluster.signal_when("pids/ray-gpu002", signal.SIGTERM, STUB_DEAD_NODES="gpu002",
                                          NODE_WAIT_TIMEOUT="60")
    assert returncode == 143, err
    assert not cluster.calls("sspo-train")
    cluster.assert_torn_down()


def test_trainer_command_composes_with_the_project_configs(tmp_path):
    """The overrides train.sbatch passes exist in the Hydra configs and give the intended multi-node run."""
    train_module = pytest.importorskip("sspo_verl.train")
    cluster = StubCluster(tmp_path, 4)
    result = cluster.run(
        "data.train_batch_size=256", EXPERIMENT="paper_qwen2.5_math_7b", ALGO="gspo", SEED="2", RUN_NAME="abl-7b"
    )
    assert result.returncode == 0, result.stderr
    args = [a for a in _only(cluster.calls("sspo-train")).args if not a.startswith("hydra.")]
    cfg = train_module.compose([*args, f"data_dir={tmp_path}"])
    assert (cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == (4, GPUS)
    assert cfg.actor_rollout_ref.nccl_timeout == 1800  # hardware=gpu_nx8 beat the experiment's gpu_1x8
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen2.5-Math-7B"
    assert cfg.algorithm_preset.name == "gspo" and cfg.seed == 2
    assert cfg.data.train_batch_size == 256
    assert cfg.trainer.experiment_name == "abl-7b"
    assert cfg.trainer.default_local_dir == f"{cluster.runs_root}/abl-7b/checkpoints"
    assert cfg.trainer.resume_mode == "auto"
    assert cfg.ray_kwargs.ray_init.num_cpus is None
    assert cfg.preflight.strict is True
