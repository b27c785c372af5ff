"""SSPO loss matrix and metrics (spec §4–§7): the slow reference, hand-worked regimes, numerics."""

import math

import pytest
import torch

from sspo_verl.core.loss import SSPO_METRIC_NAMES, SSPOParams, sspo_loss_matrix, sspo_metrics
from sspo_verl.core.segmentation import (
    DEFAULT_DELIMITERS,
    GRANULARITIES,
    build_boundary_table,
    delimiters_for,
    segment_responses,
)
from tests.conftest import SYNTH_PIECES, SYNTH_SPECIALS, random_batch
from tests.sspo_reference import ref_segments, ref_sspo_loss

P = {piece: i for i, piece in enumerate(SYNTH_PIECES)}


def _segments(ids, mask, granularity="subsentence", numeric_guard=True):
    table = (
        build_boundary_table(SYNTH_PIECES, delimiters_for(granularity, DEFAULT_DELIMITERS), SYNTH_SPECIALS)
        if granularity in ("subsentence", "sentence")
        else None
    )
    return segment_responses(ids, mask, granularity, table, numeric_guard)


def _metrics(stats):
    return {k: float(v) for k, v in sspo_metrics(stats).items()}


CASES = [
    # (granularity, ratio_grad, entropy_clip, adapt)
    (g, rg, ec, ad)
    for g in GRANULARITIES
    for rg in ("token", "segment")
    for ec, ad in ((False, "both"), (True, "both"), (True, "high"), (True, "low"), (True, "none"))
]


@pytest.mark.parametrize("granularity,ratio_grad,entropy_clip,adapt", CASES)
def test_loss_matrix_values_gradients_and_metrics_match_reference(granularity, ratio_grad, entropy_clip, adapt):
    params = SSPOParams(clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0, ratio_grad=ratio_grad,
                        entropy_clip=entropy_clip, entropy_alpha=1.3, entropy_scale_min=0.5,
                        entropy_scale_max=2.0, entropy_adapt=adapt)
    for seed in range(6):
        b = random_batch(seed, holes=seed % 2 == 1)
        seg = _segments(b["ids"], b["mask"], granularity)
        use_w = seed % 3 == 0
        mat, stats = sspo_loss_matrix(b["log_prob"], b["old_log_prob"], b["advantages"], seg, params,
                                      entropy=b["entropy"] if entropy_clip else None,
                                      rollout_is_weights=b["weights"] if use_w else None)
        (grad,) = torch.autograd.grad((mat * torch.linspace(0.5, 1.5, mat.numel()).view_as(mat).double()).sum(),
                                      b["log_prob"])

        lp_ref = b["log_prob"].detach().clone().requires_grad_(True)
        ref_seg = ref_segments(b["ids"], b["mask"], SYNTH_PIECES, set(SYNTH_SPECIALS), granularity)
        _, ref_metrics, ref_mat = ref_sspo_loss(
            lp_ref, b["old_log_prob"], b["advantages"], b["mask"], ref_seg, clip_low=0.2, clip_high=0.28,
            clip_c=3.0, ratio_grad=ratio_grad, entropy=b["entropy"] if entropy_clip else None, alpha=1.3,
            adapt=adapt, weights=b["weights"] if use_w else None,
        )
        (ref_grad,) = torch.autograd.grad(
            (ref_mat * torch.linspace(0.5, 1.5, ref_mat.numel()).view_as(ref_mat).double()).sum(), lp_ref
        )
        torch.testing.assert_close(mat, ref_mat, rtol=1e-10, atol=1e-12, msg=f"seed {seed}")
        torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12, msg=f"seed {seed}")
        got = _metrics(stats)
        assert set(got) == set(ref_metrics) and set(SSPO_METRIC_NAMES) <= set(got)
        for k in ref_metrics:
            assert math.isclose(got[k], ref_metrics[k], rel_tol=1e-5, abs_tol=1e-6), (k, seed, got[k], ref_metrics[k])


def _one_segment(n=3):
    """One response of n tokens with no delimiter: a single segment."""
    ids = torch.tensor([[P["x"]] * n])
    return ids, torch.ones_like(ids, dtype=torch.bool)


def _run(log_ratio, adv, entropy=None, params=None, n=3):
    ids, mask = _one_segment(n)
    log_prob = torch.full((1, n), -1.0, dtype=torch.float64, requires_grad=True)
    old = log_prob.detach() - torch.tensor(log_ratio, dtype=torch.float64).view(1, n)
    seg = _segments(ids, mask)
    params = params or SSPOParams(entropy_clip=entropy is not None)
    mat, stats = sspo_loss_matrix(log_prob, old, torch.full((1, n), adv, dtype=torch.float64), seg, params,
                                  entropy=entropy)
    mat.sum().backward()
    return mat, log_prob.grad, _metrics(stats)


def test_in_band():
    # ℓ = (0.1, 0.0, -0.1): m = 0, r = 1 for every token; A = 2 -> pg = -A·r = -2; 1 ∈ [0.8, 1.28]: no clip
    mat, grad, m = _run([0.1, 0.0, -0.1], adv=2.0)
    torch.testing.assert_close(mat, torch.full((1, 3), -2.0, dtype=torch.float64))
    # token gradient form: d(-A·r)/d log π_t = -A·r = -2 per token
    torch.testing.assert_close(grad, torch.full((1, 3), -2.0, dtype=torch.float64))
    assert m["pg_clipfrac"] == 0 and m["seq_none_clipped_frac"] == 1 and m["segments_per_seq"] == 1


def test_clipped_high():
    # ℓ = (0.5, 0.5, 0.2): m = 0.4, r = e^0.4 = 1.4918 > 1.28; A = 1 > 0
    # pg1 = -1.4918, pg2 = -1.28 -> max = -1.28, constant in θ: zero gradient
    mat, grad, m = _run([0.5, 0.5, 0.2], adv=1.0)
    torch.testing.assert_close(mat, torch.full((1, 3), -1.28, dtype=torch.float64))
    assert torch.count_nonzero(grad) == 0
    assert m["clipfrac_high"] == 1 and m["clipfrac_low"] == 0 and m["seq_all_clipped_frac"] == 1
    assert math.isclose(m["ratio_max"], math.exp(0.4), rel_tol=1e-6)


def test_clipped_low():
    # ℓ = (-0.4, -0.3, -0.2): m = -0.3, r = e^-0.3 = 0.7408 < 0.8; A = -1 < 0
    # pg1 = 0.7408, pg2 = 0.8 -> max = 0.8, constant: zero gradient
    mat, grad, m = _run([-0.4, -0.3, -0.2], adv=-1.0)
    torch.testing.assert_close(mat, torch.full((1, 3), 0.8, dtype=torch.float64))
    assert torch.count_nonzero(grad) == 0
    assert m["clipfrac_low"] == 1 and m["clipfrac_high"] == 0 and m["segment_clipfrac"] == 1


def test_dual_clip():
    # ℓ = 1.5 everywhere: r = e^1.5 = 4.4817 > c = 3; A = -1: pg1 = 4.48, pg2 = 0.8, max = 4.48, min(4.48, 3) = 3
    mat, grad, m = _run([1.5, 1.5, 1.5], adv=-1.0)
    torch.testing.assert_close(mat, torch.full((1, 3), 3.0, dtype=torch.float64))
    assert torch.count_nonzero(grad) == 0 and m["pg_clipfrac_lower"] == 1 and m["pg_clipfrac"] == 0
    # without the dual clip the loss is -A·r = 4.4817
    mat, _, _ = _run([1.5, 1.5, 1.5], adv=-1.0, params=SSPOParams(entropy_clip=False, clip_ratio_c=None))
    torch.testing.assert_close(mat, torch.full((1, 3), math.exp(1.5), dtype=torch.float64))


def test_entropy_widening_unclips_a_high_entropy_subsentence():
    # Two segments "x x ," and "x x x": ℓ = 0.4 on all tokens -> r = e^0.4 = 1.4918 in both; A = 1.
    # Entropy 3 on segment 0, 1 on segment 1: μ = (3·3 + 1·3)/6 = 2, g0 = 3/2 = 1.5, g1 = 1/2 = 0.5.
    # ε_high0 = 0.28·1.5 = 0.42 -> 1.42 < 1.4918: still clipped at 1.42 (pg = -1.42)
    # with α = 2: g0 = 2.25 -> clamp 2.0, ε_high0 = 0.56 -> 1.56 > 1.4918: in band, pg = -1.4918 with gradient
    # ε_high1 = 0.28·0.5 = 0.14 -> 1.14: clipped, pg = -1.14 (with α = 2, g1 = 0.25 is clamped up to 0.5)
    ids = torch.tensor([[P["x"], P["x"], P[","], P["x"], P["x"], P["x"]]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    seg = _segments(ids, mask)
    ent = torch.tensor([[3.0, 3.0, 3.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    lp = torch.full((1, 6), -1.0, dtype=torch.float64, requires_grad=True)
    old = lp.detach() - 0.4
    adv = torch.ones(1, 6, dtype=torch.float64)
    r = math.exp(0.4)
    mat, stats = sspo_loss_matrix(lp, old, adv, seg, SSPOParams(entropy_alpha=1.0), entropy=ent)
    torch.testing.assert_close(mat, torch.tensor([[-1.42] * 3 + [-1.14] * 3], dtype=torch.float64))
    m = _metrics(stats)
    # g = H̄ / (μ + 1e-8): 1.5 to within the 1e-8 in the denominator
    assert math.isclose(m["eps_scale_min"], 0.5, rel_tol=1e-7) and math.isclose(m["eps_scale_max"], 1.5, rel_tol=1e-7)
    mat, stats = sspo_loss_matrix(lp, old, adv, seg, SSPOParams(entropy_alpha=2.0), entropy=ent)
    torch.testing.assert_close(mat, torch.tensor([[-r] * 3 + [-1.14] * 3], dtype=torch.float64))
    mat.sum().backward()
    torch.testing.assert_close(lp.grad, torch.tensor([[-r] * 3 + [0.0] * 3], dtype=torch.float64))
    m = _metrics(stats)
    # segment 0 in band, segment 1 clipped: half the segments, half the tokens; the response is partly clipped
    assert m["segment_clipfrac"] == 0.5 and m["clipfrac_high"] == 0.5
    assert m["seq_all_clipped_frac"] == 0 and m["seq_none_clipped_frac"] == 0
    # α = 2: g0 = 1.5² = 2.25 -> clamped to g_max 2.0; g1 = 0.5² = 0.25 -> clamped to g_min 0.5
    assert m["eps_scale_max"] == 2.0 and m["eps_scale_min"] == 0.5


def test_decimal_and_thousands_stay_in_one_subsentence_in_the_loss():
    # "3.14!" is one segment; the guard off splits it into "3." and "14!", giving different ratios
    ids = torch.tensor([[P["3"], P["."], P["14"], P["!"]]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    lp = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-0.1, -0.1, 0.1, 0.1]], dtype=torch.float64)  # ℓ = (0.1, 0.1, -0.1, -0.1)
    adv = torch.ones(1, 4, dtype=torch.float64)
    params = SSPOParams(entropy_clip=False)
    mat, _ = sspo_loss_matrix(lp, old, adv, _segments(ids, mask), params)
    torch.testing.assert_close(mat, torch.full((1, 4), -1.0, dtype=torch.float64))  # m = 0, r = 1
    mat, _ = sspo_loss_matrix(lp, old, adv, _segments(ids, mask, numeric_guard=False), params)
    e = math.exp(0.1)
    torch.testing.assert_close(mat, torch.tensor([[-e, -e, -1 / e, -1 / e]], dtype=torch.float64))


def test_all_masked_rows_and_batches():
    # a large advantage on a masked token must not leak into the loss or the gradient
    ids, _ = _one_segment(3)
    mask = torch.tensor([[True, True, False]])
    lp = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([[1.0, 1.0, 1e6]], dtype=torch.float64)
    mat, stats = sspo_loss_matrix(lp, lp.detach(), adv, _segments(ids, mask), SSPOParams(entropy_clip=False))
    torch.testing.assert_close(mat, torch.tensor([[-1.0, -1.0, 0.0]], dtype=torch.float64))
    mat.sum().backward()
    assert lp.grad[0, 2] == 0
    # everything masked: zero loss, zero gradient, neutral metrics
    mask = torch.zeros(1, 3, dtype=torch.bool)
    lp2 = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    mat, stats = sspo_loss_matrix(lp2, lp2.detach(), adv, _segments(ids, mask), SSPOParams(),
                                  entropy=torch.ones(1, 3))
    assert (mat == 0).all()
    m = _metrics(stats)
    assert m["segments_per_seq"] == 0 and m["pg_clipfrac"] == 0 and m["ratio_min"] == 1 and m["eps_scale_max"] == 1


@pytest.mark.parametrize("ratio_grad", ["token", "segment"])
def test_nan_and_inf_in_padding_do_not_propagate(ratio_grad):
    b = random_batch(11, holes=True)
    params = SSPOParams(ratio_grad=ratio_grad)
    seg = _segments(b["ids"], b["mask"])
    clean = sspo_loss_matrix(b["log_prob"], b["old_log_prob"], b["advantages"], seg, params, entropy=b["entropy"],
                             rollout_is_weights=b["weights"])[0]
    (g_clean,) = torch.autograd.grad(clean.sum(), b["log_prob"])
    pad = ~b["mask"]
    poison = lambda x, v: torch.where(pad, torch.full_like(x, v), x)  # noqa: E731
    lp = poison(b["log_prob"].detach(), float("nan")).requires_grad_(True)
    dirty = sspo_loss_matrix(lp, poison(b["old_log_prob"], float("inf")), poison(b["advantages"], float("nan")),
                             seg, params, entropy=poison(b["entropy"], float("inf")),
                             rollout_is_weights=poison(b["weights"], float("-inf")))[0]
    (g_dirty,) = torch.autograd.grad(dirty.sum(), lp)
    torch.testing.assert_close(dirty, clean)
    torch.testing.assert_close(g_dirty, g_clean)


@pytest.mark.parametrize("ratio_grad", ["token", "segment"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_extreme_log_ratios_give_finite_loss_and_gradient(ratio_grad, sign):
    b = random_batch(5, log_ratio_scale=0.0)
    old = b["old_log_prob"] - sign * 1e4  # ℓ = ±1e4 on every token
    for dtype in (torch.float64, torch.float32):
        lp = b["log_prob"].detach().to(dtype).requires_grad_(True)
        seg = _segments(b["ids"], b["mask"])
        mat, stats = sspo_loss_matrix(lp, old.to(dtype), b["advantages"].to(dtype), seg,
                                      SSPOParams(ratio_grad=ratio_grad), entropy=b["entropy"].to(dtype))
        mat.sum().backward()
        assert torch.isfinite(mat).all() and torch.isfinite(lp.grad).all()
        assert all(math.isfinite(v) for v in _metrics(stats).values())


def test_entropy_clipping_without_entropy_says_how_to_fix():
    b = random_batch(0)
    with pytest.raises(ValueError, match="entropy_clip=false"):
        sspo_loss_matrix(b["log_prob"], b["old_log_prob"], b["advantages"], _segments(b["ids"], b["mask"]),
                         SSPOParams(entropy_clip=True), entropy=None)


def test_entropy_scaled_lower_bound_is_capped_at_0_99():
    # ε_low = 0.6 and g = 2 (high-entropy segment 0: H̄ = 3, μ = 1.5 with a zero-entropy segment 1):
    # ε_low·g = 1.2 is capped at 0.99, so the lower bound is 1 − 0.99 = 0.01 (uncapped: −0.2, never binding).
    # r = 0.005 < 0.01 with A = −1: clipped, pg = −A·0.01 = 0.01 (uncapped: in band, pg = 0.005).
    ids = torch.tensor([[P["x"], P[","], P["x"], P["x"]]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    lp = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-math.log(0.005)] * 2 + [0.0] * 2], dtype=torch.float64)  # ℓ = log 0.005 on segment 0
    ent = torch.tensor([[3.0, 3.0, 0.0, 0.0]], dtype=torch.float64)
    adv = -torch.ones(1, 4, dtype=torch.float64)
    mat, stats = sspo_loss_matrix(lp, old, adv, _segments(ids, mask), SSPOParams(clip_ratio_low=0.6), entropy=ent)
    torch.testing.assert_close(mat[0, :2], torch.tensor([0.01, 0.01], dtype=torch.float64))
    assert _metrics(stats)["clipfrac_low"] == 0.5


@pytest.mark.parametrize("ratio_grad", ["token", "segment"])
def test_log_ratio_clamp_at_10_stops_the_gradient(ratio_grad):
    # ℓ = 12 on every token: m = 12 > 10, r = e^10; A = −1, no dual clip: pg1 = e^10 > pg2 = 0.8, the
    # unclipped branch is selected, but log r = min(m, 10) is flat in θ there: value e^10, gradient 0
    params = SSPOParams(entropy_clip=False, clip_ratio_c=None, ratio_grad=ratio_grad)
    mat, grad, m = _run([12.0, 12.0, 12.0], adv=-1.0, params=params)
    torch.testing.assert_close(mat, torch.full((1, 3), math.exp(10.0), dtype=torch.float64))
    assert torch.count_nonzero(grad) == 0 and m["pg_clipfrac"] == 0
    # just below the clamp the gradient flows: token form ∂(−A·r)/∂log π_t = r = e^9.9; segment form gives
    # every token 1/3 of the three tokens' r: also e^9.9
    mat, grad, _ = _run([9.9, 9.9, 9.9], adv=-1.0, params=params)
    torch.testing.assert_close(grad, torch.full((1, 3), math.exp(9.9), dtype=torch.float64))


def test_given_entropy_mean_is_the_reference_of_the_scale():
    # Segment 0 (x , ) has H̄ = 3, segment 1 (x x) has H̄ = 0.5. μ given as 1.5 (the rollout batch's mean,
    # not this row's (3+3+0.5+0.5)/4 = 1.75): g = (2, 1/3 → clamped 0.5). A = −1, r = 0.6 on segment 0:
    # bounds [1 − 0.2·2, 1 + 0.28·2] = [0.6, 1.56] hold r = 0.6 (in band, pg = 0.6); with the micro-batch
    # μ = 1.75, g = 1.714 and 1 − 0.343 = 0.657 > 0.6 clips it (pg = 0.657).
    ids = torch.tensor([[P["x"], P[","], P["x"], P["x"]]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    lp = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-math.log(0.6)] * 2 + [0.0] * 2], dtype=torch.float64)
    ent = torch.tensor([[3.0, 3.0, 0.5, 0.5]], dtype=torch.float64)
    adv = -torch.ones(1, 4, dtype=torch.float64)
    seg = _segments(ids, mask)
    mat, stats = sspo_loss_matrix(lp, old, adv, seg, SSPOParams(), entropy=ent, entropy_mean=1.5)
    torch.testing.assert_close(mat[0, :2], torch.tensor([0.6, 0.6], dtype=torch.float64))
    g = stats.scale[seg.valid]
    torch.testing.assert_close(g, torch.tensor([2.0 / (1 + 1e-8 / 1.5), 0.5], dtype=torch.float64))
    mat_mb, _ = sspo_loss_matrix(lp, old, adv, seg, SSPOParams(), entropy=ent)  # μ of this micro-batch
    torch.testing.assert_close(mat_mb[0, :2], torch.full((2,), 1 - 0.2 * 3 / 1.75, dtype=torch.float64))


@pytest.mark.parametrize("ratio_grad", ["token", "segment"])
def test_with_the_batch_mean_given_rows_do_not_depend_on_their_micro_batch(ratio_grad):
    """Each row's loss and gradient are the same alone, in any split, or in the whole batch, once μ is given."""
    params = SSPOParams(ratio_grad=ratio_grad, entropy_alpha=1.3)
    b = random_batch(11, holes=True, max_b=6, max_t=16)
    B = b["mask"].shape[0]
    mu = float(b["entropy"][b["mask"]].mean())
    seg = _segments(b["ids"], b["mask"])
    full, _ = sspo_loss_matrix(b["log_prob"], b["old_log_prob"], b["advantages"], seg, params,
                               entropy=b["entropy"], entropy_mean=mu)
    (full_grad,) = torch.autograd.grad(full.sum(), b["log_prob"])
    lp = b["log_prob"].detach().clone().requires_grad_(True)
    parts, parts_mb = [], []
    for rows in torch.arange(B).split(2):
        sub = {k: v[rows] for k, v in b.items()}
        sub_seg = _segments(sub["ids"], sub["mask"])
        mat, _ = sspo_loss_matrix(lp[rows], sub["old_log_prob"], sub["advantages"], sub_seg, params,
                                  entropy=sub["entropy"], entropy_mean=mu)
        parts.append(mat)
        mat_mb, _ = sspo_loss_matrix(lp[rows].detach(), sub["old_log_prob"], sub["advantages"], sub_seg, params,
                                     entropy=sub["entropy"])
        parts_mb.append(mat_mb)
    (grad,) = torch.autograd.grad(torch.cat(parts).sum(), lp)
    torch.testing.assert_close(torch.cat(parts), full.detach(), rtol=0, atol=0)
    torch.testing.assert_close(grad, full_grad, rtol=0, atol=0)
    assert not torch.equal(torch.cat(parts_mb), full.detach())  # a micro-batch μ does move the loss


@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("ratio_grad", ["token", "segment"])
def test_low_precision_log_probs_are_computed_in_float32(low, ratio_grad):
    """bf16/fp16 log-probs (float32 old log-probs, advantages, entropy): the loss matrix, its statistics and the
    gradient are exactly those of the same values given as float32; the gradient reaches the low-precision leaf
    rounded once. float64 stays float64 (the reference tests above)."""
    b = random_batch(7, holes=True, max_b=6, max_t=40, dtype=torch.float32)
    seg = _segments(b["ids"], b["mask"])
    params = SSPOParams(ratio_grad=ratio_grad, entropy_clip=True)
    results = {}
    for dtype in (low, torch.float32):
        lp = b["log_prob"].detach().to(low).to(dtype).requires_grad_(True)  # the same low-precision values
        mat, stats = sspo_loss_matrix(lp, b["old_log_prob"], b["advantages"], seg, params, entropy=b["entropy"])
        (grad,) = torch.autograd.grad(mat.sum(), lp)
        results[dtype] = (mat.detach(), grad, stats)
    mat_low, grad_low, stats_low = results[low]
    mat_32, grad_32, stats_32 = results[torch.float32]
    assert mat_low.dtype == stats_low.token_log_ratio.dtype == stats_low.seg_log_ratio.dtype == torch.float32
    assert grad_low.dtype == low
    assert torch.equal(mat_low, mat_32) and torch.equal(stats_low.seg_log_ratio, stats_32.seg_log_ratio)
    assert torch.equal(grad_low, grad_32.to(low))
    assert sspo_metrics(stats_low) == sspo_metrics(stats_32)
