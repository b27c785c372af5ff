"""sspo_verl.preflight.files: path keys are found from the config's own key names (a key added later is checked
with no new code), inputs must exist and load (real files: a truncated parquet, a reward module with a syntax
error, a truncated config.json, a directory that is not a verl checkpoint), outputs need a writable ancestor, and a
refusal leaves the files as they were."""

from __future__ import annotations

import os

from tests.preflight.configs import check, messages


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_path_key_nobody_listed_is_checked_as_input_or_output_by_its_name(data_dir, tmp_path):
    _, report = check(["+trainer.extra_reference_path=/no/such/ref.json"])  # a *_path key verl does not have
    (msg,) = messages(report, "files", "error")
    assert msg.startswith("trainer.extra_reference_path=/no/such/ref.json: no such file") and "=null" in msg
    afile = tmp_path / "afile"
    afile.write_text("x")
    _, report = check([f"+trainer.extra_dump_dir={afile}/dumps"])  # a *_dir key: written, so an ancestor must do
    (msg,) = messages(report, "files", "error")
    assert msg.startswith(f"trainer.extra_dump_dir={afile}/dumps: {afile} is a file, not a directory")
    _, report = check([f"+trainer.extra_dump_dir={tmp_path}/new/dumps"])  # not there yet, under a writable dir
    assert messages(report, "files") == []
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": ')
    _, report = check([f"+data.extra_config_file={bad}"])  # read, so it must load: a .json parses
    (msg,) = messages(report, "files", "error")
    assert f"data.extra_config_file: {bad} is not readable JSON" in msg


def test_paths_this_run_does_not_use_are_not_checked(data_dir):
    _, report = check([
        "reward.reward_model.model_path=/no/such/rm",  # reward_model.enable=false
        "actor_rollout_ref.actor.profiler.save_path=/no/such/profile",  # profiler.enable=false
        "trainer.resume_from_path=/no/such/global_step_3",  # resume_mode=auto: verl does not read it
        "critic.model.path=/no/such/critic",  # no critic for a group estimator (verl's need_critic)
    ])
    assert messages(report, "files") == []
    files = [f"data.{k}_files={data_dir}/{n}.parquet" for k, n in (("train", "math_l35"), ("val", "math500"))]
    _, report = check([*files, "data_dir=/no/such/data"])  # a top-level knob no key is built from: unused
    assert messages(report, "files") == []
    _, report = check(["reward.reward_model.enable=true", "reward.reward_model.model_path=/no/such/rm"])
    assert any(m.startswith("reward.reward_model.model_path=/no/such/rm: no such directory")
               for m in messages(report, "files", "error"))


def test_a_truncated_parquet_file_is_refused_naming_it_and_left_as_it_was(data_dir):
    train = data_dir / "math_l35.parquet"
    _truncate(train)
    before = (train.read_bytes(), sorted(os.listdir(data_dir)))
    _, report = check([])
    (msg,) = messages(report, "files", "error")
    assert msg.startswith(f"data.train_files: {train} is not a readable parquet file") and "truncated" in msg
    assert (train.read_bytes(), sorted(os.listdir(data_dir))) == before


def test_a_reward_module_with_a_syntax_error_is_refused_without_running_it(data_dir, tmp_path):
    reward = tmp_path / "my_reward.py"
    reward.write_text("import os\nos.makedirs('SIDE_EFFECT')\ndef compute_score(*a, **k)\n    return 0.0\n")
    _, report = check([f"reward.custom_reward_function.path={reward}"])
    (msg,) = messages(report, "files", "error")
    assert msg.startswith(f"reward.custom_reward_function.path={reward}: {reward} does not compile (line 3)")
    assert not (tmp_path / "SIDE_EFFECT").exists() and not os.path.exists("SIDE_EFFECT")
    assert not (tmp_path / "__pycache__").exists()  # compiled in memory, no .pyc written
    notes = tmp_path / "reward.txt"
    notes.write_text("def compute_score(*a, **k):\n    return 0.0\n")
    _, report = check([f"reward.custom_reward_function.path={notes}"])  # verl imports .py files only
    (msg,) = messages(report, "files", "error")
    assert msg.startswith(f"reward.custom_reward_function.path={notes}: not a .py file")
    _, report = check(["reward.custom_reward_function.path='~/my_reward.py'"])  # verl does not expand ~
    (msg,) = messages(report, "files", "error")
    assert "does not expand '~'" in msg and os.path.expanduser("~/my_reward.py") in msg


def test_a_truncated_model_config_json_is_refused_naming_the_file(data_dir, tiny_model_dir, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    _truncate(model / "config.json")
    _, report = check([f"actor_rollout_ref.model.path={model}"])
    (msg,) = messages(report, "files", "error")
    assert msg.startswith(f"actor_rollout_ref.model.path={model}: its config.json is not readable JSON")
    assert str(model / "config.json") in msg


def test_an_empty_directory_as_tokenizer_is_refused(data_dir, tiny_model_dir, tmp_path):
    empty = tmp_path / "tok"
    empty.mkdir()
    model = f"actor_rollout_ref.model.path={tiny_model_dir}"
    _, report = check([model, f"actor_rollout_ref.model.tokenizer_path={empty}"])
    (msg,) = messages(report, "files", "error")
    assert msg.startswith(f"actor_rollout_ref.model.tokenizer_path={empty} is not a Hugging Face tokenizer directory")


def test_resume_path_must_be_a_verl_checkpoint(data_dir, tmp_path):
    resume = ["trainer.resume_mode=resume_path"]
    step = tmp_path / "checkpoints" / "global_step_3"
    step.mkdir(parents=True)
    _, report = check([*resume, f"trainer.resume_from_path={step}"])  # no actor/ inside
    (msg,) = messages(report, "files", "error")
    assert msg.startswith(f"trainer.resume_from_path={step} with trainer.resume_mode=resume_path: it has no actor/")
    assert "trainer.resume_mode=auto" in msg
    (step / "actor").mkdir()
    _, report = check([*resume, f"trainer.resume_from_path={step}"])
    assert messages(report, "files") == []
    _, report = check([*resume, f"trainer.resume_from_path={step}/"])  # verl parses the step from the text: '3/'
    assert any("global_step_<N> directory" in m for m in messages(report, "files", "error"))
    _, report = check([*resume, f"trainer.resume_from_path={tmp_path / 'checkpoints'}"])
    assert any("global_step_<N> directory" in m for m in messages(report, "files", "error"))
    _, report = check([*resume])  # resume_path without a path: null is refused too (verl asserts on it)
    assert any(m.startswith("trainer.resume_from_path=None") for m in messages(report, "files", "error"))


def test_a_pkg_module_is_read_not_imported(data_dir):
    _, report = check(["trainer.v1.sampler.custom_sampler.path=pkg://sspo_verl.no_such_sampler",
                       "trainer.v1.sampler.custom_sampler.name=Sampler"])
    (msg,) = messages(report, "files", "error")
    assert msg.startswith("trainer.v1.sampler.custom_sampler.path=pkg://sspo_verl.no_such_sampler: module")
    _, report = check(["reward.custom_reward_function.path=pkg://json", "reward.custom_reward_function.name=loads"])
    assert messages(report, "files") == []  # json/__init__.py compiles and defines loads at top level
