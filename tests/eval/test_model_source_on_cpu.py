"""--model resolution: HF dirs, verl checkpoints (merged by verl's own model merger), clear errors."""

import json
import shutil
from pathlib import Path

import pytest

from sspo_verl.eval.model_source import ModelSourceError, resolve_model


def _fake_verl_checkpoint(tiny_model: str, root: Path, step: int = 3) -> Path:
    """The layout verl's FSDPCheckpointManager writes for world size 1: rank shard, fsdp_config.json,
    huggingface/ with config and tokenizer (no weights unless save_contents has hf_model)."""
    import torch
    from transformers import AutoModelForCausalLM

    actor = root / f"global_step_{step}" / "actor"
    (actor / "huggingface").mkdir(parents=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    torch.save(model.state_dict(), actor / "model_world_size_1_rank_0.pt")
    (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 1}))
    for f in Path(tiny_model).iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, actor / "huggingface" / f.name)
    (root / "latest_checkpointed_iteration.txt").write_text(str(step))
    return actor


def test_hf_directory_is_used_as_is(tiny_model, tmp_path):
    r = resolve_model(tiny_model, tmp_path / "merged")
    assert r.kind == "hf" and r.hf_path == tiny_model
    assert not (tmp_path / "merged").exists()


def test_verl_checkpoint_with_hf_weights_needs_no_merge(tiny_model, tmp_path):
    actor = tmp_path / "ckpt" / "global_step_7" / "actor"
    shutil.copytree(tiny_model, actor / "huggingface")
    r = resolve_model(str(tmp_path / "ckpt" / "global_step_7"), tmp_path / "merged")
    assert (r.kind, r.step, r.hf_path) == ("verl-hf", 7, str(actor / "huggingface"))


@pytest.mark.slow  # verl's merger runs in a subprocess: ~30 s on 2 CPU cores, mostly imports
def test_fsdp_checkpoint_is_merged_by_verl(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    root = tmp_path / "ckpt"
    _fake_verl_checkpoint(tiny_model, root)
    r = resolve_model(str(root), tmp_path / "merged")  # the root: latest step via the tracker file
    assert (r.kind, r.step, r.hf_path) == ("verl-fsdp-merged", 3, str(tmp_path / "merged"))
    merged = AutoModelForCausalLM.from_pretrained(r.hf_path).state_dict()
    original = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    for key, value in original.items():  # verl's merger writes bf16
        torch.testing.assert_close(merged[key].float(), value.to(torch.bfloat16).float())
    again = resolve_model(str(root / "global_step_3"), tmp_path / "merged")  # reused, not merged twice
    assert again.hf_path == r.hf_path
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("user data")
    with pytest.raises(ModelSourceError, match="not empty"):
        resolve_model(str(root), other)
    assert (other / "keep.txt").read_text() == "user data"


def test_errors_say_what_is_expected(tmp_path):
    with pytest.raises(ModelSourceError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"), tmp_path / "m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match="neither an HF model"):
        resolve_model(str(tmp_path / "empty"), tmp_path / "m")
    bad = tmp_path / "ck"
    bad.mkdir()
    (bad / "latest_checkpointed_iteration.txt").write_text("9")
    with pytest.raises(ModelSourceError, match="global_step_9 does not exist"):
        resolve_model(str(bad), tmp_path / "m")
    shards = tmp_path / "ck2" / "global_step_1" / "actor"
    shards.mkdir(parents=True)
    with pytest.raises(ModelSourceError, match="no model_world_size"):
        resolve_model(str(tmp_path / "ck2" / "global_step_1"), tmp_path / "m")


def test_a_truncated_safetensors_file_is_named_before_loading(tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (weights,) = model.glob("*.safetensors")
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100])  # an interrupted copy
    with pytest.raises(ModelSourceError, match=r"model\.safetensors: truncated or corrupt safetensors file"):
        resolve_model(str(model), tmp_path / "merged")
    weights.write_bytes(b"\x00" * 4)  # not even a header
    with pytest.raises(ModelSourceError, match="truncated or corrupt"):
        resolve_model(str(model), tmp_path / "merged")
