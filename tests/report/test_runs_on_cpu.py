"""Who a run is (algorithm, seed) and how runs group: config, directory name, differing configs, duplicates."""

from __future__ import annotations

import os
import shutil

import pytest

from sspo_verl.report.runs import CONFIG_FILE, group_runs, load_run, run_from_records


def test_identity_from_the_resolved_config_of_real_runs(fixture_runs):
    runs = [load_run(p) for p in fixture_runs.values()]
    assert [(r.algorithm, r.seed) for r in runs] == [("grpo", 1), ("grpo", 2), ("sspo", 1), ("sspo", 2)]
    groups = group_runs(runs)
    assert list(groups) == ["grpo", "sspo"]  # same algorithm, configs equal but for seeds: one group each
    assert [r.seed for r in groups["grpo"]] == [1, 2]


def test_identity_from_the_directory_name_then_unknown(fixture_runs, tmp_path):
    os.remove(os.path.join(fixture_runs["sspo-tiny-seed2"], CONFIG_FILE))
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
        config = (target / CONFIG_FILE).read_text()
        assert "clip_ratio_high: 0.28" in config
        (target / CONFIG_FILE).write_text(config.replace("clip_ratio_high: 0.28", "clip_ratio_high: 0.4"))
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
        with open(os.path.join(run_dir, CONFIG_FILE), "a", encoding="utf-8") as fh:
            fh.write(f"trace_name: grpo-tiny-seed{seed}\nlog_path: /somewhere/grpo-tiny-seed{seed}/log.txt\n"
                     f"model_path: /models/m{seed}\n")
    groups = group_runs([load_run(fixture_runs[f"grpo-tiny-seed{s}"]) for s in (1, 2)])
    assert list(groups) == ["grpo (model_path=/models/m1)", "grpo (model_path=/models/m2)"]  # a real difference
