"""Segmentation (spec §3): hand-worked cases, the reference over random batches, the real tokenizer."""

import pytest
import torch

from sspo_verl.core.segmentation import (
    DEFAULT_DELIMITERS,
    GRANULARITIES,
    build_boundary_table,
    build_boundary_table_from_tokenizer,
    delimiters_for,
    segment_responses,
)
from tests.conftest import SYNTH_PIECES, SYNTH_SPECIALS, random_batch
from tests.sspo_reference import ref_segments

P = {piece: i for i, piece in enumerate(SYNTH_PIECES)}


def _table(granularity="subsentence"):
    return build_boundary_table(SYNTH_PIECES, delimiters_for(granularity, DEFAULT_DELIMITERS), SYNTH_SPECIALS)


def _segment(pieces, mask=None, granularity="subsentence", numeric_guard=True):
    ids = torch.tensor([[P[p] for p in pieces]])
    mask = torch.ones_like(ids, dtype=torch.bool) if mask is None else torch.tensor([mask], dtype=torch.bool)
    table = _table(granularity) if granularity in ("subsentence", "sentence") else None
    return segment_responses(ids, mask, granularity, table, numeric_guard).index[0].tolist()


def test_table_rules():
    t = _table()
    # a delimiter ending a piece, after stripping trailing spaces/tabs, ends a clause
    for piece in [",", ".", "，", "、", "end. ", "wait,\t", "3.", "1,", "done?", "好。"]:
        assert t.ends_clause[P[piece]], piece
    # a newline anywhere ends a clause
    for piece in ["\n", "ok\n", " \n\n"]:
        assert t.ends_clause[P[piece]], repr(piece)
    # a delimiter merged into the start of a piece does not (spec §3, known limitation)
    for piece in ["，所以", ",so", "The", "3"]:
        assert not t.ends_clause[P[piece]], piece
    # special tokens never end a clause, even when their text ends with a delimiter
    for sid in SYNTH_SPECIALS:
        assert not t.ends_clause[sid]
    assert t.is_point[P[" ."]] and t.is_point[P[". "]] and t.is_point[P[" ,"]] and not t.is_point[P["3."]]
    assert t.vocab_size == len(SYNTH_PIECES) and not t.ends_clause[-1]  # out-of-vocabulary entry


def test_delimiter_belongs_to_the_subsentence_it_closes():
    # "The answer, so 3." -> [The answer ,] [so 3 .]   (k counts boundaries strictly before t)
    assert _segment(["The", " answer", ",", " so", "3", "."]) == [0, 0, 0, 1, 1, 1]


def test_final_unterminated_span_with_eos_is_the_last_subsentence():
    # the EOS is special: it never closes a segment and belongs to the unterminated tail
    assert _segment(["x", ",", " is", "<|im_end|>"]) == [0, 0, 1, 1]
    # a response with no delimiter at all is one segment
    assert _segment(["The", " answer", " is", "7", "<|im_end|>"]) == [0, 0, 0, 0, 0]


def test_numeric_guard_keeps_3_14_and_1_000():
    # "3.14": "." between a digit-ending and a digit-starting piece is not a boundary
    assert _segment(["3", ".", "14", "!"]) == [0, 0, 0, 0]
    # "1,000" likewise (" 1" ends with a digit, "000" starts with one)
    assert _segment([" 1", ",", "000", "?"]) == [0, 0, 0, 0]
    # a padded point (" .") is exactly "." once stripped: guarded too
    assert _segment(["3", " .", "14"]) == [0, 0, 0]
    # guard off: both split
    assert _segment(["3", ".", "14", "!"], numeric_guard=False) == [0, 0, 1, 1]
    # a sentence-final "." after a digit, followed by a non-digit, still ends the subsentence
    assert _segment(["3", ".", " so", "x"]) == [0, 0, 1, 1]
    # the guard needs the next token to be valid: a masked neighbour does not protect the point
    assert _segment(["3", ".", "14"], mask=[1, 1, 0]) == [0, 0, -1]
    # "3." is not exactly "." : ends a clause, never guarded
    assert _segment(["3.", "14"]) == [0, 1]


def test_masked_tokens_get_minus_one_and_never_close_a_segment():
    # a masked "," in the middle does not split; masked positions read -1
    assert _segment(["x", ",", " so", "."], mask=[1, 0, 1, 1]) == [0, -1, 0, 0]
    assert _segment(["x", ","], mask=[0, 0]) == [-1, -1]


def test_granularities():
    pieces = ["The", ",", " so", "3", ".", "14", ";", "x", "。", "\n", "x"]
    assert _segment(pieces, granularity="token") == list(range(len(pieces)))
    assert _segment(pieces, granularity="sequence") == [0] * len(pieces)
    # subsentence: splits after ",", ";", "。", "\n"; "3.14" is guarded
    assert _segment(pieces, granularity="subsentence") == [0, 0, 1, 1, 1, 1, 1, 2, 2, 3, 4]
    # sentence: only . ! ? 。！？ and newlines
    assert _segment(pieces, granularity="sentence") == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]


def test_ids_beyond_the_tokenizer_vocabulary_are_never_boundaries():
    V = len(SYNTH_PIECES)
    ids = torch.tensor([[P["x"], V + 5, P[","], V]])
    seg = segment_responses(ids, torch.ones_like(ids, dtype=torch.bool), "subsentence", _table())
    assert seg.index[0].tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("holes", [False, True])
@pytest.mark.parametrize("numeric_guard", [True, False])
def test_matches_reference_on_random_batches(granularity, holes, numeric_guard):
    table = _table(granularity) if granularity in ("subsentence", "sentence") else None
    for seed in range(25):
        b = random_batch(seed, holes=holes)
        seg = segment_responses(b["ids"], b["mask"], granularity, table, numeric_guard)
        ref = ref_segments(b["ids"], b["mask"], SYNTH_PIECES, set(SYNTH_SPECIALS), granularity,
                           numeric_guard=numeric_guard)
        assert seg.index.tolist() == ref, f"seed {seed}"
        # derived structure: counts and segments per row
        for i, row in enumerate(ref):
            ks = [k for k in row if k >= 0]
            assert int(seg.num_segments[i]) == (max(ks) + 1 if ks else 0)
        assert int(seg.counts.sum()) == int(b["mask"].sum())


def test_segment_pooling_is_exact_and_differentiable():
    b = random_batch(3)
    seg = segment_responses(b["ids"], b["mask"], "subsentence", _table())
    x = torch.randn(b["ids"].shape, dtype=torch.float64, requires_grad=True)
    means = seg.broadcast(seg.mean(torch.where(seg.mask, x, torch.zeros_like(x))))
    for i in range(x.shape[0]):
        for t in range(x.shape[1]):
            if seg.mask[i, t]:
                same = (seg.index[i] == seg.index[i, t]) & seg.mask[i]
                assert torch.isclose(means[i, t], x[i][same].mean())
            else:
                assert torch.isfinite(means[i, t])  # padding carries its enclosing segment's value
    torch.where(seg.mask, means, 0.0).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[~seg.mask] == 0).all()


def test_real_tokenizer_table(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    table = build_boundary_table_from_tokenizer(tok)
    assert table.vocab_size == len(tok)
    text = "First, take 3.14. Then add 1,000; so the answer is 7.\nDone"
    ids = torch.tensor([tok(text)["input_ids"] + [tok.eos_token_id]])
    seg = segment_responses(ids, torch.ones_like(ids, dtype=torch.bool), "subsentence", table)
    pieces = [tok.decode([i]) for i in ids[0].tolist()]
    # reassemble the subsentences from the segment ids
    spans = {}
    for p, k in zip(pieces, seg.index[0].tolist()):
        spans[k] = spans.get(k, "") + p
    assert [spans[k] for k in sorted(spans)] == [
        "First,",
        " take 3.14.",
        " Then add 1,000;",
        " so the answer is 7.",
        "\n",
        "Done<|im_end|>",
    ]
    # every special id of the tokenizer is excluded from boundaries
    for sid in tok.all_special_ids:
        assert not table.ends_clause[sid]


def test_segment_sums_of_bf16_values_accumulate_in_float32():
    """A segment of 300 bf16 values of 1 + 2^-7: a bf16 sum is off past 256 (ulp 2 there); float32 is exact."""
    T = 300
    seg = segment_responses(torch.zeros(1, T, dtype=torch.long), torch.ones(1, T, dtype=torch.bool), "sequence")
    values = torch.full((1, T), 1.0 + 2**-7, dtype=torch.bfloat16)
    sums = seg.sum(values)
    assert sums.dtype == torch.float32 and seg.mean(values).dtype == torch.float32
    assert float(sums[0]) == T * (1.0 + 2**-7)
