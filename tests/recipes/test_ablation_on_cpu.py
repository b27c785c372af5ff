"""recipes/slurm/ablation.sh under a stand-in sbatch: the grid, the manifest, resubmission, refusals, the
evaluation jobs and the real pre-flight of every run (a real job array runs in test_ablation_slurm_on_cpu.py, a
real sweep with its evaluation in test_ablation_eval_slurm_on_cpu.py)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from tests.recipes.stub_cluster import ABLATION_SH, TRAIN_SBATCH, StubCluster

SSPO_EVAL = str(Path(sys.executable).parent / "sspo-eval")


def _manifest(cluster: StubCluster, sweep: str = "ablation") -> list[dict[str, str]]:
    path = cluster.runs_root / sweep / "manifest.tsv"
    lines = path.read_text().splitlines()
    header = lines[0].lstrip("# ").split("\t")
    return [dict(zip(header, row)) for row in csv.reader(lines[1:], delimiter="\t")]


def _submit(cluster: StubCluster, *args: str, **env: str):
    """ablation.sh without its pre-flight (CHECK=0) unless a test asks for it: the stand-in sspo-train cannot."""
    return cluster.run(*args, script=ABLATION_SH, **{"CHECK": "0", **env})


def test_algorithm_x_seed_x_knob_is_one_array_with_one_run_dir_each(tmp_path):
    cluster = StubCluster(tmp_path, 2)
    result = _submit(
        cluster, "data.train_batch_size=64",
        ALGOS="grpo gspo sspo", SEEDS="1 2", GRID="actor_rollout_ref.actor.clip_ratio_high=0.28,0.4",
        NODES="2", MAX_PARALLEL="4", SBATCH_ARGS="--partition=gpu --time=24:00:00",
    )
    assert result.returncode == 0, result.stderr

    rows = _manifest(cluster)
    assert len(rows) == 3 * 2 * 2
    assert [r["index"] for r in rows] == [str(i) for i in range(12)]
    combos = {(r["algo"], r["seed"], r["overrides"]) for r in rows}
    assert combos == {
        (a, s, f"actor_rollout_ref.actor.clip_ratio_high={c}")
        for a in ("grpo", "gspo", "sspo") for s in ("1", "2") for c in ("0.28", "0.4")
    }
    assert len({r["run_dir"] for r in rows}) == 12
    assert rows[0]["run_name"] == "ablation-grpo-seed1-clip_ratio_high0.28"
    assert all(r["run_dir"] == f"{cluster.runs_root}/ablation/{r['run_name']}" for r in rows)

    (sbatch,) = cluster.calls("sbatch")
    manifest = f"{cluster.runs_root}/ablation/manifest.tsv"
    assert sbatch.args == (
        "--parsable", "--array=0-11%4", "--job-name=ablation", "--nodes=2",
        f"--output={cluster.runs_root}/ablation/slurm-%A_%a.out", f"--export=ALL,SSPO_MANIFEST={manifest}",
        "--partition=gpu", "--time=24:00:00", str(TRAIN_SBATCH), "data.train_batch_size=64",
    )
    # The summary names the job and every run, on stdout and in the sweep's submissions.log.
    assert "job array 4242, 12 run(s) on 2 node(s) each, at most 4 at once" in result.stdout
    assert "ablation-sspo-seed2-clip_ratio_high0.4" in result.stdout
    log = (cluster.runs_root / "ablation" / "submissions.log").read_text()
    assert "job array 4242" in log and log.count("ablation-") >= 12


def test_resubmitting_the_same_sweep_is_allowed_a_different_grid_is_not(tmp_path):
    cluster = StubCluster(tmp_path, 1)
    assert _submit(cluster, ALGOS="grpo", SEEDS="1").returncode == 0
    assert _submit(cluster, ALGOS="grpo", SEEDS="1").returncode == 0
    result = _submit(cluster, ALGOS="grpo", SEEDS="1 2")
    assert result.returncode != 0
    assert "exists with a different grid" in result.stderr
    assert len(cluster.calls("sbatch")) == 2


def test_dry_run_submits_nothing(tmp_path):
    cluster = StubCluster(tmp_path, 1)
    result = _submit(cluster, DRY_RUN="1", ALGOS="sspo", SEEDS="7")
    assert result.returncode == 0, result.stderr
    assert not cluster.calls("sbatch")
    assert "dry run, not submitted" in result.stdout
    assert _manifest(cluster)[0]["run_name"] == "ablation-sspo-seed7"


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"ALGOS": "grpo ppo"}, (), "ALGOS: ppo is not one of"),
        ({"SEEDS": "1 x"}, (), "SEEDS: x is not an integer"),
        ({"SEEDS": " "}, (), "SEEDS is empty"),
        ({"GRID": "lr"}, (), "GRID entry 'lr': expected key=value1,value2"),
        ({"GRID": "seed=1,2"}, (), "GRID key seed is set by the launcher"),
        ({"GRID": "a.b=1,2"}, ("a.b=3",), "override a.b=3 replaces the GRID axis a.b"),
        ({"GRID": "x.path=a/b,a_b"}, (), "share the run name"),
        ({"SWEEP_NAME": "my sweep"}, (), "SWEEP_NAME=my sweep"),
        ({"NODES": "0"}, (), "NODES=0"),
        ({"STUB_SBATCH_RC": "1"}, (), "sbatch failed"),
    ],
)
def test_bad_input_is_refused_with_a_reason(tmp_path, env, args, message):
    cluster = StubCluster(tmp_path, 1)
    result = _submit(cluster, *args, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_eval_follows_each_task_after_it_succeeded_and_a_table_job_follows_all(tmp_path):
    cluster = StubCluster(tmp_path, 1)
    result = _submit(cluster, ALGOS="grpo sspo", SEEDS="1", SWEEP_NAME="ev",
                     EVAL="--data-dir /data --benchmarks math500 --step last --baseline grpo",
                     EVAL_SBATCH_ARGS="--gpus-per-node=1 --time=1:00:00")
    assert result.returncode == 0, result.stderr
    array, *evals, table = cluster.calls("sbatch")
    sweep = f"{cluster.runs_root}/ev"
    command = f"sspo-eval sweep {sweep} --data-dir /data --benchmarks math500 --step last --baseline grpo"
    for i, call in enumerate(evals):
        assert call.args == (
            "--parsable", "--job-name=ev-eval", f"--dependency=afterok:4242_{i}", "--kill-on-invalid-dep=yes",
            f"--output={sweep}/slurm-eval-%j.out", "--gpus-per-node=1", "--time=1:00:00",
            f"--wrap={command} --index {i} ")
    assert len(evals) == 2
    assert table.args == ("--parsable", "--job-name=ev-table", "--dependency=afterany:4242:4242:4242",
                          f"--output={sweep}/slurm-table-%j.out", f"--wrap={command} --table-only ")
    assert "after the jobs end (evaluates only what is missing" in result.stdout and command in result.stdout


def test_dry_run_prints_what_to_run_after_the_jobs(tmp_path):
    cluster = StubCluster(tmp_path, 1)
    result = _submit(cluster, DRY_RUN="1", ALGOS="gspo sspo", SEEDS="1")
    assert result.returncode == 0, result.stderr
    assert not cluster.calls("sbatch")
    assert (f"sspo-eval sweep {cluster.runs_root}/ablation --data-dir \\<data\\ dir\\> --benchmarks "
            "aime24\\,amc23\\,math500\\,minerva_math\\,olympiadbench --baseline gspo") in result.stdout


@pytest.mark.parametrize(
    ("env", "messages"),
    [
        # ablation.sh's own old header example (the preset is qwen2.5-math-1.5b), and an EVAL without its data
        ({"MODEL": "qwen2.5_math_1.5b", "EVAL": "--data-dir /nowhere --benchmarks math500"},
         ["Could not find 'model/qwen2.5_math_1.5b' Available options in 'model'",
          "EVAL: --data-dir /nowhere has no math500.parquet"]),
        ({"GRID": "actor_rollout_ref.actor.clip_ratio_hgh=0.3,0.4", "EVAL": "--data-dir /x --benchmarks math5000"},
         ["Could not override 'actor_rollout_ref.actor.clip_ratio_hgh'", "unknown benchmarks ['math5000']"]),
    ],
)
def test_pre_flight_of_every_run_refuses_before_anything_is_written(tmp_path, env, messages):
    cluster = StubCluster(tmp_path, 1)
    result = _submit(cluster, ALGOS="sspo", SEEDS="1", CHECK="1", SSPO_EVAL=SSPO_EVAL, DRY_RUN="1",
                     HARDWARE="cpu", **env)
    assert result.returncode != 0
    assert "nothing submitted" in result.stderr and "[runs: ablation-sspo-seed1" in result.stderr, result.stderr
    for message in messages:
        assert message in result.stderr, result.stderr
    assert not cluster.runs_root.exists() and not cluster.calls("sbatch")


def test_local_scheduler_trains_each_run_here_in_sequence_then_tabulates(tmp_path):
    cluster = StubCluster(tmp_path, 1)
    data = tmp_path / "data"
    data.mkdir()
    (data / "math500.parquet").write_bytes(b"")  # nothing is evaluated: the stand-in trainer saves no checkpoint
    result = _submit(cluster, "rollout=hf", SCHEDULER="local", ALGOS="grpo sspo", SEEDS="1", HARDWARE="cpu",
                     MODEL="tiny", SSPO_EVAL=SSPO_EVAL, STUB_TRAIN_RC="3",
                     EVAL=f"--data-dir {data} --benchmarks math500 --baseline grpo")
    assert result.returncode == 0, result.stderr
    assert not cluster.calls("sbatch")
    sweep = cluster.runs_root / "ablation"
    trains = cluster.calls("sspo-train")
    assert [c.args[:3] for c in trains] == [("algorithm=grpo", "hardware=cpu", "seed=1"),
                                             ("algorithm=sspo", "hardware=cpu", "seed=1")]
    assert trains[1].args[3:] == ("model=tiny", "trainer.nnodes=1", "trainer.resume_mode=auto",
                                  "trainer.experiment_name=ablation-sspo-seed1",
                                  f"trainer.default_local_dir={sweep}/ablation-sspo-seed1/checkpoints",
                                  f"hydra.run.dir={sweep}/ablation-sspo-seed1", "rollout=hf")
    launcher = (sweep / "ablation-grpo-seed1" / "logs" / "launcher.log").read_text()
    assert "===== attempt local on" in launcher and "exit 3 (run dir" in launcher
    # the table comes out with both runs named as failed, from the launcher logs local mode wrote
    assert "| grpo | — | 0/1 evaluated; FAILED: ablation-grpo-seed1 |" in result.stdout, result.stdout
    assert "ablation-sspo-seed1 (-): failed — training exited with status 3" in result.stdout
