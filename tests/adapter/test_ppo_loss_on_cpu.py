"""verl's real ``ppo_loss`` with loss_mode=sspo on a micro-batch built the way verl builds it.

Prompts left-padded, responses right-padded, converted by verl's own ``left_right_2_no_padding`` into nested
(jagged) tensors; log-probs and entropy from a tiny real Qwen2 in the same no-padding layout the FSDP engine
produces; ``ppo_loss`` → backward → an optimiser step that must raise the log-probability of the
positive-advantage responses and lower that of the negative ones.
"""

import pytest
import torch
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.utils.metric import AggregationType, Metric
from verl.workers.config import ActorConfig
from verl.workers.utils import losses
from verl.workers.utils.padding import left_right_2_no_padding

from sspo_verl import SSPOPolicyLossConfig
from sspo_verl.adapter.entropy_reference import ENTROPY_MEAN_KEY

RESPONSES = [
    "First, take 3. Then add 4; so the answer is 7.",
    "We have 3.14 and 1,000: the total is 9!",
    "计算 3 + 4，先写 3，再加 4；所以答案是 7。",
    "Step 1: 2 + 2 = 4.\nStep 2: check it, done.",
]


def build_microbatch(tok, adv_sign):
    prompts = [tok.apply_chat_template([{"role": "user", "content": f"What is {i} + 4?"}], add_generation_prompt=True,
                                       tokenize=True) for i in range(len(RESPONSES))]
    prompts = [p["input_ids"] if isinstance(p, dict) or hasattr(p, "keys") else p for p in prompts]
    responses = [tok(r)["input_ids"] + [tok.eos_token_id] for r in RESPONSES]
    B, P, R = len(prompts), max(map(len, prompts)), max(map(len, responses))
    pad = tok.pad_token_id
    prompt_ids = torch.full((B, P), pad)
    response_ids = torch.full((B, R), pad)
    attn = torch.zeros(B, P + R, dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        prompt_ids[i, P - len(p):] = torch.tensor(p)  # left padding
        response_ids[i, : len(r)] = torch.tensor(r)  # right padding
        attn[i, P - len(p): P + len(r)] = 1
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
    response_mask = attn[:, P:].clone()
    advantages = torch.tensor(adv_sign, dtype=torch.float32)[:, None] * response_mask
    td = TensorDict(
        dict(prompts=prompt_ids, responses=response_ids, input_ids=input_ids, attention_mask=attn,
             position_ids=position_ids, response_mask=response_mask, advantages=advantages),
        batch_size=[B],
    )
    return td


def nested_log_probs(model, td, with_grad=True):
    """Per-token log π(next token) and entropy in the no-padding layout (the FSDP engine's output layout)."""
    ids = td["input_ids"]  # nested (B, j)
    offsets = ids.offsets()
    lps, ents = [], []
    ctx = torch.enable_grad() if with_grad else torch.no_grad()
    with ctx:
        for seq in ids.unbind():
            logits = model(input_ids=seq[None]).logits[0].float()  # (L, V)
            logp = torch.log_softmax(logits, -1)
            nxt = torch.cat([logp[:-1].gather(-1, seq[1:, None])[:, 0], logp.new_zeros(1)])  # (L,)
            lps.append(nxt)
            ents.append(-(logp.exp() * logp).sum(-1))
    lp = torch.nested.nested_tensor_from_jagged(torch.cat(lps), offsets=offsets)
    ent = torch.nested.nested_tensor_from_jagged(torch.cat(ents), offsets=offsets)
    return {"log_probs": lp, "entropy": ent}


def response_log_prob_sums(model, td):
    from verl.workers.utils.padding import no_padding_2_padding

    out = nested_log_probs(model, td, with_grad=False)
    lp = no_padding_2_padding(out["log_probs"], td)
    return (lp * td["response_mask"]).sum(-1)


@pytest.mark.parametrize("granularity,entropy_source", [("subsentence", "old"), ("subsentence", "current"),
                                                        ("sequence", "old")])
def test_real_ppo_loss_update_moves_log_probs_with_the_advantage(tiny_model_dir, granularity, entropy_source,
                                                                 monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import sspo_verl.adapter.actor_config as segmenting

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, torch_dtype=torch.float32)
    adv_sign = [1.0, -1.0, 1.0, -1.0]
    td = left_right_2_no_padding(build_microbatch(tok, adv_sign))
    assert td["input_ids"].is_nested  # verl's layout
    old = response_log_prob_sums(model, td)
    with torch.no_grad():
        out = nested_log_probs(model, td, with_grad=False)
        from verl.workers.utils.padding import no_padding_2_padding

        td["old_log_probs"] = no_padding_2_padding(out["log_probs"], td)
        td["entropy"] = no_padding_2_padding(out["entropy"], td)  # the sampling policy's, as V1 stores it
    n_tokens = int(td["response_mask"].sum())
    mu = float((td["entropy"] * td["response_mask"]).sum() / n_tokens)  # what the trainer attaches
    tu.assign_non_tensor(td, dp_size=1, batch_num_tokens=n_tokens, global_batch_size=len(RESPONSES),
                         **{ENTROPY_MEAN_KEY: mu})

    current = entropy_source == "current"
    config = ActorConfig(strategy="fsdp2", rollout_n=1, ppo_micro_batch_size_per_gpu=4, clip_ratio_low=0.2,
                         clip_ratio_high=0.28, loss_agg_mode="seq-mean-token-mean", calculate_entropy=current,
                         policy_loss=SSPOPolicyLossConfig(tokenizer_path=tiny_model_dir, granularity=granularity,
                                                          entropy_source=entropy_source))
    seen = {}
    real_segment = segmenting.segment_responses

    def spy(ids, mask, *args, **kwargs):
        seen["ids"] = ids
        return real_segment(ids, mask, *args, **kwargs)

    monkeypatch.setattr(segmenting, "segment_responses", spy)

    opt = torch.optim.SGD(model.parameters(), lr=0.2)  # 0.5 overshoots on the 2x32-head tiny model
    for _ in range(3):
        opt.zero_grad()
        model_output = nested_log_probs(model, td)
        if not current:
            del model_output["entropy"]  # calculate_entropy off: the update computes no entropy
        loss, metrics = losses.ppo_loss(config, model_output, td)  # the function verl's engine workers call
        loss.backward()
        opt.step()
    # SSPO segmented exactly the micro-batch's response ids
    assert torch.equal(seen["ids"][td["response_mask"].bool()], td["responses"][td["response_mask"].bool()])
    new = response_log_prob_sums(model, td)
    for i, s in enumerate(adv_sign):
        assert (new[i] - old[i]) * s > 0, (i, float(old[i]), float(new[i]))
    # SSPO's metrics arrive through ppo_loss, min/max tagged for verl's MIN/MAX reduction
    assert isinstance(metrics["actor/sspo/ratio_max"], Metric)
    assert metrics["actor/sspo/ratio_max"].aggregation == AggregationType.MAX
    assert metrics["actor/sspo/eps_scale_min"].aggregation == AggregationType.MIN
    assert metrics["actor/sspo/clipfrac_high"].aggregation == AggregationType.MEAN
    segs = metrics["actor/sspo/segments_per_seq"].aggregate()
    assert segs > 2 if granularity == "subsentence" else segs == 1
    assert "actor/pg_clipfrac" in metrics and "actor/ppo_kl" in metrics


def test_current_entropy_clipping_without_entropy_from_verl_fails_with_the_fix(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, torch_dtype=torch.float32)
    td = left_right_2_no_padding(build_microbatch(tok, [1.0, -1.0, 1.0, -1.0]))
    out = nested_log_probs(model, td, with_grad=False)
    from verl.workers.utils.padding import no_padding_2_padding

    td["old_log_probs"] = no_padding_2_padding(out["log_probs"], td)
    tu.assign_non_tensor(td, dp_size=1, batch_num_tokens=None, global_batch_size=None)
    config = ActorConfig(strategy="fsdp2", rollout_n=1, ppo_micro_batch_size_per_gpu=4,
                         policy_loss=SSPOPolicyLossConfig(tokenizer_path=tiny_model_dir, entropy_source="current"))
    with pytest.raises(ValueError, match="calculate_entropy=true"):
        losses.ppo_loss(config, {"log_probs": out["log_probs"]}, td)


def _prepared_microbatch(tiny_model_dir, seed=0):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from verl.workers.utils.padding import no_padding_2_padding

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, torch_dtype=torch.float32)
    td = left_right_2_no_padding(build_microbatch(tok, [1.0, -1.0, 1.0, -1.0]))
    out = nested_log_probs(model, td, with_grad=False)
    lp = no_padding_2_padding(out["log_probs"], td)
    # an off-policy old policy so that clipping happens at every granularity
    td["old_log_probs"] = lp + 0.4 * torch.randn(lp.shape, generator=torch.Generator().manual_seed(seed))
    tu.assign_non_tensor(td, dp_size=1, batch_num_tokens=int(td["response_mask"].sum()), global_batch_size=4)
    return model, td


@pytest.mark.parametrize("loss_mode", ["vanilla", "gspo", "sspo"])
def test_every_loss_mode_logs_the_same_granularity_diagnostics(tiny_model_dir, loss_mode, monkeypatch):
    from verl.workers.config import PolicyLossConfig

    import sspo_verl.adapter.actor_config as segmenting

    model, td = _prepared_microbatch(tiny_model_dir)
    policy_loss = (SSPOPolicyLossConfig(tokenizer_path=tiny_model_dir, entropy_clip=False) if loss_mode == "sspo"
                   else PolicyLossConfig(loss_mode=loss_mode))
    config = ActorConfig(strategy="fsdp2", rollout_n=1, ppo_micro_batch_size_per_gpu=4, clip_ratio_low=0.2,
                         clip_ratio_high=0.28, loss_agg_mode="seq-mean-token-mean", policy_loss=policy_loss,
                         model_config={"path": tiny_model_dir})
    calls = []
    real = segmenting.segment_responses  # the one place the loss and the diagnostics segment
    monkeypatch.setattr(segmenting, "segment_responses",
                        lambda *a, **k: calls.append(a[2] if len(a) > 2 else "?") or real(*a, **k))
    _, metrics = losses.ppo_loss(config, nested_log_probs(model, td), td)
    values = {k: v.aggregate() for k, v in metrics.items() if k.startswith("actor/diag/")}
    for g in ("token", "subsentence", "sequence"):
        for stat in ("clipfrac", "seq_all_clipped_frac", "seq_none_clipped_frac", "log_ratio_std"):
            assert f"actor/diag/{g}/{stat}" in values
    assert values["actor/diag/token/clipfrac"] > 0 and values["actor/diag/kl_old_new"] != 0
    own = metrics["actor/pg_clipfrac"].aggregate()
    mine = {"vanilla": "token", "gspo": "sequence", "sspo": "subsentence"}[loss_mode]
    assert values[f"actor/diag/{mine}/clipfrac"] == pytest.approx(own, abs=1e-6)  # like with like
    assert sorted(calls) == ["sequence", "subsentence", "token"]  # each granularity segmented once, SSPO shares


def test_diagnostics_can_be_turned_off(tiny_model_dir, monkeypatch):
    from verl.workers.config import PolicyLossConfig

    model, td = _prepared_microbatch(tiny_model_dir)
    config = ActorConfig(strategy="fsdp2", rollout_n=1, ppo_micro_batch_size_per_gpu=4,
                         policy_loss=PolicyLossConfig(loss_mode="vanilla"), model_config={"path": tiny_model_dir})
    monkeypatch.setenv("SSPO_DIAGNOSTICS", "0")
    _, metrics = losses.ppo_loss(config, nested_log_probs(model, td), td)
    assert not any(k.startswith("actor/diag/") for k in metrics) and "actor/pg_clipfrac" in metrics
