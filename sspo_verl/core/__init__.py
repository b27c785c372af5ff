"""SSPO's math in plain torch, read alongside ``docs/SSPO.md``. No verl, Ray, Hydra or OmegaConf import.

    precision     the one dtype rule: float32 at least, whatever the engine's dtype (§4)
    segmentation  token ids -> subsentence segments (§3)
    ratio         subsentence importance ratio, both gradient forms (§4)
    clip_bounds   entropy-adaptive PPO-clip bounds (§5)
    loss          the SSPO loss matrix and its metrics (§6, §7)
    advantage     group-relative outcome advantage (§8)
    diagnostics   token / subsentence / sequence clip statistics, the same for every algorithm (§7)
"""

from sspo_verl.core.advantage import group_relative_advantage, outcome_advantage
from sspo_verl.core.clip_bounds import ENTROPY_ADAPT_MODES, ENTROPY_SOURCES, clip_bounds, entropy_scale
from sspo_verl.core.loss import (
    SSPO_METRIC_NAMES,
    SSPOLossStats,
    SSPOParams,
    sspo_loss_matrix,
    sspo_metric_sums,
    sspo_metrics,
    sspo_metrics_from_sums,
)
from sspo_verl.core.precision import compute_dtype
from sspo_verl.core.ratio import LOG_RATIO_MAX, RATIO_GRAD_MODES, segment_log_ratio
from sspo_verl.core.segmentation import (
    DEFAULT_DELIMITERS,
    GRANULARITIES,
    SENTENCE_DELIMITERS,
    BoundaryTable,
    Segments,
    build_boundary_table,
    build_boundary_table_from_tokenizer,
    delimiters_for,
    segment_responses,
)

__all__ = [
    "BoundaryTable",
    "DEFAULT_DELIMITERS",
    "ENTROPY_ADAPT_MODES",
    "ENTROPY_SOURCES",
    "GRANULARITIES",
    "LOG_RATIO_MAX",
    "RATIO_GRAD_MODES",
    "SENTENCE_DELIMITERS",
    "SSPO_METRIC_NAMES",
    "SSPOLossStats",
    "SSPOParams",
    "Segments",
    "build_boundary_table",
    "build_boundary_table_from_tokenizer",
    "clip_bounds",
    "compute_dtype",
    "delimiters_for",
    "entropy_scale",
    "group_relative_advantage",
    "outcome_advantage",
    "segment_responses",
    "sspo_loss_matrix",
    "sspo_metric_sums",
    "sspo_metrics",
    "sspo_metrics_from_sums",
    "segment_log_ratio",
]
