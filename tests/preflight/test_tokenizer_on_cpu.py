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
    base = [f"actor_rollout_ref.model.path={model}", "data.max_prompt_length=512"]
    _, report = check(base)
    (msg,) = messages(report, "prompt_length", "error")
    assert "data.train_files" in msg and "1 prompt(s) longer than data.max_prompt_length=512" in msg
    assert "row 1:" in msg and "data.filter_overlong_prompts=true" in msg and "--max-prompt-tokens 512" in msg
    for fine in (["data.filter_overlong_prompts=true"], ["data.truncation=left"], ["data.max_prompt_length=100000"]):
        _, report = check([*base, *fine])
        assert messages(report, "prompt_length") == [], fine
