"""loss_mode=sspo through verl's registry and agg_loss: the reference, verl's vanilla/gspo, invariances."""

import math
import os

import pytest
import torch
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.workers.config import ActorConfig, PolicyLossConfig

from sspo_verl import SSPOPolicyLossConfig
from tests.sspo_reference import ref_segments, ref_sspo_loss

AGG_MODES = ["token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
sspo_loss = get_policy_loss_fn("sspo")


@pytest.fixture(scope="module")
def vocab(tiny_model_dir):
    """Pieces and special ids of the tiny tokenizer, and ids biased towards punctuation and digits."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    pieces = [tok.decode([v]) for v in range(len(tok))]
    specials = {i for i, t in tok.added_tokens_decoder.items() if t.special} | set(tok.all_special_ids)
    interesting = [i for i, p in enumerate(pieces) if p.strip() in {",", ".", ";", "!", "?", "，", "。"}
                   or p[:1].isdigit() or "\n" in p] + sorted(specials)
    return dict(path=tiny_model_dir, pieces=pieces, specials=specials, interesting=torch.tensor(interesting))


def actor_config(tokenizer_path, loss_mode="sspo", clip_low=0.2, clip_high=0.28, clip_c=3.0,
                 loss_agg_mode="token-mean", **sspo_fields):
    policy_loss = (SSPOPolicyLossConfig(tokenizer_path=tokenizer_path, **sspo_fields) if loss_mode == "sspo"
                   else PolicyLossConfig(loss_mode=loss_mode))
    return ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, clip_ratio=0.2,
                       clip_ratio_low=clip_low, clip_ratio_high=clip_high, clip_ratio_c=clip_c,
                       loss_agg_mode=loss_agg_mode, policy_loss=policy_loss)


def make_batch(vocab, seed, B=None, T=None, scale=0.3, holes=False):
    g = torch.Generator().manual_seed(seed)
    B = B or int(torch.randint(1, 7, (1,), generator=g))
    T = T or int(torch.randint(2, 20, (1,), generator=g))
    V = len(vocab["pieces"])
    rand_ids = torch.randint(0, V + 3, (B, T), generator=g)
    pick = vocab["interesting"][torch.randint(0, len(vocab["interesting"]), (B, T), generator=g)]
    ids = torch.where(torch.rand(B, T, generator=g) < 0.4, pick, rand_ids)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = torch.arange(T)[None] < lengths[:, None]
    if holes:
        mask &= torch.rand(B, T, generator=g) > 0.2
        mask[:, 0] = True
    lp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 2
    old = lp + scale * torch.randn(B, T, generator=g, dtype=torch.float64)
    adv = torch.randn(B, 1, generator=g, dtype=torch.float64).expand(B, T).clone()
    ent = torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    return dict(ids=ids, mask=mask, lp=lp, old=old, adv=adv, ent=ent)


def call(config, b, lp=None, **kw):
    lp = b["lp"].clone().requires_grad_(True) if lp is None else lp
    loss, metrics = sspo_loss(old_log_prob=b["old"], log_prob=lp, advantages=b["adv"], response_mask=b["mask"],
                              loss_agg_mode=config.loss_agg_mode, config=config, rollout_is_weights=kw.get("w"),
                              response_ids=b["ids"], entropy=kw.get("entropy", b["ent"]))
    loss.backward()
    return loss.detach(), lp.grad, metrics


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("granularity", ["subsentence", "sentence", "sequence", "token"])
def test_full_loss_matches_reference(vocab, agg, granularity):
    for seed in range(4):
        ratio_grad = ["token", "segment"][seed % 2]
        entropy_clip = seed % 4 < 2
        b = make_batch(vocab, seed, holes=seed == 3)
        w = 0.5 + torch.rand(b["mask"].shape, dtype=torch.float64) if seed == 2 else None
        cfg = actor_config(vocab["path"], loss_agg_mode=agg, granularity=granularity, ratio_grad=ratio_grad,
                           entropy_clip=entropy_clip)
        loss, grad, metrics = call(cfg, b, w=w)
        seg = ref_segments(b["ids"], b["mask"], vocab["pieces"], vocab["specials"], granularity)
        lp = b["lp"].clone().requires_grad_(True)
        ref_loss, ref_metrics, _ = ref_sspo_loss(lp, b["old"], b["adv"], b["mask"], seg, ratio_grad=ratio_grad,
                                                 entropy=b["ent"] if entropy_clip else None, weights=w,
                                                 loss_agg_mode=agg)
        ref_loss.backward()
        torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(grad, lp.grad, rtol=1e-9, atol=1e-12)
        for k, v in ref_metrics.items():
            key = f"actor/{k}" if k in ("pg_clipfrac", "pg_clipfrac_lower", "ppo_kl") else f"actor/sspo/{k}"
            assert math.isclose(metrics[key], v, rel_tol=1e-5, abs_tol=1e-6), (key, metrics[key], v)


def _verl_loss(mode, config, b, w=None):
    lp = b["lp"].clone().requires_grad_(True)
    loss, metrics = get_policy_loss_fn(mode)(old_log_prob=b["old"], log_prob=lp, advantages=b["adv"],
                                             response_mask=b["mask"], loss_agg_mode=config.loss_agg_mode,
                                             config=config, rollout_is_weights=w)
    loss.backward()
    return loss.detach(), lp.grad, metrics


@pytest.mark.parametrize("agg", AGG_MODES)
def test_token_granularity_equals_verl_vanilla(vocab, agg):
    for seed in range(8):
        b = make_batch(vocab, seed, scale=0.6)
        w = 0.5 + torch.rand(b["mask"].shape, dtype=torch.float64) if seed % 2 else None
        ours = call(actor_config(vocab["path"], loss_agg_mode=agg, granularity="token", entropy_clip=False), b, w=w)
        ref = _verl_loss("vanilla", actor_config(vocab["path"], loss_mode="vanilla", loss_agg_mode=agg), b, w=w)
        torch.testing.assert_close(ours[0], ref[0], rtol=1e-12, atol=0)
        torch.testing.assert_close(ours[1], ref[1], rtol=1e-12, atol=0)
        for k in ("actor/pg_clipfrac", "actor/pg_clipfrac_lower", "actor/ppo_kl"):
            assert math.isclose(ours[2][k], ref[2][k], rel_tol=1e-6, abs_tol=1e-7), k
        assert ours[2]["actor/sspo/segment_len_max"] == 1


@pytest.mark.parametrize("agg", AGG_MODES)
def test_sequence_granularity_equals_verl_gspo(vocab, agg):
    for seed in range(8):
        b = make_batch(vocab, seed, scale=0.6)
        w = 0.5 + torch.rand(b["mask"].shape, dtype=torch.float64) if seed % 2 else None
        # verl's gspo has no dual clip: compare with the dual clip out of reach (c = 1e9)
        ours = call(actor_config(vocab["path"], loss_agg_mode=agg, clip_c=1e9, granularity="sequence",
                                 entropy_clip=False), b, w=w)
        ref = _verl_loss("gspo", actor_config(vocab["path"], loss_mode="gspo", loss_agg_mode=agg), b, w=w)
        torch.testing.assert_close(ours[0], ref[0], rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(ours[1], ref[1], rtol=1e-12, atol=1e-15)
        for k in ("actor/pg_clipfrac", "actor/ppo_kl"):
            assert math.isclose(ours[2][k], ref[2][k], rel_tol=1e-6, abs_tol=1e-7), k
        assert ours[2]["actor/sspo/segments_per_seq"] == 1


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("granularity", ["subsentence", "token", "sequence"])
def test_invariant_to_micro_batch_split_and_data_parallel_size(vocab, agg, granularity):
    """Σ_ranks Σ_micro loss / dp (FSDP averages gradients over ranks) equals the one-batch loss."""
    b = make_batch(vocab, 7, B=8, T=12, holes=True)
    cfg = actor_config(vocab["path"], loss_agg_mode=agg, granularity=granularity, entropy_clip=False)
    full_loss, full_grad, _ = call(cfg, b)
    n_tokens, n_seqs = int(b["mask"].sum()), int((b["mask"].sum(-1) > 0).sum())
    for dp, micro in ((1, 4), (2, 2), (4, 1), (2, 1)):
        lp = b["lp"].clone().requires_grad_(True)
        total = 0.0
        rows_per_rank = 8 // dp
        for rank in range(dp):
            for chunk in torch.arange(rank * rows_per_rank, (rank + 1) * rows_per_rank).chunk(micro):
                cfg_r = actor_config(vocab["path"], loss_agg_mode=agg, granularity=granularity, entropy_clip=False)
                cfg_r.global_batch_info.update(dp_size=dp, batch_num_tokens=n_tokens, global_batch_size=n_seqs)
                sub = {k: v[chunk] for k, v in b.items()}
                loss, _ = sspo_loss(old_log_prob=sub["old"], log_prob=lp[chunk], advantages=sub["adv"],
                                    response_mask=sub["mask"], loss_agg_mode=agg, config=cfg_r,
                                    response_ids=sub["ids"], entropy=None)
                (loss / dp).backward()
                total += float(loss.detach()) / dp
        assert math.isclose(total, float(full_loss), rel_tol=1e-10, abs_tol=1e-12), (dp, micro)
        torch.testing.assert_close(lp.grad, full_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("agg", AGG_MODES)
def test_padding_invariance_with_nan_and_inf_in_padding(vocab, agg):
    b = make_batch(vocab, 3, B=4, T=10)
    extra = 7
    pad = lambda x, v: torch.cat([x, torch.full((x.shape[0], extra), v, dtype=x.dtype)], dim=1)  # noqa: E731
    wide = dict(ids=pad(b["ids"], 0), mask=pad(b["mask"], False), lp=pad(b["lp"], float("nan")),
                old=pad(b["old"], float("inf")), adv=pad(b["adv"], float("nan")), ent=pad(b["ent"], float("inf")))
    # seq-mean-token-sum-norm divides by the padded width unless loss_scale_factor fixes it (verl semantics)
    for entropy_clip in (False, True):
        cfg = actor_config(vocab["path"], loss_agg_mode=agg, entropy_clip=entropy_clip)
        cfg_wide = actor_config(vocab["path"], loss_agg_mode=agg, entropy_clip=entropy_clip)
        if agg == "seq-mean-token-sum-norm":
            cfg.global_batch_info["loss_scale_factor"] = cfg_wide.global_batch_info["loss_scale_factor"] = 64
        loss, grad, metrics = call(cfg, b)
        loss_w, grad_w, metrics_w = call(cfg_wide, wide)
        torch.testing.assert_close(loss_w, loss, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grad_w[:, :10], grad, rtol=1e-12, atol=1e-14)
        assert (grad_w[:, 10:] == 0).all()
        assert metrics_w == pytest.approx(metrics, rel=1e-9, abs=1e-12)


def test_response_without_delimiter_is_one_segment(vocab):
    tok_ids = [i for i, p in enumerate(vocab["pieces"]) if p.strip().isalpha() and i not in vocab["specials"]][:9]
    b = make_batch(vocab, 0, B=1, T=9)
    b["ids"] = torch.tensor([tok_ids])
    b["mask"] = torch.ones(1, 9, dtype=torch.bool)
    _, _, metrics = call(actor_config(vocab["path"]), b)
    assert metrics["actor/sspo/segments_per_seq"] == 1 and metrics["actor/sspo/segment_len_max"] == 9


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("agg", AGG_MODES)
def test_log_ratios_of_1e4_give_finite_loss_and_gradient(vocab, sign, agg):
    b = make_batch(vocab, 5, B=4, T=12)
    b["old"] = b["lp"] - sign * 1e4
    for dtype in (torch.float32, torch.float64):
        bb = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in b.items()}
        for ratio_grad in ("token", "segment"):
            loss, grad, metrics = call(actor_config(vocab["path"], loss_agg_mode=agg, ratio_grad=ratio_grad), bb)
            assert torch.isfinite(loss) and torch.isfinite(grad).all()
            assert all(math.isfinite(v) for v in metrics.values())


def test_errors_say_how_to_fix(vocab):
    b = make_batch(vocab, 0)
    lp = b["lp"].clone().requires_grad_(True)
    kwargs = dict(old_log_prob=b["old"], log_prob=lp, advantages=b["adv"], response_mask=b["mask"],
                  loss_agg_mode="token-mean")
    # no micro-batch context and no explicit ids: the plugin is not active
    with pytest.raises(RuntimeError, match="micro-batch context"):
        sspo_loss(config=actor_config(vocab["path"]), **kwargs)
    # entropy clipping with no entropy anywhere
    with pytest.raises(ValueError, match="entropy_clip=false"):
        sspo_loss(config=actor_config(vocab["path"]), response_ids=b["ids"], **kwargs)
    # loss_mode=sspo with verl's plain PolicyLossConfig: points at the _target_
    with pytest.raises(TypeError, match="_target_=sspo_verl.SSPOPolicyLossConfig"):
        sspo_loss(config=actor_config(vocab["path"], loss_mode="vanilla"), response_ids=b["ids"], **kwargs)
    # the dual-clip constant must be > 1, as in verl's vanilla
    with pytest.raises(ValueError, match="clip_ratio_c"):
        sspo_loss(config=actor_config(vocab["path"], clip_c=0.5), response_ids=b["ids"], entropy=b["ent"], **kwargs)
    # mismatched ids
    with pytest.raises(ValueError, match="do not match"):
        sspo_loss(config=actor_config(vocab["path"]), response_ids=b["ids"][:, :1], entropy=b["ent"], **kwargs)


def test_tokenizer_path_defaults_to_the_actor_model(vocab):
    from verl.workers.utils.losses import ppo_loss  # noqa: F401  (the actor config's model_config is a mapping)

    b = make_batch(vocab, 1)
    explicit = call(actor_config(vocab["path"]), b)
    cfg = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, clip_ratio_low=0.2,
                      clip_ratio_high=0.28, policy_loss=SSPOPolicyLossConfig(tokenizer_path=None),
                      model_config={"path": vocab["path"]})
    implicit = call(cfg, b)
    torch.testing.assert_close(implicit[0], explicit[0])
    cfg_none = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1,
                           policy_loss=SSPOPolicyLossConfig(tokenizer_path=None))
    with pytest.raises(ValueError, match="tokenizer_path"):
        call(cfg_none, b)
    # token / sequence granularity need no tokenizer at all
    cfg_seq = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1,
                          policy_loss=SSPOPolicyLossConfig(tokenizer_path=None, granularity="sequence"))
    assert torch.isfinite(call(cfg_seq, b)[0])


def _remote_code_tokenizer(src, dst):
    """The tiny tokenizer behind a remote-code class whose pieces all end with ',' (a boundary everywhere)."""
    import json
    import shutil

    shutil.copytree(src, dst)
    path = os.path.join(dst, "tokenizer_config.json")
    with open(path, encoding="utf-8") as fh:
        cfg = json.load(fh)
    cfg.update(auto_map={"AutoTokenizer": [None, "tokenization_probe.ProbeTokenizerFast"]},
               tokenizer_class="ProbeTokenizerFast")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(cfg, fh)
    with open(os.path.join(dst, "tokenization_probe.py"), "w", encoding="utf-8") as fh:
        fh.write("from transformers import PreTrainedTokenizerFast\n\n\n"
                 "class ProbeTokenizerFast(PreTrainedTokenizerFast):\n"
                 "    def _decode(self, *args, **kwargs):\n"
                 "        return super()._decode(*args, **kwargs) + ','\n")
    return dst


@pytest.mark.parametrize("trust_remote_code", [False, True])
def test_the_worker_segments_with_the_tokenizer_verls_actor_loaded(vocab, tmp_path, trust_remote_code):
    """No tokenizer_path: verl's own HFModelConfig of the actor decides the tokenizer (its local copy, its
    trust_remote_code), as in the worker; a remote-code tokenizer is used only when verl's actor uses it."""
    from verl.workers.config import HFModelConfig

    model_dir = _remote_code_tokenizer(vocab["path"], os.fspath(tmp_path / "model"))
    model_config = HFModelConfig(path=model_dir, trust_remote_code=trust_remote_code)
    assert (type(model_config.tokenizer).__name__ == "ProbeTokenizerFast") is trust_remote_code
    cfg = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, clip_ratio_low=0.2,
                      clip_ratio_high=0.28, policy_loss=SSPOPolicyLossConfig(tokenizer_path=None),
                      model_config=model_config)
    b = make_batch(vocab, 4, B=3, T=12)
    b["ids"] = torch.randint(3, 200, b["ids"].shape, generator=torch.Generator().manual_seed(0))  # no specials
    _, _, metrics = call(cfg, b)
    one_per_token = metrics["actor/sspo/segment_len_max"] == 1
    assert one_per_token is trust_remote_code  # the remote class's pieces all end a subsentence


def test_metric_values_do_not_need_per_metric_syncs(vocab, monkeypatch):
    """All diagnostics leave the device in one .tolist(): no per-metric .item()."""
    calls = []
    orig_item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: calls.append(1) or orig_item(self))
    call(actor_config(vocab["path"]), make_batch(vocab, 2))
    assert calls == []
