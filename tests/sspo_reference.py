"""Independent slow reference of SSPO, written from docs/SSPO.md only (no import of sspo_verl).

Per-row, per-segment Python loops over decoded strings and float64 scalars, the opposite style of the
vectorised implementation: segmentation works on the piece strings, segments are Python lists of positions,
every token's loss is its own autograd scalar. Slow on purpose; used for values, gradients and metrics.
"""

from __future__ import annotations

import math

import torch

SPEC_DELIMITERS = ",.;:!?，。；：！？、"
SPEC_SENTENCE_DELIMITERS = ".!?。！？"


# ---------------------------------------------------------------- segmentation (spec §3)
def ref_segment_row(ids, mask, pieces, specials, granularity, delimiters=SPEC_DELIMITERS, numeric_guard=True):
    """Segment index per position (−1 where masked) for one row, from the piece strings."""
    T = len(ids)
    delims = delimiters if granularity == "subsentence" else SPEC_SENTENCE_DELIMITERS

    def piece(t):
        v = int(ids[t])
        return pieces[v] if 0 <= v < len(pieces) else None

    def is_boundary(t):
        if granularity == "token":
            return True
        if granularity == "sequence":
            return False
        p = piece(t)
        if p is None or int(ids[t]) in specials:
            return False
        stripped_right = p.rstrip(" \t")
        ends = (len(stripped_right) > 0 and stripped_right[-1] in delims) or ("\n" in p)
        if not ends:
            return False
        if numeric_guard and p.strip() in (".", ","):
            prev_ok = t - 1 >= 0 and mask[t - 1] and piece(t - 1) is not None and piece(t - 1)[-1:].isdecimal()
            next_ok = t + 1 < T and mask[t + 1] and piece(t + 1) is not None and piece(t + 1)[:1].isdecimal()
            if prev_ok and next_ok:
                return False
        return True

    seg, k = [], 0
    for t in range(T):
        if not mask[t]:
            seg.append(-1)
            continue
        seg.append(k)
        if is_boundary(t):
            k += 1
    return seg


def ref_segments(ids, mask, pieces, specials, granularity, delimiters=SPEC_DELIMITERS, numeric_guard=True):
    """(B, T) list of lists of segment indices."""
    return [
        ref_segment_row(ids[i].tolist(), [bool(x) for x in mask[i].tolist()], pieces, specials, granularity,
                        delimiters, numeric_guard)
        for i in range(ids.shape[0])
    ]


# ---------------------------------------------------------------- loss (spec §4–§6)
def ref_sspo_loss(
    log_prob,
    old_log_prob,
    advantages,
    mask,
    seg,
    *,
    clip_low=0.2,
    clip_high=0.28,
    clip_c=3.0,
    ratio_grad="token",
    entropy=None,
    entropy_mean=None,
    alpha=1.0,
    g_min=0.5,
    g_max=2.0,
    adapt="both",
    weights=None,
    loss_agg_mode="token-mean",
    dp_size=1,
    batch_num_tokens=None,
    global_batch_size=None,
    loss_scale_factor=None,
):
    """Loss (autograd scalar), metrics (dict of floats) and the (B, T) loss matrix, by per-token formulas."""
    B, T = mask.shape
    valid = [[bool(mask[i, t]) for t in range(T)] for i in range(B)]
    # segments as position lists
    segs = []
    for i in range(B):
        groups = {}
        for t in range(T):
            if valid[i][t]:
                groups.setdefault(seg[i][t], []).append(t)
        segs.append([groups[k] for k in sorted(groups)])

    mu = entropy_mean  # μ given (spec §5: one number for the rollout batch), else the mean over this batch
    if entropy is not None and mu is None:
        tot, n = 0.0, 0
        for i in range(B):
            for t in range(T):
                if valid[i][t]:
                    tot += float(entropy[i, t])
                    n += 1
        mu = tot / max(n, 1)

    zero = log_prob.sum() * 0.0  # keeps the graph for rows with no valid token
    loss_rows = [[None] * T for _ in range(B)]
    ratio_vals, g_vals, clip_flags = [], [], [[False] * T for _ in range(B)]
    n_high = n_low = n_dual = 0
    kl_sum = 0.0
    for i in range(B):
        for S in segs[i]:
            m = sum(log_prob[i, t] - old_log_prob[i, t] for t in S) / len(S)
            if entropy is not None:
                hbar = sum(float(entropy[i, t]) for t in S) / len(S)
                g = min(max((hbar / (mu + 1e-8)) ** alpha, g_min), g_max)
                g_vals.append(g)
            else:
                g = 1.0
            el = min(clip_low * g, 0.99) if (entropy is not None and adapt in ("both", "low")) else clip_low
            eh = clip_high * g if (entropy is not None and adapt in ("both", "high")) else clip_high
            seg_clipped = 0
            for t in S:
                if ratio_grad == "token":
                    log_r = m.detach() + log_prob[i, t] - log_prob[i, t].detach()
                else:
                    log_r = m
                log_r = torch.clamp(log_r, max=10.0)
                r = torch.exp(log_r)
                ratio_vals.append(float(r.detach()))
                a = float(advantages[i, t])
                pg1 = -a * r
                pg2 = -a * torch.clamp(r, 1 - el, 1 + eh)
                pg = torch.maximum(pg1, pg2)
                ppo_clip = float(pg2.detach()) > float(pg1.detach())
                dual = False
                if clip_c is not None and a < 0:
                    pg3 = -a * clip_c
                    dual = float(pg.detach()) > pg3
                    pg = torch.minimum(pg, torch.tensor(pg3, dtype=pg.dtype))
                if weights is not None:
                    pg = pg * float(weights[i, t])
                loss_rows[i][t] = pg
                n_high += int(ppo_clip and a > 0)
                n_low += int(ppo_clip and a < 0)
                n_dual += int(dual)
                clip_flags[i][t] = ppo_clip or dual
                seg_clipped += int(ppo_clip or dual)
                kl_sum += -(float(log_prob[i, t].detach()) - float(old_log_prob[i, t]))

    # aggregation, per verl's agg_loss semantics written out per row
    def row_sum(i):
        s = zero
        for t in range(T):
            if valid[i][t]:
                s = s + loss_rows[i][t]
        return s

    n_valid = sum(sum(r) for r in valid)
    rows_valid = [i for i in range(B) if any(valid[i])]
    if loss_agg_mode == "token-mean":
        denom = batch_num_tokens if batch_num_tokens is not None else n_valid
        loss = sum((row_sum(i) for i in range(B)), zero) / denom * dp_size
    elif loss_agg_mode == "token-sum":
        loss = sum((row_sum(i) for i in range(B)), zero) * dp_size
    elif loss_agg_mode in ("seq-mean-token-sum", "seq-mean-token-sum-norm"):
        denom = global_batch_size if global_batch_size is not None else len(rows_valid)
        loss = sum((row_sum(i) for i in rows_valid), zero) / denom * dp_size
        if loss_agg_mode == "seq-mean-token-sum-norm":
            loss = loss / (loss_scale_factor if loss_scale_factor is not None else T)
    elif loss_agg_mode == "seq-mean-token-mean":
        denom = global_batch_size if global_batch_size is not None else len(rows_valid)
        loss = sum((row_sum(i) / sum(valid[i]) for i in rows_valid), zero) / denom * dp_size
    else:
        raise ValueError(loss_agg_mode)

    # metrics (spec §7)
    all_segs = [S for i in range(B) for S in segs[i]]
    n_tok = max(n_valid, 1)
    n_seg = max(len(all_segs), 1)
    n_rows = max(len(rows_valid), 1)
    seg_fracs = []
    for i in range(B):
        for S in segs[i]:
            seg_fracs.append(sum(clip_flags[i][t] for t in S) / len(S))
    metrics = {
        "pg_clipfrac": (n_high + n_low) / n_tok,
        "pg_clipfrac_lower": n_dual / n_tok,
        "ppo_kl": kl_sum / n_tok,
        "clipfrac_high": n_high / n_tok,
        "clipfrac_low": n_low / n_tok,
        "segment_clipfrac": sum(seg_fracs) / n_seg,
        "seq_all_clipped_frac": sum(all(clip_flags[i][t] for t in range(T) if valid[i][t]) for i in rows_valid)
        / n_rows,
        "seq_none_clipped_frac": sum(not any(clip_flags[i][t] for t in range(T) if valid[i][t]) for i in rows_valid)
        / n_rows,
        "segments_per_seq": sum(len(segs[i]) for i in rows_valid) / n_rows,
        "segment_len_mean": n_valid / n_seg,
        "segment_len_max": float(max((len(S) for S in all_segs), default=0)),
        "ratio_min": min(ratio_vals) if ratio_vals else 1.0,
        "ratio_max": max(ratio_vals) if ratio_vals else 1.0,
        "eps_scale_mean": (sum(g_vals) / len(g_vals)) if g_vals else 1.0,
        "eps_scale_min": min(g_vals) if g_vals else 1.0,
        "eps_scale_max": max(g_vals) if g_vals else 1.0,
    }
    loss_mat = torch.stack(
        [torch.stack([loss_rows[i][t] if valid[i][t] else zero for t in range(T)]) for i in range(B)]
    )
    return loss, metrics, loss_mat


# ---------------------------------------------------------------- advantage (spec §8)
def ref_grpo_advantage(token_level_rewards, mask, index, norm_by_std=True, eps=1e-6):
    """Per-response loops in float64."""
    scores = [float(x) for x in token_level_rewards.double().sum(-1)]
    groups = {}
    for i, g in enumerate(index):
        groups.setdefault(g, []).append(scores[i])
    out = torch.zeros(mask.shape, dtype=torch.float64)
    for i, g in enumerate(index):
        vals = groups[g]
        if len(vals) == 1:
            mean, std = 0.0, 1.0
        else:
            mean = sum(vals) / len(vals)
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
        a = (scores[i] - mean) / (std + eps) if norm_by_std else scores[i] - mean
        out[i] = a * mask[i].double()
    return out
