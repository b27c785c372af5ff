"""SSPO through verl's real ``ppo_loss`` with bf16 log-probs (a bf16 engine's) against the float64 reference.

The tiny Qwen2 runs under ``torch.autocast("cpu", dtype=torch.bfloat16)`` and verl's own
``logprobs_from_logits`` turns its bf16 logits into bf16 log-probs, as verl's FSDP engine does without
flash-attn's cross-entropy; old log-probs, advantages and entropy are float32, as the trainer stores them.

What is compared, and why these tolerances:

* The bf16 run equals, bit for bit, the same call with the same values as float32: SSPO upcasts bf16 to
  float32 exactly and computes everything there, so the only bf16 step left is autograd casting the gradient
  back to the bf16 leaf (``grad_bf16 == grad_fp32.to(bf16)``). This is the gradient the engine's backward
  continues with, and its one rounding (2^-9 relative) belongs to the bf16 engine, not to SSPO.
* "The gradient" compared with the reference is therefore the one w.r.t. the float32 upcast (the float32 run's
  leaf): float32 arithmetic on the same bf16-rounded inputs. Log-probs here are O(1..10), so ℓ = log π − log
  π_old carries an absolute error of a few float32 ulps of |log π| (~1e-6); segment means, exp and the
  aggregation keep that relative to the loss. Measured: loss 5e-7, gradient 8e-8 relative. rtol 2e-5 leaves
  ~40x margin and is ~60x below the 1.3e-3 (and up to 1.8e-2) the former down-cast of old log-probs and
  advantages to bf16 produced on these inputs, so the test fails on that code (checked: all four tests did).
* Token granularity with the entropy clip off equals verl's ``vanilla`` (GRPO's loss) on the same bf16 inputs:
  verl promotes bf16 − float32 to float32 too, so the two agree to float32 rounding.
"""

import pytest
import torch
from verl.utils import tensordict_utils as tu
from verl.utils.torch_functional import logprobs_from_logits
from verl.workers.config import ActorConfig, PolicyLossConfig
from verl.workers.utils import losses
from verl.workers.utils.padding import left_right_2_no_padding, no_padding_2_padding

from sspo_verl import SSPOPolicyLossConfig
from sspo_verl.adapter.entropy_reference import ENTROPY_MEAN_KEY
from tests.adapter.test_policy_loss_on_cpu import vocab  # noqa: F401  (module fixture: the tokenizer's pieces)
from tests.adapter.test_ppo_loss_on_cpu import build_microbatch
from tests.sspo_reference import ref_segments, ref_sspo_loss

LOSS_RTOL, LOSS_ATOL = 2e-5, 1e-7
GRAD_RTOL, GRAD_ATOL = 2e-5, 1e-8  # per-token gradients are O(|A| / tokens) ~ 1e-2; atol covers exact zeros
GRANULARITY_CASES = [("subsentence", "token"), ("subsentence", "segment"), ("sequence", "token")]


def bf16_microbatch(model_dir, seed=0, device="cpu"):
    """verl's no-padding micro-batch, bf16 log-probs from the model under bf16 autocast on ``device`` (flat,
    jagged offsets), and float32 off-policy old log-probs / entropy / μ attached as the V1 trainer does."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).to(device)
    td = left_right_2_no_padding(build_microbatch(tok, [1.0, -1.0, 1.0, -1.0]))
    ids = td["input_ids"]
    lps, ents = [], []
    with torch.no_grad(), torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        for seq in ids.unbind():
            seq = seq.to(device)
            logits = model(input_ids=seq[None]).logits[0]  # (L, V) bf16 under autocast
            assert logits.dtype == torch.bfloat16
            lp = logprobs_from_logits(logits[:-1], seq[1:])  # verl's own, bf16 in -> bf16 out
            lps.append(torch.cat([lp, lp.new_zeros(1)]).cpu())
            p = torch.softmax(logits.float(), -1)
            ents.append(-(p * torch.log(p.clamp_min(1e-30))).sum(-1).cpu())
    flat = torch.cat(lps)  # (Σ L,) bf16
    assert flat.dtype == torch.bfloat16
    offsets = ids.offsets()
    padded = no_padding_2_padding(torch.nested.nested_tensor_from_jagged(flat.float(), offsets=offsets), td)
    g = torch.Generator().manual_seed(seed)
    # an off-policy old policy in float32 (not bf16-rounded): per-token noise, and responses 0 (A > 0) and 1
    # (A < 0) moved by 0.35 in log-ratio, beyond the clip range [0.8, 1.28], so the clip bites at every granularity
    shift = torch.tensor([-0.35, 0.35, 0.0, 0.0])[:, None]  # log π_old − log π: r = e^0.35 = 1.42 / e^−0.35 = 0.70
    td["old_log_probs"] = padded + 0.4 * torch.randn(padded.shape, generator=g) + shift
    td["entropy"] = no_padding_2_padding(torch.nested.nested_tensor_from_jagged(torch.cat(ents), offsets=offsets), td)
    mask = td["response_mask"].bool()
    n_tokens = int(mask.sum())
    mu = float((td["entropy"] * mask).sum() / n_tokens)
    tu.assign_non_tensor(td, dp_size=1, batch_num_tokens=n_tokens, global_batch_size=4, **{ENTROPY_MEAN_KEY: mu})
    return td.to(device), flat.to(device), offsets.to(device), mu


def run_ppo_loss(config, td, flat, offsets):
    """verl's ``ppo_loss`` under bf16 autocast on log-probs ``flat`` (a fresh leaf of its dtype, on its device):
    (loss, d loss / d leaf in the no-padding layout, metrics as floats)."""
    leaf = flat.detach().clone().requires_grad_(True)
    with torch.autocast(leaf.device.type, dtype=torch.bfloat16):
        log_probs = torch.nested.nested_tensor_from_jagged(leaf, offsets=offsets)
        loss, metrics = losses.ppo_loss(config, {"log_probs": log_probs}, td)
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad, {k: v.aggregate() if hasattr(v, "aggregate") else v for k, v in metrics.items()}


def sspo_config(tokenizer_path, **fields):
    return ActorConfig(strategy="fsdp2", rollout_n=1, ppo_micro_batch_size_per_gpu=4, clip_ratio_low=0.2,
                       clip_ratio_high=0.28, loss_agg_mode="seq-mean-token-mean",
                       policy_loss=SSPOPolicyLossConfig(tokenizer_path=tokenizer_path, **fields))


def bf16_against_reference(vocab, granularity, ratio_grad, device="cpu"):
    """Asserts the module docstring's claims on ``device`` and returns the measured relative errors.

    On CUDA, segment sums are float32 atomics (their order varies), so "bit for bit" becomes 1e-6 relative there.
    """
    td, flat, offsets, mu = bf16_microbatch(vocab["path"], device=device)
    config = sspo_config(vocab["path"], granularity=granularity, ratio_grad=ratio_grad, entropy_source="old")
    loss_bf16, grad_bf16, metrics_bf16 = run_ppo_loss(config, td, flat, offsets)
    loss_fp32, grad_fp32, metrics_fp32 = run_ppo_loss(config, td, flat.float(), offsets)

    # bf16 in = the same values in float32: SSPO's arithmetic never ran in bf16
    exact = dict(rtol=0, atol=0) if device == "cpu" else dict(rtol=1e-6, atol=1e-9)
    assert loss_bf16.dtype == torch.float32 and grad_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(loss_bf16, loss_fp32, **exact)
    if device == "cpu":
        assert torch.equal(grad_bf16, grad_fp32.to(torch.bfloat16))  # the engine's one rounding, at the leaf
    else:  # one bf16 rounding of nearly equal float32 values: at most one bf16 ulp apart
        torch.testing.assert_close(grad_bf16.float(), grad_fp32.to(torch.bfloat16).float(), rtol=2**-7, atol=1e-12)
    for k in ("actor/ppo_kl", "actor/pg_clipfrac", "actor/sspo/ratio_max", "actor/diag/kl_old_new",
              "actor/diag/subsentence/clipfrac"):
        if k in metrics_fp32:
            assert metrics_bf16[k] == pytest.approx(metrics_fp32[k], rel=exact["rtol"], abs=exact["atol"]), k

    # float64 reference on the same bf16-rounded inputs, on the CPU
    td, flat, offsets, grad_fp32 = td.cpu(), flat.cpu(), offsets.cpu(), grad_fp32.cpu()
    mask = td["response_mask"].bool()
    lp64 = no_padding_2_padding(torch.nested.nested_tensor_from_jagged(flat.double(), offsets=offsets), td)
    lp64 = lp64.detach().requires_grad_(True)
    seg = ref_segments(td["responses"], mask, vocab["pieces"], vocab["specials"], granularity)
    ref_loss, ref_metrics, _ = ref_sspo_loss(
        lp64, td["old_log_probs"].double(), td["advantages"].double(), mask, seg, clip_low=0.2, clip_high=0.28,
        clip_c=3.0, ratio_grad=ratio_grad, entropy=td["entropy"].double(), entropy_mean=mu,
        loss_agg_mode="seq-mean-token-mean", global_batch_size=4, batch_num_tokens=int(mask.sum()))
    (ref_grad,) = torch.autograd.grad(ref_loss, lp64)
    grad_padded = no_padding_2_padding(torch.nested.nested_tensor_from_jagged(grad_fp32, offsets=offsets), td)
    assert float(ref_metrics["pg_clipfrac"]) > 0  # clipping happens: the test covers the clipped branches
    torch.testing.assert_close(loss_fp32.double().cpu(), ref_loss.detach(), rtol=LOSS_RTOL, atol=LOSS_ATOL)
    got_grad, want_grad = (grad_padded * mask).double(), ref_grad * mask
    torch.testing.assert_close(got_grad, want_grad, rtol=GRAD_RTOL, atol=GRAD_ATOL)
    for k in ("pg_clipfrac", "ppo_kl"):
        assert metrics_bf16[f"actor/{k}"] == pytest.approx(ref_metrics[k], rel=1e-5, abs=1e-7), k
    nonzero = want_grad != 0
    return {"loss_rel_err": abs(float(loss_bf16) - float(ref_loss)) / abs(float(ref_loss)),
            "grad_max_rel_err": float(((got_grad - want_grad).abs()[nonzero] / want_grad.abs()[nonzero]).max()),
            "pg_clipfrac": float(ref_metrics["pg_clipfrac"])}


def bf16_token_granularity_equals_vanilla(vocab, device="cpu"):
    td, flat, offsets, _ = bf16_microbatch(vocab["path"], device=device)
    sspo = run_ppo_loss(sspo_config(vocab["path"], granularity="token", entropy_clip=False), td, flat, offsets)
    vanilla_cfg = ActorConfig(strategy="fsdp2", rollout_n=1, ppo_micro_batch_size_per_gpu=4, clip_ratio_low=0.2,
                              clip_ratio_high=0.28, loss_agg_mode="seq-mean-token-mean",
                              policy_loss=PolicyLossConfig(loss_mode="vanilla"))
    vanilla = run_ppo_loss(vanilla_cfg, td, flat, offsets)
    torch.testing.assert_close(sspo[0], vanilla[0], rtol=1e-6, atol=1e-8)
    # the same bf16 gradient (on CUDA: within one bf16 rounding of float32 sums taken in another order)
    tol = dict(rtol=0, atol=0) if device == "cpu" else dict(rtol=2**-7, atol=1e-12)
    torch.testing.assert_close(sspo[1].float(), vanilla[1].float(), **tol)
    assert sspo[2]["actor/pg_clipfrac"] == pytest.approx(vanilla[2]["actor/pg_clipfrac"], abs=1e-7)
    return {"loss_rel_diff": abs(float(sspo[0]) - float(vanilla[0])) / abs(float(vanilla[0]))}


@pytest.mark.parametrize("granularity,ratio_grad", GRANULARITY_CASES)
def test_bf16_log_probs_give_the_float64_reference_loss_and_gradient(vocab, granularity, ratio_grad):  # noqa: F811
    bf16_against_reference(vocab, granularity, ratio_grad)


def test_bf16_token_granularity_equals_verl_vanilla(vocab):  # noqa: F811
    """GRPO's loss (verl vanilla) and SSPO at token granularity, entropy clip off, on the same bf16 inputs."""
    bf16_token_granularity_equals_vanilla(vocab)
