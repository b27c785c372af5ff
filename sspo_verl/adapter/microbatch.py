"""The micro-batch context: let registered policy losses see what verl's ``ppo_loss`` receives.

verl 0.9.1 calls a policy loss with log-probs, advantages and the mask only (no token ids, no entropy), but
SSPO segments on the response token ids and scales its clip bounds by the token entropy. Both are in the
arguments of ``verl.workers.utils.losses.ppo_loss(config, model_output, data, dp_group)``, the function verl's
engine workers call for every micro-batch. :data:`PPO_LOSS` wraps that function so that, while it runs, a
``ContextVar`` holds a :class:`MicroBatch` view of ``data`` and ``model_output``; the SSPO loss reads it with
:func:`current_microbatch`. Nothing else about ``ppo_loss`` changes; ``*_min`` / ``*_max`` metrics are tagged
with verl's MIN/MAX aggregation so they reduce correctly over micro-batches and ranks.

The patch (:mod:`sspo_verl.patching`) is installed from the ``verl.plugins`` entry point, i.e. during
``import verl``, before ``verl.workers.engine_workers`` binds ``ppo_loss``.
"""

from __future__ import annotations

import contextlib
import functools
from contextvars import ContextVar
from typing import Optional

import torch
from verl.utils import tensordict_utils as tu
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.padding import no_padding_2_padding

from sspo_verl.verl_version import SUPPORTED_VERL_VERSION
from sspo_verl.adapter.entropy_reference import ENTROPY_MEAN_KEY
from sspo_verl.patching import Patch

_CURRENT: ContextVar[Optional["MicroBatch"]] = ContextVar("sspo_verl_microbatch", default=None)


def _fit_width(t: torch.Tensor, width: int, fill: float) -> torch.Tensor:
    """Right-pad or truncate the last dim of a (B, L) tensor to ``width``."""
    if t.shape[1] == width:
        return t
    if t.shape[1] > width:
        return t[:, :width]
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=fill)


class MicroBatch:
    """A view of one ``ppo_loss`` call: response token ids and token entropy, padded to (B, T) on demand.

    Args:
        data: the micro-batch TensorDict verl passes to ``ppo_loss`` (``responses`` dense or nested).
        model_output: the model outputs (``log_probs``, optionally ``entropy``; nested or flat).
    """

    def __init__(self, data, model_output):
        self.data = data
        self.model_output = model_output
        self._ids = {}
        self._segments = {}

    def segments(self, segmentation, response_mask: torch.Tensor):
        """This micro-batch's response ids segmented by ``segmentation`` (a hashable
        :class:`~sspo_verl.adapter.actor_config.Segmentation`), built once per value: the SSPO loss and the
        diagnostics share them instead of segmenting twice. Shape: ``response_mask`` (B, T)."""
        if segmentation not in self._segments:
            ids = self.response_ids(response_mask.shape[1])
            self._segments[segmentation] = segmentation.segments(ids, response_mask)
        return self._segments[segmentation]

    def response_ids(self, response_length: int) -> torch.Tensor:
        """Response token ids (padded once per width). Shape: (B, response_length), 0 beyond each response."""
        if "responses" not in self.data.keys():
            raise KeyError(
                f"the micro-batch has no 'responses' field, which SSPO segments on; verl {SUPPORTED_VERL_VERSION}'s "
                f"actor update keeps it (fields present: {sorted(self.data.keys())})"
            )
        if response_length not in self._ids:
            ids = self.data["responses"]
            if ids.is_nested:
                ids = torch.nested.to_padded_tensor(ids, 0)
            self._ids[response_length] = _fit_width(ids, response_length, 0)
        return self._ids[response_length]

    def old_entropy(self, response_length: int) -> Optional[torch.Tensor]:
        """Token entropy of the sampling policy (the ``entropy`` field verl's V1 trainer stores per response at
        the old-log-prob pass), or None when the batch has none. Shape: (B, response_length), 0 beyond each
        response."""
        if "entropy" not in self.data.keys():
            return None
        ent = self.data["entropy"]
        if ent.is_nested:
            ent = torch.nested.to_padded_tensor(ent, 0.0)
        return _fit_width(ent.detach(), response_length, 0.0)

    def entropy_mean(self) -> Optional[float]:
        """μ of the rollout batch, carried to every micro-batch by :mod:`sspo_verl.adapter.entropy_reference`,
        or None when the trainer supplied none."""
        value = tu.get_non_tensor_data(self.data, ENTROPY_MEAN_KEY, None)
        return None if value is None else float(value)

    def entropy(self, response_length: int) -> Optional[torch.Tensor]:
        """Token entropy of the current policy, detached, or None when verl did not compute it.

        Shape: (B, response_length).
        """
        ent = self.model_output.get("entropy", None)
        if ent is None:
            return None
        ent = no_padding_2_padding(ent, self.data)  # the same layout conversion ppo_loss applies to log-probs
        return _fit_width(ent.detach(), response_length, 0.0)


def current_microbatch() -> Optional[MicroBatch]:
    """The micro-batch of the ``ppo_loss`` call in progress, or None outside one."""
    return _CURRENT.get()


@contextlib.contextmanager
def microbatch_context(data, model_output):
    """Make ``(data, model_output)`` the current micro-batch for the duration of the block."""
    token = _CURRENT.set(MicroBatch(data, model_output))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _tag_min_max(metrics: dict) -> dict:
    """Reduce ``*_min`` / ``*_max`` metrics with MIN / MAX instead of the MEAN ``ppo_loss`` gives every policy-loss
    metric (verl's own name rule in ``reduce_metrics``; in verl 0.9.1 only SSPO's ``actor/sspo/*`` have such names)."""
    for key, val in list(metrics.items()):
        agg = AggregationType.MIN if key.endswith("_min") else AggregationType.MAX if key.endswith("_max") else None
        if agg is not None and isinstance(val, Metric) and val.aggregation != agg:
            tagged = Metric(aggregation=agg)
            tagged.extend(val.values)
            metrics[key] = tagged
    return metrics


def _wrap_ppo_loss(original):
    @functools.wraps(original)
    def ppo_loss(config, model_output, data, dp_group=None):
        with microbatch_context(data, model_output):
            loss, metrics = original(config, model_output, data, dp_group)
        return loss, _tag_min_max(metrics)

    return ppo_loss


PPO_LOSS = Patch(
    module="verl.workers.utils.losses",
    name="ppo_loss",
    params=("config", "model_output", "data", "dp_group"),
    wrap=_wrap_ppo_loss,
    importers=("verl.workers.engine_workers", "verl.trainer.distillation.losses"),
    why="let policy losses see the micro-batch (response ids, entropy)",
)
