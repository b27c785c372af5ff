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
    model = tmp_path / "model"
    model.mkdir()
    _, report = check([f"actor_rollout_ref.model.path={model}"])  # an empty directory: nothing verl loads
    (msg,) = messages(report, "files", "error")  # model.path (SSPO's tokenizer_path is no longer filled from it)
    assert "config.json" in msg
    (model / "config.json").write_text("{}")
    (model / "tokenizer_config.json").write_text("{}")
    _, report = check([f"actor_rollout_ref.model.path={model}"])  # a model directory
    assert messages(report, "files") == []
    _, report = check(["reward.custom_reward_function.path=pkg://sspo_verl.reward.no_such_module"])
    assert any("cannot be imported" in m for m in messages(report, "files", "error"))
    _, report = check(["reward.custom_reward_function.path=/no/such/reward.py"])
    assert any("no such file" in m for m in messages(report, "files", "error"))


def test_a_data_file_that_is_not_parquet_is_refused_naming_the_key(data_dir):
    (data_dir / "math_l35.parquet").write_text('{"prompt": "jsonl, not parquet"}\n')
    _, report = check([])
    (msg,) = messages(report, "files", "error")
    assert "data.train_files" in msg and "not a readable parquet file" in msg and "sspo-data prepare" in msg


def test_a_parquet_file_without_verls_columns_is_refused(data_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"question": ["1+1?"], "answer": ["2"]}), data_dir / "math500.parquet")
    _, report = check([])
    (msg,) = messages(report, "files", "error")
    assert "data.val_files" in msg and "'prompt'" in msg and "reward_model" in msg and "data.prompt_key" in msg
    _, report = check(["data.prompt_key=question"])  # the prompt column named: the other two still missing
    (msg,) = [m for m in messages(report, "files", "error") if m.startswith("data.val_files")]
    assert "lacks the column(s) ['data_source', 'reward_model']" in msg


def test_a_hub_id_missing_from_the_local_cache_is_refused_with_how_to_download_it(data_dir):
    _, report = check(["actor_rollout_ref.model.path=Qwen/NotCached-1B"])
    errors = messages(report, "files", "error")
    assert errors and all("Qwen/NotCached-1B" in m for m in errors)
    assert "actor_rollout_ref.model.path=Qwen/NotCached-1B" in errors[0]
    assert "huggingface-cli download Qwen/NotCached-1B" in errors[0] and "preflight.allow_hub_download" in errors[0]
    _, report = check(["actor_rollout_ref.model.path=Qwen/NotCached-1B", "preflight.allow_hub_download=true"])
    assert messages(report, "files") == []
    _, report = check(["actor_rollout_ref.model.path=Qwen/Qwen2.5-Math-7B"])  # in the (fixture's) cache
    assert messages(report, "files") == []


def test_a_reward_function_name_that_the_module_does_not_define_is_refused(data_dir, tmp_path):
    _, report = check(["reward.custom_reward_function.name=compute_scor"])
    (msg,) = messages(report, "files", "error")
    assert "reward.custom_reward_function.name='compute_scor'" in msg and "math_reward" in msg
    reward = tmp_path / "my_reward.py"
    reward.write_text("import os\nos.makedirs('SIDE_EFFECT')\ndef score(*a, **k):\n    return 0.0\n")
    _, report = check([f"reward.custom_reward_function.path={reward}", "reward.custom_reward_function.name=score"])
    assert messages(report, "files") == []
    assert not (tmp_path / "SIDE_EFFECT").exists() and not __import__("os").path.exists("SIDE_EFFECT")  # read, not run
    _, report = check([f"reward.custom_reward_function.path={reward}", "reward.custom_reward_function.name=other"])
    (msg,) = messages(report, "files", "error")
    assert "'other' is not defined" in msg and str(reward) in msg


def test_an_output_dir_that_is_a_file_or_unwritable_is_refused(data_dir, tmp_path, monkeypatch):
    import os

    from sspo_verl.preflight import files

    afile = tmp_path / "afile"
    afile.write_text("x")
    _, report = check([f"output_dir={afile}/runs"])
    errors = messages(report, "files", "error")
    (msg,) = errors  # the run dir and the checkpoints below it, built from output_dir: one error
    assert msg.startswith("trainer.default_local_dir=") and f"{afile} is a file, not a directory" in msg
    assert f"built from output_dir={afile}/runs" in msg and "SSPO_OUTPUT_DIR" in msg
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permission bits: answer as they say, for this directory only
            real_access = os.access
            monkeypatch.setattr(files.os, "access", lambda p, mode: False if p == str(locked) else real_access(p, mode))
        _, report = check([f"output_dir={locked}/runs"])
        assert any("output_dir=" in m and "not writable" in m for m in messages(report, "files", "error"))
    finally:
        locked.chmod(0o700)
