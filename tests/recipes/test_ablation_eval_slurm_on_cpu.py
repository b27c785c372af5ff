"""One ablation, one result, on the real 2-node Slurm cluster (slurm_cluster.py): ``ablation.sh`` with ``EVAL``
pre-flights 2 algorithms x 2 seeds of the tiny model, trains each for one step as a job array task (a real Ray
cluster and the real verl trainer on CPU, one checkpoint), evaluates each run's checkpoint on the tiny task's
held-out split ``tiny_eval`` in a job that waits for its task (afterok), and writes the table once all ended.
One run is made to fail (its run directory cannot be created: train.sbatch stops at once, before Ray, which
keeps this test short): it is not evaluated, its evaluation job is cancelled, and the table names it as failed in
its algorithm's row."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.recipes.slurm_jobs import TINY_RUN, assert_torn_down, job_env
from tests.recipes.stub_cluster import ABLATION_SH

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_sweep_trains_evaluates_and_tabulates_with_a_failed_run_named(slurm_cluster, slurm_tiny_dir):
    cluster = slurm_cluster
    sweep = cluster.base / "runs" / "ev"
    failing = sweep / "ev-sspo-seed2"
    failing.mkdir(parents=True)
    (failing / "checkpoints").write_text("a file where the run's checkpoint directory goes\n")
    eval_args = (f"--data-dir {slurm_tiny_dir}/data --benchmarks tiny_eval --limit 8 --max-new-tokens 16 "
                 "--backend hf --baseline grpo")
    env = job_env(cluster, ALGOS="grpo sspo", SEEDS="1 2", NODES="1", SWEEP_NAME="ev", MODEL="tiny",
                  SBATCH_ARGS="--gpus-per-node=1 --cpus-per-task=16", EVAL=eval_args)
    start = time.monotonic()
    submitted = cluster.cmd("bash", str(ABLATION_SH), *TINY_RUN[1:], "trainer.total_training_steps=1",
                            "trainer.save_freq=1", env=env, cwd=cluster.base, timeout=300)
    array = re.search(r"job array (\d+)", submitted.stdout).group(1)
    table_job = re.search(r"table job (\d+)", submitted.stdout).group(1)
    evals = re.findall(r"^\s+(\d+)\s+ev-\S+\s+\S+\s+\d+\s+(\d+)", submitted.stdout, re.M)
    assert [task for task, _ in evals] == ["0", "1", "2", "3"], submitted.stdout

    table_info = cluster.wait_job(table_job, 800)
    elapsed = time.monotonic() - start
    tasks = {t["ArrayTaskId"]: t["JobState"] for t in cluster.jobs(array)}
    outputs = {i: (sweep / f"slurm-{array}_{i}.out").read_text()[-2000:] for i in tasks}
    assert tasks == {"0": "COMPLETED", "1": "COMPLETED", "2": "COMPLETED", "3": "FAILED"}, outputs
    eval_states = {task: cluster.job(job)["JobState"] for task, job in evals}
    assert eval_states == {"0": "COMPLETED", "1": "COMPLETED", "2": "COMPLETED", "3": "CANCELLED"}, eval_states
    assert table_info["JobState"] == "COMPLETED", (sweep / f"slurm-table-{table_job}.out").read_text()
    assert f"ERROR: cannot create {failing}" in outputs["3"]

    (table,) = (sweep / "eval").glob("eval-*/table.md")
    text = table.read_text()
    summary = json.loads((table.parent / "summary.json").read_text())
    grpo, sspo = summary["groups"]
    assert (grpo["label"], grpo["evaluated"], grpo["cells"]["tiny_eval"]["n"]) == ("grpo @ step 1", 2, 2)
    assert grpo["cells"]["tiny_eval"]["half_width"] is not None  # two seeds: an interval
    assert (sspo["label"], sspo["evaluated"], sspo["runs"], sspo["cells"]["tiny_eval"]["n"]) == (
        "sspo @ step 1", 1, 2, 1)
    assert "FAILED: ev-sspo-seed2" in text and f"ev-sspo-seed2 (-): failed — cannot create {failing}" in text
    assert re.search(r"\| grpo @ step 1 \| \d+\.\d\d ± \d+\.\d\d \(n=2\) \| 2/2 evaluated \|", text), text
    assert "| sspo @ step 1 | grpo @ step 1 | tiny_eval | " in text and "(n=1: not enough seeds)" in text
    assert "Checkpoint: each run's last checkpoint (--step last)" in text and "limit: 8" in text
    for run in summary["runs"][:3]:
        results = json.loads((sweep / run["name"] / "eval" / summary["spec"]["key"] / "global_step_1" /
                              "results.json").read_text())
        assert results["limit"] == 8 and results["benchmarks"]["tiny_eval"]["n_problems"] == 8
        assert (results["run"]["name"], results["run"]["seed"], results["run"]["step"]) == (
            run["name"], run["seed"], 1)

    # Run again (as the dry run says to after the jobs): nothing is evaluated again, the same table comes out
    first = sweep / "ev-grpo-seed1" / "eval" / summary["spec"]["key"] / "global_step_1" / "results.json"
    stamp = first.stat().st_mtime_ns
    again = cluster.cmd(f"{job_env(cluster)['PATH'].split(':')[0]}/sspo-eval", "sweep", str(sweep),
                        *eval_args.split(), env=env, timeout=120)
    assert "evaluating" not in again.stdout and first.stat().st_mtime_ns == stamp
    assert table.read_text() == text
    assert_torn_down(cluster)
    print(f"sweep of 4 runs (1 failing) + 3 evaluations + table: {elapsed:.0f} s from submission to the table")
