"""recipes/single_node/train.sh: the trainer command it builds for each paper preset, under a stand-in ``sspo-train``.

The composed Hydra config for that command line is checked too (sspo_verl.train.compose), so a renamed preset or
key breaks this test, not a GPU job.
"""

from __future__ import annotations

import pytest

from sspo_verl import train
from tests.recipes.stub_cluster import REPO, StubCluster

SCRIPT = REPO / "recipes" / "single_node" / "train.sh"
MODELS = ("qwen2.5-math-1.5b", "qwen2.5-math-7b")
NOT_SLURM = {"SLURM_JOB_ID": None, "SLURM_JOB_NODELIST": None, "SLURM_JOB_NUM_NODES": None,
             "SLURM_GPUS_ON_NODE": None, "SLURM_CPUS_PER_TASK": None}


def _experiment(model: str) -> str:
    return "paper_" + model.replace("-", "_")


@pytest.mark.parametrize("model", MODELS)
def test_default_command(tmp_path, model):
    cluster = StubCluster(tmp_path, 1)
    experiment = {} if model == "qwen2.5-math-1.5b" else {"EXPERIMENT": _experiment(model)}  # 1.5B: the default
    result = cluster.run("trainer.total_training_steps=20", script=SCRIPT, **experiment, **NOT_SLURM)
    assert result.returncode == 0, result.stderr
    (train,) = cluster.calls("sspo-train")
    assert train.args == (
        f"experiment={_experiment(model)}", "algorithm=sspo", "hardware=gpu_1x8", "trainer.nnodes=1",
        "trainer.n_gpus_per_node=8", "trainer.resume_mode=auto", "++ray_kwargs.ray_init.address=local",
        "preflight.strict=true", "trainer.total_training_steps=20",
    )
    (env,) = cluster.calls("train-env")
    assert "VERL_USE_EXTERNAL_MODULES=sspo_verl.adapter.plugin" in env.args


@pytest.mark.parametrize("model", MODELS)
def test_knobs(tmp_path, model):
    cluster = StubCluster(tmp_path, 1)
    result = cluster.run(
        script=SCRIPT, EXPERIMENT=_experiment(model), ALGO="gspo_wide", SEED="3", N_GPUS="4", RUN_NAME="r", OUTPUT_DIR="/o", DATA_DIR="/d",
        MODEL_PATH="/m", LOGGER="[console,wandb]", PREFLIGHT_STRICT="0", VERL_USE_EXTERNAL_MODULES="other.mod",
        **NOT_SLURM,
    )
    assert result.returncode == 0, result.stderr
    (train,) = cluster.calls("sspo-train")
    for arg in ("algorithm=gspo_wide", "seed=3", "trainer.n_gpus_per_node=4", "trainer.experiment_name=r",
                "output_dir=/o", "data_dir=/d", "actor_rollout_ref.model.path=/m", "trainer.logger=[console,wandb]"):
        assert arg in train.args
    assert "preflight.strict=true" not in train.args
    (env,) = cluster.calls("train-env")
    assert "VERL_USE_EXTERNAL_MODULES=other.mod,sspo_verl.adapter.plugin" in env.args


@pytest.mark.parametrize(
    ("env", "message"),
    [({"ALGO": "ppo"}, "ALGO=ppo"), ({"SEED": "-1"}, "SEED=-1"), ({"N_GPUS": "0"}, "N_GPUS=0"),
     ({"TRAIN_CMD": "no-such-trainer"}, "no-such-trainer is not on PATH"),
     ({"EXPERIMENT": "paper_qwen3"}, "EXPERIMENT=paper_qwen3: no such preset; expected one of: "
                                     "paper_qwen2.5_math_1.5b paper_qwen2.5_math_7b"),
     ({"EXPERIMENT": "../experiment/paper_qwen2.5_math_7b"}, "no such preset")],
)
def test_bad_input(tmp_path, env, message):
    cluster = StubCluster(tmp_path, 1)
    result = cluster.run(script=SCRIPT, **env)
    assert result.returncode != 0
    assert message in result.stderr
    assert not cluster.calls("sspo-train")


@pytest.mark.parametrize("model", MODELS)
def test_command_composes_to_the_paper_preset(tmp_path, model):
    """The script's overrides compose with the project's Hydra configs into the intended run."""
    cluster = StubCluster(tmp_path, 1)
    assert cluster.run(script=SCRIPT, EXPERIMENT=_experiment(model), ALGO="grpo", SEED="5",
                       **NOT_SLURM).returncode == 0
    (call,) = cluster.calls("sspo-train")
    cfg = train.compose([*call.args, f"data_dir={tmp_path}", f"output_dir={tmp_path}"])
    assert cfg.actor_rollout_ref.model.path == {"qwen2.5-math-1.5b": "Qwen/Qwen2.5-Math-1.5B",
                                                "qwen2.5-math-7b": "Qwen/Qwen2.5-Math-7B"}[model]
    assert cfg.algorithm_preset.name == "grpo"
    assert (cfg.seed, cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == (5, 1, 8)
    assert cfg.ray_kwargs.ray_init.address == "local"
    assert cfg.preflight.strict is True
