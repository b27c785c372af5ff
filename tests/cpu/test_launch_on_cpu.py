"""What a CPU run needs from its launcher: environment, Ray settings, config checks, and the YAML that mirrors them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sspo_verl import train
from sspo_verl.cpu import launch
from sspo_verl.cpu.launch import CPU_ENV_VARS, CPUConfigError

HYDRA_CONFIGS = Path(__file__).resolve().parents[2] / "hydra_configs"


def test_env_vars_select_the_cpu_platform_and_fit_the_machine():
    import psutil

    env = launch.cpu_env_vars()
    assert env["VERL_PLATFORM"] == "cpu" and env["TOKENIZERS_PARALLELISM"] == "false"
    assert 1 <= int(env["TQ_NUM_THREADS"]) <= max(1, psutil.cpu_count(logical=False) or 1)


def test_hardware_yaml_mirrors_the_launcher():
    cfg = OmegaConf.load(HYDRA_CONFIGS / "hardware" / "cpu.yaml")
    ray_init = cfg.ray_kwargs.ray_init
    assert dict(ray_init.runtime_env.env_vars) == CPU_ENV_VARS
    units = cfg.transfer_queue.backend.SimpleStorage.num_data_storage_units
    assert units == launch.DEFAULT_STORAGE_UNITS
    for ranks in (1, 2):  # the YAML's fixed num_cpus covers the 1- and 2-rank runs the tests and demo use
        assert ray_init.num_cpus >= launch.required_ray_cpus(ranks, units)
    assert ray_init.address == "local" and ray_init.include_dashboard is False
    assert cfg.trainer.device == "cpu"
    assert OmegaConf.load(HYDRA_CONFIGS / "rollout" / "hf.yaml").actor_rollout_ref.rollout.name == "hf"


def test_required_cpus_counts_transfer_queue_and_rank_bundles():
    assert launch.required_ray_cpus(1, 2) == 1 + 2 + 3 + 1
    assert launch.required_ray_cpus(2, 8) == 1 + 8 + 6 + 1
    s = launch.ray_init_settings(2)
    assert s["num_gpus"] == 2 and s["address"] == "local" and s["num_cpus"] >= launch.required_ray_cpus(2)
    assert launch.ray_init_settings(1, num_cpus=40)["num_cpus"] == 40


@pytest.fixture
def compose(monkeypatch, tmp_path):
    monkeypatch.setenv("SSPO_TINY_DIR", str(tmp_path / "tiny"))
    monkeypatch.setenv("SSPO_OUTPUT_DIR", str(tmp_path / "out"))

    def _compose(*overrides):
        return train.compose(["hardware=cpu", "model=tiny", "rollout=hf", *overrides])

    return _compose


def test_apply_to_config_fills_ray_and_worker_env(compose):
    cfg = compose("trainer.n_gpus_per_node=2", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8")
    cfg.ray_kwargs.ray_init.num_gpus = None  # as if the YAML had not set it
    applied = launch.apply_to_config(cfg)
    ray_init = cfg.ray_kwargs.ray_init
    assert ray_init.num_gpus == 2 and applied["ray_kwargs.ray_init.num_gpus"] == 2
    assert ray_init.address == "local" and ray_init.num_cpus == 16
    assert dict(ray_init.runtime_env.env_vars).items() >= launch.cpu_env_vars().items()
    assert "ray_kwargs.ray_init.runtime_env.env_vars.TQ_NUM_THREADS" in applied
    assert cfg.actor_rollout_ref.model.path == os.path.join(os.environ["SSPO_TINY_DIR"], "model")


@pytest.mark.parametrize(
    "overrides, fix",
    [
        (["actor_rollout_ref.rollout.name=sglang"], "use rollout=vllm (verl's vLLM server on the CPU build"),
        (["rollout=vllm", "actor_rollout_ref.rollout.enable_sleep_mode=true"], "enable_sleep_mode=false"),
        (["ray_kwargs.ray_init.num_cpus=4"], "Ray would wait forever"),
        (
            [
                "trainer.n_gpus_per_node=2",
                "ray_kwargs.ray_init.num_gpus=1",
                "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
            ],
            "one (logical) GPU per trainer rank",
        ),
        (["trainer.nnodes=2"], "trainer.nnodes=1"),
        (["actor_rollout_ref.model.override_config.attn_implementation=flash_attention_2"], "sdpa"),
        (["actor_rollout_ref.actor.strategy=megatron"], "use fsdp2"),
        # model=tiny's micro-batch of 16 with 2 ranks: 2 prompts x 8 responses / 2 ranks = 8 per rank
        (["trainer.n_gpus_per_node=2"], "ppo_micro_batch_size_per_gpu=8"),
    ],
)
def test_apply_to_config_refuses_what_cannot_run_on_cpu(compose, overrides, fix):
    cfg = compose(*overrides)
    with pytest.raises(CPUConfigError) as err:
        launch.apply_to_config(cfg)
    assert fix in str(err.value)


def test_apply_to_config_joins_a_cluster_given_by_address(compose):
    """recipes/slurm/train.sbatch's overrides: the trainer joins the job's Ray cluster and spans its nodes."""
    cfg = compose("trainer.nnodes=2", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
                  "ray_kwargs.ray_init.address=10.0.0.1:6379", "ray_kwargs.ray_init.num_cpus=null",
                  "ray_kwargs.ray_init.num_gpus=null")
    applied = launch.apply_to_config(cfg)
    ray_init = cfg.ray_kwargs.ray_init
    assert ray_init.address == "10.0.0.1:6379"  # not replaced by a private local instance
    assert ray_init.num_cpus is None and ray_init.num_gpus is None  # the cluster's own slots
    assert not [k for k in applied if k.split(".")[-1] in ("address", "num_cpus", "num_gpus")]
    assert ray_init.runtime_env.env_vars.VERL_PLATFORM == "cpu"


@pytest.mark.parametrize("key", ["num_cpus", "num_gpus"])
def test_apply_to_config_refuses_slots_from_a_joining_driver(compose, key):
    other = "num_gpus" if key == "num_cpus" else "num_cpus"
    cfg = compose("ray_kwargs.ray_init.address=10.0.0.1:6379", f"ray_kwargs.ray_init.{key}=32",
                  f"ray_kwargs.ray_init.{other}=null")
    with pytest.raises(CPUConfigError) as err:
        launch.apply_to_config(cfg)
    assert f"ray_kwargs.ray_init.{key}=32 with ray_kwargs.ray_init.address=10.0.0.1:6379" in str(err.value)
    assert f"set ray_kwargs.ray_init.{key}=null" in str(err.value)


def test_cli_overrides_compose_over_verls_own_config():
    import verl
    from hydra import compose, initialize_config_dir

    verl_config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=verl_config_dir, version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=launch.cli_overrides(n_ranks=2))
    assert cfg.trainer.device == "cpu" and cfg.trainer.n_gpus_per_node == 2
    assert cfg.actor_rollout_ref.rollout.name == "hf"
    assert cfg.ray_kwargs.ray_init.num_gpus == 2
    assert cfg.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
    assert cfg.ray_kwargs.ray_init.runtime_env.env_vars.VERL_PLATFORM == "cpu"


def test_separate_async_gets_the_gloo_engine_and_slots_for_its_standalone_pool(compose):
    cfg = compose("mode=separate_async")
    assert cfg.actor_rollout_ref.rollout.checkpoint_engine.backend == "nccl"  # the mode's (GPU) default
    applied = launch.apply_to_config(cfg)
    engine = cfg.actor_rollout_ref.rollout.checkpoint_engine
    assert engine.backend == launch.CHECKPOINT_ENGINE == "gloo" and applied[
        "actor_rollout_ref.rollout.checkpoint_engine.backend"] == "gloo"
    assert engine.custom_backend_module == "sspo_verl.cpu.checkpoint_engine"  # verl imports it where it builds one
    ray_init = cfg.ray_kwargs.ray_init
    assert launch.standalone_rollout_slots(cfg) == 1
    assert ray_init.num_gpus == 2  # 1 trainer rank + the 1-slot standalone rollout pool
    assert launch.required_ray_cpus(1, 2, 1) == launch.required_ray_cpus(1, 2) + 2 <= ray_init.num_cpus
    # the other modes: no standalone pool, the backend left alone (verl uses 'naive' for colocated replicas)
    for mode in ("sync", "colocate_async"):
        cfg = compose(f"mode={mode}")
        launch.apply_to_config(cfg)
        assert cfg.ray_kwargs.ray_init.num_gpus == 1 and cfg.actor_rollout_ref.rollout.checkpoint_engine.backend == "naive"


@pytest.mark.parametrize(
    "overrides, fix",
    [
        (["actor_rollout_ref.rollout.checkpoint_engine.backend=nixl"], "checkpoint_engine.backend=gloo"),
        (["ray_kwargs.ray_init.num_gpus=1"], "set it to 2"),
        (["ray_kwargs.ray_init.num_cpus=8"], "2 per standalone rollout slot x 1"),
    ],
)
def test_separate_async_refuses_a_gpu_engine_or_too_few_slots(compose, overrides, fix):
    cfg = compose("mode=separate_async", *overrides)
    with pytest.raises(CPUConfigError) as err:
        launch.apply_to_config(cfg)
    assert fix in str(err.value)
