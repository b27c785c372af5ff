"""The ``hf`` rollout server with the tiny model: batched generation, log-probs, weight sync, and its errors.

The server class is driven directly (no Ray): ``generate`` is the coroutine verl's agent loop awaits through a
Ray handle, ``update_weights`` the one the trainer-side adapter (tests/cpu/test_rollout_on_cpu.py) awaits.
"""

from __future__ import annotations

import asyncio

import pytest
import torch

from sspo_verl.cpu.hf_server import HFServer

RESPONSE_LENGTH = 12


def _rollout_config(**overrides):
    from verl.workers.config import RolloutConfig

    kwargs = dict(
        name="hf", prompt_length=32, response_length=RESPONSE_LENGTH, dtype="float32", tensor_model_parallel_size=1
    )
    kwargs.update(overrides)
    return RolloutConfig(**kwargs)


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    srv = HFServer(_rollout_config(seed=0), {"path": tiny_model_dir}, replica_rank=0)
    info = srv.init()
    assert info["dtype"] == "torch.float32" and info["params"] > 0
    return srv


@pytest.fixture(scope="module")
def prompts(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["What is 3 + 4?", "What is 12 + 57? First, take 12.", "Hi"]
    return [list(tok(t)["input_ids"]) for t in texts]  # three different lengths: left padding is exercised


def _generate_all(server, prompt_list, **sampling):
    async def go():
        return await asyncio.gather(
            *[
                server.generate(prompt_ids=p, sampling_params=dict(sampling), request_id=f"r{i}")
                for i, p in enumerate(prompt_list)
            ]
        )

    return asyncio.run(go())


def _teacher_forced_log_probs(model, prompt, response, temperature):
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()  # (L, V)
    logits = logits[len(prompt) - 1 : len(prompt) - 1 + len(response)] / temperature  # (T, V) predicts response
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(response).unsqueeze(-1)).squeeze(-1)  # (T,)


def test_concurrent_requests_share_one_batch_and_log_probs_match_the_model(server, prompts):
    before = server.get_stats()
    outs = _generate_all(server, prompts * 2, temperature=0.8, top_p=1.0, top_k=-1, logprobs=True)
    after = server.get_stats()
    assert after["requests"] - before["requests"] == 6
    assert after["batches"] - before["batches"] == 1  # all six waited in the queue together
    for prompt, out in zip(prompts * 2, outs):
        assert 1 <= len(out.token_ids) <= RESPONSE_LENGTH
        assert len(out.log_probs) == len(out.token_ids)
        if any(t in server.eos_ids for t in out.token_ids):
            assert out.token_ids[-1] in server.eos_ids and sum(t in server.eos_ids for t in out.token_ids) == 1
        expected = _teacher_forced_log_probs(server.model, prompt, out.token_ids, temperature=0.8)
        torch.testing.assert_close(torch.tensor(out.log_probs), expected, atol=2e-4, rtol=0)


def test_a_burst_spread_over_milliseconds_still_shares_one_batch(server, prompts):
    """verl's agent loop sends a step's requests a few milliseconds apart (each passes its load balancer first)."""

    async def go():
        async def one(i, p):
            await asyncio.sleep(0.004 * i)
            return await server.generate(prompt_ids=p, sampling_params={"temperature": 1.0}, request_id=str(i))

        return await asyncio.gather(*[one(i, p) for i, p in enumerate(prompts * 3)])

    before = server.get_stats()["batches"]
    outs = asyncio.run(go())
    assert len(outs) == 9 and server.get_stats()["batches"] - before == 1


def test_greedy_batched_equals_greedy_alone(server, prompts):
    together = _generate_all(server, prompts, temperature=0.0, logprobs=False)
    for prompt, out in zip(prompts, together):
        alone = _generate_all(server, [prompt], temperature=0.0)[0]
        assert out.token_ids == alone.token_ids
        assert out.log_probs is None


def test_max_tokens_and_stop_token_ids_are_honoured(server, prompts):
    out = _generate_all(server, prompts[:1], temperature=1.0, max_tokens=3)[0]
    assert 1 <= len(out.token_ids) <= 3
    greedy = _generate_all(server, prompts[:1], temperature=0.0)[0].token_ids
    stop = greedy[1]
    stopped = _generate_all(server, prompts[:1], temperature=0.0, stop_token_ids=[stop])[0].token_ids
    assert stopped == greedy[: greedy.index(stop) + 1]


def test_unsupported_requests_fail_clearly(server, prompts):
    with pytest.raises(NotImplementedError, match="multimodal"):
        asyncio.run(server.generate(prompt_ids=prompts[0], sampling_params={}, request_id="x", image_data=[1]))
    with pytest.raises(ValueError, match=r"\['n'\] must be 1"):
        asyncio.run(server.generate(prompt_ids=prompts[0], sampling_params={"n": 2}, request_id="x"))


def test_weight_sync_writes_every_parameter_in_buckets(server, prompts):
    original = {n: p.detach().clone() for n, p in server.model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    new = {n: p + 0.05 * torch.randn(p.shape, generator=g) for n, p in original.items()}
    names = list(new)
    try:
        first = asyncio.run(server.update_weights({n: new[n] for n in names[:3]}, is_last=False, global_steps=7))
        assert first == {"received": 3}
        report = asyncio.run(server.update_weights({n: new[n] for n in names[3:]}, is_last=True, global_steps=7))
        assert report["parameters"] >= len(names) and report["global_steps"] == 7
        for n, p in server.model.named_parameters():
            torch.testing.assert_close(p, new[n], rtol=0, atol=0)
        out = _generate_all(server, prompts[:1], temperature=0.0)[0]
        assert out.extra_fields["global_steps"] == 7
    finally:
        asyncio.run(server.update_weights(original, is_last=True))
    for n, p in server.model.named_parameters():
        torch.testing.assert_close(p, original[n], rtol=0, atol=0)


def test_weight_sync_refuses_missing_unknown_and_misshapen_tensors(server):
    params = {n: p.detach().clone() for n, p in server.model.named_parameters()}
    some = dict(list(params.items())[:2])
    with pytest.raises(KeyError, match="not sent by the trainer"):
        asyncio.run(server.update_weights(some, is_last=True))
    with pytest.raises(KeyError, match="no counterpart in the rollout model"):
        asyncio.run(server.update_weights({"model.not_a_layer.weight": torch.zeros(1)}, is_last=True))
    name, value = next(iter(params.items()))
    with pytest.raises(ValueError, match="shape"):
        asyncio.run(server.update_weights({name: value.reshape(-1)[:-1]}, is_last=True))
    asyncio.run(server.update_weights(params, is_last=True))  # a full, correct update still works afterwards
