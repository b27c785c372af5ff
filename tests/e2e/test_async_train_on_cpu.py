"""verl's asynchronous V1 trainers end to end on CPU with real vLLM: ``sspo-train hardware=cpu model=tiny rollout=vllm
algorithm=sspo mode=<colocate_async|separate_async>``, a checkpoint, a resume, and evidence that the data were
off-policy.

One run per mode, in two launches (the sizes and seed of tests/e2e/test_train_on_cpu.py, whose synchronous SSPO run
keeps ``training/rollout_probs_diff_max`` below ``SYNCED_PROBS_DIFF_MAX`` at every step):

    launch 1  steps 1-2, a checkpoint at step 2 (with verl's TransferQueue state: prompts in flight)
    launch 2  resumes from step 2, trains steps 3-4

What it shows: the trainer trained on trajectories sampled by an older weight version (verl's
``training/off_policy/trajectory_staleness/max`` ≥ 1) and those steps' rollout log-probs are further from the
actor's recomputation than the synchronous run ever is; SSPO's metrics (μ included) are logged and finite at
every step; across the resume no prompt is trained twice and none of the prompts the dataloader handed out
before the checkpoint is lost (the trained prompts are read from verl's own rollout dump,
``trainer.rollout_data_dir``, and the dataloader's order from verl's own sampler). ``separate_async`` also shows
its weight pushes: the trainer's whole model went to the standalone vLLM pool through sspo-verl's ``gloo``
checkpoint engine before every step (``checkpoint_engine/gloo/bytes``).
"""

from __future__ import annotations

import json
import os
import re

import pandas as pd
import pytest

from tests.e2e.test_train_on_cpu import (  # noqa: F401  (fixtures tiny_dir, out_root)
    COMMON_METRICS,
    SSPO_METRICS,
    SYNCED_PROBS_DIFF_MAX,
    _assert_finite,
    _read,
    _steps,
    _train,
    out_root,
    tiny_dir,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

PROMPTS, RESPONSES = 4, 4  # data.train_batch_size and rollout.n of test_train_on_cpu._run
STALENESS = "training/off_policy/trajectory_staleness/max"
QUESTION = re.compile(r"What is \d+ \+ \d+\?")


def _trained_questions(rollout_dir: str, step: int) -> list[str]:
    """The question of every response trained at ``step``, from verl's rollout dump (one JSON line per response)."""
    with open(os.path.join(rollout_dir, f"{step}.jsonl"), encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [QUESTION.search(row["input"]).group(0) for row in rows]


def _dataloader_order(tiny_dir: str, seed: int) -> list[str]:
    """The questions in the order verl's training dataloader hands them out (verl's sampler, data.shuffle, seed)."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import create_rl_sampler

    frame = pd.read_parquet(os.path.join(tiny_dir, "data", "train.parquet"))
    questions = [QUESTION.search(p[-1]["content"]).group(0) for p in frame["prompt"]]
    sampler = create_rl_sampler(OmegaConf.create({"shuffle": True, "seed": seed}), questions)
    return [questions[i] for i in sampler]


# per mode: what it needs on top of the e2e sizes. separate_async computes log-probs one mini-batch (1 prompt x 4
# responses) at a time: the micro-batches must divide 4 (pre-flight refuses test_train_on_cpu's 8)
MODES = {
    "colocate_async": (),
    "separate_async": ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
                       "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4"),
}
GLOO_BYTES = "checkpoint_engine/gloo/bytes"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_sspo_async_is_off_policy_and_resumes_without_losing_or_repeating_a_prompt(tiny_dir, out_root, mode):
    name = f"sspo_{mode}"
    rollout_dir = os.path.join(out_root, "e2e", name, "rollouts")
    common = (f"mode={mode}", f"trainer.rollout_data_dir={rollout_dir}", *MODES[mode])
    first = _train(tiny_dir, out_root, name, "sspo", "vllm", *common, "trainer.total_training_steps=2",
                   "trainer.save_freq=2")
    assert _steps(first) == [1, 2]
    ckpt = os.path.join(first.run_dir, "checkpoints", "global_step_2")
    assert os.path.isdir(os.path.join(ckpt, "transfer_queue"))  # the async state: prompts already handed out

    resumed = _train(tiny_dir, out_root, name, "sspo", "vllm", *common, "trainer.total_training_steps=4",
                     "trainer.resume_mode=auto")
    assert _steps(resumed) == [3, 4]  # steps 1-2 come from the checkpoint
    assert "global_step_2" in _read(resumed.console_log)
    records = first.records + resumed.records
    for result in (first, resumed):
        _assert_finite(result, COMMON_METRICS + SSPO_METRICS + (STALENESS, "training/rollout_probs_diff_max"))

    # off-policy: trajectories one weight version behind were trained on, and their rollout log-probs are further
    # from the actor's recomputation than the synchronous run's at any step (test_train_on_cpu: < 1e-3)
    stale = [r for r in records if r["data"][STALENESS] >= 1]
    assert stale, [(r["step"], r["data"][STALENESS]) for r in records]
    diffs = {r["step"]: r["data"]["training/rollout_probs_diff_max"] for r in stale}
    assert max(diffs.values()) > SYNCED_PROBS_DIFF_MAX, diffs
    # the behaviour-policy correction of mode=colocate_async (token-level IS weights) ran
    assert any(k.startswith("rollout_corr/rollout_is") for k in records[-1]["data"]), sorted(records[-1]["data"])

    # across the resume: every step trained PROMPTS distinct prompts × RESPONSES, none of them twice in the run
    trained = {step: _trained_questions(rollout_dir, step) for step in (1, 2, 3, 4)}
    for step, questions in trained.items():
        assert len(questions) == PROMPTS * RESPONSES and len(set(questions)) == PROMPTS, (step, questions)
    every = [q for questions in trained.values() for q in set(questions)]
    assert len(every) == len(set(every)), trained  # no prompt trained twice
    # none lost: before the checkpoint the dataloader had handed out the warm-up batch and steps 1-2's batches;
    # each of those prompts was trained by step 4 (after the resume from its TransferQueue checkpoint)
    order = _dataloader_order(tiny_dir, seed=0)
    handed_out = order[: 3 * PROMPTS]
    missing = set(handed_out) - set(every)
    assert not missing, (missing, trained)
    assert set(every) <= set(order[: 5 * PROMPTS])  # nothing skipped ahead in the dataloader either

    if mode == "separate_async":
        # every step's weight push carried the whole model (one sender, the same bytes each time) to the pool
        pushed = {r["step"]: r["data"].get(GLOO_BYTES) for r in records}
        assert all(pushed.values()) and len(set(pushed.values())) == 1, pushed
        assert "checkpoint_engine.backend=gloo" in _read(first.console_log)  # selected by the CPU launcher
