"""sspo_verl.preflight.runner: good configs pass quietly; errors are raised together, warnings logged, strict mode blocks on warnings."""

from __future__ import annotations

import logging

import pytest

from sspo_verl.preflight import PreflightError, run_preflight
from tests.preflight.configs import ALGORITHMS, FakeCluster, check, config


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_good_configs_pass_without_warnings(data_dir, algorithm):
    for experiment in ([], ["experiment=paper_qwen2.5_math_1.5b"]):
        _, report = check([f"algorithm={algorithm}", *experiment])
        assert report.errors == [] and report.warnings == [], report.findings
        assert report.fixes == [], report.fixes  # the presets need no fix


def test_run_preflight_raises_with_every_error_and_logs_warnings(data_dir, caplog):
    cfg = config(["algorithm=grpo", "actor_rollout_ref.actor.policy_loss.loss_mode=bogus",
                  "algorithm.adv_estimator=nope"])
    with caplog.at_level(logging.WARNING, logger="sspo_verl.preflight"):
        with pytest.raises(PreflightError) as info:
            run_preflight(cfg, env={}, gpu_counter=lambda _e, _t: 8, cluster_probe=FakeCluster())
    text = str(info.value)
    assert "nothing was started" in text and "'bogus'" in text and "'nope'" in text
    assert len(info.value.findings) == 2
    assert "[preset]" in caplog.text  # warnings are logged, not raised


def test_strict_mode_turns_warnings_into_errors(data_dir):
    cfg = config(["num_mini_batches=1", "preflight.strict=true"])
    with pytest.raises(PreflightError, match="FULLY ON-POLICY"):
        run_preflight(cfg, env={}, gpu_counter=lambda _e, _t: 8, cluster_probe=FakeCluster())
