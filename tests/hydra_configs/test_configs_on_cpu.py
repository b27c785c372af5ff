"""hydra_configs/: every file composes over verl's ppo_trainer and passes verl's validate_config; the algorithm
presets resolve to spec §9's table; the SSPO preset mirrors SSPOPolicyLossConfig."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sspo_verl.preflight import run_preflight
from sspo_verl.config_files import config_dir
from sspo_verl.train import compose

CONFIG_DIR = Path(config_dir())
GROUPS = ("algorithm", "model", "rollout", "hardware", "mode", "experiment")

# Spec §9, verbatim: preset -> (adv estimator, loss_mode, loss_agg_mode, clip low, clip high, entropy scale on).
SPEC_TABLE = {
    "grpo": ("grpo", "vanilla", "token-mean", 0.2, 0.28, False),
    "gspo": ("grpo", "gspo", "seq-mean-token-mean", 3e-4, 4e-4, False),
    "gspo_wide": ("grpo", "gspo", "seq-mean-token-mean", 0.2, 0.28, False),
    "sspo": ("sspo", "sspo", "seq-mean-token-mean", 0.2, 0.28, True),
}

# Options that only make sense together (the CPU backend's files; rollout=vllm also runs there).
COMPANIONS = {
    "hardware=cpu": ["model=tiny", "rollout=vllm"],
    "model=tiny": ["hardware=cpu", "rollout=vllm"],
    "rollout=hf": ["hardware=cpu", "model=tiny"],
}


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _every_file_override() -> list[str]:
    return [f"{group}={name}" for group in GROUPS for name in _options(group)]


@pytest.fixture(autouse=True)
def _dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("SSPO_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("SSPO_DATA_DIR", str(tmp_path / "data"))


def _quiet_preflight(cfg):
    """Pre-flight without the file and cluster checks (no data or GPUs here); raises on any error."""
    cfg.preflight.check_files = False
    cfg.preflight.check_cluster = False
    return run_preflight(cfg)


def test_every_group_has_the_required_options():
    assert set(_options("algorithm")) == set(SPEC_TABLE)
    assert {"qwen2.5-math-1.5b", "qwen2.5-math-7b"} <= set(_options("model"))
    assert {"vllm"} <= set(_options("rollout"))
    assert {"gpu_1x8", "gpu_nx8"} <= set(_options("hardware"))
    assert {"paper_qwen2.5_math_1.5b", "paper_qwen2.5_math_7b"} <= set(_options("experiment"))
    stray = [p for p in CONFIG_DIR.rglob("*.yaml") if p.parent.name not in GROUPS and p.parent != CONFIG_DIR]
    assert not stray, f"config files outside the known groups are never composed by these tests: {stray}"


@pytest.mark.parametrize("override", ["<defaults>", *_every_file_override()])
def test_every_config_file_composes_and_passes_verl_validate_config(override, monkeypatch):
    overrides = [] if override == "<defaults>" else [override, *COMPANIONS.get(override, [])]
    cfg = compose(overrides)
    if override == "mode=separate_async":
        # its GPU engine nccl: verl registers it where cupy imports (verl's cupy-cu130 extra), not in a CPU install
        from verl.checkpoint_engine import CheckpointEngineRegistry

        registry = CheckpointEngineRegistry._registry
        monkeypatch.setitem(registry, "nccl", registry.get("nccl", object))
    report = _quiet_preflight(cfg)  # includes verl.utils.config.validate_config ("verl" check)
    assert not report.errors
    OmegaConf.resolve(cfg)  # every interpolation resolves (sspo.*, hydra:, oc.env)
    assert "${" not in OmegaConf.to_yaml(cfg)


@pytest.mark.parametrize("algorithm", sorted(SPEC_TABLE))
@pytest.mark.parametrize("experiment", [None, "paper_qwen2.5_math_1.5b", "paper_qwen2.5_math_7b"])
def test_algorithm_presets_resolve_to_the_spec_table(algorithm, experiment):
    overrides = [f"algorithm={algorithm}"] + ([f"experiment={experiment}"] if experiment else [])
    cfg = compose(overrides)
    adv, loss_mode, agg, low, high, entropy = SPEC_TABLE[algorithm]
    actor = cfg.actor_rollout_ref.actor
    assert cfg.algorithm.adv_estimator == adv
    assert actor.policy_loss.loss_mode == loss_mode
    assert actor.loss_agg_mode == agg
    assert actor.clip_ratio_low == pytest.approx(low) and actor.clip_ratio_high == pytest.approx(high)
    assert bool(actor.policy_loss.get("entropy_clip", False)) is entropy
    # no preset computes π_θ's entropy in the update: SSPO's clip bounds use the sampling policy's (spec §5)
    assert not actor.get("calculate_entropy") and actor.policy_loss.get("entropy_source", "old") == "old"
    # Spec §9: 4 mini-batches per rollout batch (ppo_mini_batch_size counts prompts, like train_batch_size).
    assert cfg.data.train_batch_size // actor.ppo_mini_batch_size == 4
    assert cfg.data.train_batch_size % actor.ppo_mini_batch_size == 0
    # The preset's self-description agrees with what it sets (the pre-flight compares against it).
    assert cfg.algorithm_preset.name == algorithm
    assert cfg.algorithm_preset.loss_mode == loss_mode
    assert agg in cfg.algorithm_preset.loss_agg_modes
    # verl's rollout_correction (verl's own `algorithm` group, another package) is untouched by the preset.
    assert cfg.algorithm.rollout_correction.loss_type == "ppo_clip"
    _quiet_preflight(cfg)


def test_sspo_preset_instantiates_the_typed_config():
    from hydra.utils import instantiate

    from sspo_verl import SSPOPolicyLossConfig

    cfg = compose(["algorithm=sspo"])
    loss_cfg = instantiate(cfg.actor_rollout_ref.actor.policy_loss)
    assert isinstance(loss_cfg, SSPOPolicyLossConfig)
    assert loss_cfg.granularity == "subsentence" and loss_cfg.entropy_clip


def test_sspo_yaml_mirrors_every_dataclass_field_and_default():
    from verl.workers.config import PolicyLossConfig

    from sspo_verl import SSPOPolicyLossConfig

    yaml_fields = OmegaConf.load(CONFIG_DIR / "algorithm" / "sspo.yaml").actor_rollout_ref.actor.policy_loss
    verl_fields = {f.name for f in dataclasses.fields(PolicyLossConfig)}
    ours = [f for f in dataclasses.fields(SSPOPolicyLossConfig) if f.name not in verl_fields or f.name == "loss_mode"]
    assert len(ours) >= 11
    for field in ours:
        assert field.name in yaml_fields, f"sspo.yaml lacks policy_loss.{field.name}"
        assert yaml_fields[field.name] == field.default, field.name
    assert set(yaml_fields) - {"_target_"} == {f.name for f in ours}


@pytest.mark.parametrize("batch", [8, 96, 128, 1024])
def test_mini_batch_size_follows_the_batch_size(batch):
    cfg = compose([f"data.train_batch_size={batch}"])
    assert cfg.actor_rollout_ref.actor.ppo_mini_batch_size == batch // 4


def test_indivisible_batch_size_fails_with_the_fix():
    cfg = compose(["data.train_batch_size=10"])
    with pytest.raises(Exception, match="num_mini_batches"):
        _ = cfg.actor_rollout_ref.actor.ppo_mini_batch_size


def test_seed_reaches_every_verl_seed_key_and_the_run_name():
    cfg = compose(["seed=7", "algorithm=gspo"])
    for key in (
        "data.seed",
        "actor_rollout_ref.actor.data_loader_seed",
        "actor_rollout_ref.actor.fsdp_config.seed",
        "actor_rollout_ref.ref.fsdp_config.seed",
        "actor_rollout_ref.rollout.seed",
    ):
        assert OmegaConf.select(cfg, key) == 7, key
    assert cfg.trainer.experiment_name == "gspo-qwen2.5-math-1.5b-seed7"
    assert cfg.trainer.default_local_dir.endswith("/sspo/gspo-qwen2.5-math-1.5b-seed7/checkpoints")
    assert Path(cfg.trainer.default_local_dir).is_absolute()


def test_experiment_sets_the_paper_run_and_the_algorithm_flag_still_switches():
    cfg = compose(["experiment=paper_qwen2.5_math_7b", "algorithm=gspo"])
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen2.5-Math-7B"
    assert cfg.actor_rollout_ref.rollout.tensor_model_parallel_size == 2
    assert cfg.actor_rollout_ref.rollout.name == "vllm"
    assert cfg.actor_rollout_ref.actor.policy_loss.loss_mode == "gspo"
    names = [Path(p).name for p in cfg.data.val_files]
    assert names == ["aime24.parquet", "amc23.parquet", "math500.parquet", "minerva_math.parquet",
                     "olympiadbench.parquet"]
    assert Path(cfg.data.train_files).name == "math_l35.parquet"
    # Qwen2.5-Math's 4096-token context.
    assert cfg.data.max_prompt_length + cfg.data.max_response_length <= 4096
    # A command-line group choice wins over the experiment's own.
    cfg = compose(["experiment=paper_qwen2.5_math_7b", "model=qwen2.5-math-1.5b"])
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen2.5-Math-1.5B"
    assert cfg.trainer.experiment_name == "sspo-qwen2.5-math-1.5b-seed42"


def test_data_dir_moves_every_default_data_file(tmp_path):
    cfg = compose([f"data_dir={tmp_path}", "experiment=paper_qwen2.5_math_1.5b"])
    for path in [cfg.data.train_files, *cfg.data.val_files]:
        assert Path(path).parent == tmp_path


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # the GPU default: hardware=gpu_1x8 rollout=vllm
        ["experiment=paper_qwen2.5_math_1.5b"],
        ["experiment=paper_qwen2.5_math_7b"],
        ["hardware=gpu_nx8", "trainer.nnodes=2"],
        ["hardware=cpu", "model=tiny"],  # the CPU run: the same keys, the CPU platform's values
    ],
    ids=["gpu_default", "paper_1.5b", "paper_7b", "gpu_nx8", "cpu"],
)
def test_rollout_vllm_builds_verls_rollout_config(overrides):
    """What rollout=vllm sets (and the paper experiments) is a valid verl RolloutConfig, on GPU and on CPU alike:
    the dataclass verl's vLLM server builds from it (its __post_init__ validates), unknown keys refused."""
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import RolloutConfig

    cfg = compose(["rollout=vllm", *overrides])
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    assert isinstance(rollout, RolloutConfig) and rollout.name == "vllm"
    cpu = cfg.trainer.device == "cpu"
    assert (rollout.enable_sleep_mode, rollout.free_cache_engine, rollout.enforce_eager) == (not cpu, not cpu, cpu)
    assert rollout.dtype == ("float32" if cpu else "bfloat16")
    assert ("kv_cache_memory_bytes" in (rollout.engine_kwargs.get("vllm") or {})) == cpu


def test_hardware_presets():
    one = compose(["hardware=gpu_1x8"]).trainer
    many = compose(["hardware=gpu_nx8", "trainer.nnodes=4"]).trainer
    assert (one.device, one.nnodes, one.n_gpus_per_node) == ("cuda", 1, 8)
    assert (many.device, many.nnodes, many.n_gpus_per_node) == ("cuda", 4, 8)
