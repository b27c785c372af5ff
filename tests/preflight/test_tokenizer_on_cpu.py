"""sspo_verl.preflight.tokenizer: SSPO's tokenizer must have the model's vocabulary (real tokenizer files of the
tiny demo model, one copy with two pieces swapped), and over-long prompts are refused under truncation=error."""

from __future__ import annotations

import json
import shutil

import pytest

from sspo_verl.preflight.tokenizer import vocab_fingerprint
from tests.preflight.configs import check, messages, write_verl_parquet

PL = "actor_rollout_ref.actor.policy_loss"


@pytest.fixture
def tokenizers(tiny_model_dir, tmp_path):
    """(model dir, a copy with the same vocabulary, a copy with two vocabulary entries swapped)."""
    model = tiny_model_dir  # build_tiny_model writes config, weights and tokenizer files into one directory
    same, other = tmp_path / "same_tok", tmp_path / "other_tok"
    shutil.copytree(model, same)
    shutil.copytree(model, other)
    spec = json.loads((other / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    a, b = list(vocab)[100], list(vocab)[101]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (other / "tokenizer.json").write_text(json.dumps(spec))
    return str(model), str(same), str(other)


def test_vocab_fingerprint_tells_vocabularies_apart(tokenizers):
    model, same, other = tokenizers
    assert vocab_fingerprint(model) == vocab_fingerprint(same) != vocab_fingerprint(other)


def test_sspo_tokenizer_with_another_vocabulary_is_refused_naming_both_paths(data_dir, tokenizers):
    model, same, other = tokenizers
    base = ["algorithm=sspo", f"actor_rollout_ref.model.path={model}"]
    _, report = check([*base, f"{PL}.tokenizer_path={other}"])
    (msg,) = messages(report, "tokenizer", "error")
    assert f"{PL}.tokenizer_path={other}" in msg and f"actor_rollout_ref.model.path={model}" in msg
    assert "preflight.allow_tokenizer_mismatch=true" in msg
    _, report = check([*base, f"{PL}.tokenizer_path={same}"])
    assert messages(report, "tokenizer") == []
    _, report = check([*base, f"{PL}.tokenizer_path={other}", "preflight.allow_tokenizer_mismatch=true"])
    assert messages(report, "tokenizer") == []


def test_a_prompt_longer_than_max_prompt_length_is_refused_under_truncation_error(data_dir, tokenizers):
    model = tokenizers[0]
    long_prompt = "Compute " + "1 + " * 3000 + "1."
    rows = [{"data_source": "math500", "prompt": [{"role": "user", "content": text}], "ability": "math",
             "reward_model": {"style": "rule", "ground_truth": "1"}, "extra_info": {"index": i}}
            for i, text in enumerate(["What is 1 + 1?", long_prompt, "What is 2 + 2?"])]
    write_verl_parquet(data_dir / "math_l35.parquet", rows)
    base = [f"actor_rollout_ref.model.path={model}", "data.max_prompt_length=512", "data.max_response_length=64"]
    _, report = check(base)
    (msg,) = messages(report, "prompt_length", "error")
    assert "data.train_files" in msg and "1 prompt(s) longer than data.max_prompt_length=512" in msg
    assert "row 1:" in msg and "data.filter_overlong_prompts=true" in msg and "--max-prompt-tokens 512" in msg
    for fine in (["data.filter_overlong_prompts=true"], ["data.truncation=left"]):
        _, report = check([*base, *fine])
        assert messages(report, "prompt_length") == [] and not report.errors, fine
    _, report = check([*base, "data.max_prompt_length=100000"])  # no prompt too long, but past the model's positions
    assert messages(report, "prompt_length") == [] and messages(report, "model_limits", "error")


@pytest.fixture
def tiny_copy(tiny_model_dir, tmp_path):
    """A copy of the tiny model (real config.json and tokenizer files) to edit."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    return model


def _edit_config(model, **values) -> None:
    spec = json.loads((model / "config.json").read_text())
    spec.update(values)
    (model / "config.json").write_text(json.dumps(spec))


def test_lengths_beyond_the_models_positions_are_refused_naming_both(data_dir, tiny_copy):
    _edit_config(tiny_copy, max_position_embeddings=48)
    base = [f"actor_rollout_ref.model.path={tiny_copy}", "data.max_prompt_length=32"]
    _, report = check([*base, "data.max_response_length=32"])
    (msg,) = messages(report, "model_limits", "error")
    assert msg.startswith("data.max_prompt_length=32 + data.max_response_length=32 = 64 tokens exceeds the model's "
                          f"max_position_embeddings=48 ({tiny_copy / 'config.json'})")
    assert "Lower data.max_response_length to at most 16" in msg
    _, report = check([*base, "data.max_response_length=16"])
    assert messages(report, "model_limits") == []
    _, report = check([*base, "data.max_response_length=16", "actor_rollout_ref.rollout.max_model_len=64"])
    (msg,) = messages(report, "model_limits", "error")
    assert msg.startswith("actor_rollout_ref.rollout.max_model_len=64 exceeds the model's max_position_embeddings=48")
    # rope scaling does not lift verl's cap; a GPT-2 style key is read as vLLM reads it
    _edit_config(tiny_copy, rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 48})
    _, report = check([*base, "data.max_response_length=32"])
    (msg,) = messages(report, "model_limits", "error")
    assert "rope scaling factor 4 does not extend this" in msg
    spec = json.loads((tiny_copy / "config.json").read_text())
    del spec["max_position_embeddings"], spec["rope_scaling"]
    (tiny_copy / "config.json").write_text(json.dumps({**spec, "n_positions": 40}))
    _, report = check([*base, "data.max_response_length=16"])
    (msg,) = messages(report, "model_limits", "error")
    assert "exceeds the model's n_positions=40" in msg


def test_a_tokenizer_larger_than_the_models_vocabulary_or_unloadable_is_refused(data_dir, tiny_copy):
    base = [f"actor_rollout_ref.model.path={tiny_copy}", "data.max_prompt_length=32", "data.max_response_length=32"]
    _, report = check(base)
    assert messages(report, "model_limits") == [] and not report.errors
    _edit_config(tiny_copy, vocab_size=600)  # the tiny tokenizer has 640 tokens
    _, report = check(base)
    (msg,) = messages(report, "model_limits", "error")
    assert msg.startswith(f"actor_rollout_ref.model.path={tiny_copy}: its tokenizer has 640 tokens")
    assert "vocab_size=600" in msg
    _edit_config(tiny_copy, vocab_size=640)
    text = (tiny_copy / "tokenizer.json").read_text()
    (tiny_copy / "tokenizer.json").write_text(text[: len(text) // 2])  # truncated
    _, report = check(base)
    (msg,) = messages(report, "model_limits", "error")
    assert msg.startswith(f"actor_rollout_ref.model.path={tiny_copy}: transformers cannot load a tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tiny_copy / name).unlink()
    _, report = check(base)  # a model directory without a tokenizer, and no tokenizer_path
    (msg,) = messages(report, "model_limits", "error")
    assert "holds no tokenizer" in msg and "actor_rollout_ref.model.tokenizer_path" in msg


def test_a_config_json_transformers_cannot_load_is_refused(data_dir, tiny_copy):
    _edit_config(tiny_copy, model_type="qwen9_future")  # a model newer than the installed transformers
    _, report = check([f"actor_rollout_ref.model.path={tiny_copy}", "data.max_prompt_length=32",
                       "data.max_response_length=32"])
    (msg,) = messages(report, "model_limits", "error")
    assert msg.startswith(f"actor_rollout_ref.model.path={tiny_copy}: transformers cannot load its config")
    assert "qwen9_future" in msg and "model_type" in msg
