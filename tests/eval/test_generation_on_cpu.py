"""Generation backends: HF generate on the tiny model, and the vLLM call path against a stand-in module.

vLLM itself needs a GPU; the stand-in records what sspo-eval passes to ``vllm.LLM`` / ``SamplingParams`` /
``LLM.generate`` and returns outputs shaped like vLLM's ``RequestOutput``, so the glue code is checked here
and the real engine on a GPU machine.
"""

import sys
import types
from types import SimpleNamespace

import pytest

from sspo_verl.eval.decoding import DecodingConfig
from sspo_verl.eval.generation import choose_backend, generate, prompt_token_ids

PROMPTS = [
    [{"role": "user", "content": "What is 1 + 1?\nPlease reason step by step."}],
    [{"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "user", "content": "What is 3 + 3?"}],
]


def test_auto_backend_without_gpu_is_hf(monkeypatch):
    assert choose_backend("auto") == "hf"
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))  # installed (a stand-in: only found here)
    assert choose_backend("vllm") == "vllm"
    with pytest.raises(ValueError):
        choose_backend("tgi")


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


class _FakeVLLM:
    calls = {}

    class LLM:
        def __init__(self, **kwargs):
            _FakeVLLM.calls["init"] = kwargs

        def generate(self, prompts, params):
            _FakeVLLM.calls["prompts"] = prompts
            _FakeVLLM.calls["params"] = params
            outputs = []
            for p in prompts:
                completions = [
                    SimpleNamespace(text=f"\\boxed{{{len(p['prompt_token_ids'])}}}", token_ids=[1, 2, 3],
                                    finish_reason="length" if j == 0 else "stop")
                    for j in range(params.n)
                ]
                outputs.append(SimpleNamespace(outputs=completions))
            return outputs

    class SamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = _FakeVLLM.LLM, _FakeVLLM.SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    _FakeVLLM.calls.clear()
    return _FakeVLLM.calls


def test_vllm_call_path(fake_vllm, tiny_model):
    from transformers import AutoTokenizer

    from sspo_verl.eval.generation import VLLMOptions

    d = DecodingConfig(temperature=0.6, top_p=0.95, n=2, max_new_tokens=64, seed=7)
    out = generate("vllm", tiny_model, PROMPTS, d, VLLMOptions(tensor_parallel_size=2, max_model_len=4096))
    init, params = fake_vllm["init"], fake_vllm["params"]
    assert init["model"] == tiny_model and init["tensor_parallel_size"] == 2 and init["max_model_len"] == 4096
    assert init["seed"] == 7
    assert (params.n, params.temperature, params.top_p, params.max_tokens, params.seed) == (2, 0.6, 0.95, 64, 7)
    expected_ids = prompt_token_ids(AutoTokenizer.from_pretrained(tiny_model), PROMPTS)
    assert [p["prompt_token_ids"] for p in fake_vllm["prompts"]] == expected_ids  # same ids as the HF path
    assert [[g.finish_reason for g in s] for s in out] == [["length", "stop"]] * 3
    assert out[0][0].text == f"\\boxed{{{len(expected_ids[0])}}}" and out[0][0].num_tokens == 3


def test_vllm_greedy_disables_sampling_knobs(fake_vllm, tiny_model):
    generate("vllm", tiny_model, PROMPTS[:1], DecodingConfig(top_p=0.5, max_new_tokens=8))
    params = fake_vllm["params"]
    assert (params.n, params.temperature, params.top_p, params.top_k) == (1, 0.0, 1.0, -1)


def test_vllm_missing_is_a_clear_error(monkeypatch, tiny_model):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(RuntimeError, match="--backend hf"):
        generate("vllm", tiny_model, PROMPTS[:1], DecodingConfig())


def test_vllm_requested_without_vllm_is_refused_before_anything_loads(monkeypatch):
    from sspo_verl.eval.generation import BackendUnavailableError, choose_backend

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(BackendUnavailableError, match="--backend hf"):
        choose_backend("vllm")  # run_eval calls it before it resolves (merges) or loads the model
