"""The demo's sspo-train overrides compose and pass the CPU backend's checks (no trainer is started here); its
evaluation step tables the runs' final checkpoints on tiny_eval."""

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
    assert cfg.trainer.resume_mode == "disable" and cfg.trainer.save_freq == 30
    assert cfg.trainer.experiment_name == algorithm and cfg.trainer.project_name == "demo"
    assert cfg.actor_rollout_ref.rollout.name == rollout and cfg.trainer.device == "cpu"
    assert cfg.reward.custom_reward_function.path == "pkg://sspo_verl.data.tiny_task"
    # 8 prompts / 4 mini-batches = 2 prompts x 8 responses = 16 per update: the micro-batch (16) divides it
    assert cfg.actor_rollout_ref.actor.ppo_mini_batch_size * cfg.actor_rollout_ref.rollout.n == 16


def test_evaluation_tables_the_final_checkpoints(tmp_path, tiny_model_dir):
    """What the demo does after its runs, on run directories as sspo-train leaves them (checkpoints with HF
    weights here, so no merge: verl's merger is tested in tests/eval)."""
    import shutil

    import yaml

    from sspo_verl.demo.__main__ import evaluate_runs
    from sspo_verl.data.tiny_task import write_dataset

    demo_dir = tmp_path / "demo"
    for algorithm in ("grpo", "sspo"):
        shutil.copytree(tiny_model_dir, demo_dir / algorithm / "checkpoints" / "global_step_4" / "actor" / "huggingface")
        (demo_dir / algorithm / "resolved_config.yaml").write_text(
            yaml.safe_dump({"algorithm_preset": {"name": algorithm}, "seed": 0}))
    write_dataset(str(tmp_path / "data"), n_train=8, n_val=2, n_eval=8, seed=0)
    (demo_dir / "eval" / "grpo").mkdir(parents=True)
    (demo_dir / "eval" / "grpo" / "results.json").write_text("{}")  # the previous demo's: its weights were retrained
    table, results = evaluate_runs(str(demo_dir), str(tmp_path / "data"), ["grpo", "sspo"], steps=4, max_new_tokens=4)
    lines = table.splitlines()
    assert lines[0] == "| Model | tiny_eval | tiny_eval reward |"
    assert lines[2].startswith("| grpo (seed 0, step 4) | ") and lines[3].startswith("| sspo (seed 0, step 4) | ")
    assert (demo_dir / "eval" / "table.md").read_text() == table
    assert [r["benchmarks"]["tiny_eval"]["n_problems"] for r in results] == [8, 8]
