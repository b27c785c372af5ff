"""recipes/slurm/train.sbatch under stand-in srun / scontrol / ray / python3 / sspo-train (see stub_cluster.py):
only what the real 2-node cluster (test_train_sbatch_slurm_on_cpu.py) cannot show here.

Many nodes with 8 GPUs each (flags, order, token, teardown from the recorded calls), GPU counts, container
runtimes, knobs for GPU presets, start-up refusals, and the signal paths without a real trainer.
"""

from __future__ import annotations

import signal
import time

import pytest

from sspo_verl import train as train_module
from tests.recipes.stub_cluster import Call, StubCluster

GPUS = 8
CPUS = 32


def _ray_starts(cluster: StubCluster) -> tuple[list[Call], list[Call]]:
    starts = [c for c in cluster.calls("ray") if c.args[:1] == ("start",)]
    return [c for c in starts if "--head" in c.args], [c for c in starts if "--head" not in c.args]


def _only(calls: list[Call]) -> Call:
    assert len(calls) == 1, calls
    return calls[0]


def test_four_nodes_of_eight_gpus_cluster_trainer_and_teardown(tmp_path):
    nnodes = 4
    cluster = StubCluster(tmp_path, nnodes, gpus_per_node=GPUS, cpus_per_task=CPUS)
    result = cluster.run("data.train_batch_size=64", "+extra.list=[1,2]",
                         RAY_HEAD_START_EXTRA="--include-dashboard=false")
    assert result.returncode == 0, result.stderr

    head_ip = f"10.1.0.1:{6379}"
    # Nodes come from scontrol, not from parsing SLURM_JOB_NODELIST ourselves.
    assert _only(cluster.calls("scontrol")).args == ("show", "hostnames", cluster.env["SLURM_JOB_NODELIST"])

    head, workers = _ray_starts(cluster)
    head = _only(head)
    assert head.node == "gpu001"
    for flag in ("--head", "--node-ip-address=10.1.0.1", "--port=6379", f"--num-cpus={CPUS}",
                 f"--num-gpus={GPUS}", "--block", "--include-dashboard=false"):
        assert flag in head.args
    assert sorted(w.node for w in workers) == cluster.hosts[1:]
    for w in workers:
        assert "--include-dashboard=false" not in w.args  # head-only flag
        for flag in (f"--address={head_ip}", f"--num-cpus={CPUS}", f"--num-gpus={GPUS}", "--block"):
            assert flag in w.args
    # The Ray steps run one task per node with the node's CPUs and GPUs.
    ray_steps = [c for c in cluster.calls("srun") if "ray" in c.args]
    assert sorted(c.opt("--nodelist") for c in ray_steps) == cluster.hosts
    for step in ray_steps:
        assert {"--nodes=1", "--ntasks=1", f"--cpus-per-task={CPUS}", f"--gpus-per-node={GPUS}"} <= set(step.args)
        # Slurm's GPU GRES sets ROCR_VISIBLE_DEVICES; Ray's workers must not inherit it (verl refuses it)
        i = step.args.index("ray")
        assert step.args[i - 3 : i] == ("env", "-u", "ROCR_VISIBLE_DEVICES")

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
        f"++ray_kwargs.ray_init.address={head_ip}",
        "++ray_kwargs.ray_init.num_cpus=null",
        "++ray_kwargs.ray_init.num_gpus=null",
        "data.train_batch_size=64",
        "+extra.list=[1,2]",
    )
    env = dict(a.split("=", 1) for a in _only(cluster.calls("train-env")).args)
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
    probes = [c for c in cluster.calls("python3") if c.args[2] == "probe"]
    assert [p.opt("--nodes") for p in probes] == ["1", str(nnodes)]
    assert all(p.node == "gpu001" and p.args[3] == head_ip for p in probes)
    assert probes[-1].opt("--gpus") == str(nnodes * GPUS)
    seen = [(cluster.index(c), int(c.args[0])) for c in cluster.calls("probe")]
    head_up = min(i for i, n in seen if n >= 1)
    all_up = min(i for i, n in seen if n == nnodes)
    assert cluster.index(head) < head_up
    assert all(head_up < cluster.index(w) < all_up for w in workers)
    assert all_up < cluster.index(train)

    # Preflight ran once on every node, before any Ray node started.
    preflight = [c for c in cluster.calls("python3") if c.args[2] == "node-check"]
    assert sorted(c.node for c in preflight) == cluster.hosts
    assert max(cluster.index(c) for c in preflight) < cluster.index(head)

    cluster.assert_torn_down()
    logs = cluster.runs_root / "sspo-default-sspo" / "logs"
    assert "sspo-train stub: training on gpu001" in (logs / "train.log").read_text()
    assert "Ray cluster stopped" in (logs / "launcher.log").read_text()
    assert (logs / "ray-head-gpu001.log").exists()


def test_too_few_gpus_in_ray_is_an_error(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(STUB_RAY_GPUS="0")
    assert result.returncode != 0
    assert "Ray counts 0 GPU(s), expected 16" in result.stderr
    assert not cluster.calls("sspo-train")
    cluster.assert_torn_down()


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


def test_apptainer_wraps_every_step(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(CONTAINER_RUNTIME="apptainer", CONTAINER_IMAGE="/img/sspo.sif", CONTAINER_MOUNTS="/data:/data")
    assert result.returncode == 0, result.stderr
    wrapped = {c.args[c.args.index("/img/sspo.sif") + 1] for c in cluster.calls("apptainer")}
    assert wrapped == {"python3", "env", "sspo-train"}  # head address, node check, probe; Ray nodes; trainer
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
    steps = [c for c in cluster.calls("srun") if "ray" in c.args or "sspo-train" in c.args]
    assert len(steps) == 3
    for c in steps:
        assert c.opt("--container-image") == "/img/sspo.sqsh"
        assert c.opt("--container-name") == "sspo-1001"
        assert c.opt("--container-mounts") == mounts
        assert c.opt("--container-workdir") == str(tmp_path)
    cluster.assert_torn_down()


def test_time_limit_requeues_without_progress_check_when_disabled(tmp_path):
    cluster = StubCluster(tmp_path, 1)
    returncode, err = cluster.signal_when("train-started", signal.SIGUSR1, STUB_TRAIN_BLOCK="1",
                                          REQUEUE_REQUIRES_PROGRESS="0")
    assert returncode == 0, err
    assert [c.args for c in cluster.calls("scontrol") if c.args[0] == "requeue"] == [("requeue", "1001")]


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
        ({"RAY_PORT": "12345"}, "RAY_PORT=12345 is inside Ray's worker port range 10002-19999"),
        ({"RAY_PORT": "6379", "RAY_START_EXTRA": "--min-worker-port=6000 --max-worker-port 7000"},
         "RAY_PORT=6379 is inside Ray's worker port range 6000-7000"),
        ({"HEAD_IP": "head"}, "HEAD_IP=head: expected an IPv4 address"),
        ({"SSPO_MANIFEST": "/nonexistent"}, "SLURM_ARRAY_TASK_ID is not"),
    ],
)
def test_bad_input_fails_at_start_with_a_fix(tmp_path, env, message):
    cluster = StubCluster(tmp_path, 2)
    result = cluster.run(**env)
    assert result.returncode != 0
    assert message in result.stderr
    assert not cluster.calls("ray")


def test_hung_scontrol_is_an_error_naming_the_command_and_its_knob(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    start = time.monotonic()
    result = cluster.run(STUB_SCONTROL_HANG="show", CMD_TIMEOUT="1")
    assert time.monotonic() - start < 30
    assert result.returncode != 0
    assert "'scontrol show hostnames gpu[001-002]' did not finish within CMD_TIMEOUT=1s" in result.stderr
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
    assert cfg.ray_kwargs.ray_init.num_cpus is None and cfg.ray_kwargs.ray_init.num_gpus is None
    assert cfg.ray_kwargs.ray_init.address == "10.1.0.1:6379"
    assert cfg.preflight.strict is True
