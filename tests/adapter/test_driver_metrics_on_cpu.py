"""Driver-side diag/* metrics: installation, hand-computed group statistics, verl's own functions,
the logged values of real CPU runs (committed fixtures), and one live run of the real trainer (slow)."""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil

import numpy as np
import pytest
import torch

import sspo_verl.adapter.driver_metrics as dm
import verl.trainer.ppo.metric_utils as metric_utils
import verl.trainer.ppo.ray_trainer as ray_trainer
from verl import DataProto

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, "report", "fixtures")
PAD = "pad" + "0123456789abcdef" * 2  # verl's padding uid: "pad" + uuid4().hex


@pytest.fixture
def restore_patch():
    dm.drain()
    yield
    for patch in dm.PATCHES:
        patch.install()
    dm.drain()


@pytest.fixture
def mini_batch_env(monkeypatch):
    monkeypatch.setenv(dm.ENV_MINI_BATCH_SIZE, "4")
    monkeypatch.setenv(dm.ENV_PPO_EPOCHS, "2")


# ------------------------------------------------------- installation (its discipline: tests/test_patching_on_cpu.py)


def test_installed_by_the_entry_point_everywhere_the_targets_are_bound():
    import verl.trainer.ppo.v1.trainer_base as trainer_base
    import verl.trainer.ppo.v1.utils as v1_utils

    assert all(patch.is_installed() for patch in dm.PATCHES)
    assert v1_utils.compute_advantage is ray_trainer.compute_advantage
    assert trainer_base.compute_data_metrics is metric_utils.compute_data_metrics
    assert ray_trainer.compute_data_metrics is metric_utils.compute_data_metrics


def test_padding_uid_format_is_verls():
    """The padding rows are recognised by the uid verl 0.9.1 gives them; fail here if verl changes it."""
    from verl.trainer.ppo.padding_utils import upsample_batch_to_divisible_size

    assert 'pad_uid = f"pad{uuid.uuid4().hex}"' in inspect.getsource(upsample_batch_to_divisible_size)
    import uuid

    assert dm.is_padding_uid(np.array([f"pad{uuid.uuid4().hex}", str(uuid.uuid4()), "pad", "padded"],
                                      dtype=object)).tolist() == [True, False, False, False]


# ------------------------------------------------------------------------------------------------ the statistics


def test_group_statistics_hand_computed():
    uids = np.array(["a", "a", "a", "b", "b", "c", "d", "d"], dtype=object)
    scores = torch.tensor([1.0, 1.0, 1.0,  # a: all equal → zero variance
                           0.0, 1.0,  # b: differ
                           0.5,  # c: one response → zero variance
                           0.1 + 0.2, 0.3], dtype=torch.float64)  # d: 0.30000000000000004 vs 0.3 differ
    assert dm.group_statistics(uids, scores) == (4, 2)
    assert dm.group_statistics(np.array([], dtype=object), torch.zeros(0)) == (0, 0)
    with pytest.raises(ValueError, match="3 uids for 2 scores"):
        dm.group_statistics(uids[:3], scores[:2])


def test_group_statistics_matches_a_loop_reference_on_random_batches():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = int(torch.randint(1, 60, (1,), generator=gen))
        uids = np.array([f"u{int(i)}" for i in torch.randint(0, 7, (n,), generator=gen)], dtype=object)
        scores = torch.randint(0, 3, (n,), generator=gen).double()  # few values: equal groups are common
        groups = {}
        for u, s in zip(uids, scores.tolist()):
            groups.setdefault(u, []).append(s)
        expected = (len(groups), sum(1 for v in groups.values() if max(v) == min(v)))
        assert dm.group_statistics(uids, scores) == expected


def _batch(uids, scores, width=3):
    """A DataProto like the one compute_advantage gets: the outcome score on each response's last token."""
    n = len(uids)
    token_scores = torch.zeros(n, width)
    token_scores[:, -1] = torch.tensor(scores)
    return DataProto.from_dict(
        tensors={"token_level_scores": token_scores, "token_level_rewards": token_scores.clone(),
                 "response_mask": torch.ones(n, width)},
        non_tensors={"uid": np.array(uids, dtype=object)},
    )


def test_record_excludes_verls_padding_rows_from_groups_but_counts_them_as_rows():
    record = dm.record_batch(_batch(["a", "a", "b", "b", PAD, PAD], [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]))
    # groups a (zero variance) and b; the two padding rows form no group but are trained on (rows)
    assert record == dm.Record(rows=6, responses=4, groups=2, zero_var_groups=1)


def test_metrics_from_records_hand_computed():
    # two advantage computations in one step (V1 parameter_sync_step=2), 4 responses per mini-batch, 2 epochs
    records = [dm.Record(rows=8, responses=8, groups=4, zero_var_groups=1),
               dm.Record(rows=12, responses=10, groups=5, zero_var_groups=3)]
    assert dm.metrics_from_records(records, mini_batch_size=4, ppo_epochs=2) == {
        "diag/num_responses": 18.0,
        "diag/num_groups": 9.0,
        "diag/zero_var_group_frac": 4 / 9,  # (1 + 3) zero-variance groups of 4 + 5
        "diag/minibatches_per_rollout": 2.5,  # (8/4 + 12/4) / 2 rollout batches
        "diag/ppo_epochs": 2.0,
        "diag/updates_per_rollout": 5.0,  # 2.5 mini-batches x 2 epochs
    }
    assert dm.metrics_from_records([], 4, 2) == {}
    assert "diag/minibatches_per_rollout" not in dm.metrics_from_records(records, None, None)


# ------------------------------------------------------------------------------------------------ through verl


def _metrics_batch(data):
    """Add what compute_data_metrics reads to a batch compute_advantage has processed."""
    n, width = data.batch["token_level_scores"].shape
    data.batch["prompts"] = torch.ones(n, 2, dtype=torch.long)
    data.batch["responses"] = torch.ones(n, width, dtype=torch.long)
    data.batch["attention_mask"] = torch.ones(n, 2 + width, dtype=torch.long)
    return data


def test_verls_compute_advantage_and_data_metrics_log_the_step(restore_patch, mini_batch_env):
    from verl.trainer.ppo.core_algos import AdvantageEstimator
    from verl.trainer.ppo.v1.trainer_base import compute_data_metrics  # the name V1's _compute_metrics calls
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    # 3 prompts x 2 responses + 2 padding rows = 8 rows; prompt 'q' has equal scores
    uids = ["p", "p", "q", "q", "r", "r", PAD, PAD]
    data = _batch(uids, [1.0, 0.0, 0.5, 0.5, 0.0, 2.0, 0.0, 0.0])
    keys = [f"{u}_{i % 2}_0" for i, u in enumerate(uids)]  # V1's batch keys: {uid}_{session}_{index}
    data = compute_advantage_for_multi_trajectories(data, batch_keys=keys, adv_estimator=AdvantageEstimator.GRPO,
                                                    num_repeat=2)
    assert torch.all(data.batch["advantages"][2:4] == 0)  # verl's GRPO: the zero-variance group learns nothing
    metrics = compute_data_metrics(batch=_metrics_batch(data), use_critic=False)
    assert "critic/score/mean" in metrics  # verl's own metrics are still there
    assert metrics["diag/num_groups"] == 3.0 and metrics["diag/num_responses"] == 6.0
    assert metrics["diag/zero_var_group_frac"] == pytest.approx(1 / 3)
    assert metrics["diag/minibatches_per_rollout"] == 2.0  # 8 rows / 4 per mini-batch
    assert metrics["diag/updates_per_rollout"] == 4.0  # x 2 epochs
    assert "diag/num_groups" not in compute_data_metrics(batch=_metrics_batch(data), use_critic=False)  # drained


def test_legacy_trainer_names_and_a_missing_environment(restore_patch, monkeypatch, caplog):
    from verl.trainer.ppo.core_algos import AdvantageEstimator

    monkeypatch.delenv(dm.ENV_MINI_BATCH_SIZE, raising=False)
    monkeypatch.delenv(dm.ENV_PPO_EPOCHS, raising=False)
    dm._warned.discard("env")
    data = ray_trainer.compute_advantage(_batch(["a", "a"], [1.0, 1.0]), adv_estimator=AdvantageEstimator.GRPO)
    with caplog.at_level(logging.WARNING, logger="sspo_verl.adapter.driver_metrics"):
        metrics = ray_trainer.compute_data_metrics(batch=_metrics_batch(data), use_critic=False)
    assert metrics["diag/zero_var_group_frac"] == 1.0 and metrics["diag/num_groups"] == 1.0
    assert "diag/minibatches_per_rollout" not in metrics
    assert any(dm.ENV_MINI_BATCH_SIZE in r.getMessage() for r in caplog.records)


def test_a_bad_environment_value_is_an_error(restore_patch, monkeypatch):
    monkeypatch.setenv(dm.ENV_MINI_BATCH_SIZE, "zero")
    monkeypatch.setenv(dm.ENV_PPO_EPOCHS, "1")
    dm._push(dm.Record(rows=4, responses=4, groups=2, zero_var_groups=0))
    with pytest.raises(ValueError, match="SSPO_PPO_MINI_BATCH_SIZE='zero': expected a positive integer"):
        dm.step_metrics()


def test_config_env_from_the_composed_tiny_config():
    from omegaconf import OmegaConf

    from sspo_verl.train import compose

    config = compose(["hardware=cpu", "model=tiny", "rollout=hf", "algorithm=sspo",
                      "data.train_batch_size=8", "actor_rollout_ref.rollout.n=4", "num_mini_batches=2",
                      "actor_rollout_ref.actor.ppo_epochs=3"])
    OmegaConf.resolve(config)
    # ppo_mini_batch_size = 8 prompts / 2 mini-batches = 4 prompts = 16 responses
    assert dm.config_env(config) == {dm.ENV_MINI_BATCH_SIZE: "16", dm.ENV_PPO_EPOCHS: "3"}


# ------------------------------------------------------------------------------------------------ real runs


def _rollout_dump_stats(path):
    """(groups, zero-variance groups, responses) of one step from verl's rollout dump (trainer.rollout_data_dir):
    one JSON line per response with its batch key ({uid}_{session}_{index}) and score (rm_scores summed)."""
    groups = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            groups.setdefault(row["uid"].rsplit("_", 2)[0], []).append(row["score"])
    zero = sum(1 for v in groups.values() if max(v) == min(v))
    return len(groups), zero, sum(len(v) for v in groups.values())


def _logged(run_dir):
    from sspo_verl.report.logs import read_run_metrics

    steps, _, _ = read_run_metrics(run_dir)
    return steps


def _fixture_runs():
    root = os.path.join(FIXTURES, "cpu_runs")
    return sorted(os.path.join(root, d) for d in os.listdir(root))


def _check_run(run_dir, rows_per_step, mini_batch_responses, epochs):
    steps = _logged(run_dir)
    dumps = sorted(os.listdir(os.path.join(run_dir, "rollouts")))
    assert dumps, run_dir
    for dump in dumps:
        step = int(dump.split(".")[0])
        groups, zero, responses = _rollout_dump_stats(os.path.join(run_dir, "rollouts", dump))
        logged = steps[step]
        assert logged["diag/num_groups"] == groups and logged["diag/num_responses"] == responses
        assert logged["diag/zero_var_group_frac"] == pytest.approx(zero / groups)
        assert logged["diag/minibatches_per_rollout"] == rows_per_step / mini_batch_responses
        assert logged["diag/ppo_epochs"] == epochs
        assert logged["diag/updates_per_rollout"] == rows_per_step / mini_batch_responses * epochs


def test_real_cpu_runs_logged_the_driver_metrics_of_their_rollouts():
    """The committed fixture runs (tests/report/fixtures/README.md): model=tiny, 8 prompts x 8 responses,
    4 mini-batches (16 responses each), 1 epoch. Each step's diag/* equals what verl's own rollout dump gives."""
    runs = _fixture_runs()
    assert len(runs) == 4
    for run_dir in runs:
        _check_run(run_dir, rows_per_step=64, mini_batch_responses=16, epochs=1)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_live_cpu_run_logs_driver_metrics(tiny_model_dir, tmp_path):
    """The real trainer, 1 step: 4 prompts x 2 responses of 1 token, a reward that makes every group with an even
    answer a zero-variance group (parity_reward.py), 2 mini-batches x 2 epochs. The logged diag/* match verl's
    rollout dump of the step, and the actor's zero-advantage fraction equals the zero-variance fraction."""
    from sspo_verl.demo.job import run_job
    from sspo_verl.demo.task import write_dataset

    tiny = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, tiny / "model")
    write_dataset(os.fspath(tiny / "data"), n_train=16, n_val=4, seed=0)
    run_dir = tmp_path / "runs" / "live" / "grpo"
    result = run_job(
        "driver-metrics",
        ["hardware=cpu", "model=tiny", "rollout=hf", "algorithm=grpo", "seed=0", f"output_dir={tmp_path / 'runs'}",
         "trainer.project_name=live", "trainer.experiment_name=grpo", "data.train_batch_size=4",
         "actor_rollout_ref.rollout.n=2", "data.max_response_length=1", "num_mini_batches=2",
         "actor_rollout_ref.actor.ppo_epochs=2", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
         "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8", "trainer.total_training_steps=1",
         "trainer.total_epochs=10", "trainer.val_before_train=false", "trainer.test_freq=-1",
         "trainer.save_freq=-1", f"trainer.rollout_data_dir={run_dir / 'rollouts'}",
         f"reward.custom_reward_function.path={os.path.join(os.path.dirname(__file__), 'parity_reward.py')}",
         "reward.custom_reward_function.name=compute_score"],
        os.fspath(run_dir),
        env={"SSPO_TINY_DIR": os.fspath(tiny)},
        startup_timeout_s=480,
        step_timeout_s=240,
    )
    assert result.ok, result.error
    # 8 rows; a mini-batch is 4 prompts / 2 = 2 prompts x 2 responses = 4 responses → 2 mini-batches x 2 epochs
    _check_run(os.fspath(run_dir), rows_per_step=8, mini_batch_responses=4, epochs=2)
    logged = _logged(os.fspath(run_dir))[1]
    assert logged["diag/zero_var_group_frac"] > 0  # the even-answer prompts of the step
    # groups of 2 responses: responses with zero advantage (actor side) = zero-variance groups (driver side)
    assert logged["actor/diag/zero_adv_seq_frac"] == pytest.approx(logged["diag/zero_var_group_frac"])
