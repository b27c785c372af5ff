"""The real verl trainer end to end on CPU: ``sspo-train hardware=cpu model=tiny rollout=<vllm|hf> algorithm=<a>``.

Each run is a subprocess bounded by ``sspo_verl.demo.job.run_job`` (start-up and per-step timeouts that end the
whole process group with a message saying what to check), so a hang fails the test instead of stalling CI. Runs
are small (4 prompts x 4 responses of up to 16 tokens) and combined where one run can show several things; most
of each run's time is Ray, worker and engine start-up (vLLM's ~1 minute more than hf's).

    vLLM  SSPO, 1 rank, 2 steps, validation (greedy) and a checkpoint at step 2 → resume: only step 3 runs;
          the rollout's log-probs follow the actor's weights at every step (weight sync after every update)
    vLLM  SSPO, 2 FSDP ranks (data parallel 2, one vLLM replica each), 2 steps
    vLLM  a rollout model that cannot load the actor's weights: the run fails in the first sync with the engine's
          error, at once (verl alone waits forever there)
    hf    GRPO, 1 rank, 2 steps, reference model + KL loss, validation (greedy) at step 2

The weight-sync bound was calibrated by running the first case with the sync disabled inside the vLLM worker
(receive, then not load): from step 2 on, ``training/rollout_probs_diff_max`` was 3.7e-3-4.6e-3 and
``rollout_corr/k3_kl`` 0.03-0.05 (the rollout stayed on the step-1 weights while the actor moved by
``actor/ppo_kl`` 5e-3-1e-2); with the sync, 7e-5-9e-5 and 8e-5 at every step.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import time
import uuid

import psutil
import pytest
import yaml

from sspo_verl.demo.job import JobResult, run_job
from sspo_verl.data.tiny_task import write_dataset
from sspo_verl.rundir import RECORD, VERL_CONFIG, flatten

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

STARTUP_TIMEOUT_S = 600  # Ray + workers + model (+ vLLM engine) on a loaded 2-core machine: 80-200 s measured
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
    "actor/sspo/entropy_mean",
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


RUN_TAG = "SSPO_E2E_RUN_TAG"  # in every process of a run (Ray's workers and vLLM's engine inherit the driver's env)
DIED_WITHIN_S = 60  # kill -9 of vLLM's EngineCore → sspo-train's exit [ours: 9 s measured before the watch]


def _tagged(tag: str) -> list:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(RUN_TAG) == tag:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


# The weight-sync bounds (see the module docstring for the calibration).
SYNCED_PROBS_DIFF_MAX = 1e-3
SYNCED_K3_KL = 1e-3
MOVED_PPO_KL = 1e-3


def _run(tiny_dir, out_root, name, algorithm, rollout, *extra, on_step=None, tag="") -> JobResult:
    overrides = [
        "hardware=cpu",
        "model=tiny",
        f"rollout={rollout}",
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
        env={"SSPO_TINY_DIR": tiny_dir, RUN_TAG: tag},
        startup_timeout_s=STARTUP_TIMEOUT_S,
        step_timeout_s=STEP_TIMEOUT_S,
        on_step=on_step,
        poll_s=0.2,
    )
    return result


def _train(tiny_dir, out_root, name, algorithm, rollout, *extra) -> JobResult:
    result = _run(tiny_dir, out_root, name, algorithm, rollout, *extra)
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


def _assert_rollout_follows_the_actor(result: JobResult) -> None:
    """After every update the rollout samples with the new weights: its log-probs match the actor's recomputation."""
    for record in result.records:
        data = record["data"]
        assert data["training/rollout_probs_diff_max"] < SYNCED_PROBS_DIFF_MAX, (record["step"], data)
        assert data["rollout_corr/k3_kl"] < SYNCED_K3_KL, (record["step"], data)


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def test_sspo_on_vllm_validates_checkpoints_resumes_and_syncs_weights(tiny_dir, out_root):
    first = _train(tiny_dir, out_root, "sspo", "sspo", "vllm", "trainer.total_training_steps=2", "trainer.save_freq=2",
                   "trainer.test_freq=2")
    assert _steps(first) == [1, 2]
    _assert_finite(first, COMMON_METRICS + SSPO_METRICS)
    _assert_rollout_follows_the_actor(first)
    # the updates moved the policy by far more than the rollout lags behind it: a stale rollout would show.
    # verl's actor/ppo_kl is the signed mean of log π_old − log π_θ (it came out −2.7e-3 at step 1 in one run)
    moved = [abs(r["data"]["actor/ppo_kl"]) for r in first.records]
    assert max(moved) > MOVED_PPO_KL, moved
    # validation at the last step: greedy generation through vLLM, scored by the task's reward
    val = {k: v for k, v in first.records[-1]["data"].items() if k.startswith("val-core/")}
    assert val and all(0.0 <= v <= 2.0 for v in val.values()), val
    log = _read(first.console_log)
    assert "CPUvLLMHttpServer" in log and "sspo_hf_server" not in log  # verl's vLLM server did the rollouts
    ckpt = os.path.join(first.run_dir, "checkpoints")
    assert _read(os.path.join(ckpt, "latest_checkpointed_iteration.txt")).strip() == "2"
    assert os.path.isdir(os.path.join(ckpt, "global_step_2", "actor"))

    # resume, then kill -9 vLLM's EngineCore once step 3 is logged: the run fails by itself, its last line naming the
    # engine's error in the process that printed it first (not verl's replay buffer after it) and the checkpoint
    tag, killed = uuid.uuid4().hex, {}

    def kill_engine_core(record):
        if killed:
            return
        cores = [p for p in _tagged(tag) if "EngineCore" in " ".join(p.cmdline())]
        assert cores, "no vLLM EngineCore process of this run"
        killed["pid"], killed["at"] = cores[0].pid, time.monotonic()
        os.kill(cores[0].pid, signal.SIGKILL)

    resumed = _run(tiny_dir, out_root, "sspo", "sspo", "vllm", "trainer.total_training_steps=5",
                   "trainer.resume_mode=auto", on_step=kill_engine_core, tag=tag)
    exit_s = time.monotonic() - killed["at"]
    assert resumed.returncode not in (None, 0), resumed.error  # failed by itself, before any bound
    assert exit_s < DIED_WITHIN_S, exit_s
    assert _steps(resumed)[0] == 3 and len(_steps(resumed)) <= 2  # steps 1-2 come from the checkpoint, not rerun
    _assert_finite(resumed, COMMON_METRICS + SSPO_METRICS)
    _assert_rollout_follows_the_actor(resumed)  # the resumed weights reached the fresh engine
    log = _read(resumed.console_log)
    assert "global_step_2" in log  # verl says which checkpoint it loaded
    last = [line for line in log.splitlines() if line.strip()][-1]
    assert "the run ended early: " in last and "EngineDeadError" in last, log[-4000:]
    assert last.index("EngineDeadError") < last.find("sync_refill_failed_groups") or "sync_refill" not in last, last
    assert last.endswith(f"rerunning the same command resumes from {os.path.join(ckpt, 'global_step_2')}."), last
    print(f"\nkill -9 of EngineCore pid {killed['pid']} after step {_steps(resumed)[-1]}: sspo-train exited "
          f"{exit_s:.1f} s later; its last line: {last}")


def test_sspo_on_vllm_with_two_fsdp_ranks(tiny_dir, out_root):
    # token-mean: verl's own actor/entropy (the old-log-prob pass's entropy, aggregated over the whole batch) is
    # then μ, the rollout batch's mean that every micro-batch of both ranks received, up to verl computing its
    # metric in the bf16 of that pass (FSDP's default param_dtype) where μ accumulates the same values in float64
    result = _train(tiny_dir, out_root, "sspo_dp2", "sspo", "vllm", "trainer.total_training_steps=2",
                    "trainer.n_gpus_per_node=2", "actor_rollout_ref.actor.loss_agg_mode=token-mean")
    assert _steps(result) == [1, 2]
    _assert_finite(result, COMMON_METRICS + SSPO_METRICS)
    for record in result.records:
        data = record["data"]
        assert data["actor/sspo/entropy_mean"] == pytest.approx(data["actor/entropy"], rel=2**-7)  # one bf16 ulp
        assert "actor/entropy_loss" not in data  # calculate_entropy stays off: no entropy in the update
    _assert_rollout_follows_the_actor(result)
    servers = set(re.findall(r"CPUvLLMHttpServer pid=(\d+)", _read(result.console_log)))
    assert len(servers) == 2, servers  # one vLLM replica (server actor) per trainer rank: two ran


def test_an_engine_error_in_the_first_weight_sync_fails_the_run_at_once(tiny_dir, out_root):
    """The rollout model (vLLM built with another MLP width) cannot take the actor's tensors: vLLM's worker fails
    in the first sync. Without the watch (sspo_verl/cpu/vllm_weight_sync.py) the trainer waited until it was ended
    here, STARTUP_TIMEOUT_S later; with it, sspo-train exits by itself with the engine's error."""
    result = _run(tiny_dir, out_root, "bad_sync", "sspo", "vllm", "trainer.total_training_steps=1",
                  "+actor_rollout_ref.rollout.engine_kwargs.vllm.hf_overrides={intermediate_size:256}")
    assert result.returncode not in (None, 0), result.error  # exited by itself, before any bound
    assert not result.records
    log = _read(result.console_log)
    assert "WeightSyncError: vLLM weight sync: the rollout engine failed" in log
    assert "the rollout model could not load a bucket" in log and "exceeds dimension size" in log


def test_grpo_on_hf_with_reference_model_kl_and_validation(tiny_dir, out_root):
    result = _train(tiny_dir, out_root, "grpo_hf", "grpo", "hf", "trainer.total_training_steps=2",
                    "trainer.test_freq=2", "actor_rollout_ref.actor.use_kl_loss=true",
                    "actor_rollout_ref.actor.kl_loss_coef=0.01")
    assert _steps(result) == [1, 2]
    _assert_finite(result, COMMON_METRICS + ("actor/kl_loss", "timing_s/ref"))
    val = {k: v for k, v in result.records[-1]["data"].items() if k.startswith("val-core/")}
    assert val and all(0.0 <= v <= 2.0 for v in val.values()), val
    log = _read(result.console_log)
    assert "sspo_hf_server_0" in log
    # verl's start-up dump of the resolved config (976 of a 2-step CPU run's 1,074 lines before) is in the run dir, named by
    # one line; the driver's output has none of it (pprint's first key)
    path = os.path.join(result.run_dir, VERL_CONFIG)
    assert log.count(f"sspo-verl: verl's resolved config (its start-up dump) is in {path}\n") == 1, log[-4000:]
    assert "'actor_rollout_ref':" not in log
    ran, record = (flatten(yaml.safe_load(_read(p))) for p in (path, os.path.join(result.run_dir, RECORD)))
    assert ran["actor_rollout_ref.actor.policy_loss.loss_mode"] == "vanilla"  # algorithm=grpo
    assert ran["actor_rollout_ref.actor.use_kl_loss"] is True and ran["actor_rollout_ref.actor.kl_loss_coef"] == 0.01
    # what sspo-train handed to verl (pre-flight's fills included), with the one key verl's TaskRunner sets itself
    assert {k: (record.get(k), ran.get(k)) for k in set(record) | set(ran) if record.get(k) != ran.get(k)} == {
        "transfer_queue.enable": (False, True)}
