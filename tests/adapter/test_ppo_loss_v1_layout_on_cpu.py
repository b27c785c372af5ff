"""loss_mode=sspo through verl's real ``ppo_loss`` on the V1 trainer's layout, split by verl's own micro-batcher.

The V1 trainer keeps every per-response field in TransferQueue as a jagged (nested) tensor and the actor
worker receives them so: ``prompts``, ``responses``, ``input_ids`` (prompt + response), ``response_mask``
(with multi-turn holes: tool output inside a response is masked), ``old_log_probs``, ``entropy`` (the
sampling policy's, written by ``_compute_old_log_prob``), ``advantages``, ``rollout_is_weights``. Here a batch
of that layout with varied prompt and response lengths is split into data-parallel ranks and, on each rank,
into micro-batches by verl's ``prepare_micro_batches(use_dynamic_bsz=True)`` at several token budgets; each
micro-batch goes through ``ppo_loss`` (the function verl's engine workers call) with log-probs in the FSDP
engine's no-padding layout. With entropy clipping on and ``entropy_source=old``, the total loss and gradient
equal the float64 reference on the whole batch for every split and data-parallel size; with
``entropy_source=current`` they do not (its μ is the micro-batch's, as documented).
"""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.workers.config import ActorConfig
from verl.workers.engine.utils import prepare_micro_batches
from verl.workers.utils import losses

from sspo_verl import SSPOPolicyLossConfig
from sspo_verl.adapter.entropy_reference import ENTROPY_MEAN_KEY
from tests.sspo_reference import ref_segments, ref_sspo_loss

N = 8  # responses in the mini-batch (the whole rollout batch here: one mini-batch)
HOLE_ADVANTAGE = 1e3  # on masked (tool-output) tokens: a masking bug would show at once
HOLE_ENTROPY = 50.0
# token budgets per micro-batch: one micro-batch, a few, as many as the longest sequence allows
TOKEN_BUDGETS = (10_000, 64, 36)
AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


@pytest.fixture(scope="module")
def vocab(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    pieces = [tok.decode([v]) for v in range(len(tok))]
    specials = {i for i, t in tok.added_tokens_decoder.items() if t.special} | set(tok.all_special_ids)
    delimiters = [i for i, p in enumerate(pieces) if p.strip() in {",", ".", ";", "!", "?", "，", "。"}]
    return dict(path=tiny_model_dir, pieces=pieces, specials=specials, delimiters=torch.tensor(delimiters))


def _nested(rows):
    return torch.nested.as_nested_tensor(list(rows), layout=torch.jagged)


def v1_batch(vocab, seed=0):
    """One rollout batch as the V1 actor worker receives it, plus the flat current log-probs (leaf, grad)."""
    g = torch.Generator().manual_seed(seed)
    V = len(vocab["pieces"])
    P = torch.randint(2, 10, (N,), generator=g)  # prompt lengths
    R = torch.randint(3, 25, (N,), generator=g)  # response lengths
    R[N - 1] = 1  # a V1 batch-padding row: one token, fully masked
    prompts, responses, masks, olds, ents, advs, weights = [], [], [], [], [], [], []
    theta = (-torch.rand(int((P + R).sum()), generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), (P + R).cumsum(0)])
    for i in range(N):
        p, r = int(P[i]), int(R[i])
        prompts.append(torch.randint(0, V, (p,), generator=g))
        ids = torch.randint(0, V, (r,), generator=g)
        punct = torch.rand(r, generator=g) < 0.25
        ids = torch.where(punct, vocab["delimiters"][torch.randint(0, len(vocab["delimiters"]), (r,), generator=g)],
                          ids)
        responses.append(ids)
        mask = torch.ones(r, dtype=torch.long)
        if i in (1, 4):  # multi-turn: a tool output in the middle of the response is masked
            mask[r // 3: r // 3 + 4] = 0
        if i == N - 1:
            mask[:] = 0
        masks.append(mask)
        lp = theta.detach()[offsets[i] + p - 1: offsets[i] + p - 1 + r]  # log π(response token t)
        olds.append(lp + 0.3 * torch.randn(r, generator=g, dtype=torch.float64))
        ent = torch.rand(r, generator=g, dtype=torch.float64) * 3
        ents.append(torch.where(mask.bool(), ent, HOLE_ENTROPY))
        adv = torch.randn(1, generator=g, dtype=torch.float64).expand(r)
        advs.append(torch.where(mask.bool(), adv, HOLE_ADVANTAGE))
        weights.append(0.5 + torch.rand(r, generator=g, dtype=torch.float64))
    input_ids = [torch.cat([p, r]) for p, r in zip(prompts, responses)]
    td = TensorDict(
        dict(prompts=_nested(prompts), responses=_nested(responses), input_ids=_nested(input_ids),
             position_ids=_nested([torch.arange(len(x)) for x in input_ids]), response_mask=_nested(masks),
             loss_mask=_nested(masks), old_log_probs=_nested(olds), entropy=_nested(ents),
             advantages=_nested(advs), rollout_is_weights=_nested(weights),
             row=torch.arange(N)),
        batch_size=[N],
    )
    return td, theta, offsets, P, R


def padded(rows, R, fill=0.0):
    T = int(R.max())
    return torch.stack([torch.nn.functional.pad(r, (0, T - len(r)), value=fill) for r in rows])


def reference(vocab, td, theta, offsets, P, R, agg, mu, entropy_source="old", loss_scale_factor=None):
    """Float64 reference loss over the whole batch (one autograd graph on ``theta``) and its gradient."""
    rows = lambda key: [x for x in td[key].unbind()]  # noqa: E731
    lp = padded([theta[offsets[i] + P[i] - 1: offsets[i] + P[i] - 1 + R[i]] for i in range(N)], R)
    mask = padded(rows("response_mask"), R, 0).bool()
    ids = padded(rows("responses"), R, 0).long()
    seg = ref_segments(ids, mask, vocab["pieces"], vocab["specials"], "subsentence")
    n_tok = int(mask.sum())
    loss, metrics, _ = ref_sspo_loss(
        lp, padded(rows("old_log_probs"), R), padded(rows("advantages"), R), mask, seg,
        entropy=padded(rows("entropy"), R), entropy_mean=mu, weights=padded(rows("rollout_is_weights"), R),
        loss_agg_mode=agg, dp_size=1, batch_num_tokens=n_tok, global_batch_size=N,
        loss_scale_factor=loss_scale_factor)
    (grad,) = torch.autograd.grad(loss, theta)
    return loss.detach(), grad, metrics


def actor_config(vocab, agg, entropy_source="old", loss_scale_factor=None):
    return ActorConfig(strategy="fsdp2", rollout_n=1, use_dynamic_bsz=True, ppo_max_token_len_per_gpu=10_000,
                       clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0, loss_agg_mode=agg,
                       loss_scale_factor=loss_scale_factor,
                       policy_loss=SSPOPolicyLossConfig(tokenizer_path=vocab["path"], entropy_source=entropy_source))


def old_entropy_mean(td) -> float:
    """μ written out: the sampling policy's entropy over every valid token of the batch (per-row loops)."""
    total, count = 0.0, 0
    for ent, mask in zip(td["entropy"].unbind(), td["response_mask"].unbind()):
        for h, m in zip(ent.tolist(), mask.tolist()):
            if m:
                total, count = total + h, count + 1
    return total / count


def run_split(config, td, theta, offsets, dp, token_budget, mu=None, current_entropy=None):
    """Σ over ranks and micro-batches of ppo_loss / dp, and the gradient FSDP would average, as verl runs it.

    Ranks get interleaved rows (any partition does); on each, the engine's non-tensor fields are set as
    ``FSDPEngine.forward_backward_batch`` sets them (``batch_num_tokens`` all-reduced over ranks) and verl's
    ``prepare_micro_batches`` forms the micro-batches.
    """
    theta.grad = None
    n_tok = int(td["response_mask"].values().sum())
    total, n_micro = 0.0, []
    for rank in range(dp):
        rank_td = tu.index_select_tensor_dict(td, torch.arange(rank, N, dp))
        tu.assign_non_tensor(rank_td, use_dynamic_bsz=True, max_token_len_per_gpu=token_budget, dp_size=dp,
                             batch_num_tokens=n_tok, global_batch_size=N)
        if mu is not None:
            tu.assign_non_tensor(rank_td, **{ENTROPY_MEAN_KEY: mu})
        micro_batches, _ = prepare_micro_batches(rank_td, dp_group=None)
        n_micro.append(len(micro_batches))
        for mb in micro_batches:
            rows = mb["row"].tolist()
            flat = torch.cat([theta[offsets[i]: offsets[i + 1]] for i in rows])
            mb_offsets = mb["input_ids"].offsets()  # the engine's no-padding layout of this micro-batch
            model_output = {"log_probs": torch.nested.nested_tensor_from_jagged(flat, offsets=mb_offsets)}
            if current_entropy is not None:
                values = torch.cat([current_entropy[offsets[i]: offsets[i + 1]] for i in rows])
                model_output["entropy"] = torch.nested.nested_tensor_from_jagged(values, offsets=mb_offsets)
            loss, metrics = losses.ppo_loss(config, model_output, mb)
            (loss / dp).backward()
            total += float(loss.detach()) / dp
    return total, theta.grad.clone(), n_micro, metrics


@pytest.mark.parametrize("agg", AGG_MODES)
def test_entropy_clipped_loss_is_invariant_to_micro_batch_split_and_dp_size(vocab, agg):
    td, theta, offsets, P, R = v1_batch(vocab)
    lsf = 64 if agg == "seq-mean-token-sum-norm" else None
    mu = old_entropy_mean(td)
    ref_loss, ref_grad, _ = reference(vocab, td, theta, offsets, P, R, agg, mu, loss_scale_factor=lsf)
    config = actor_config(vocab, agg, loss_scale_factor=lsf)
    splits = set()
    for dp in (1, 2):
        for budget in TOKEN_BUDGETS:
            loss, grad, n_micro, metrics = run_split(config, td, theta, offsets, dp, budget, mu=mu)
            splits.add(tuple(n_micro))
            assert loss == pytest.approx(float(ref_loss), rel=1e-9, abs=1e-12), (dp, budget, n_micro)
            torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12, msg=f"dp={dp} budget={budget}")
    assert len(splits) >= 4  # one micro-batch up to several per rank: the splits really differ
    assert "actor/sspo/eps_scale_max" in metrics and metrics["actor/sspo/eps_scale_max"].aggregate() > 1


def test_entropy_source_current_depends_on_the_split(vocab):
    """The documented caveat of ``entropy_source=current``: μ is the micro-batch's, so the split matters."""
    td, theta, offsets, P, R = v1_batch(vocab, seed=1)
    current = torch.rand(theta.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 3
    config = actor_config(vocab, "token-mean", entropy_source="current")
    one, _, n_one, _ = run_split(config, td, theta, offsets, 1, 10_000, current_entropy=current)
    many, _, n_many, _ = run_split(config, td, theta, offsets, 2, 36, current_entropy=current)
    assert n_one == [1] and sum(n_many) > 2
    assert abs(one - many) > 1e-6
    # with one micro-batch it is the reference with the current entropy and that micro-batch's μ
    cur_rows = [current[offsets[i] + P[i] - 1: offsets[i] + P[i] - 1 + R[i]] for i in range(N)]
    td_cur = td.clone()
    td_cur["entropy"] = _nested(cur_rows)
    ref_loss, _, _ = reference(vocab, td_cur, theta, offsets, P, R, "token-mean", old_entropy_mean(td_cur))
    assert one == pytest.approx(float(ref_loss), rel=1e-9)


def test_old_entropy_without_the_batch_mean_fails_with_the_fix(vocab):
    td, theta, offsets, *_ = v1_batch(vocab)
    config = actor_config(vocab, "token-mean")
    with pytest.raises(RuntimeError, match=ENTROPY_MEAN_KEY):
        run_split(config, td, theta, offsets, 1, 10_000, mu=None)


def test_old_entropy_missing_from_the_batch_fails_with_the_fix(vocab):
    """rollout_correction.bypass_mode skips the old-log-prob pass, so verl stores no ``entropy``."""
    td, theta, offsets, *_ = v1_batch(vocab)
    del td["entropy"]
    config = actor_config(vocab, "token-mean")
    with pytest.raises(RuntimeError, match="entropy_source=current"):
        run_split(config, td, theta, offsets, 1, 10_000, mu=1.0)
