"""sspo-train (sspo_verl.train): the Hydra app, `--cfg job`, multirun, dry runs, the hand-off to verl's own entry
point, the CPU backend hook, and a real non-editable install run from another directory (slow).

Nothing here starts Ray or trains: verl's entry point is replaced by a recorder where the hand-off is tested; full
runs are the CPU backend's end-to-end tests (tests/e2e)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from sspo_verl import train
from sspo_verl.config_files import config_dir
from sspo_verl.preflight import PreflightError
from sspo_verl.train import compose
from tests.preflight.configs import stage_training_files

REPO = Path(__file__).resolve().parents[1]
NO_CLUSTER = "preflight.check_cluster=false"  # this machine has no GPU; cluster checks: tests/test_preflight


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    out = tmp_path / "out"
    data = stage_training_files(tmp_path, monkeypatch)  # the configs' parquet files and Hub models
    monkeypatch.delenv("VERL_FILE_LOGGER_PATH", raising=False)
    monkeypatch.delenv("SSPO_VERL_CONFIG_PATH", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return data, out


@pytest.fixture
def verl_entry(monkeypatch):
    """Replace verl.trainer.main_ppo.main (verl's Hydra task) with a recorder: the hand-off without Ray."""
    import verl.trainer.main_ppo as main_ppo

    calls = []
    monkeypatch.setattr(main_ppo, "main", lambda config: calls.append(config))
    return calls


def run_cli(monkeypatch, capsys, *args):
    """`sspo-train <args>` in this process (Hydra app, argv parsing, launcher); returns (exit code, out, err)."""
    monkeypatch.setattr(sys, "argv", ["sspo-train", *args])
    code = 0
    try:
        train.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_resolvers():
    assert OmegaConf.create({"a": "${sspo.div:96,4}"}).a == 24
    with pytest.raises(Exception, match="num_mini_batches"):
        _ = OmegaConf.create({"a": "${sspo.div:10,4}"}).a
    assert OmegaConf.create({"p": "${sspo.abspath:'~/x'}"}).p == os.path.expanduser("~/x")
    assert Path(OmegaConf.create({"p": "${sspo.abspath:rel}"}).p).is_absolute()


def test_cfg_flag_gets_resolve():
    assert train._with_resolve(["--cfg", "job"]) == ["--cfg", "job", "--resolve"]
    assert train._with_resolve(["-c", "job", "--resolve"]) == ["-c", "job", "--resolve"]
    assert train._with_resolve(["algorithm=gspo"]) == ["algorithm=gspo"]


def test_dry_run_resolves_checks_saves_and_starts_nothing(dirs, capsys):
    import ray

    _, out = dirs
    cfg = compose(["algorithm=gspo", "dry_run=true", NO_CLUSTER])
    final = train.run(cfg)
    text = OmegaConf.to_yaml(final)
    assert "${" not in text
    run_dir = out / "sspo" / "gspo-qwen2.5-math-1.5b-seed42"
    saved = OmegaConf.load(run_dir / "resolved_config.yaml")
    assert saved.actor_rollout_ref.actor.policy_loss.loss_mode == "gspo"
    assert saved.actor_rollout_ref.actor.ppo_mini_batch_size == 256
    assert saved.trainer.default_local_dir == str(run_dir / "checkpoints")
    # verl's file logger and its start-up dump of the config (sspo_verl.adapter.config_dump) write into the run
    # dir, in every Ray worker
    env_vars = saved.ray_kwargs.ray_init.runtime_env.env_vars
    assert env_vars.VERL_FILE_LOGGER_PATH == str(run_dir / "metrics.jsonl")
    assert env_vars.SSPO_VERL_CONFIG_PATH == str(run_dir / "verl_config.yaml")
    assert "sspo-train dry run: algorithm=gspo loss_mode=gspo" in capsys.readouterr().out
    assert not ray.is_initialized()


def test_hand_off_to_verls_own_entry_point_with_a_resolved_config(dirs, verl_entry):
    cfg = compose(["algorithm=sspo", NO_CLUSTER])
    assert train.run(cfg) is None
    (handed,) = verl_entry
    assert "${" not in OmegaConf.to_yaml(handed)  # verl's workers never see sspo.* / hydra: interpolations
    actor = handed.actor_rollout_ref.actor
    assert actor.policy_loss.tokenizer_path is None  # the worker segments with the actor's own tokenizer
    assert actor.policy_loss.entropy_source == "old" and not actor.calculate_entropy  # null: off
    assert handed.algorithm.adv_estimator == "sspo"


def test_preflight_error_stops_before_verl(dirs, verl_entry):
    cfg = compose(["algorithm=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=bogus", NO_CLUSTER])
    with pytest.raises(PreflightError, match="'bogus'"):
        train.run(cfg)
    assert verl_entry == []


def test_cpu_device_prepares_the_cpu_backend_before_verl(dirs, verl_entry, monkeypatch):
    import sspo_verl.cpu.launch as launch

    prepared = []
    monkeypatch.setattr(launch, "prepare_driver", lambda: prepared.append(True))
    overrides = ["hardware=cpu", "model=tiny", "rollout=hf", "preflight.check_files=false"]
    train.run(compose([*overrides, "dry_run=true"]))
    assert prepared == []  # a dry run changes nothing in this process
    train.run(compose(overrides))
    assert prepared == [True]
    (handed,) = verl_entry
    ray_init = handed.ray_kwargs.ray_init
    assert ray_init.address == "local" and ray_init.num_gpus == 1
    assert ray_init.runtime_env.env_vars.VERL_PLATFORM == "cpu"
    with pytest.raises(PreflightError, match="use rollout=vllm"):  # a rollout the CPU backend cannot run
        train.run(compose([*overrides, "actor_rollout_ref.rollout.name=sglang"]))
    # a value the CPU backend's sizing cannot read (text where a batch size goes, read through the mini-batch size
    # built from it) is named by the schema check, not a resolver's traceback
    with pytest.raises(PreflightError, match=r"data\.train_batch_size='abc'"):
        train.run(compose([*overrides, "data.train_batch_size=abc", "dry_run=true"]))


def test_cli_cfg_job_prints_the_resolved_config(dirs, monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "algorithm=gspo", "data.train_batch_size=64", "--cfg", "job")
    assert code == 0
    cfg = yaml.safe_load(out)
    assert "${" not in out
    assert cfg["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] == "gspo"
    assert cfg["actor_rollout_ref"]["actor"]["ppo_mini_batch_size"] == 16
    assert cfg["trainer"]["experiment_name"] == "gspo-qwen2.5-math-1.5b-seed42"


LOSS_MODE = {"grpo": "vanilla", "gspo": "gspo", "gspo_wide": "gspo", "sspo": "sspo"}


def _check_sweep(monkeypatch, capsys, out, algorithms, seeds):
    code, stdout, err = run_cli(
        monkeypatch, capsys, "-m", f"algorithm={','.join(algorithms)}", f"seed={','.join(map(str, seeds))}",
        "dry_run=true", NO_CLUSTER,
    )
    assert code == 0, err
    lines = [line for line in stdout.splitlines() if line.startswith("sspo-train dry run:")]
    assert len(lines) == len(algorithms) * len(seeds)
    for algorithm in algorithms:
        loss_mode = LOSS_MODE[algorithm]
        for seed in seeds:
            run_dir = out / "sspo" / f"{algorithm}-qwen2.5-math-1.5b-seed{seed}"
            cfg = OmegaConf.load(run_dir / "resolved_config.yaml")
            assert cfg.actor_rollout_ref.actor.policy_loss.loss_mode == loss_mode
            assert cfg.seed == seed and cfg.data.seed == seed and cfg.actor_rollout_ref.rollout.seed == seed
            assert cfg.trainer.experiment_name == run_dir.name
            assert cfg.trainer.default_local_dir == str(run_dir / "checkpoints")
    assert (out / "sspo" / "multirun.yaml").is_file()


def test_cli_multirun_gives_every_job_its_own_run(dirs, monkeypatch, capsys):
    _check_sweep(monkeypatch, capsys, dirs[1], ["gspo", "sspo"], [1, 2])
    # a second sweep in the same process may revisit the same runs (e.g. to resume them)
    _check_sweep(monkeypatch, capsys, dirs[1], ["sspo"], [1])


@pytest.mark.slow
def test_cli_multirun_the_issues_sweep(dirs, monkeypatch, capsys):
    """`sspo-train -m algorithm=grpo,gspo,sspo seed=1,2,3`: nine runs."""
    _check_sweep(monkeypatch, capsys, dirs[1], ["grpo", "gspo", "sspo"], [1, 2, 3])


def test_cli_multirun_refuses_jobs_that_share_a_run_directory(dirs, monkeypatch, capsys):
    code, _, err = run_cli(
        monkeypatch, capsys, "-m", "actor_rollout_ref.actor.optim.lr=1e-6,2e-6", "dry_run=true", NO_CLUSTER
    )
    assert code == train.EXIT_PREFLIGHT
    assert "share the run directory" in err and "trainer.experiment_name" in err
    assert "Traceback" not in err


def test_cli_preflight_failure_exits_2_with_the_message(dirs, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "data.train_files=/no/such.parquet", "dry_run=true", NO_CLUSTER)
    assert code == train.EXIT_PREFLIGHT
    assert "/no/such.parquet does not exist" in err and "sspo-data prepare-all" in err
    assert "Traceback" not in err


def _files(root: Path) -> dict:
    """{relative path: (bytes, mtime_ns)} of every file under root."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_cli_a_refused_run_leaves_no_directory_and_an_existing_one_as_it_was(dirs, monkeypatch, capsys):
    """Hydra creates the run dir, its launch record and train.log before pre-flight runs; a refusal (pre-flight, or
    a resolver's error) takes them back: a run dir it created is gone, an existing one keeps every byte and time."""
    _, out = dirs
    for bad in ("data.train_files=/no/such.parquet", "data.train_batch_size=6"):  # 6 / 4 mini-batches: sspo.div
        code, _, err = run_cli(monkeypatch, capsys, "algorithm=grpo", bad, NO_CLUSTER)
        assert code != 0 and ("does not exist" in err or "num_mini_batches" in err), err
        assert not out.exists(), sorted(out.rglob("*"))
    code, _, err = run_cli(monkeypatch, capsys, "algorithm=grpo", "dry_run=true", NO_CLUSTER)  # a dry run's record
    assert code == 0, err
    run_dir = out / "sspo" / "grpo-qwen2.5-math-1.5b-seed42"
    assert (run_dir / "train.log").stat().st_size > 0
    before = _files(run_dir)
    code, _, err = run_cli(monkeypatch, capsys, "algorithm=grpo", "data.train_files=/no/such.parquet", NO_CLUSTER)
    assert code == train.EXIT_PREFLIGHT, err
    assert _files(run_dir) == before
    # the same as `python -m sspo_verl.train` (the app runs as __main__; Hydra imports the callback's module anew)
    proc = subprocess.run([sys.executable, "-m", "sspo_verl.train", "algorithm=grpo",
                           "data.train_files=/no/such.parquet", NO_CLUSTER],
                          capture_output=True, text=True, timeout=300, cwd=out.parent)
    assert proc.returncode == train.EXIT_PREFLIGHT, proc.stderr[-2000:]
    assert _files(run_dir) == before
    assert sorted(p.name for p in run_dir.iterdir()) == sorted({Path(p).parts[0] for p in before})


def test_help_is_usage_first_without_third_party_warnings(tmp_path):
    """`sspo-train --help` in a fresh process (verl imported as a user's first command does): the config groups of
    the config directory, examples, dry_run, the README and how to see the full config; no verl import warnings."""
    proc = subprocess.run(
        [sys.executable, "-m", "sspo_verl.train", "--help"], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    groups = sorted(p.name for p in Path(config_dir()).iterdir() if p.is_dir() and not p.name.startswith("_"))
    for group in groups:
        assert f"\n{group}: " in proc.stdout, group
    for text in ("Usage: sspo-train", "dry_run=true", "--cfg job", str(REPO / "README.md")):
        assert text in proc.stdout, text
    assert proc.stdout.count("\n  sspo-train ") >= 3 + 3  # three examples, three ways to see more
    assert "actor_rollout_ref:" not in proc.stdout  # the config only on request
    assert len(proc.stdout.splitlines()) < 50
    assert proc.stderr == "", proc.stderr  # verl's engine-import and platform-probe warnings are silenced


def test_python_dash_m_entry_point(dirs):
    """`python -m sspo_verl.train` in a fresh process (the console script's module)."""
    proc = subprocess.run(
        [sys.executable, "-m", "sspo_verl.train", "algorithm=gspo_wide", "--cfg", "job"],
        capture_output=True, text=True, timeout=300, cwd=dirs[1].parent,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["actor_rollout_ref"]["actor"]["clip_ratio_high"] == 0.28
    assert cfg["algorithm_preset"]["name"] == "gspo_wide"


@pytest.mark.slow
def test_non_editable_install_runs_from_another_directory(tmp_path, package_source):
    """`pip install .` (not editable) into a throwaway target; sspo-train from elsewhere uses the shipped configs."""
    src = package_source
    target, elsewhere = tmp_path / "target", tmp_path / "elsewhere"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-compile", "-q",
         "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    assert (target / "sspo_verl" / "hydra_configs" / "algorithm" / "sspo.yaml").is_file()
    assert not (target / "hydra_configs").exists()
    shutil.rmtree(src)  # the installed copy must not need the source tree

    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "SSPO_OUTPUT_DIR": str(tmp_path / "out")}
    proc = subprocess.run(
        [str(target / "bin" / "sspo-train"), "algorithm=gspo", "dry_run=true", "preflight.check_files=false",
         NO_CLUSTER],
        capture_output=True, text=True, timeout=300, cwd=elsewhere, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sspo-train dry run: algorithm=gspo loss_mode=gspo" in proc.stdout
    run_dir = tmp_path / "out" / "sspo" / "gspo-qwen2.5-math-1.5b-seed42"
    (record,) = (run_dir / ".hydra").iterdir()  # this launch's record, in a directory of its own
    hydra_yaml = OmegaConf.load(record / "hydra.yaml")
    sources = [s["path"] for s in hydra_yaml.hydra.runtime.config_sources if s["provider"] == "main"]
    assert sources == [str(target / "sspo_verl" / "hydra_configs")]
    assert not list(elsewhere.iterdir())  # nothing written into the working directory


def test_cli_refuses_a_rerun_with_a_changed_training_config(dirs, monkeypatch, capsys):
    """A run dir with an earlier attempt (checkpoint + metrics as verl leaves them): a rerun with another lr is
    refused with the diff, exit 2, nothing touched; on_config_change=new_attempt is the explicit way to go on."""
    _, out = dirs
    code, _, err = run_cli(monkeypatch, capsys, "algorithm=grpo", "dry_run=true", NO_CLUSTER)
    assert code == 0, err
    run_dir = out / "sspo" / "grpo-qwen2.5-math-1.5b-seed42"
    (run_dir / "checkpoints" / "global_step_1").mkdir(parents=True)
    (run_dir / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("1")
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n')
    code, _, err = run_cli(monkeypatch, capsys, "algorithm=grpo", "actor_rollout_ref.actor.optim.lr=5e-6",
                           "dry_run=true", NO_CLUSTER)
    assert code == train.EXIT_PREFLIGHT and "Traceback" not in err
    assert "actor_rollout_ref.actor.optim.lr: 1e-06 -> 5e-06" in err and "on_config_change=new_attempt" in err
    assert OmegaConf.load(run_dir / "resolved_config.yaml").actor_rollout_ref.actor.optim.lr == 1e-6
    (first,) = (run_dir / ".hydra").iterdir()  # the first launch's record, as it was; the refused one left none
    assert "actor_rollout_ref.actor.optim.lr=5e-6" not in (first / "overrides.yaml").read_text()
    code, _, err = run_cli(monkeypatch, capsys, "algorithm=grpo", "actor_rollout_ref.actor.optim.lr=5e-6",
                           "on_config_change=new_attempt", "dry_run=true", NO_CLUSTER)
    assert code == 0, err
    assert (run_dir / "checkpoints" / "global_step_1").is_dir()  # a dry run moves nothing


def test_a_rerun_of_a_finished_run_trains_nothing_and_changes_nothing(dirs, verl_entry, caplog):
    """verl 0.9.1 resuming from the last step's checkpoint would train and save one step past the end on every
    rerun; sspo-train hands nothing to verl then. A longer schedule resumes; a new attempt starts over."""
    _, out = dirs
    base = ["algorithm=grpo", "trainer.total_training_steps=3", NO_CLUSTER]
    train.run(compose([*base, "dry_run=true"]))  # the run's record
    run_dir = out / "sspo" / "grpo-qwen2.5-math-1.5b-seed42"
    (run_dir / "checkpoints" / "global_step_3").mkdir(parents=True)
    (run_dir / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("3")
    (run_dir / "metrics.jsonl").write_text('{"step": 3}\n')
    before = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))
    with caplog.at_level("INFO", logger="sspo_verl.train"):
        assert train.run(compose(base)) is None
    assert verl_entry == []
    assert sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")) == before
    assert "is finished: its checkpoint global_step_3 is at trainer.total_training_steps=3" in caplog.text
    train.run(compose(["algorithm=grpo", "trainer.total_training_steps=4", NO_CLUSTER]))  # a longer schedule
    assert len(verl_entry) == 1 and (run_dir / "metrics.1.jsonl").is_file()  # resumed: the log kept as a part
    train.run(compose([*base, "actor_rollout_ref.actor.optim.lr=2e-6", "on_config_change=new_attempt"]))
    assert len(verl_entry) == 2 and not (run_dir / "checkpoints").exists()  # started over, old one moved aside
    assert len(list((run_dir / "superseded").glob("*/checkpoints/global_step_3"))) == 1


def test_a_run_that_ends_early_says_where_a_rerun_resumes(dirs, monkeypatch, caplog):
    """verl's trainer ending by an exception (here Ctrl-C, and SIGTERM's exit): the error goes on up, after one
    line naming the cause and the checkpoint the same command resumes from (the dead-worker case on a real Ray
    worker: tests/test_train_faults_on_cpu.py)."""
    import verl.trainer.main_ppo as main_ppo

    _, out = dirs
    base = ["algorithm=grpo", "trainer.total_training_steps=3", NO_CLUSTER]

    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(main_ppo, "main", interrupted)
    with caplog.at_level("ERROR", logger="sspo_verl.train"), pytest.raises(KeyboardInterrupt):
        train.run(compose(base))
    assert "the run ended early: interrupted; no checkpoint written yet (trainer.save_freq=" in caplog.text
    ckpt = out / "sspo" / "grpo-qwen2.5-math-1.5b-seed42" / "checkpoints"
    (ckpt / "global_step_2").mkdir(parents=True)
    (ckpt / "latest_checkpointed_iteration.txt").write_text("2")
    monkeypatch.setattr(main_ppo, "main", lambda config: train._exit_on_sigterm(15, None))
    with caplog.at_level("ERROR", logger="sspo_verl.train"), pytest.raises(SystemExit):
        train.run(compose(base))
    assert f"stopped by SIGTERM; rerunning the same command resumes from {ckpt / 'global_step_2'}." in caplog.text


def test_a_failed_run_names_the_first_error_a_process_printed_last(dirs, monkeypatch, capsys):
    """verl's error after a rollout engine died is a secondary one (its replay buffer found no trajectories); the
    first error a Ray process printed (ErrorWatch, from Ray's log stream: tests/test_root_cause_on_cpu.py; killed
    for real in tests/e2e) is named as the cause in sspo-train's last line, after Hydra's report of verl's error."""
    import verl.trainer.main_ppo as main_ppo

    from sspo_verl.root_cause import ErrorWatch, ProcessError

    secondary = ("Sync replay buffer selected terminal groups with no materializable trajectories. Enable "
                 "trainer.v1.sampler.sync_refill_failed_groups to replace failed groups.")

    class RayTaskError(RuntimeError):  # as Ray's: a header naming the actor, the raised exception as .cause
        def __init__(self, cause):
            super().__init__("\x1b[36mray::TaskRunnerV1.run()\x1b[39m (pid=1, ip=x)\n  File ...\n" + str(cause))
            self.cause = cause

    def replay_buffer_fails(config):
        raise RayTaskError(RuntimeError(secondary))

    cause = ProcessError("vLLMHttpServer", "4242", "EngineDeadError: EngineCore encountered an issue.", 0.0)
    monkeypatch.setattr(main_ppo, "main", replay_buffer_fails)
    monkeypatch.setattr(ErrorWatch, "first_cause", lambda self, **kw: cause)
    code, out, err = run_cli(monkeypatch, capsys, "algorithm=grpo", NO_CLUSTER)
    assert code == 1 and secondary in err
    last = out.strip().splitlines()[-1]
    assert ("the run ended early: vLLMHttpServer (pid 4242): EngineDeadError: EngineCore encountered an issue. came "
            "first; the error raised after it (RuntimeError: Sync replay buffer") in last, last
    assert "no checkpoint written yet" in last


def test_a_cpu_run_removes_the_shared_memory_it_left_and_nothing_else(dirs, monkeypatch, tmp_path):
    """vLLM's queues and verl's weight bucket stay in /dev/shm when Ray ends the rollout with a signal: sspo-train
    removes them after its Ray is shut down, also when the run fails, but never a segment something still holds."""
    import verl.trainer.main_ppo as main_ppo

    from sspo_verl.cpu import shm

    shm_dir = tmp_path / "shm"
    shm_dir.mkdir()
    monkeypatch.setattr(shm, "SHM_DIR", str(shm_dir))
    monkeypatch.setenv("VERL_PLATFORM", "cpu")
    held = open(shm_dir / "psm_held", "wb")  # a live creator holds its segment open

    def leaves_segments(config):
        (shm_dir / "psm_left").write_bytes(b"q")
        (shm_dir / "verl_weights_left").write_bytes(b"\0" * 64)
        held.write(b"x")
        held.flush()
        raise RuntimeError("the rollout died")

    monkeypatch.setattr(main_ppo, "main", leaves_segments)
    try:
        with pytest.raises(RuntimeError, match="the rollout died"):
            train.run(compose(["algorithm=grpo", NO_CLUSTER]))
        assert sorted(p.name for p in shm_dir.iterdir()) == ["psm_held"]
    finally:
        held.close()
