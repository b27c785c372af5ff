"""Subsentence segmentation of response token ids (spec §3, [ours]).

Two steps, both vectorised:

1. :func:`build_boundary_table` — once per tokenizer — decodes every vocabulary entry
   (``piece(v) = tokenizer.decode([v])``) into a per-vocabulary lookup table :class:`BoundaryTable`.
2. :func:`segment_responses` — every micro-batch — gathers the table at the response token ids, applies the
   numeric guard and the mask, and turns boundaries into segment indices with an exclusive cumulative sum.
   The result, :class:`Segments`, pools any per-token quantity into per-segment means with one
   ``scatter_add_`` over a flattened (row, segment) index (no Python loop over rows or tokens, O(B·T)).

Rules (spec §3):
    ends_clause[v]  = rstrip(piece(v), " \\t") ends with a delimiter, or piece(v) contains a newline
    guard(i, t)     = piece(y_t).strip() in {".", ","} and piece(y_{t-1}) ends with a digit
                      and piece(y_{t+1}) starts with a digit                       (``3.14``, ``1,000``)
    boundary(i, t)  = ends_clause[y_t] and mask(i, t) and not special(y_t) and not guard(i, t)
    k(i, t)         = #{boundaries strictly before t in row i}  (the delimiter closes its subsentence)
                      −1 where mask(i, t) = 0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import torch

GRANULARITIES = ("subsentence", "sentence", "sequence", "token")
# Default delimiter set (spec §3): ", . ; : ! ?" and full-width "， 。 ； ： ！ ？ 、".
DEFAULT_DELIMITERS = ",.;:!?，。；：！？、"
# Granularity "sentence": sentence-final punctuation only (newlines always end a segment).
SENTENCE_DELIMITERS = ".!?。！？"
_GUARDED_POINTS = (".", ",")


@dataclass(frozen=True)
class BoundaryTable:
    """Per-vocabulary boolean lookups, built once per (tokenizer, delimiter set).

    Shape: every field is (V,), V = number of decodable ids. Ids >= V (a model vocabulary padded beyond the
    tokenizer's, as Qwen checkpoints are) read as False everywhere.

    Attributes:
        ends_clause: the piece ends a clause (never True for special tokens).
        is_point: the stripped piece is exactly ``.`` or ``,`` (numeric-guard candidates).
        ends_digit: the piece ends with a decimal digit.
        starts_digit: the piece starts with a decimal digit.
    """

    ends_clause: torch.Tensor
    is_point: torch.Tensor
    ends_digit: torch.Tensor
    starts_digit: torch.Tensor

    @property
    def vocab_size(self) -> int:
        return self.ends_clause.shape[0]

    def to(self, device) -> "BoundaryTable":
        return BoundaryTable(*(t.to(device) for t in (self.ends_clause, self.is_point, self.ends_digit,
                                                        self.starts_digit)))

    def lookup(self, field: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """``field[token_ids]``, False for ids outside ``[0, V)``. Shape: (B, T) -> (B, T) bool."""
        in_range = (token_ids >= 0) & (token_ids < field.shape[0])
        return field[token_ids.clamp(0, field.shape[0] - 1)] & in_range


def delimiters_for(granularity: str, delimiters: str = DEFAULT_DELIMITERS) -> str:
    """The delimiter set a granularity segments on (``subsentence``: the configured set)."""
    if granularity == "subsentence":
        return delimiters
    if granularity == "sentence":
        return SENTENCE_DELIMITERS
    raise ValueError(f"granularity {granularity!r} needs no boundary table; expected subsentence or sentence")


def build_boundary_table(
    pieces: Sequence[str], delimiters: str = DEFAULT_DELIMITERS, special_ids: Iterable[int] = ()
) -> BoundaryTable:
    """Build the lookup table from decoded pieces (``pieces[v] = tokenizer.decode([v])``).

    Args:
        pieces: decoded piece of every token id, index = id.
        delimiters: characters that end a clause when they end a piece (after stripping trailing spaces
            and tabs). A newline anywhere in a piece always ends a clause.
        special_ids: ids that are never boundaries (EOS, pad, chat markers).
    """
    delim = set(delimiters)
    ends, point, end_digit, start_digit = [], [], [], []
    for piece in pieces:
        tail = piece.rstrip(" \t")
        ends.append(bool(tail) and tail[-1] in delim or "\n" in piece)
        point.append(piece.strip() in _GUARDED_POINTS)
        end_digit.append(bool(piece) and piece[-1].isdecimal())
        start_digit.append(bool(piece) and piece[0].isdecimal())
    ends_clause = torch.tensor(ends, dtype=torch.bool)
    special = [i for i in special_ids if 0 <= i < len(pieces)]
    if special:
        ends_clause[torch.tensor(special, dtype=torch.long)] = False
    return BoundaryTable(
        ends_clause=ends_clause,
        is_point=torch.tensor(point, dtype=torch.bool),
        ends_digit=torch.tensor(end_digit, dtype=torch.bool),
        starts_digit=torch.tensor(start_digit, dtype=torch.bool),
    )


def tokenizer_pieces(tokenizer) -> tuple[list[str], list[int]]:
    """Decode every id of a Hugging Face tokenizer one at a time, and collect its special ids.

    ``piece(v) = tokenizer.decode([v])`` (spec §3), batched through ``batch_decode`` (same result, one call).
    Special ids: ``all_special_ids`` plus every added token marked special.
    """
    vocab_size = len(tokenizer)
    pieces = tokenizer.batch_decode([[v] for v in range(vocab_size)], skip_special_tokens=False,
                                    clean_up_tokenization_spaces=False)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    for idx, added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(added, "special", False):
            special.add(int(idx))
    return pieces, sorted(special)


def build_boundary_table_from_tokenizer(tokenizer, delimiters: str = DEFAULT_DELIMITERS) -> BoundaryTable:
    """:func:`build_boundary_table` over every id of ``tokenizer``."""
    pieces, special = tokenizer_pieces(tokenizer)
    return build_boundary_table(pieces, delimiters=delimiters, special_ids=special)


@dataclass(frozen=True)
class Segments:
    """Segment structure of a micro-batch and per-segment pooling.

    Segment (i, k) has flat id ``i·T + k`` (k < T, so ids are unique); masked tokens go to a spill bin ``B·T``
    that is dropped. All per-segment tensors have shape (B·T,): entries of unused ids are 0.

    Attributes:
        index: (B, T) long, local segment index k(i, t), −1 at masked tokens.
        flat: (B, T) long, flat segment id, ``B·T`` (spill) at masked tokens.
        mask: (B, T) bool response mask.
        counts: (B·T,) tokens per segment.
        num_segments: (B,) segments per response (0 for an all-masked row).
    """

    index: torch.Tensor
    flat: torch.Tensor
    mask: torch.Tensor
    counts: torch.Tensor
    num_segments: torch.Tensor

    @property
    def valid(self) -> torch.Tensor:
        """(B·T,) bool: the segment id is used."""
        return self.counts > 0

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Per-segment sums of a (B, T) tensor; masked entries must already be finite (0 is safe). (B·T,)."""
        B, T = values.shape
        out = values.new_zeros(B * T + 1)
        out = out.scatter_add(0, self.flat.reshape(-1), values.reshape(-1))  # differentiable in values
        return out[:-1]

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Per-segment means of a (B, T) tensor, 0 for unused ids. (B·T,)."""
        return self.sum(values) / self.counts.clamp(min=1).to(values.dtype)

    def broadcast(self, per_segment: torch.Tensor) -> torch.Tensor:
        """Give every token its segment's value; 0 at masked tokens. (B·T,) -> (B, T)."""
        padded = torch.cat([per_segment, per_segment.new_zeros(1)])
        return padded[self.flat]


def segment_responses(
    token_ids: torch.Tensor,
    response_mask: torch.Tensor,
    granularity: str = "subsentence",
    table: Optional[BoundaryTable] = None,
    numeric_guard: bool = True,
) -> Segments:
    """Segment a padded micro-batch of responses (spec §3).

    Args:
        token_ids: response token ids y. Shape: (B, T), any integer dtype.
        response_mask: valid tokens. Shape: (B, T), bool or 0/1.
        granularity: ``subsentence`` | ``sentence`` (need ``table``) | ``sequence`` | ``token``.
        table: lookup table built for the granularity's delimiter set (see :func:`delimiters_for`).
        numeric_guard: keep ``3.14`` / ``1,000`` inside one segment.

    Returns:
        :class:`Segments`.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if token_ids.shape != response_mask.shape or token_ids.dim() != 2:
        raise ValueError(
            f"token_ids {tuple(token_ids.shape)} and response_mask {tuple(response_mask.shape)} must both be (B, T)"
        )
    mask = response_mask.bool()
    B, T = mask.shape

    if granularity == "token":
        boundary = mask  # every valid token closes its own segment
    elif granularity == "sequence":
        boundary = torch.zeros_like(mask)  # one segment per response
    else:
        if table is None:
            raise ValueError(f"granularity {granularity!r} needs a BoundaryTable built from the tokenizer")
        ids = token_ids.long()
        boundary = table.lookup(table.ends_clause, ids) & mask  # (B, T)
        if numeric_guard:
            point = table.lookup(table.is_point, ids)  # (B, T)
            prev_digit = table.lookup(table.ends_digit, ids) & mask  # (B, T) digit-ending token at t
            next_digit = table.lookup(table.starts_digit, ids) & mask  # (B, T) digit-starting token at t
            prev_digit = torch.nn.functional.pad(prev_digit[:, :-1], (1, 0), value=False)  # at t: token t-1
            next_digit = torch.nn.functional.pad(next_digit[:, 1:], (0, 1), value=False)  # at t: token t+1
            boundary = boundary & ~(point & prev_digit & next_digit)

    b = boundary.long()
    index = torch.cumsum(b, dim=1) - b  # (B, T) boundaries strictly before t
    index = torch.where(mask, index, torch.full_like(index, -1))
    rows = torch.arange(B, device=mask.device).unsqueeze(1) * T  # (B, 1)
    flat = torch.where(mask, rows + index, torch.full_like(index, B * T))  # (B, T)
    counts = torch.zeros(B * T + 1, dtype=torch.long, device=mask.device)
    counts = counts.scatter_add(0, flat.reshape(-1), torch.ones_like(flat).reshape(-1))[:-1]  # (B·T,)
    num_segments = index.amax(dim=1) + 1  # (B,), 0 for all-masked rows (amax = -1)
    return Segments(index=index, flat=flat, mask=mask, counts=counts, num_segments=num_segments)
