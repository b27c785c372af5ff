"""sspo_verl.preflight: every check fires on a bad config, with what is wrong and how to fix it, and stays quiet
on a good one. Configs come from the real Hydra composition (sspo_verl.train.compose); the environment, the
GPU count and the Ray cluster are passed in as fakes, so nothing here needs a GPU or a cluster."""

from __future__ import annotations

import copy
import functools
import logging
import time

import pytest

from sspo_verl.preflight import (
    PreflightError,
    count_visible_gpus,
    probe_ray_cluster,
    run_preflight,
)
from sspo_verl.train import compose

ALGORITHMS = ("grpo", "gspo", "gspo_wide", "sspo")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A data_dir holding every file the configs name (existence is all the pre-flight checks)."""
    out = tmp_path / "data"
    out.mkdir()
    for name in ("math_l35", "math500", "aime24", "amc23", "minerva_math", "olympiadbench"):
        (out / f"{name}.parquet").write_bytes(b"PAR1")
    monkeypatch.setenv("SSPO_DATA_DIR", str(out))
    monkeypatch.setenv("SSPO_OUTPUT_DIR", str(tmp_path / "out"))
    return out


class FakeCluster:
    def __init__(self, node_gpus=None, error=None):
        self.node_gpus, self.error, self.calls = node_gpus or [], error, []

    def __call__(self, address, timeout_s):
        self.calls.append((address, timeout_s))
        if self.error:
            raise RuntimeError(self.error)
        return list(self.node_gpus)


GROUPS = ("algorithm", "model", "rollout", "hardware", "experiment")


@functools.lru_cache(maxsize=None)
def _composed(groups: tuple[str, ...]):
    cfg = compose(list(groups))
    cfg.trainer.experiment_name = cfg.trainer.experiment_name  # bake ${hydra:runtime.choices...} in
    return cfg


def config(overrides=()):
    """The config of `sspo-train <overrides>`: group choices composed by Hydra (cached), value overrides applied
    by Hydra's own override code on a copy (composition itself is tested in tests/hydra_configs)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    groups = tuple(o for o in overrides if o.split("=", 1)[0] in GROUPS)
    values = [o for o in overrides if o not in groups]
    cfg = copy.deepcopy(_composed(groups))
    ConfigLoaderImpl._apply_overrides_to_config(OverridesParser.create().parse_overrides(values), cfg)
    return cfg


def check(overrides=(), *, env=None, gpus=8, cluster=None):
    """`sspo-train <overrides>`'s config through the pre-flight, without raising."""
    cfg = config(overrides)
    report = run_preflight(
        cfg, env=env or {}, gpu_counter=lambda _env: gpus, cluster_probe=cluster or FakeCluster(), raise_on_error=False
    )
    return cfg, report


def messages(report, check_name, level=None):
    return [f.message for f in report.findings if f.check == check_name and (level is None or f.level == level)]


# ------------------------------------------------------------------------------------------------ good configs


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_good_configs_pass_without_warnings(data_dir, algorithm):
    for experiment in ([], ["experiment=paper_qwen2.5_math_1.5b"]):
        _, report = check([f"algorithm={algorithm}", *experiment])
        assert report.errors == [] and report.warnings == [], report.findings
        # only the documented fix: SSPO's tokenizer_path defaults to the model
        assert report.checks("fix") <= {"sspo_config"}


def test_run_preflight_raises_with_every_error_and_logs_warnings(data_dir, caplog):
    cfg = config(["algorithm=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=bogus",
                  "algorithm.adv_estimator=nope"])
    with caplog.at_level(logging.WARNING, logger="sspo_verl.preflight"):
        with pytest.raises(PreflightError) as info:
            run_preflight(cfg, env={}, gpu_counter=lambda _e: 8, cluster_probe=FakeCluster())
    text = str(info.value)
    assert "nothing was started" in text and "'bogus'" in text and "'nope'" in text
    assert len(info.value.findings) == 2
    assert "[preset]" in caplog.text  # warnings are logged, not raised


def test_strict_mode_turns_warnings_into_errors(data_dir):
    cfg = config(["num_mini_batches=1", "preflight.strict=true"])
    with pytest.raises(PreflightError, match="FULLY ON-POLICY"):
        run_preflight(cfg, env={}, gpu_counter=lambda _e: 8, cluster_probe=FakeCluster())


# ------------------------------------------------------------------------------------------------------ checks


def test_unknown_loss_mode_and_estimator_list_the_registered_ones(data_dir):
    _, report = check(["algorithm=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=vanila"])
    (msg,) = messages(report, "registry", "error")
    assert "'vanila'" in msg and "vanilla" in msg and "sspo" in msg and "gspo" in msg and "algorithm=" in msg
    _, report = check(["algorithm.adv_estimator=grpo_typo"])
    (msg,) = messages(report, "registry", "error")
    assert "'grpo_typo'" in msg and "grpo" in msg and "sspo" in msg and "rloo" in msg


def test_sspo_loss_without_its_typed_config_is_refused(data_dir):
    _, report = check(["algorithm=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=sspo"])
    (msg,) = messages(report, "sspo_config", "error")
    assert "sspo_verl.SSPOPolicyLossConfig" in msg and "algorithm=sspo" in msg


def test_sspo_tokenizer_path_defaults_to_the_model(data_dir):
    cfg, report = check(["algorithm=sspo", "actor_rollout_ref.model.path=Qwen/Qwen2.5-Math-7B"])
    assert cfg.actor_rollout_ref.actor.policy_loss.tokenizer_path == "Qwen/Qwen2.5-Math-7B"
    assert any("tokenizer_path was unset" in m for m in messages(report, "sspo_config", "fix"))
    cfg, _ = check(["actor_rollout_ref.model.tokenizer_path=org/tok"])
    assert cfg.actor_rollout_ref.actor.policy_loss.tokenizer_path == "org/tok"
    cfg, report = check(["actor_rollout_ref.actor.policy_loss.tokenizer_path=my/tok"])
    assert cfg.actor_rollout_ref.actor.policy_loss.tokenizer_path == "my/tok"
    assert messages(report, "sspo_config") == []


def test_sspo_entropy_clipping_without_entropy_enables_it(data_dir):
    cfg, report = check(["actor_rollout_ref.actor.calculate_entropy=false"])
    assert cfg.actor_rollout_ref.actor.calculate_entropy is True
    (msg,) = [m for m in messages(report, "sspo_config", "fix") if "entropy" in m]
    assert "calculate_entropy=true" in msg and "entropy_clip=false" in msg
    cfg, report = check(
        ["actor_rollout_ref.actor.calculate_entropy=false", "actor_rollout_ref.actor.policy_loss.entropy_clip=false"]
    )
    assert cfg.actor_rollout_ref.actor.calculate_entropy is False
    assert not [m for m in messages(report, "sspo_config") if "entropy" in m]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_fully_on_policy_ratio_loss_warns_loudly(data_dir, algorithm, caplog):
    with caplog.at_level(logging.WARNING, logger="sspo_verl.preflight"):
        _, report = check([f"algorithm={algorithm}", "num_mini_batches=1"])
    (msg,) = messages(report, "on_policy", "warning")
    assert "FULLY ON-POLICY" in msg and "same gradient" in msg and "num_mini_batches=4" in msg
    assert "!" * 100 in caplog.text
    _, report = check([f"algorithm={algorithm}", "actor_rollout_ref.actor.ppo_mini_batch_size=1024"])
    assert messages(report, "on_policy", "warning")
    # More than one epoch, more than one mini-batch, or an asynchronous trainer: ratios move, quiet.
    for quiet in (["num_mini_batches=1", "actor_rollout_ref.actor.ppo_epochs=2"], ["num_mini_batches=2"],
                  ["num_mini_batches=1", "trainer.v1.trainer_mode=colocate_async"]):
        _, report = check([f"algorithm={algorithm}", *quiet])
        assert messages(report, "on_policy") == [], quiet


def test_gspo_with_grpo_scale_clip_warns_unless_the_preset_says_so(data_dir):
    _, report = check(["algorithm=gspo", "actor_rollout_ref.actor.clip_ratio_low=0.2",
                       "actor_rollout_ref.actor.clip_ratio_high=0.28"])
    (msg,) = messages(report, "clip_scale", "warning")
    assert "GRPO-scale" in msg and "algorithm=gspo_wide" in msg and "3e-4 / 4e-4" in msg
    _, report = check(["algorithm=gspo_wide"])
    assert messages(report, "clip_scale") == []
    _, report = check(["algorithm=gspo"])
    assert messages(report, "clip_scale") == []


@pytest.mark.parametrize("algorithm", ["grpo", "sspo"])
def test_token_level_ratio_with_gspo_scale_clip_warns(data_dir, algorithm):
    _, report = check([f"algorithm={algorithm}", "actor_rollout_ref.actor.clip_ratio_low=3e-4",
                       "actor_rollout_ref.actor.clip_ratio_high=4e-4"])
    (msg,) = messages(report, "clip_scale", "warning")
    assert "GSPO-scale" in msg and "0.2 / 0.28" in msg


def test_loss_agg_mode_the_papers_did_not_use_warns(data_dir):
    _, report = check(["algorithm=sspo", "actor_rollout_ref.actor.loss_agg_mode=token-mean"])
    (msg,) = messages(report, "preset", "warning")
    assert "'token-mean'" in msg and "seq-mean-token-mean" in msg and "sspo" in msg
    _, report = check(["algorithm=gspo", "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum"])
    assert messages(report, "preset", "warning")
    # GRPO: token-mean (spec §9) and seq-mean-token-mean (the original GRPO) are both a paper's choice.
    _, report = check(["algorithm=grpo", "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean"])
    assert messages(report, "preset") == []


def test_switching_loss_mode_without_the_preset_warns(data_dir):
    _, report = check(["algorithm=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=gspo"])
    (msg,) = messages(report, "preset", "warning")
    assert "algorithm=grpo is a preset for loss_mode='vanilla'" in msg
    # and the clip range is judged by the loss actually used
    assert messages(report, "clip_scale", "warning")


def test_group_estimator_without_a_group_warns(data_dir):
    _, report = check(["actor_rollout_ref.rollout.n=1"])
    (msg,) = messages(report, "group_size", "warning")
    assert "rollout.n=1" in msg and "2 or more" in msg
    _, report = check(["actor_rollout_ref.rollout.n=2"])
    assert messages(report, "group_size") == []


def test_missing_data_files_are_errors_with_the_command_that_builds_them(data_dir):
    (data_dir / "amc23.parquet").unlink()
    _, report = check(["experiment=paper_qwen2.5_math_1.5b"])
    (msg,) = messages(report, "files", "error")
    assert "data.val_files" in msg and "amc23.parquet" in msg and f"sspo-data prepare-all --out-dir {data_dir}" in msg
    _, report = check(["data.train_files=/no/such/train.parquet"])
    (msg,) = messages(report, "files", "error")
    assert "data.train_files: /no/such/train.parquet does not exist" in msg
    _, report = check(["data.train_files=hdfs://cluster/train.parquet"])
    assert messages(report, "files") == []
    _, report = check(["preflight.check_files=false", "data.train_files=/no/such/train.parquet"])
    assert messages(report, "files") == []


def test_missing_tiny_model_points_at_the_demo_setup(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SSPO_TINY_DIR", str(tmp_path / "nothing_here"))
    _, report = check(["model=tiny"])
    errors = messages(report, "files", "error")
    assert errors and all("python -m sspo_verl.demo --setup-only" in m for m in errors)
    assert not any("sspo-data" in m for m in errors)


def test_missing_model_directory_and_reward_module_are_errors(data_dir, tmp_path):
    _, report = check(["actor_rollout_ref.model.path=/no/such/model"])
    assert any("/no/such/model" in m for m in messages(report, "files", "error"))
    _, report = check([f"actor_rollout_ref.model.path={tmp_path}"])  # an existing local directory
    assert messages(report, "files") == []
    _, report = check(["reward.custom_reward_function.path=pkg://sspo_verl.reward.no_such_module"])
    assert any("cannot be imported" in m for m in messages(report, "files", "error"))
    _, report = check(["reward.custom_reward_function.path=/no/such/reward.py"])
    assert any("no such file" in m for m in messages(report, "files", "error"))


NX8 = ["hardware=gpu_nx8", "trainer.nnodes=2"]


def test_cluster_check_against_slurm(data_dir):
    slurm = {"SLURM_JOB_ID": "1", "SLURM_JOB_NUM_NODES": "2", "SLURM_GPUS_ON_NODE": "8"}
    _, report = check(NX8, env=slurm)
    assert messages(report, "cluster") == []
    _, report = check(NX8, env={**slurm, "SLURM_JOB_NUM_NODES": "1"})
    (msg,) = messages(report, "cluster", "error")
    assert "SLURM_JOB_NUM_NODES=1" in msg and "trainer.nnodes=1" in msg and "--nodes=2" in msg
    _, report = check(NX8, env={**slurm, "SLURM_JOB_NUM_NODES": "4"})
    assert messages(report, "cluster", "warning") and not report.errors
    _, report = check(NX8, env={**slurm, "SLURM_GPUS_ON_NODE": "4"})
    (msg,) = messages(report, "cluster", "error")
    assert "4 GPU(s) per node" in msg and "trainer.n_gpus_per_node=4" in msg
    no_on_node = {k: v for k, v in slurm.items() if k != "SLURM_GPUS_ON_NODE"}
    _, report = check(NX8, env={**no_on_node, "SLURM_GPUS_PER_NODE": "h100:8"})
    assert messages(report, "cluster") == []
    _, report = check(NX8, env={**no_on_node, "SLURM_JOB_GPUS": "0,1,2,3"})
    assert messages(report, "cluster", "error")


def test_cluster_check_against_a_ray_cluster(data_dir):
    env = {"RAY_ADDRESS": "head:6379"}
    cluster = FakeCluster([8.0, 8.0])
    _, report = check(NX8, env=env, cluster=cluster)
    assert messages(report, "cluster") == [] and cluster.calls == [("head:6379", 60.0)]
    for nodes in ([8.0], [8.0, 4.0], [0.0, 8.0]):
        _, report = check(NX8, env=env, cluster=FakeCluster(nodes))
        (msg,) = messages(report, "cluster", "error")
        assert "head:6379" in msg and "ray status" in msg, nodes
    _, report = check(NX8, env=env, cluster=FakeCluster([8.0, 8.0, 8.0]))
    assert messages(report, "cluster", "warning") and not report.errors
    _, report = check(NX8, env=env, cluster=FakeCluster(error="no answer from the Ray cluster"))
    (msg,) = messages(report, "cluster", "error")
    assert "no answer" in msg and "ray start --head" in msg
    # The address may also come from the config; "local" means verl starts its own Ray: not probed.
    cluster = FakeCluster([8.0, 8.0])
    check([*NX8, "+ray_kwargs.ray_init.address=10.0.0.1:6379"], cluster=cluster)
    assert cluster.calls == [("10.0.0.1:6379", 60.0)]


def test_cluster_check_on_this_machine(data_dir):
    _, report = check(NX8)
    (msg,) = messages(report, "cluster", "error")
    assert "no cluster is given" in msg and "RAY_ADDRESS" in msg
    _, report = check([], gpus=4)
    (msg,) = messages(report, "cluster", "error")
    assert "shows 4 GPU(s)" in msg and "trainer.n_gpus_per_node=4" in msg
    _, report = check([], gpus=16)
    assert messages(report, "cluster", "warning") and not report.errors
    _, report = check([], gpus=None)
    (msg,) = messages(report, "cluster", "warning")
    assert "no GPU is visible" in msg and "hardware=cpu" in msg
    _, report = check(["preflight.check_cluster=false"], gpus=4)
    assert messages(report, "cluster") == []


def test_cluster_check_skips_the_cpu_backend(data_dir):
    _, report = check(["hardware=cpu", "model=tiny", "rollout=hf", "preflight.check_files=false"], gpus=0,
                      env={"SLURM_JOB_ID": "1", "SLURM_JOB_NUM_NODES": "3"})
    assert messages(report, "cluster") == []


def test_count_visible_gpus_reads_cuda_visible_devices():
    assert count_visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1,2"}) == 3
    assert count_visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert count_visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == 0


def test_ray_probe_is_bounded_and_never_connects_this_process():
    import ray

    start = time.monotonic()
    with pytest.raises(RuntimeError, match="127.0.0.1:9"):
        probe_ray_cluster("127.0.0.1:9", timeout_s=5)
    assert time.monotonic() - start < 15
    assert not ray.is_initialized()


def test_verl_validate_config_runs_as_part_of_preflight(data_dir):
    _, report = check(["actor_rollout_ref.actor.use_dynamic_bsz=false",
                       "actor_rollout_ref.actor.ppo_mini_batch_size=2048",
                       "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
                       "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4"])
    (msg,) = messages(report, "verl", "error")
    assert "validate_config" in msg and "train_batch_size (1024) must be >= actor.ppo_mini_batch_size (2048)" in msg
    # SSPOPolicyLossConfig's own validation surfaces through verl's instantiation of the actor config.
    _, report = check(["actor_rollout_ref.actor.policy_loss.granularity=word"])
    (msg,) = messages(report, "verl", "error")
    assert "granularity='word'" in msg and "subsentence" in msg
