"""Who a run is (algorithm, seed) and how runs group: config, directory name, differing configs, duplicates."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from sspo_verl.report.runs import group_runs, load_run, run_from_records
from sspo_verl.rundir import RECORD
from tests.report.fixture_runs import RUN_NAMES, raw_steps


def test_identity_from_the_resolved_config_of_real_runs(fixture_runs):
    runs = [load_run(p) for p in fixture_runs.values()]
    assert [(r.algorithm, r.seed) for r in runs] == [("grpo", 1), ("grpo", 2), ("sspo", 1), ("sspo", 2)]
    groups = group_runs(runs)
    assert list(groups) == ["grpo", "sspo"]  # same algorithm, configs equal but for seeds: one group each
    assert [r.seed for r in groups["grpo"]] == [1, 2]


def test_identity_from_the_directory_name_then_unknown(fixture_runs, tmp_path):
    os.remove(os.path.join(fixture_runs["sspo-tiny-seed2"], RECORD))
    run = load_run(fixture_runs["sspo-tiny-seed2"])
    assert (run.algorithm, run.seed, run.notes) == ("sspo", 2, [])
    odd = tmp_path / "my run"
    shutil.copytree(fixture_runs["sspo-tiny-seed2"], odd)
    run = load_run(os.fspath(odd))
    assert (run.algorithm, run.seed) == ("my run", None) and "unknown seed" in run.notes[0]


def test_an_algorithm_with_differing_configs_is_split_by_the_differing_values(fixture_runs, tmp_path):
    """An ablation: sspo at two clip_ratio_high values, two seeds each → two groups, never averaged together."""
    paths = dict(fixture_runs)
    for seed in (1, 2):
        source = fixture_runs[f"sspo-tiny-seed{seed}"]
        target = tmp_path / f"clip-sspo-seed{seed}"
        shutil.copytree(source, target)
        config = (target / RECORD).read_text()
        assert "clip_ratio_high: 0.28" in config
        (target / RECORD).write_text(config.replace("clip_ratio_high: 0.28", "clip_ratio_high: 0.4"))
        paths[target.name] = os.fspath(target)
    groups = group_runs([load_run(p) for p in paths.values()])
    assert list(groups) == ["grpo", "sspo (clip_ratio_high=0.28)", "sspo (clip_ratio_high=0.4)"]
    assert [len(v) for v in groups.values()] == [2, 2, 2]


def test_two_runs_with_the_same_group_and_seed_are_refused(fixture_runs, tmp_path):
    copy = tmp_path / "elsewhere" / "grpo-tiny-seed1"
    shutil.copytree(fixture_runs["grpo-tiny-seed1"], copy)
    runs = [load_run(fixture_runs["grpo-tiny-seed1"]), load_run(os.fspath(copy))]
    with pytest.raises(ValueError, match="are both 'grpo' with seed 1: pass only one"):
        group_runs(runs)


def test_runs_from_records_in_memory():
    run = run_from_records("a", "gspo", 3, [{"step": 1, "data": {"x": 1}}, {"step": 1, "data": {"x": 2}}])
    assert (run.label, run.steps, run.source) == ("gspo", {1: {"x": 2.0}}, "records")
    with pytest.raises(ValueError, match="no logged step"):
        run_from_records("a", "gspo", 3, [])


def test_values_naming_the_run_do_not_split_a_group(fixture_runs):
    """verl's full config repeats the run's name (rollout.trace.experiment_name) and paths naming it."""
    for seed in (1, 2):
        run_dir = fixture_runs[f"grpo-tiny-seed{seed}"]
        with open(os.path.join(run_dir, RECORD), "a", encoding="utf-8") as fh:
            fh.write(f"trace_name: grpo-tiny-seed{seed}\nlog_path: /somewhere/grpo-tiny-seed{seed}/log.txt\n"
                     f"model_path: /models/m{seed}\n")
    groups = group_runs([load_run(fixture_runs[f"grpo-tiny-seed{s}"]) for s in (1, 2)])
    assert list(groups) == ["grpo (model_path=/models/m1)", "grpo (model_path=/models/m2)"]  # a real difference


def test_a_group_splits_where_a_rerun_would_be_refused():
    """One rule for both (sspo_verl.rundir.changes_training): the trainer mode splits a group (an asynchronous run
    trains on other data than a synchronous one); the schedule, the data root, on_config_change do not."""
    runs = []
    for seed, mode, steps, data_dir in ((1, "sync", 4, "/a"), (2, "sync", 8, "/b"), (1, "colocate_async", 4, "/a")):
        run = run_from_records(f"r{seed}{mode}", "sspo", seed, [{"step": 1, "data": {"x": 1.0}}])
        run.config = {"trainer.v1.trainer_mode": mode, "trainer.total_training_steps": steps, "data_dir": data_dir,
                      "on_config_change": "refuse" if seed == 1 else "new_attempt", "seed": seed}
        runs.append(run)
    groups = group_runs(runs)
    assert {label: len(members) for label, members in groups.items()} == {
        "sspo (trainer_mode=colocate_async)": 1, "sspo (trainer_mode=sync)": 2}


def _rollout_dump_groups(path):
    """{group uid: [scores]} of one step from verl's rollout dump (one JSON line per response, key {uid}_{i}_{j})."""
    groups = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            groups.setdefault(row["uid"].rsplit("_", 2)[0], []).append(row["score"])
    return groups


def test_what_the_driver_used_to_log_follows_from_the_config_and_the_actor(fixture_runs):
    """These runs were logged with the (since removed) driver-side diag/* wraps of verl's trainer. Every value they
    logged follows from the resolved config (the Runs table's optimizer steps per rollout batch) or equals the
    actor's own diag/zero_adv_seq_frac, and the rollout dumps agree (no zero-variance group in these runs)."""
    for name in RUN_NAMES:
        run = load_run(fixture_runs[name])
        mini_batches, epochs = run.updates_per_rollout()
        prompts, n = run.config["data.train_batch_size"], run.config["actor_rollout_ref.rollout.n"]
        for step, logged in raw_steps(fixture_runs[name]).items():
            if "diag/num_groups" not in logged:
                continue  # a validation-only record
            assert (logged["diag/num_groups"], logged["diag/num_responses"]) == (prompts, prompts * n)
            assert (logged["diag/minibatches_per_rollout"], logged["diag/ppo_epochs"]) == (mini_batches, epochs)
            assert logged["diag/updates_per_rollout"] == mini_batches * epochs
            assert logged["diag/zero_var_group_frac"] == logged["actor/diag/zero_adv_seq_frac"]
            groups = _rollout_dump_groups(os.path.join(fixture_runs[name], "rollouts", f"{step}.jsonl"))
            zero_var = sum(1 for scores in groups.values() if max(scores) == min(scores)) / len(groups)
            assert len(groups) == prompts and zero_var == logged["actor/diag/zero_adv_seq_frac"]


def test_updates_per_rollout_needs_the_config_keys():
    run = run_from_records("r", "sspo", 1, [{"step": 1, "data": {"x": 1.0}}])
    assert run.updates_per_rollout() is None
    run.config = {"data.train_batch_size": 8, "actor_rollout_ref.actor.ppo_mini_batch_size": 4,
                  "actor_rollout_ref.actor.ppo_epochs": 3}
    assert run.updates_per_rollout() == (2.0, 3)
