"""Generation backends: HF generate on the tiny model; which backend ``auto`` picks and the engine settings it
records. The real vLLM engine (the CPU build) runs in test_vllm_backend_on_cpu.py."""

import sys

import pytest

from sspo_verl.eval.decoding import DecodingConfig
from sspo_verl.eval.generation import choose_backend, generate

PROMPTS = [
    [{"role": "user", "content": "What is 1 + 1?\nPlease reason step by step."}],
    [{"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "user", "content": "What is 3 + 3?"}],
]


def test_auto_picks_vllm_wherever_it_can_run(monkeypatch):
    from sspo_verl.eval import generation

    assert generation.vllm_problems() == []  # make setup installs the pinned CPU build of vLLM
    assert choose_backend("auto") == "vllm" and choose_backend("hf") == "hf"
    monkeypatch.setattr(generation, "vllm_problems", lambda: ["the installed 'vllm' is a GPU build"])
    assert choose_backend("auto") == "hf"
    with pytest.raises(generation.BackendUnavailableError, match="GPU build.*--backend hf"):
        choose_backend("vllm")
    with pytest.raises(ValueError):
        choose_backend("tgi")


def test_cpu_engine_is_bounded_like_training():
    """On CPU the engine settings come from hardware/cpu.yaml, training's CPU vLLM settings (one source)."""
    import yaml

    from sspo_verl.eval.generation import VLLMOptions, describe_engine, engine_settings
    from sspo_verl.config_files import config_dir

    with open(f"{config_dir()}/hardware/cpu.yaml") as fh:
        rollout = yaml.safe_load(fh)["actor_rollout_ref"]["rollout"]
    engine = engine_settings("vllm")
    assert engine == {"device": "cpu", "dtype": rollout["dtype"], "enforce_eager": True,
                      "kv_cache_memory_bytes": rollout["engine_kwargs"]["vllm"]["kv_cache_memory_bytes"]}
    assert describe_engine("vllm", engine) == "vLLM on cpu, float32, eager, KV cache 128 MiB"
    given = engine_settings("vllm", VLLMOptions(dtype="bfloat16", kv_cache_memory_bytes=1 << 30))
    assert (given["dtype"], given["kv_cache_memory_bytes"]) == ("bfloat16", 1 << 30)
    with pytest.raises(ValueError, match="eager"):
        engine_settings("vllm", VLLMOptions(enforce_eager=False))
    assert engine_settings("hf") == {"device": "cpu", "dtype": "float32"}


def test_hf_sampled_shapes_and_seed(tiny_model):
    d = DecodingConfig(temperature=1.0, n=3, max_new_tokens=6, seed=1)
    out = generate("hf", tiny_model, PROMPTS, d, hf_batch_size=2)
    assert len(out) == 3 and all(len(samples) == 3 for samples in out)
    for samples in out:
        for g in samples:
            assert g.finish_reason in {"stop", "length"} and 0 < g.num_tokens <= 6
            if g.finish_reason == "length":
                assert g.num_tokens == 6  # the budget was used up
    again = generate("hf", tiny_model, PROMPTS, d, hf_batch_size=2)
    assert [[g.text for g in s] for s in out] == [[g.text for g in s] for s in again]  # same seed, same text


def test_hf_greedy_is_batch_invariant(tiny_model):
    d = DecodingConfig(max_new_tokens=5)
    batched = generate("hf", tiny_model, PROMPTS, d, hf_batch_size=3)
    single = generate("hf", tiny_model, PROMPTS, d, hf_batch_size=1)
    assert [s[0].text for s in batched] == [s[0].text for s in single]  # left padding does not change answers


def test_vllm_missing_is_a_clear_error(monkeypatch, tiny_model):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(RuntimeError, match="--backend hf"):
        generate("vllm", tiny_model, PROMPTS[:1], DecodingConfig())


def test_vllm_requested_without_vllm_is_refused_before_anything_loads(monkeypatch):
    from sspo_verl.eval.generation import BackendUnavailableError, choose_backend

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(BackendUnavailableError, match="--backend hf"):
        choose_backend("vllm")  # run_eval calls it before it resolves (merges) or loads the model
