"""sspo_verl.eval.sweep on sweep directories laid out as ablation.sh and train.sbatch leave them: run states from
the launcher log, checkpoint choice, reuse and refusal of earlier evaluations, the grouped table and its statistics
(checked against scipy called directly). The evaluation itself is a stand-in that writes what ``run_eval`` writes
(the real evaluation of a real sweep: tests/recipes/test_ablation_eval_slurm_on_cpu.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats

from sspo_verl.eval import runner, sweep
from sspo_verl.eval.cli import main as eval_main
from sspo_verl.eval.decoding import DecodingConfig
from sspo_verl.eval.results import ProblemResult, benchmark_metrics, write_samples

GREEDY = DecodingConfig(max_new_tokens=16)
SPEC = sweep.EvalSpec(("math500", "amc23"), GREEDY, limit=4)
HEADER = "# index\trun_name\trun_dir\talgo\tseed\toverrides\n"


def make_sweep(root: Path, runs: list[tuple[str, int, str]], grid: str = "") -> Path:
    """A sweep dir; runs = (algo, seed, state) with state finished | failed | running | none; finished runs have
    checkpoints at steps 1 and 2."""
    sweep_dir = root / "abl"
    lines = []
    for i, (algo, seed, state) in enumerate(runs):
        name = f"abl-{algo}-seed{seed}"
        run_dir = sweep_dir / name
        lines.append(f"{i}\t{name}\t{run_dir}\t{algo}\t{seed}\t{grid}\n")
        if state == "none":
            continue
        (run_dir / "logs").mkdir(parents=True)
        log = f"\n===== attempt 0: job 7 (array task {i}) on n1, 2026-12-06 =====\n[sspo-slurm 2026-12-06 10:00:00] job 7\n"
        if state in ("finished", "failed"):
            rc = 0 if state == "finished" else 1
            log += f"[sspo-slurm 2026-12-06 10:01:00] exit {rc} (run dir {run_dir}, latest checkpoint: 2)\n"
        (run_dir / sweep.LAUNCHER_LOG).write_text(log)
        if state == "finished":
            for step in (1, 2):
                (run_dir / "checkpoints" / f"global_step_{step}" / "actor").mkdir(parents=True)
            (run_dir / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("2")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "manifest.tsv").write_text(HEADER + "".join(lines))
    return sweep_dir


def fake_scores(name: str, step: int, bench: str) -> list[float]:
    """Deterministic per-problem 0/1 scores that differ by run, step and benchmark."""
    seed = sum(map(ord, f"{name}{step}{bench}"))
    return [float((seed * (i + 3)) % 7 < 3) for i in range(4)]


@pytest.fixture
def stand_in_eval(monkeypatch):
    """What run_eval writes (results.json + samples/), with scores from fake_scores; records its calls."""
    calls = []

    def run_eval(model, data_dir, out_dir, benchmarks, decoding, label=None, limit=None, **kwargs):
        out_dir = Path(out_dir)
        step = int(Path(model).name.split("_")[-1])
        run_name = label.split("@")[0]
        calls.append((run_name, step))
        metrics = {}
        for bench in benchmarks:
            problems = [ProblemResult(i, f"q{i}", str(i), ["x"], [s], ["p"], [3], ["stop"])
                        for i, s in enumerate(fake_scores(run_name, step, bench))]
            write_samples(out_dir / "samples" / f"{bench}.jsonl", problems)
            metrics[bench] = benchmark_metrics(problems, decoding)
        results = {"label": label, "model": {"source": model, "step": step}, "decoding": decoding.to_dict(),
                   "backend": "hf", "limit": limit, "benchmarks": metrics, "average": None}
        (out_dir / "results.json").write_text(json.dumps(results))
        return results

    monkeypatch.setattr(runner, "run_eval", run_eval)
    return calls


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    for bench in SPEC.benchmarks:
        (d / f"{bench}.parquet").write_bytes(b"")  # only its existence is checked before the stand-in runs
    return d


def test_run_states_come_from_the_launcher_log_and_the_checkpoints(tmp_path):
    sweep_dir = make_sweep(tmp_path, [("grpo", 1, "finished"), ("grpo", 2, "failed"), ("sspo", 1, "running"),
                                      ("sspo", 2, "none")])
    (sweep_dir / "abl-grpo-seed1" / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("2")
    items = sweep.plan(sweep_dir, SPEC)
    assert [(i.run.name, i.step, i.status) for i in items] == [
        ("abl-grpo-seed1", 2, "to evaluate"), ("abl-grpo-seed2", None, "failed"),
        ("abl-sspo-seed1", None, "running"), ("abl-sspo-seed2", None, "not started")]
    assert "training exited with status 1" in items[1].detail
    # a given step that was never saved is a named gap, not a silent skip
    (item,) = sweep.plan(sweep_dir, sweep.EvalSpec(SPEC.benchmarks, GREEDY, 4, (3,)), indices=[0])
    assert item.status == "no checkpoint" and "global_step_3 (saved: [1, 2])" in item.detail


def test_a_task_that_died_before_its_launcher_log_is_failed_by_its_slurm_output(tmp_path):
    sweep_dir = make_sweep(tmp_path, [("grpo", 1, "none"), ("grpo", 2, "none")])
    (sweep_dir / "slurm-7_0.out").write_text("[sspo-slurm 2026-12-06 10:00:00] ERROR: cannot create /x/abl-grpo-seed1\n")
    (sweep_dir / "slurm-7_1.out").write_text("starting\n")
    first, second = (sweep.training_state(r) for r in sweep.read_manifest(sweep_dir))
    assert first == ("failed", f"cannot create /x/abl-grpo-seed1 (see {sweep_dir / 'slurm-7_0.out'})")
    assert second[0] == "not started"


def test_a_requeued_run_is_judged_by_its_last_attempt(tmp_path):
    sweep_dir = make_sweep(tmp_path, [("grpo", 1, "finished")])
    log = sweep_dir / "abl-grpo-seed1" / sweep.LAUNCHER_LOG
    log.write_text(log.read_text().replace("exit 0", "exit 1") + "\n===== attempt 1: job 7 =====\n"
                   "[sspo-slurm t] exit 0 (run dir x, latest checkpoint: 2)\n")
    assert sweep.training_state(sweep.read_manifest(sweep_dir)[0]) == ("finished", "")


def test_table_groups_seeds_with_t_intervals_and_shows_the_failed_run(tmp_path, stand_in_eval, data_dir):
    sweep_dir = make_sweep(tmp_path, [("grpo", 1, "finished"), ("grpo", 2, "finished"), ("grpo", 3, "finished"),
                                      ("sspo", 1, "finished"), ("sspo", 2, "finished"), ("sspo", 3, "failed")])
    items = sweep.evaluate(sweep_dir, SPEC, data_dir)
    assert sorted(stand_in_eval) == sorted((f"abl-{a}-seed{s}", 2) for a, s in
                                           [("grpo", 1), ("grpo", 2), ("grpo", 3), ("sspo", 1), ("sspo", 2)])
    table, summary = sweep.tabulate(sweep_dir, SPEC, items, baseline="grpo")
    assert table == sweep_dir / "eval" / SPEC.key / "table.md"
    grpo, sspo = summary["groups"]
    values = [100 * sum(fake_scores(f"abl-grpo-seed{s}", 2, "math500")) / 4 for s in (1, 2, 3)]
    low, high = stats.t.interval(0.95, 2, loc=sum(values) / 3, scale=stats.sem(values))
    cell = grpo["cells"]["math500"]
    assert (cell["n"], cell["mean"]) == (3, pytest.approx(sum(values) / 3))
    assert cell["half_width"] == pytest.approx((high - low) / 2)
    assert sspo["cells"]["math500"]["n"] == 2 and sspo["evaluated"] == 2 and sspo["runs"] == 3
    # the paired comparison: seeds 1 and 2 (sspo seed 3 failed), equal to scipy's ttest_rel on them
    (cmp,) = [c for c in summary["comparisons"] if c["column"] == "math500"]
    a = [100 * sum(fake_scores(f"abl-sspo-seed{s}", 2, "math500")) / 4 for s in (1, 2)]
    b = [100 * sum(fake_scores(f"abl-grpo-seed{s}", 2, "math500")) / 4 for s in (1, 2)]
    if a[0] - b[0] != a[1] - b[1]:
        assert cmp["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert cmp["seeds"] == [1, 2]
    text = table.read_text()
    assert "| sspo @ step 2 |" in text and "FAILED: abl-sspo-seed3" in text
    assert "abl-sspo-seed3 (-): failed — training exited with status 1" in text
    assert "Checkpoint: each run's last checkpoint (--step last)" in text and "limit: 4" in text
    assert json.loads((table.parent / "summary.json").read_text())["groups"][1]["label"] == "sspo @ step 2"


def test_rerun_evaluates_only_what_is_missing_and_never_rewrites(tmp_path, stand_in_eval, data_dir):
    sweep_dir = make_sweep(tmp_path, [("grpo", 1, "finished"), ("grpo", 2, "finished")])
    sweep.evaluate(sweep_dir, SPEC, data_dir, indices=[0])
    first = sweep.eval_dir(sweep.read_manifest(sweep_dir)[0], SPEC, 2) / "results.json"
    before = first.read_bytes(), first.stat().st_mtime_ns
    sweep.evaluate(sweep_dir, SPEC, data_dir)
    assert stand_in_eval == [("abl-grpo-seed1", 2), ("abl-grpo-seed2", 2)]
    assert (first.read_bytes(), first.stat().st_mtime_ns) == before
    # another decoding is another evaluation, in its own place: never mixed into the first table's cells
    sampled = sweep.EvalSpec(SPEC.benchmarks, DecodingConfig(temperature=0.6, n=1, max_new_tokens=16), 4)
    assert sampled.key != SPEC.key
    sweep.evaluate(sweep_dir, sampled, data_dir)
    assert len(stand_in_eval) == 4


def test_an_earlier_evaluation_of_other_settings_is_refused_by_run_and_kept(tmp_path, stand_in_eval, data_dir):
    sweep_dir = make_sweep(tmp_path, [("grpo", 1, "finished")])
    sweep.evaluate(sweep_dir, SPEC, data_dir)
    path = sweep.eval_dir(sweep.read_manifest(sweep_dir)[0], SPEC, 2) / "results.json"
    results = json.loads(path.read_text())
    results["decoding"]["max_new_tokens"] = 3000
    results["benchmarks"].pop("amc23")
    path.write_text(json.dumps(results))
    with pytest.raises(sweep.SweepError, match=r"run abl-grpo-seed1: .* holds another evaluation: decoding .*"
                                               r"benchmarks \['math500'\] .*not overwritten"):
        sweep.evaluate(sweep_dir, SPEC, data_dir)
    assert json.loads(path.read_text()) == results and len(stand_in_eval) == 1


def test_a_run_evaluated_on_other_problems_cannot_be_paired(tmp_path, stand_in_eval, data_dir):
    sweep_dir = make_sweep(tmp_path, [("grpo", 1, "finished"), ("sspo", 1, "finished")])
    sweep.evaluate(sweep_dir, SPEC, data_dir)
    samples = sweep.eval_dir(sweep.read_manifest(sweep_dir)[1], SPEC, 2) / "samples" / "math500.jsonl"
    samples.write_text(samples.read_text().replace('"q0"', '"another question"'))
    with pytest.raises(sweep.SweepError, match="evaluated on different problems"):
        sweep.tabulate(sweep_dir, SPEC, baseline="grpo")


def test_several_steps_are_rows_of_their_own(tmp_path, stand_in_eval, data_dir):
    sweep_dir = make_sweep(tmp_path, [("grpo", 1, "finished"), ("grpo", 2, "finished")], grid="a.b.lr=0.1")
    spec = sweep.EvalSpec(SPEC.benchmarks, GREEDY, 4, (1, 2))
    _, summary = sweep.tabulate(sweep_dir, spec, sweep.evaluate(sweep_dir, spec, data_dir))
    assert [g["label"] for g in summary["groups"]] == ["grpo a.b.lr=0.1 @ step 1", "grpo a.b.lr=0.1 @ step 2"]
    assert all(g["cells"]["amc23"]["n"] == 2 for g in summary["groups"])


def test_cli_table_only_and_bad_input(tmp_path, stand_in_eval, data_dir, capsys):
    sweep_dir = make_sweep(tmp_path, [("grpo", 1, "finished"), ("gspo", 1, "failed")])
    args = ["sweep", str(sweep_dir), "--data-dir", str(data_dir), "--benchmarks", "math500,amc23",
            "--limit", "4", "--max-new-tokens", "16"]
    assert eval_main(args + ["--table-only"]) == 0
    assert not stand_in_eval
    out = capsys.readouterr().out
    assert "abl-grpo-seed1 (global_step_2): to evaluate" in out and "FAILED: abl-gspo-seed1" in out
    assert eval_main(args + ["--baseline", "sspo"]) == 2
    assert "--baseline sspo: not an algorithm of this sweep" in capsys.readouterr().err
    assert eval_main(args + ["--step", "x"]) == 2
    assert eval_main(["sweep", str(tmp_path / "nowhere")] + args[2:]) == 2
    assert "no sweep manifest" in capsys.readouterr().err
    assert eval_main(args + ["--index", "5"]) == 2
    assert "--index [5]: no such row" in capsys.readouterr().err


def test_one_seed_says_not_enough_seeds(tmp_path, stand_in_eval, data_dir):
    sweep_dir = make_sweep(tmp_path, [("grpo", 1, "finished"), ("sspo", 1, "finished")])
    table, summary = sweep.tabulate(sweep_dir, SPEC, sweep.evaluate(sweep_dir, SPEC, data_dir), baseline="grpo")
    assert summary["groups"][0]["cells"]["math500"]["half_width"] is None
    assert "(n=1)" in table.read_text() and "n=1: not enough seeds" in table.read_text()


def test_a_run_dir_holding_another_run_is_refused_by_name(tmp_path, stand_in_eval, data_dir):
    sweep_dir = make_sweep(tmp_path, [("grpo", 1, "finished"), ("sspo", 1, "finished")])
    (sweep_dir / "abl-sspo-seed1" / "resolved_config.yaml").write_text("algorithm_preset:\n  name: gspo\nseed: 1\n")
    with pytest.raises(sweep.SweepError, match=r"run abl-sspo-seed1: .* records algorithm=gspo seed=1, but the "
                                               r"manifest row says algorithm=sspo seed=1"):
        sweep.evaluate(sweep_dir, SPEC, data_dir)
    assert not stand_in_eval  # refused before anything was evaluated


def test_an_evaluation_recorded_for_another_run_is_refused(tmp_path, stand_in_eval, data_dir):
    sweep_dir = make_sweep(tmp_path, [("grpo", 1, "finished")])
    sweep.evaluate(sweep_dir, SPEC, data_dir)
    path = sweep.eval_dir(sweep.read_manifest(sweep_dir)[0], SPEC, 2) / "results.json"
    results = json.loads(path.read_text())
    results["run"] = {"name": "other-grpo-seed1", "algorithm": "grpo", "seed": 1, "step": 2}
    path.write_text(json.dumps(results))
    with pytest.raises(sweep.SweepError, match="run name 'other-grpo-seed1'"):
        sweep.tabulate(sweep_dir, SPEC)
