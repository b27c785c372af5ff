"""What the SSPO loss and the granularity diagnostics read from verl's actor config (``ActorConfig``).

Both receive verl's ``ActorConfig`` as ``config`` and need the same facts from it: the clip ratios as verl's
own losses read them, the tokenizer that produced the responses, and how to segment at a granularity
(:func:`segmentation_for`, a :class:`Segmentation` that both build their segments with, and that a micro-batch
caches them under). A leaf of the adapter: it imports verl's config types and the core, nothing else of the
adapter but the config dataclass.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Optional

import torch
from verl.utils import hf_tokenizer
from verl.utils.fs import copy_to_local

from sspo_verl.adapter.config import SSPOPolicyLossConfig
from sspo_verl.core.segmentation import (
    DEFAULT_DELIMITERS,
    BoundaryTable,
    Segments,
    build_boundary_table_from_tokenizer,
    delimiters_for,
    segment_responses,
)

__all__ = ["Segmentation", "actor_tokenizer_path", "boundary_table", "clip_ratios", "segmentation_for",
           "sspo_policy_loss", "tokenizer_path", "trust_remote_code"]

logger = logging.getLogger(__name__)


def sspo_policy_loss(config) -> Optional[SSPOPolicyLossConfig]:
    """The actor's ``policy_loss`` when it is an :class:`SSPOPolicyLossConfig`, else None."""
    policy_loss = config.get("policy_loss", None) if config is not None else None
    return policy_loss if isinstance(policy_loss, SSPOPolicyLossConfig) else None


def actor_tokenizer_path(config) -> Optional[str]:
    """The tokenizer verl's actor loaded, from ``ActorConfig.model_config``: its local copy
    (``local_tokenizer_path``, which verl's ``HFModelConfig`` sets in the worker), else the configured path, else
    None."""
    model_config = config.get("model_config", None)
    for key in ("local_tokenizer_path", "tokenizer_path", "local_path", "path"):
        value = model_config.get(key, None) if model_config is not None else None
        if isinstance(value, str) and value:
            return value
    return None


def tokenizer_path(config) -> Optional[str]:
    """``policy_loss.tokenizer_path`` of an SSPO config, else the actor model's tokenizer path, else None."""
    policy_loss = sspo_policy_loss(config)
    if policy_loss is not None and policy_loss.tokenizer_path:
        return policy_loss.tokenizer_path
    return actor_tokenizer_path(config)


def trust_remote_code(config) -> bool:
    """Whether verl loads the actor's model and tokenizer with ``trust_remote_code`` (``model.trust_remote_code``)."""
    model_config = config.get("model_config", None)
    return bool(model_config.get("trust_remote_code", False)) if model_config is not None else False


def clip_ratios(config) -> tuple[float, float]:
    """(ε_low, ε_high) as verl's losses read them: ``clip_ratio_low/high``, falling back to ``clip_ratio``."""
    low = config.clip_ratio_low if config.clip_ratio_low is not None else config.clip_ratio
    high = config.clip_ratio_high if config.clip_ratio_high is not None else config.clip_ratio
    return low, high


@functools.lru_cache(maxsize=8)
def _cpu_boundary_table(path: str, delimiters: str, trust_remote: bool) -> BoundaryTable:
    # as verl's HFModelConfig loads the actor's tokenizer: a local copy (hdfs:// and the like), verl's loader
    tokenizer = hf_tokenizer(copy_to_local(path), trust_remote_code=trust_remote)
    table = build_boundary_table_from_tokenizer(tokenizer, delimiters)
    logger.info("sspo-verl: boundary table for %s (%d ids, delimiters %r)", path, table.vocab_size, delimiters)
    return table


@functools.lru_cache(maxsize=16)
def boundary_table(path: str, delimiters: str, device: str, trust_remote: bool = False) -> BoundaryTable:
    """The segmentation lookup table for a tokenizer, built once per process and moved once per device;
    ``trust_remote``: load it with ``trust_remote_code`` (see :func:`trust_remote_code`)."""
    return _cpu_boundary_table(path, delimiters, trust_remote).to(torch.device(device))


@dataclass(frozen=True)
class Segmentation:
    """Everything segments depend on besides the token ids and the mask, so equal values segment alike: the key
    under which a micro-batch keeps its segments for the SSPO loss and the diagnostics to share.

    ``delimiters``, ``tokenizer`` and ``trust_remote`` define the boundary table (None for ``token`` and
    ``sequence``, which need none).
    """

    granularity: str
    delimiters: Optional[str] = None
    numeric_guard: bool = False
    tokenizer: Optional[str] = None
    trust_remote: bool = False

    def segments(self, response_ids: torch.Tensor, response_mask: torch.Tensor) -> Segments:
        """Segment on ``response_mask``'s device. Shape: (B, T) ids and mask."""
        device = response_mask.device
        table = None
        if self.delimiters is not None:
            table = boundary_table(self.tokenizer, self.delimiters, str(device), self.trust_remote)
        return segment_responses(response_ids.to(device), response_mask, self.granularity, table, self.numeric_guard)


def segmentation_for(config, granularity: str) -> Segmentation:
    """How to segment at ``granularity``: the SSPO config's delimiters and numeric guard (spec §3 defaults for
    other losses) and the tokenizer of :func:`tokenizer_path`, which ``subsentence`` and ``sentence`` need."""
    if granularity in ("token", "sequence"):
        return Segmentation(granularity)
    sspo = sspo_policy_loss(config)
    path = tokenizer_path(config)
    if not path:
        raise ValueError(
            "SSPO segmentation needs the tokenizer that produced the responses, and the actor config has none: set "
            "actor_rollout_ref.model.path (the worker then uses verl's own tokenizer of the actor), or "
            "actor_rollout_ref.actor.policy_loss.tokenizer_path."
        )
    return Segmentation(
        granularity,
        delimiters_for(granularity, sspo.delimiters if sspo is not None else DEFAULT_DELIMITERS),
        sspo.numeric_guard if sspo is not None else True,
        path,
        trust_remote_code(config),
    )
