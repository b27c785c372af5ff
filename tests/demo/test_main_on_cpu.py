"""The demo's sspo-train overrides compose and pass the CPU backend's checks (no trainer is started here)."""

from __future__ import annotations

import pytest

from sspo_verl import train
from sspo_verl.cpu.launch import apply_to_config
from sspo_verl.demo.__main__ import ALGORITHMS, demo_overrides


@pytest.mark.parametrize("rollout", ["hf", "vllm"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_demo_overrides_compose_for_every_algorithm(algorithm, rollout, tmp_path, monkeypatch, tiny_model_dir):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "model").symlink_to(tiny_model_dir)  # rollout=vllm checks the model's head size
    monkeypatch.setenv("SSPO_TINY_DIR", str(tmp_path / "tiny"))
    cfg = train.compose(demo_overrides(algorithm, 30, 7, str(tmp_path / "runs"), rollout))
    apply_to_config(cfg)
    assert cfg.algorithm_preset.name == algorithm
    assert cfg.trainer.total_training_steps == 30 and cfg.seed == 7
    assert cfg.trainer.resume_mode == "disable" and cfg.trainer.save_freq == -1
    assert cfg.trainer.experiment_name == algorithm and cfg.trainer.project_name == "demo"
    assert cfg.actor_rollout_ref.rollout.name == rollout and cfg.trainer.device == "cpu"
    assert cfg.reward.custom_reward_function.path == "pkg://sspo_verl.demo.task"
    # 8 prompts / 4 mini-batches = 2 prompts x 8 responses = 16 per update: the micro-batch (16) divides it
    assert cfg.actor_rollout_ref.actor.ppo_mini_batch_size * cfg.actor_rollout_ref.rollout.n == 16
