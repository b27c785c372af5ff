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
import torch.nn.functional as F

from sspo_verl.core.precision import compute_dtype

GRANULARITIES = ("subsentence", "sentence", "sequence", "token")
# Default delimiter set (spec §3): ", . ; : ! ?" and full-width "， 。 ； ： ！ ？ 、".
DEFAULT_DELIMITERS = ",.;:!?，。；：！？、"
# Granularity "sentence": sentence-final punctuation only (newlines always end a segment).
SENTENCE_DELIMITERS = ".!?。！？"
_GUARDED_POINTS = (".", ",")


# Bits of a token's code in the lookup table (one gather fetches all four flags).
ENDS_CLAUSE, IS_POINT, ENDS_DIGIT, STARTS_DIGIT = 0, 1, 2, 3


def _bit(codes: torch.Tensor, bit: int) -> torch.Tensor:
    """Flag ``bit`` of uint8 codes as a bool tensor (a 0/1 uint8 tensor viewed as bool, no copy)."""
    return ((codes >> bit) & 1).view(torch.bool)


@dataclass(frozen=True)
class BoundaryTable:
    """Per-vocabulary flags, built once per (tokenizer, delimiter set), packed one uint8 code per token.

    Shape: ``codes`` is (V + 1,) uint8, V = number of decodable ids; bits ``ENDS_CLAUSE`` (the piece ends a
    clause; never for special tokens), ``IS_POINT`` (the stripped piece is exactly ``.`` or ``,``: a
    numeric-guard candidate), ``ENDS_DIGIT``, ``STARTS_DIGIT``. The extra last entry is 0: ids outside
    ``[0, V)`` (a model vocabulary padded beyond the tokenizer's, as Qwen checkpoints are) read it.
    """

    codes: torch.Tensor

    @property
    def vocab_size(self) -> int:
        return self.codes.shape[0] - 1

    @property
    def ends_clause(self) -> torch.Tensor:
        return _bit(self.codes, ENDS_CLAUSE)

    @property
    def is_point(self) -> torch.Tensor:
        return _bit(self.codes, IS_POINT)

    def to(self, device) -> "BoundaryTable":
        return BoundaryTable(self.codes.to(device))

    def lookup(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Codes of the tokens; ids outside ``[0, V)`` get 0. Shape: (B, T) -> (B, T) uint8."""
        ids = token_ids.long().clamp(0, self.vocab_size)  # (B, T)
        return self.codes.index_select(0, ids.view(-1)).view(ids.shape)  # index_select: the fast gather on CPU


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
    special = set(special_ids)
    codes = []
    for v, piece in enumerate(pieces):
        tail = piece.rstrip(" \t")
        ends = (bool(tail) and tail[-1] in delim or "\n" in piece) and v not in special
        codes.append(
            ends << ENDS_CLAUSE
            | (piece.strip() in _GUARDED_POINTS) << IS_POINT
            | (bool(piece) and piece[-1].isdecimal()) << ENDS_DIGIT
            | (bool(piece) and piece[0].isdecimal()) << STARTS_DIGIT
        )
    codes.append(0)  # out-of-vocabulary entry
    return BoundaryTable(torch.tensor(codes, dtype=torch.uint8))


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

    Segment (i, k) has flat id ``i·T + k`` (k < T, so ids are unique). A masked token carries the id of the
    segment it sits in but never counts: pooled values must be 0 at masked tokens (callers sanitise them),
    and ``counts`` only counts valid tokens. Per-segment tensors have shape (B·T,), 0 at unused ids.

    Attributes:
        flat: (B, T) long flat segment id of every position.
        mask: (B, T) bool response mask.
        counts: (B·T,) float32, valid tokens per segment (exact integers).
        denominators: (B·T,) ``counts`` clamped at 1, the divisor of :meth:`mean`.
    """

    flat: torch.Tensor
    mask: torch.Tensor
    counts: torch.Tensor
    denominators: torch.Tensor

    @property
    def index(self) -> torch.Tensor:
        """(B, T) long local segment index k(i, t), −1 at masked tokens (spec §3)."""
        B, T = self.mask.shape
        rows = torch.arange(B, device=self.flat.device).unsqueeze(1) * T
        return torch.where(self.mask, self.flat - rows, -1)

    @property
    def valid(self) -> torch.Tensor:
        """(B·T,) bool: the segment id is used."""
        return self.counts > 0

    @property
    def num_segments(self) -> torch.Tensor:
        """(B,) segments per response (0 for an all-masked row)."""
        return self.valid.view(self.mask.shape).sum(dim=1)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Per-segment sums of a (B, T) tensor that is 0 at masked tokens. (B·T,), differentiable.

        Accumulated in :func:`~sspo_verl.core.precision.compute_dtype` (bf16 values are summed in float32).
        """
        values = values.to(compute_dtype(values))  # no-op for float32 / float64
        return values.new_zeros(values.numel()).scatter_add(0, self.flat.view(-1), values.reshape(-1))

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Per-segment means of a (B, T) tensor that is 0 at masked tokens, 0 for unused ids. (B·T,), float32+."""
        return self.sum(values) / self.denominators

    def broadcast(self, per_segment: torch.Tensor) -> torch.Tensor:
        """Give every position its segment's value (masked positions too). (B·T,) -> (B, T), differentiable.

        ``index_select`` rather than ``gather``/``take``: the same values, several times faster on CPU.
        """
        return per_segment.index_select(0, self.flat.view(-1)).view(self.mask.shape)


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
        boundary = None  # one segment per response
    else:
        if table is None:
            raise ValueError(f"granularity {granularity!r} needs a BoundaryTable built from the tokenizer")
        codes = table.lookup(token_ids) * mask.view(torch.uint8)  # (B, T) uint8 codes, 0 at masked tokens
        boundary = codes & (1 << ENDS_CLAUSE)  # (B, T) 0/1
        if numeric_guard:
            # guard(t): t is a point, t−1 ends with a digit, t+1 starts with a digit (all three bits present)
            before = F.pad(codes[:, :-1], (1, 0)) & (1 << ENDS_DIGIT)  # (B, T) token t−1's digit-end bit
            after = F.pad(codes[:, 1:], (0, 1)) & (1 << STARTS_DIGIT)  # (B, T) token t+1's digit-start bit
            guard_bits = (1 << IS_POINT) | (1 << ENDS_DIGIT) | (1 << STARTS_DIGIT)
            guarded = ((codes & (1 << IS_POINT)) | before | after) == guard_bits  # (B, T) bool
            boundary = boundary & ~guarded.view(torch.uint8)  # ~1 = 0xFE clears bit 0, ~0 keeps it
        boundary = boundary.view(torch.bool)  # (B, T)

    rows = torch.arange(B, device=mask.device).unsqueeze(1) * T  # (B, 1)
    if boundary is None:
        flat = rows.expand(B, T).contiguous()  # (B, T)
    else:
        before = F.pad(boundary[:, :-1], (1, 0)).view(torch.uint8)  # (B, T) boundary at t-1
        flat = rows + torch.cumsum(before, dim=1, dtype=torch.long)  # (B, T) boundaries strictly before t
    counts = torch.zeros(B * T, dtype=torch.float32, device=mask.device).scatter_add(
        0, flat.reshape(-1), mask.reshape(-1).view(torch.uint8).to(torch.float32)  # (uint8 hop: fast path)
    )  # (B·T,)
    return Segments(flat=flat, mask=mask, counts=counts, denominators=counts.clamp(min=1))
