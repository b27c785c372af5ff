"""``SSPOPolicyLossConfig``: the schema of SSPO's hyper-parameters inside verl's actor config.

verl instantiates ``actor_rollout_ref.actor.policy_loss`` from its ``_target_``; pointing that at this
class (``sspo_verl.SSPOPolicyLossConfig``) gives typed, validated SSPO fields next to verl's own
``PolicyLossConfig`` fields (the YAML mirror is ``hydra_configs/algorithm/sspo.yaml``). Every field is an
[ours] choice of ``docs/SSPO.md`` unless marked [paper].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from verl.workers.config import PolicyLossConfig

from sspo_verl.core.clip_bounds import ENTROPY_ADAPT_MODES, ENTROPY_SOURCES
from sspo_verl.core.loss import SSPOParams
from sspo_verl.core.ratio import RATIO_GRAD_MODES
from sspo_verl.core.segmentation import DEFAULT_DELIMITERS, GRANULARITIES

__all__ = ["SSPOPolicyLossConfig"]


@dataclass
class SSPOPolicyLossConfig(PolicyLossConfig):
    """SSPO policy-loss configuration (spec §3–§6).

    Args:
        loss_mode (str): verl's registered policy loss to run. Default ``"sspo"``.
        tokenizer_path (Optional[str]): Tokenizer whose vocabulary the segmentation table is built from.
            ``None`` (default): the actor's own, as verl loads it in the worker (its local copy of
            ``actor_rollout_ref.model.tokenizer_path`` / ``path``, with the model's ``trust_remote_code``).
            When set, it is loaded the same way. Must be the tokenizer that produced the response ids.
        granularity (str): Where importance ratios are pooled (spec §3). ``"subsentence"`` (default,
            [paper]), ``"sentence"`` (``. ! ?`` ``。！？`` and newlines only), ``"sequence"`` (one segment
            per response: verl's ``gspo``), ``"token"`` (one token per segment: verl's ``vanilla``).
        delimiters (str): Characters that end a subsentence when they end a token's decoded piece
            (trailing spaces/tabs stripped). A newline anywhere in a piece always ends one. Default
            ``", . ; : ! ?"`` and ``"， 。 ； ： ！ ？ 、"`` (written without spaces). Used by
            ``granularity="subsentence"`` only.
        numeric_guard (bool): Do not split ``3.14`` / ``1,000``: a token whose piece is exactly ``.``
            or ``,`` between a digit-ending and a digit-starting token is not a boundary. Default True.
        ratio_grad (str): Gradient form of the subsentence ratio (spec §4). ``"token"`` (default):
            ``log r = sg[m] + log π − sg[log π]`` (GSPO-token, as verl's ``gspo``); ``"segment"``: the
            gradient flows through the segment mean ``m`` (TRL's sequence-level form).
        entropy_clip (bool): Entropy-adaptive clip bounds (spec §5, direction [paper]). Default True.
        entropy_source (str): Whose token entropy H scales the clip bounds (spec §5). ``"old"``
            (default): the sampling policy's, which verl's V1 trainer computes at the old-log-prob pass
            and stores per response; μ is its mean over every valid token of the rollout batch, so the
            loss does not depend on the micro-batch split, dynamic batching or the data-parallel size,
            and ``calculate_entropy`` stays off (the update costs what GRPO's does). Needs the V1 trainer
            and the old-log-prob pass (not ``algorithm.rollout_correction.bypass_mode``). ``"current"``:
            the entropy of π_θ in the update (needs ``actor.calculate_entropy=true``; ``sspo-train``
            sets it), μ the micro-batch's mean, so the loss depends on how verl splits the mini-batch.
        entropy_alpha (float): Exponent α of the entropy scale ``g = clamp((H̄/μ)^α, g_min, g_max)``.
            Default 1.0.
        entropy_scale_min (float): ``g_min``, > 0. Default 0.5.
        entropy_scale_max (float): ``g_max``, ≥ ``g_min``. Default 2.0.
        entropy_adapt (str): Which bound the scale widens/narrows: ``"both"`` (default), ``"high"``,
            ``"low"``, ``"none"`` (compute and report g, do not apply it).
    """

    loss_mode: str = "sspo"
    tokenizer_path: Optional[str] = None
    granularity: str = "subsentence"
    delimiters: str = DEFAULT_DELIMITERS
    numeric_guard: bool = True
    # The loss's own hyper-parameters: defaults are the core's (one source, sspo_verl.core.loss.SSPOParams).
    ratio_grad: str = SSPOParams.ratio_grad
    entropy_clip: bool = SSPOParams.entropy_clip
    entropy_source: str = "old"  # where H comes from: the adapter's choice, not a core hyper-parameter
    entropy_alpha: float = SSPOParams.entropy_alpha
    entropy_scale_min: float = SSPOParams.entropy_scale_min
    entropy_scale_max: float = SSPOParams.entropy_scale_max
    entropy_adapt: str = SSPOParams.entropy_adapt

    def __post_init__(self):
        prefix = "actor_rollout_ref.actor.policy_loss"
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"{prefix}.granularity={self.granularity!r} is not one of {list(GRANULARITIES)}. "
                "Use 'subsentence' for SSPO, 'sequence' to reproduce GSPO, 'token' to reproduce GRPO."
            )
        if self.ratio_grad not in RATIO_GRAD_MODES:
            raise ValueError(
                f"{prefix}.ratio_grad={self.ratio_grad!r} is not one of {list(RATIO_GRAD_MODES)}. "
                "'token' is the GSPO-token form verl's gspo uses; 'segment' lets the gradient flow through "
                "the segment mean."
            )
        if self.entropy_source not in ENTROPY_SOURCES:
            raise ValueError(
                f"{prefix}.entropy_source={self.entropy_source!r} is not one of {list(ENTROPY_SOURCES)}: 'old' "
                "(the sampling policy's entropy, split-invariant) or 'current' (π_θ's, per micro-batch)."
            )
        if self.entropy_adapt not in ENTROPY_ADAPT_MODES:
            raise ValueError(
                f"{prefix}.entropy_adapt={self.entropy_adapt!r} is not one of {list(ENTROPY_ADAPT_MODES)}."
            )
        if not isinstance(self.delimiters, str) or not self.delimiters:
            raise ValueError(
                f"{prefix}.delimiters must be a non-empty string of delimiter characters, got "
                f"{self.delimiters!r}. Example: delimiters=',.;:!?'. A newline always ends a subsentence."
            )
        if any(c in " \t" for c in self.delimiters):
            raise ValueError(
                f"{prefix}.delimiters={self.delimiters!r} contains a space or tab: trailing spaces/tabs are "
                "stripped from every piece before the delimiter test, so they can never match. Remove them."
            )
        if not self.entropy_scale_min > 0:
            raise ValueError(
                f"{prefix}.entropy_scale_min={self.entropy_scale_min} must be > 0 (the scale multiplies the "
                "clip bounds; 0 would freeze low-entropy subsentences). Spec default: 0.5."
            )
        if self.entropy_scale_max < self.entropy_scale_min:
            raise ValueError(
                f"{prefix}.entropy_scale_max={self.entropy_scale_max} must be >= entropy_scale_min="
                f"{self.entropy_scale_min}. Spec defaults: 0.5 / 2.0."
            )
        if self.entropy_alpha < 0:
            raise ValueError(
                f"{prefix}.entropy_alpha={self.entropy_alpha} must be >= 0 (α < 0 would narrow the range of "
                "high-entropy subsentences, the opposite of SSPO). Use 0 to disable the scale's dependence "
                "on entropy, or entropy_clip=false."
            )
