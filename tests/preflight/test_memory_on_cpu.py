"""The memory-fit estimate: parameter counts against models built from the same config on the meta device, every
GPU preset fitting the cards it was sized for, refusals naming the knob, and bad input never crashing the
pre-flight (real composition and pre-flight; a stand-in nvidia-smi where a card is needed)."""

import json
import logging
import os
import stat

import pytest
import torch

from sspo_verl.preflight import run_preflight
from sspo_verl.preflight.memory import ModelShape, estimate, relative_error
from tests.preflight.configs import FakeCluster, config, messages

# config.json of the Hub models the presets name (the fields the estimate reads; values of
# huggingface.co/Qwen/Qwen2.5-Math-{1.5B,7B}/config.json).
QWEN_MATH = {
    "qwen2.5-math-1.5b": dict(model_type="qwen2", vocab_size=151936, hidden_size=1536, num_hidden_layers=28,
                              intermediate_size=8960, num_attention_heads=12, num_key_value_heads=2,
                              tie_word_embeddings=True, max_position_embeddings=4096),
    "qwen2.5-math-7b": dict(model_type="qwen2", vocab_size=152064, hidden_size=3584, num_hidden_layers=28,
                            intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
                            tie_word_embeddings=False, max_position_embeddings=4096),
}
EXPERIMENTS = {"paper_qwen2.5_math_1.5b": "qwen2.5-math-1.5b", "paper_qwen2.5_math_7b": "qwen2.5-math-7b"}
# nvidia-smi's memory.total (MiB) of the cards the presets were sized for.
CARDS = {"H100 80GB": 81559 * 2**20, "H200": 143771 * 2**20}


def _model_dir(tmp_path, fields, name="model") -> str:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "config.json").write_text(fields if isinstance(fields, str) else json.dumps(fields))
    return str(directory)


def _fake_smi(tmp_path, name: str, mib: int) -> dict:
    smi = tmp_path / "nvidia-smi"
    rows = "".join(f"{i}, GPU-{i:04d}, {name}, {mib}, 580.65.06\n" for i in range(8))
    smi.write_text(f"#!/bin/sh\ncat <<'EOF'\n{rows}EOF\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{tmp_path}:{os.environ['PATH']}"}


def _preflight(overrides, env=None, gpus=8):
    cfg = config(overrides)
    return run_preflight(cfg, env=env or {"PATH": "/nonexistent"}, gpu_counter=lambda _e, _t: gpus,
                         cluster_probe=FakeCluster(), raise_on_error=False)


@pytest.mark.parametrize(
    "make",
    [
        lambda: __import__("transformers").Qwen2Config(**QWEN_MATH["qwen2.5-math-1.5b"]),
        lambda: __import__("transformers").Qwen2Config(**QWEN_MATH["qwen2.5-math-7b"]),
        lambda: __import__("transformers").Qwen2Config(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                                                       intermediate_size=128, num_attention_heads=2,
                                                       num_key_value_heads=1, tie_word_embeddings=True),
        lambda: __import__("transformers").LlamaConfig(vocab_size=32000, hidden_size=512, num_hidden_layers=2,
                                                       intermediate_size=1376, num_attention_heads=8,
                                                       num_key_value_heads=2, head_dim=96, attention_bias=True,
                                                       mlp_bias=True),
    ],
    ids=["qwen2.5-math-1.5b", "qwen2.5-math-7b", "tiny-qwen2", "llama-head_dim-bias"],
)
def test_parameter_count_is_the_models(make):
    from transformers import AutoModelForCausalLM

    hf_config = make()
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    # what save_pretrained writes: only the values that differ from the class defaults
    written = json.loads(hf_config.to_json_string(use_diff=True))
    assert ModelShape.from_config_json(written).parameters == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("hardware", [[], ["hardware=gpu_nx8", "trainer.nnodes=2"]], ids=["gpu_1x8", "gpu_nx8"])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_gpu_preset_fits_the_cards_it_was_sized_for(experiment, hardware):
    # The algorithm presets differ in memory only by the entropy in the update (SSPO entropy_source=current, an
    # entropy bonus): both ways, with and without flash-attn's cross-entropy.
    for entropy in ("false", "true"):
        cfg = config([f"experiment={experiment}", *hardware, f"actor_rollout_ref.actor.calculate_entropy={entropy}"])
        for flash_ce in (True, False):
            est = estimate(cfg, QWEN_MATH[EXPERIMENTS[experiment]], flash_ce=flash_ce)
            for card, card_bytes in CARDS.items():
                assert est.required_card_bytes() <= card_bytes, (card, est.table(card_bytes))


def test_a_preset_on_too_few_gpus_is_refused_naming_the_knobs(data_dir, tmp_path):
    model = _model_dir(tmp_path, QWEN_MATH["qwen2.5-math-7b"])
    report = _preflight(["experiment=paper_qwen2.5_math_7b", f"actor_rollout_ref.model.path={model}",
                         "trainer.n_gpus_per_node=1", "preflight.gpu_memory_gib=80"], gpus=1)
    errors = messages(report, "memory", "error")
    assert errors, report.findings
    update = next(m for m in errors if m.startswith("the update phase"))
    for knob in ("actor_rollout_ref.actor.ppo_max_token_len_per_gpu (now 8192", "trainer.n_gpus_per_node",
                 "preflight.gpu_memory_gib=80"):
        assert knob in update
    rollout = next(m for m in errors if m.startswith("the rollout phase"))
    for knob in ("gpu_memory_utilization (now 0.6)", "param_offload=true", "optimizer_offload=true"):
        assert knob in rollout


def test_the_card_nvidia_smi_reports_is_the_one_checked(data_dir, tmp_path, caplog):
    model = _model_dir(tmp_path, QWEN_MATH["qwen2.5-math-7b"])
    overrides = ["experiment=paper_qwen2.5_math_7b", f"actor_rollout_ref.model.path={model}"]
    with caplog.at_level(logging.INFO, logger="sspo_verl.preflight"):
        small = _preflight(overrides, env=_fake_smi(tmp_path, "NVIDIA A10", 23028))
    assert any("NVIDIA A10 with 22.5 GiB (nvidia-smi)" in m for m in messages(small, "memory", "error"))
    (tmp_path / "nvidia-smi").unlink()
    fits = _preflight(overrides, env=_fake_smi(tmp_path, "NVIDIA H100 80GB HBM3", 81559))
    assert not messages(fits, "memory")
    assert "needs a card of" in caplog.text and "the card: 79.6 GiB" in caplog.text


def test_vllm_share_too_small_for_its_weights_is_refused(data_dir, tmp_path):
    model = _model_dir(tmp_path, QWEN_MATH["qwen2.5-math-7b"])
    report = _preflight(["experiment=paper_qwen2.5_math_7b", f"actor_rollout_ref.model.path={model}",
                         "actor_rollout_ref.rollout.gpu_memory_utilization=0.05", "preflight.gpu_memory_gib=80"])
    assert any("vLLM would refuse to start" in m and "tensor_model_parallel_size" in m
               for m in messages(report, "memory", "error"))


def test_no_gpu_prints_the_estimate_and_does_not_block(data_dir, tmp_path, caplog):
    model = _model_dir(tmp_path, QWEN_MATH["qwen2.5-math-1.5b"])
    with caplog.at_level(logging.INFO, logger="sspo_verl.preflight"):
        report = _preflight(["experiment=paper_qwen2.5_math_1.5b", f"actor_rollout_ref.model.path={model}"])
    assert not messages(report, "memory")
    assert "1.544B parameters" in caplog.text and "memory fit not checked: no GPU visible here" in caplog.text


def test_a_vllm_that_never_sleeps_holds_its_share_in_the_update():
    cfg = config(["experiment=paper_qwen2.5_math_7b"])
    asleep = estimate(cfg, QWEN_MATH["qwen2.5-math-7b"], flash_ce=True)
    awake = estimate(config(["experiment=paper_qwen2.5_math_7b", "actor_rollout_ref.rollout.free_cache_engine=false"]),
                     QWEN_MATH["qwen2.5-math-7b"], flash_ce=True)
    share = 0.6
    assert awake.required_card_bytes() == pytest.approx(asleep.total("update") / (1 - share), rel=1e-6)
    assert awake.required_card_bytes() > asleep.required_card_bytes()


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"model_type": "qwen2"}, "config.json has no 'hidden_size'"),
        ({**QWEN_MATH["qwen2.5-math-7b"], "hidden_size": "3584"}, "hidden_size='3584' is not a positive integer"),
        ({**QWEN_MATH["qwen2.5-math-7b"], "num_hidden_layers": 0}, "num_hidden_layers=0"),
        ({**QWEN_MATH["qwen2.5-math-7b"], "num_local_experts": 8}, "mixtures of experts"),
        ("{not json", "not readable JSON"),
        ("[1, 2]", "not a JSON object"),
    ],
    ids=["missing", "string", "zero", "moe", "not-json", "not-object"],
)
def test_an_unreadable_model_config_skips_the_estimate_with_the_reason(data_dir, tmp_path, caplog, fields, said):
    model = _model_dir(tmp_path, fields)
    with caplog.at_level(logging.INFO, logger="sspo_verl.preflight"):
        report = _preflight(["experiment=paper_qwen2.5_math_7b", f"actor_rollout_ref.model.path={model}",
                             "preflight.gpu_memory_gib=80"])
    assert not messages(report, "memory")
    assert "memory estimate skipped" in caplog.text and said in caplog.text


@pytest.mark.parametrize("value", ["'80GB'", "-1", "true", "nan", "inf"])
@pytest.mark.parametrize("readable_model", [True, False])
def test_a_card_size_that_is_not_a_number_is_refused_naming_the_key(data_dir, tmp_path, value, readable_model):
    # also where nothing is compared with it (a model config that cannot be read): a bad knob never passes quietly
    model = _model_dir(tmp_path, QWEN_MATH["qwen2.5-math-1.5b"] if readable_model else {"model_type": "qwen2"})
    report = _preflight(["experiment=paper_qwen2.5_math_1.5b", f"actor_rollout_ref.model.path={model}",
                         f"preflight.gpu_memory_gib={value}"])
    # refused by its row of ranges.RANGES (NaN / inf by the schema's finiteness), before the memory check reads it
    assert any(f.message.startswith("preflight.gpu_memory_gib=") for f in report.errors), report.findings


def test_relative_error_compares_the_update_without_the_runtime():
    est = estimate(config(["experiment=paper_qwen2.5_math_1.5b"]), QWEN_MATH["qwen2.5-math-1.5b"], flash_ce=True)
    allocated = est.total("update") - est.phases["update"]["runtime"]
    assert relative_error(est, allocated) == (allocated, 0.0)
    assert relative_error(est, allocated // 2)[1] == pytest.approx(1.0, rel=1e-6)
