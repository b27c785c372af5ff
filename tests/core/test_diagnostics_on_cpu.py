"""Granularity diagnostics: per-row loop reference and agreement with the losses' own clip fractions."""

import math

import pytest
import torch

from sspo_verl.core.diagnostics import granularity_diagnostics
from sspo_verl.core.loss import SSPOParams, sspo_loss_matrix, sspo_metrics
from sspo_verl.core.segmentation import build_boundary_table, segment_responses
from tests.conftest import SYNTH_PIECES, SYNTH_SPECIALS, random_batch
from tests.sspo_reference import ref_segments

GRANS = ("token", "subsentence", "sequence")


def _segments(b):
    table = build_boundary_table(SYNTH_PIECES, special_ids=SYNTH_SPECIALS)
    return {g: segment_responses(b["ids"], b["mask"], g, table if g == "subsentence" else None) for g in GRANS}


def _reference(b, g, lo=0.2, hi=0.28):
    seg = ref_segments(b["ids"], b["mask"], SYNTH_PIECES, set(SYNTH_SPECIALS), g)
    B, T = b["mask"].shape
    lp, old, adv = b["log_prob"].detach(), b["old_log_prob"], b["advantages"]
    clipped_tokens, all_rows, none_rows, rows, unit_means = 0, 0, 0, 0, []
    for i in range(B):
        units = {}
        for t in range(T):
            if b["mask"][i, t]:
                units.setdefault(seg[i][t], []).append(t)
        flags = []
        for ts in units.values():
            m = sum(float(lp[i, t] - old[i, t]) for t in ts) / len(ts)
            unit_means.append(m)
            r = math.exp(min(m, 10.0))
            for t in ts:
                a = float(adv[i, t])
                flags.append((a > 0 and r > 1 + hi) or (a < 0 and r < 1 - lo))
        if flags:
            rows += 1
            all_rows += all(flags)
            none_rows += not any(flags)
            clipped_tokens += sum(flags)
    n_tok = int(b["mask"].sum())
    mean = sum(unit_means) / len(unit_means)
    std = math.sqrt(sum((x - mean) ** 2 for x in unit_means) / len(unit_means))
    return {f"{g}/clipfrac": clipped_tokens / n_tok, f"{g}/seq_all_clipped_frac": all_rows / rows,
            f"{g}/seq_none_clipped_frac": none_rows / rows, f"{g}/log_ratio_std": std}


@pytest.mark.parametrize("holes", [False, True])
def test_matches_loop_reference(holes):
    for seed in range(12):
        b = random_batch(seed, holes=holes)
        got = granularity_diagnostics(b["log_prob"], b["old_log_prob"], b["advantages"], _segments(b), 0.2, 0.28)
        got = {k: float(v) for k, v in got.items()}
        for g in GRANS:
            for k, v in _reference(b, g).items():
                assert math.isclose(got[k], v, rel_tol=1e-4, abs_tol=1e-5), (seed, k, got[k], v)
        ell = [float(b["log_prob"][i, t].detach() - b["old_log_prob"][i, t]) for i, t in b["mask"].nonzero().tolist()]
        assert math.isclose(got["kl_old_new"], -sum(ell) / len(ell), rel_tol=1e-4, abs_tol=1e-6)


def test_subsentence_clipfrac_equals_sspo_own_clipfrac_without_entropy_scale():
    for seed in range(8):
        b = random_batch(seed)
        segs = _segments(b)
        diag = granularity_diagnostics(b["log_prob"], b["old_log_prob"], b["advantages"], segs, 0.2, 0.28)
        for g in GRANS:
            _, stats = sspo_loss_matrix(b["log_prob"], b["old_log_prob"], b["advantages"], segs[g],
                                        SSPOParams(entropy_clip=False))
            own = sspo_metrics(stats)
            assert math.isclose(float(diag[f"{g}/clipfrac"]), float(own["pg_clipfrac"]), abs_tol=1e-6), (seed, g)


def test_zero_advantage_responses_and_padding_with_nan():
    b = random_batch(4, holes=True)
    b["advantages"][0] = 0.0  # a response of a zero-variance group
    pad = ~b["mask"]
    poisoned = {k: torch.where(pad, torch.full_like(v, float("nan")), v) if k in ("old_log_prob", "advantages")
                else v for k, v in b.items()}
    clean = granularity_diagnostics(b["log_prob"], b["old_log_prob"], b["advantages"], _segments(b), 0.2, 0.28)
    dirty = granularity_diagnostics(poisoned["log_prob"], poisoned["old_log_prob"], poisoned["advantages"],
                                    _segments(b), 0.2, 0.28)
    assert {k: float(v) for k, v in clean.items()} == {k: float(v) for k, v in dirty.items()}
    rows = int((b["mask"].sum(1) > 0).sum())
    zero_rows = sum(1 for i in range(b["mask"].shape[0]) if b["mask"][i].any()
                    and (b["advantages"][i][b["mask"][i]] == 0).all())
    assert zero_rows >= 1 and math.isclose(float(clean["zero_adv_seq_frac"]), zero_rows / rows, rel_tol=1e-6)
