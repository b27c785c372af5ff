"""sspo_verl.preflight.files: missing data, model and reward files are errors naming the key and the command that builds them."""

from __future__ import annotations

from tests.preflight.configs import check, messages


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
