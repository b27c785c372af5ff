"""Granularity diagnostics for every policy loss (``actor/diag/*``), computed in verl's ``ppo_loss``.

:data:`POLICY_LOSS_LOOKUP` wraps ``get_policy_loss_fn`` as ``verl.workers.utils.losses`` binds it (the lookup
``ppo_loss`` calls; verl's registry itself is untouched), so that after any loss (``vanilla``, ``gspo``,
``sspo``, ...) returns, :func:`sspo_verl.core.diagnostics.granularity_diagnostics` runs on the same micro-batch
(the context of :mod:`sspo_verl.adapter.microbatch`; no gradient, one device sync) and its metrics join the
loss's. GRPO, GSPO and SSPO runs thus log the same token / subsentence / sequence clip statistics and can be
plotted side by side.

Set ``SSPO_DIAGNOSTICS=0`` (in every worker: ``ray_kwargs.ray_init.runtime_env.env_vars``) to turn it off.
The subsentence granularity needs the tokenizer: ``policy_loss.tokenizer_path`` for SSPO, else the actor
model's; without one, only token and sequence diagnostics are reported (a warning says so, once).
"""

from __future__ import annotations

import functools
import logging
import os

import torch

from sspo_verl.adapter.actor_config import clip_ratios, segmentation_for, tokenizer_path
from sspo_verl.adapter.microbatch import current_microbatch
from sspo_verl.core.diagnostics import granularity_diagnostics
from sspo_verl.patching import Patch

logger = logging.getLogger(__name__)

ENV_VAR = "SSPO_DIAGNOSTICS"
PREFIX = "actor/diag/"
_warned = set()


def enabled() -> bool:
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "off", "no")


def diagnostics(microbatch, old_log_prob, log_prob, advantages, response_mask, config, **_) -> dict[str, float]:
    """``actor/diag/*`` metrics of one micro-batch as floats."""
    mask = response_mask.to(log_prob.device)
    granularities = ["token", "sequence"]
    if tokenizer_path(config):
        granularities.append("subsentence")
    elif "no_tokenizer" not in _warned:
        _warned.add("no_tokenizer")
        logger.warning("sspo-verl diagnostics: no tokenizer path in the actor config, subsentence diagnostics off")
    segments = {g: microbatch.segments(segmentation_for(config, g), mask) for g in granularities}
    clip_low, clip_high = clip_ratios(config)
    values = granularity_diagnostics(log_prob.detach(), old_log_prob, advantages, segments, clip_low, clip_high)
    floats = torch.stack(list(values.values())).tolist()  # one device sync
    return {PREFIX + k: v for k, v in zip(values, floats)}


def _with_diagnostics(policy_loss_fn):
    """Wrap a policy loss so that, inside ``ppo_loss``, the granularity diagnostics join its metrics."""

    @functools.wraps(policy_loss_fn)
    def policy_loss(*args, **kwargs):
        loss, metrics = policy_loss_fn(*args, **kwargs)
        microbatch = current_microbatch()
        if microbatch is not None and not args and enabled():
            metrics = {**metrics, **diagnostics(microbatch, **kwargs)}
        return loss, metrics

    return policy_loss


def _wrap_lookup(original_lookup):
    @functools.wraps(original_lookup)
    def get_policy_loss_fn(name):
        return _with_diagnostics(original_lookup(name))

    return get_policy_loss_fn


POLICY_LOSS_LOOKUP = Patch(
    module="verl.workers.utils.losses",
    name="get_policy_loss_fn",
    params=("name",),
    wrap=_wrap_lookup,
    why="add the actor/diag/* granularity diagnostics to every policy loss's metrics",
)
