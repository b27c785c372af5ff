"""The real verl trainer end to end on CPU: ``sspo-train hardware=cpu model=tiny rollout=hf algorithm=<a>``.

Each run is a subprocess bounded by ``sspo_verl.demo.job.run_job`` (start-up and per-step timeouts that end the
whole process group with a message saying what to check), so a hang — the TransferQueue CPU-count trap — fails
the test instead of stalling CI. Runs are small (4 prompts x 4 responses of up to 16 tokens) and combined where
one run can show several things; most of each run's ~1.5 minutes is Ray and worker start-up.

    GRPO, 1 rank, 2 steps, checkpoint at step 2 → resume with trainer.resume_mode=auto: only step 3 runs
    GSPO, 1 rank, 2 steps, validation at step 2 (greedy generation)
    SSPO, 1 rank, 2 steps, reference model + KL loss; SSPO metrics present, nothing NaN
    SSPO, 2 FSDP ranks (data parallel 2: the loss aggregates with verl's global_batch_info), 2 steps
"""

from __future__ import annotations

import math
import os
import shutil

import pytest

pytest.importorskip("sspo_verl.train", reason="sspo-train (sspo_verl/train.py) is not in this checkout")

from sspo_verl.demo.job import JobResult, run_job  # noqa: E402
from sspo_verl.demo.task import write_dataset  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

STARTUP_TIMEOUT_S = 420  # Ray + workers + model on a loaded 2-core machine: ~100 s measured; 4x margin
STEP_TIMEOUT_S = 180  # a step takes seconds here; the first one also starts the agent-loop and reward workers
SSPO_METRICS = (
    "actor/sspo/clipfrac_high",
    "actor/sspo/clipfrac_low",
    "actor/sspo/segment_clipfrac",
    "actor/sspo/seq_all_clipped_frac",
    "actor/sspo/seq_none_clipped_frac",
    "actor/sspo/segments_per_seq",
    "actor/sspo/segment_len_mean",
    "actor/sspo/ratio_min",
    "actor/sspo/ratio_max",
    "actor/sspo/eps_scale_mean",
)
COMMON_METRICS = ("critic/score/mean", "actor/pg_loss", "actor/pg_clipfrac", "actor/ppo_kl", "actor/grad_norm")


@pytest.fixture(scope="module")
def tiny_dir(tiny_model_dir, tmp_path_factory):
    """The embedded default, small: the session's tiny model + 64 training rows."""
    root = tmp_path_factory.mktemp("tiny")
    shutil.copytree(tiny_model_dir, root / "model")
    write_dataset(os.fspath(root / "data"), n_train=64, n_val=8, seed=0)
    return os.fspath(root)


@pytest.fixture(scope="module")
def out_root(tmp_path_factory):
    return os.fspath(tmp_path_factory.mktemp("runs"))


def _train(tiny_dir, out_root, name, algorithm, *extra) -> JobResult:
    overrides = [
        "hardware=cpu",
        "model=tiny",
        "rollout=hf",
        f"algorithm={algorithm}",
        "seed=0",
        f"output_dir={out_root}",
        "trainer.project_name=e2e",
        f"trainer.experiment_name={name}",
        "data.train_batch_size=4",
        "actor_rollout_ref.rollout.n=4",
        "data.max_response_length=16",
        # a mini-batch is 1 prompt x 4 responses (2 per rank with 2 ranks): micro-batches must divide it
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
        "trainer.total_epochs=100",
        "trainer.val_before_train=false",
        "trainer.test_freq=-1",
        "trainer.save_freq=-1",
        *extra,
    ]
    result = run_job(
        name,
        overrides,
        os.path.join(out_root, "e2e", name),
        env={"SSPO_TINY_DIR": tiny_dir},
        startup_timeout_s=STARTUP_TIMEOUT_S,
        step_timeout_s=STEP_TIMEOUT_S,
    )
    assert result.ok, result.error
    return result


def _assert_finite(result: JobResult, keys=COMMON_METRICS):
    for record in result.records:
        data = record["data"]
        missing = [k for k in keys if k not in data]
        assert not missing, f"step {record['step']} of {result.name} lacks {missing}"
        bad = {k: v for k, v in data.items() if isinstance(v, float) and (math.isnan(v) or math.isinf(v))}
        assert not bad, f"step {record['step']} of {result.name} has non-finite metrics {bad}"


def _steps(result: JobResult) -> list[int]:
    return [r["step"] for r in result.records]


def test_grpo_two_steps_then_resume_from_its_checkpoint(tiny_dir, out_root):
    first = _train(tiny_dir, out_root, "grpo", "grpo", "trainer.total_training_steps=2", "trainer.save_freq=2")
    assert _steps(first) == [1, 2]
    _assert_finite(first)
    ckpt = os.path.join(first.run_dir, "checkpoints")
    with open(os.path.join(ckpt, "latest_checkpointed_iteration.txt"), encoding="utf-8") as fh:
        assert fh.read().strip() == "2"
    assert os.path.isdir(os.path.join(ckpt, "global_step_2", "actor"))

    resumed = _train(
        tiny_dir, out_root, "grpo", "grpo", "trainer.total_training_steps=3", "trainer.resume_mode=auto"
    )
    assert _steps(resumed) == [3]  # steps 1-2 come from the checkpoint, not rerun
    _assert_finite(resumed)
    with open(resumed.console_log, encoding="utf-8", errors="replace") as fh:
        assert "global_step_2" in fh.read()  # verl says which checkpoint it loaded


def test_gspo_two_steps_with_validation(tiny_dir, out_root):
    result = _train(tiny_dir, out_root, "gspo", "gspo", "trainer.total_training_steps=2", "trainer.test_freq=2")
    assert _steps(result) == [1, 2]
    _assert_finite(result)
    # validation at the last step: greedy generation through the hf rollout, scored by the task's reward
    val = {k: v for k, v in result.records[-1]["data"].items() if k.startswith("val-core/")}
    assert val, f"no val-core/* metrics at step 2: {sorted(result.records[-1]['data'])[:20]}"
    assert all(0.0 <= v <= 2.0 for v in val.values()), val


def test_sspo_two_steps_with_reference_model_and_kl_loss(tiny_dir, out_root):
    result = _train(
        tiny_dir,
        out_root,
        "sspo_kl",
        "sspo",
        "trainer.total_training_steps=2",
        "actor_rollout_ref.actor.use_kl_loss=true",
        "actor_rollout_ref.actor.kl_loss_coef=0.01",
    )
    assert _steps(result) == [1, 2]
    _assert_finite(result, COMMON_METRICS + SSPO_METRICS + ("actor/kl_loss", "timing_s/ref"))
    assert all(r["data"]["actor/sspo/segments_per_seq"] >= 1.0 for r in result.records)


def test_sspo_two_fsdp_ranks(tiny_dir, out_root):
    result = _train(
        tiny_dir, out_root, "sspo_dp2", "sspo", "trainer.total_training_steps=2", "trainer.n_gpus_per_node=2"
    )
    assert _steps(result) == [1, 2]
    _assert_finite(result, COMMON_METRICS + SSPO_METRICS)
    with open(result.console_log, encoding="utf-8", errors="replace") as fh:
        log = fh.read()
    assert "sspo_hf_server_1" in log  # one rollout replica per trainer rank: two ranks ran
