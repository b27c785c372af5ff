"""End to end on CPU: fixture benchmarks → sspo-eval (HF generate, tiny model) → results, table, samples;
then scoring checked on known answers through `sspo-eval rescore`."""

import json

import pytest

from sspo_verl.eval.cli import main as eval_main
from sspo_verl.eval.pass_at_k import pass_at_k
from sspo_verl.eval.results import read_samples, write_samples

FIVE = ["aime24", "amc23", "math500", "minerva_math", "olympiadbench"]
FIXTURE_COUNTS = {"aime24": 3, "amc23": 2, "math500": 3, "minerva_math": 2, "olympiadbench": 2, "aime25": 2}


@pytest.fixture(scope="module")
def sampled_run(tiny_model, eval_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_run")
    rc = eval_main([
        "run", "--model", tiny_model, "--data-dir", str(eval_data), "--out-dir", str(out), "--backend", "hf",
        "--temperature", "1.0", "--top-p", "0.95", "--n", "2", "--pass-k", "1,2", "--max-new-tokens", "8",
        "--seed", "5", "--label", "tiny", "--num-procs", "1",
    ])
    assert rc == 0
    return out


def test_run_writes_results_table_and_samples(sampled_run):
    results = json.loads((sampled_run / "results.json").read_text())
    assert results["label"] == "tiny" and results["backend"] == "hf" and results["model"]["kind"] == "hf"
    assert results["decoding"] == {
        "temperature": 1.0, "top_p": 0.95, "top_k": -1, "n": 2, "max_new_tokens": 8, "seed": 5,
        "pass_k": [1, 2], "metric": "avg@2",
    }
    assert set(results["benchmarks"]) == set(FIXTURE_COUNTS)
    for name, count in FIXTURE_COUNTS.items():
        m = results["benchmarks"][name]
        assert (m["n_problems"], m["n_samples"]) == (count, 2 * count)
        assert 0.0 <= m["accuracy"] <= 100.0 and set(m["pass@k"]) == {"1", "2"}
        assert 0 < m["mean_response_tokens"] <= 8
        samples = read_samples(sampled_run / "samples" / f"{name}.jsonl")
        assert len(samples) == count and all(len(p.responses) == 2 == len(p.scores) for p in samples)
    five = [results["benchmarks"][b]["accuracy"] for b in FIVE]
    assert results["average"] == pytest.approx(sum(five) / 5)
    assert results["versions"]["verl"] == "0.9.1" and results["command"][:2] == ["sspo-eval", "run"]

    table = (sampled_run / "table.md").read_text().splitlines()
    assert table[0] == "| Model | AIME24 | AMC23 | MATH-500 | Minerva | OlympiadBench | Avg. | AIME25 |"
    assert table[2].startswith("| tiny | ") and len(table[2].split("|")) == 10  # model + 5 + Avg. + AIME25
    assert any("avg@2 accuracy (%), 2 samples per problem at temperature 1.0, top-p 0.95" in line for line in table)
    assert sum(line.startswith("| tiny | ") for line in table) == 3  # accuracy row + pass@1 + pass@2 rows


def test_scoring_of_known_answers_via_rescore(sampled_run):
    """Replace the tiny model's answers with known right/wrong ones; the figures follow exactly."""
    # amc23 golds: 0.75, 42. Problem 0: one of two right (equivalent form); problem 1: both right.
    amc = read_samples(sampled_run / "samples" / "amc23.jsonl")
    amc[0].responses = [r"so the sum is $\boxed{\frac{3}{4}}$", r"\boxed{0.7}"]
    amc[1].responses = [r"\boxed{42}", r"The answer: \boxed{42.0}"]
    write_samples(sampled_run / "samples" / "amc23.jsonl", amc)
    # aime24 golds: 200, 015, 32 -> all right on the first sample only; the second has no box.
    aime = read_samples(sampled_run / "samples" / "aime24.jsonl")
    for p, answer in zip(aime, ["200", "15", "32"]):
        p.responses = [f"\\boxed{{{answer}}}", "I give up"]
    write_samples(sampled_run / "samples" / "aime24.jsonl", aime)
    # olympiadbench golds "2,-2" and "120": the pair in another order is right, half of it is wrong;
    # 5! is right; a power tower against a number makes sympy hang: killed after 1 s, scored 0.
    oly = read_samples(sampled_run / "samples" / "olympiadbench.jsonl")
    oly[0].responses = [r"\boxed{-2, 2}", r"\boxed{2}"]
    oly[1].responses = [r"\boxed{5!}", r"\boxed{9^{9^{9^{9^{9}}}}}"]
    write_samples(sampled_run / "samples" / "olympiadbench.jsonl", oly)
    for name in ("math500", "minerva_math", "aime25"):  # all wrong
        problems = read_samples(sampled_run / "samples" / f"{name}.jsonl")
        for p in problems:
            p.responses = [r"\boxed{123456789}", "no answer"]
        write_samples(sampled_run / "samples" / f"{name}.jsonl", problems)

    assert eval_main(["rescore", str(sampled_run), "--verify-timeout-s", "1", "--num-procs", "1"]) == 0
    results = json.loads((sampled_run / "results.json").read_text())
    b = results["benchmarks"]
    assert b["amc23"]["accuracy"] == pytest.approx(100 * (1 / 2 + 2 / 2) / 2)  # 75
    assert b["amc23"]["pass@k"]["2"] == pytest.approx(100.0)
    assert b["amc23"]["pass@k"]["1"] == pytest.approx(100 * (pass_at_k(2, 1, 1) + pass_at_k(2, 2, 1)) / 2)
    assert b["aime24"]["accuracy"] == pytest.approx(50.0) and b["aime24"]["no_answer_pct"] == pytest.approx(50.0)
    assert b["olympiadbench"]["accuracy"] == pytest.approx(50.0)
    assert b["olympiadbench"]["verify_timeouts"] == 1
    for name in ("math500", "minerva_math", "aime25"):
        assert b[name]["accuracy"] == 0.0
    assert results["average"] == pytest.approx((50 + 75 + 0 + 0 + 50) / 5)
    row = (sampled_run / "table.md").read_text().splitlines()[2]
    assert row == "| tiny | 50.00 | 75.00 | 0.00 | 0.00 | 50.00 | 35.00 | 0.00 |"


def test_greedy_subset_run(tiny_model, eval_data, tmp_path):
    rc = eval_main([
        "run", "--model", tiny_model, "--data-dir", str(eval_data), "--out-dir", str(tmp_path), "--backend", "hf",
        "--benchmarks", "math500,aime24", "--limit", "2", "--max-new-tokens", "4", "--num-procs", "1",
    ])
    assert rc == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["decoding"]["metric"] == "greedy" and results["average"] is None  # not all five
    assert {k: v["n_problems"] for k, v in results["benchmarks"].items()} == {"math500": 2, "aime24": 2}
    assert "greedy accuracy" in (tmp_path / "table.md").read_text()


def test_table_command_combines_runs(sampled_run, tmp_path, capsys):
    assert eval_main(["table", str(sampled_run / "results.json"), str(sampled_run / "results.json"),
                      "--out", str(tmp_path / "t.md")]) == 0
    lines = (tmp_path / "t.md").read_text().splitlines()
    assert lines[2] == lines[3] and lines[2].startswith("| tiny |")


def test_bad_inputs_fail_fast_with_a_message(tiny_model, eval_data, tmp_path, capsys):
    def run(model, data_dir, *extra):
        out = str(tmp_path / "o")
        return eval_main(["run", "--model", model, "--data-dir", str(data_dir), "--out-dir", out, *extra])

    assert run(tiny_model, tmp_path / "nodata") == 2
    assert "sspo-data prepare" in capsys.readouterr().err
    assert run(str(tmp_path / "nomodel"), eval_data) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run(tiny_model, eval_data, "--n", "4") == 2
    assert "greedy decoding" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(tiny_model, eval_data, "--benchmarks", "gsm8k")


def test_recipe_script_forwards_knobs(tmp_path):
    """recipes/eval/eval_math.sh turns its knobs into sspo-eval flags and forwards extra flags last
    (EVAL_CMD is a stand-in that records its argv; sspo-eval itself is tested above)."""
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "recipes" / "eval" / "eval_math.sh"
    fake = tmp_path / "fake-eval"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$ARGV_OUT"\n')
    fake.chmod(0o755)
    model = tmp_path / "ckpt" / "global_step_5" / "actor"
    model.mkdir(parents=True)
    env = dict(os.environ, MODEL=str(model), DATA_DIR=str(tmp_path), MODE="sampled", N="4", TP="2", BACKEND="vllm",
               EVAL_CMD=str(fake), ARGV_OUT=str(tmp_path / "argv"))
    env.pop("OUT_DIR", None)
    proc = subprocess.run(["bash", str(script), "--pass-k", "1,4"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    argv = (tmp_path / "argv").read_text().splitlines()
    flags = dict(zip(argv[1::2], argv[2::2]))
    assert argv[0] == "run" and argv[-2:] == ["--pass-k", "1,4"]
    assert flags["--model"] == str(model) and flags["--out-dir"] == "eval/global_step_5-sampled"
    assert (flags["--n"], flags["--temperature"], flags["--top-p"]) == ("4", "0.6", "0.95")
    assert (flags["--tensor-parallel-size"], flags["--backend"], flags["--max-new-tokens"]) == ("2", "vllm", "3000")
    run_step = tmp_path / "runs" / "sspo-tiny-seed1" / "checkpoints" / "global_step_5"
    run_step.mkdir(parents=True)
    proc = subprocess.run(["bash", str(script)], env=dict(env, MODEL=str(run_step)), capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    argv = (tmp_path / "argv").read_text().splitlines()
    assert proc.returncode == 0 and dict(zip(argv[1::2], argv[2::2]))["--out-dir"] == "eval/sspo-tiny-seed1-global_step_5-sampled"
    bad = subprocess.run(["bash", str(script)], env=dict(env, MODE="beam"), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "MODE=beam" in bad.stderr


@pytest.fixture(scope="module")
def tiny_run(tiny_model, tmp_path_factory):
    """A run directory as sspo-train leaves it (resolved_config.yaml, checkpoints/global_step_3 with HF weights)
    and the tiny task's data with its held-out split."""
    import shutil

    import yaml

    from sspo_verl.data.tiny_task import write_dataset

    root = tmp_path_factory.mktemp("runs")
    run_dir = root / "demo" / "sspo"
    shutil.copytree(tiny_model, run_dir / "checkpoints" / "global_step_3" / "actor" / "huggingface")
    (run_dir / "resolved_config.yaml").write_text(yaml.safe_dump({"algorithm_preset": {"name": "sspo"}, "seed": 7}))
    write_dataset(str(root / "tiny" / "data"), n_train=16, n_val=4, n_eval=6, seed=0)
    return run_dir, root / "tiny" / "data"


def test_checkpoint_of_a_run_on_tiny_eval(tiny_run, tmp_path, capsys):
    """A checkpoint is named after its run; tiny_eval is scored by the tiny task's reward; a rerun into the same
    directory reuses the evaluation, another evaluation there is refused and nothing is overwritten."""
    from sspo_verl.data.tiny_task import compute_score

    run_dir, data = tiny_run
    out = tmp_path / "eval"
    argv = ["run", "--model", str(run_dir / "checkpoints" / "global_step_3"), "--benchmarks", "tiny_eval",
            "--data-dir", str(data), "--out-dir", str(out), "--backend", "hf", "--max-new-tokens", "6",
            "--limit", "4"]
    assert eval_main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["run"] == {
        "name": "sspo", "algorithm": "sspo", "seed": 7, "step": 3, "run_dir": str(run_dir.resolve()),
        "checkpoint": str((run_dir / "checkpoints" / "global_step_3").resolve()),
    }
    assert results["label"] == "sspo (seed 7, step 3)" and results["limit"] == 4
    m = results["benchmarks"]["tiny_eval"]
    samples = read_samples(out / "samples" / "tiny_eval.jsonl")
    assert m["n_problems"] == len(samples) == 4
    for p in samples:  # the task's own reward, from the row's reference kept with the sample
        reward = compute_score("x", p.responses[0], p.ground_truth, p.extra_info)
        assert (p.scores[0], p.rewards[0]) == (reward["exact"], reward["score"])
    assert m["mean_reward"] == pytest.approx(sum(p.rewards[0] for p in samples) / 4)
    table = (out / "table.md").read_text()
    assert table.splitlines()[2].startswith("| sspo (seed 7, step 3) | ") and "(--limit 4)" in table

    before = (out / "results.json").read_bytes()
    assert eval_main(argv) == 0  # the same evaluation: reused, not generated again
    assert (out / "results.json").read_bytes() == before
    assert eval_main([*argv[:-1], "5"]) == 2  # another --limit into the same directory
    err = capsys.readouterr().err
    assert "sspo (seed 7, step 3)" in err and "limit 4 (now 5)" in err and "another --out-dir" in err
    assert (out / "results.json").read_bytes() == before

    assert eval_main(["run", "--model", str(run_dir / "checkpoints" / "global_step_3"), "--benchmarks", "tiny_eval",
                      "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "o2")]) == 2
    assert "python -m sspo_verl.demo --setup-only" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_plain_hf_model_has_a_null_run(tiny_model, eval_data, tmp_path):
    assert eval_main(["run", "--model", tiny_model, "--data-dir", str(eval_data), "--out-dir", str(tmp_path),
                      "--backend", "hf", "--benchmarks", "amc23", "--max-new-tokens", "2", "--num-procs", "1"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["run"]) == {"name", "algorithm", "seed", "step", "run_dir", "checkpoint"}
    assert all(v is None for v in results["run"].values()) and results["limit"] is None


def test_a_retrained_checkpoint_is_not_taken_for_its_earlier_evaluation(tiny_run, tmp_path, capsys):
    """The run trained again into the same directory (sspo-train moves the earlier attempt aside): the same path,
    another save; its earlier evaluation is neither reused nor overwritten."""
    import shutil

    run_dir, data = tiny_run
    step = run_dir / "checkpoints" / "global_step_3"
    argv = ["run", "--model", str(step), "--benchmarks", "tiny_eval", "--data-dir", str(data), "--out-dir",
            str(tmp_path / "eval"), "--backend", "hf", "--max-new-tokens", "2", "--limit", "1"]
    assert eval_main(argv) == 0
    before = (tmp_path / "eval" / "results.json").read_bytes()
    saved = tmp_path / "superseded"
    shutil.move(str(step), saved)
    shutil.copytree(saved, step)  # the new save
    assert eval_main(argv) == 2
    assert "an earlier save of the checkpoint" in capsys.readouterr().err
    assert (tmp_path / "eval" / "results.json").read_bytes() == before


def test_a_checkpoint_that_cannot_be_merged_names_the_run(tiny_run, tmp_path, capsys):
    import yaml

    run_dir = tmp_path / "runs" / "gspo-tiny-seed2"
    actor = run_dir / "checkpoints" / "global_step_9" / "actor"
    actor.mkdir(parents=True)
    (actor / "model_world_size_1_rank_0.pt").write_bytes(b"not a tensor file")
    (actor / "fsdp_config.json").write_text("{}")
    (run_dir / "resolved_config.yaml").write_text(yaml.safe_dump({"algorithm_preset": {"name": "gspo"}, "seed": 2}))
    out = tmp_path / "eval"
    assert eval_main(["run", "--model", str(actor.parent), "--benchmarks", "tiny_eval", "--data-dir",
                      str(tiny_run[1]), "--out-dir", str(out), "--backend", "hf"]) == 2
    err = capsys.readouterr().err
    assert "gspo-tiny-seed2 (gspo, seed 2, step 9)" in err and "huggingface/config.json missing" in err
    assert not (out / "results.json").exists()
