"""The one patch: let registered policy losses see the micro-batch verl's ``ppo_loss`` receives.

verl 0.9.1 calls a policy loss with log-probs, advantages and the mask only (no token ids, no entropy), but
SSPO segments on the response token ids and scales its clip bounds by the token entropy. Both are in the
arguments of ``verl.workers.utils.losses.ppo_loss(config, model_output, data, dp_group)``, the function verl's
engine workers call for every micro-batch. :func:`install` wraps that function so that, while it runs, a
``ContextVar`` holds a :class:`MicroBatch` view of ``data`` and ``model_output``; the SSPO loss reads it with
:func:`current_microbatch`. It also wraps the registry lookup ``ppo_loss`` uses (``get_policy_loss_fn``, the
name bound in ``verl.workers.utils.losses`` only) so that every policy loss's metrics gain the granularity
diagnostics of :mod:`sspo_verl.adapter.diagnostics`. Nothing else about ``ppo_loss`` changes; min/max SSPO
metrics are tagged with verl's MIN/MAX aggregation so they reduce correctly over micro-batches and ranks.

Patch discipline (STYLE.md §3): one place; idempotent (the wrapper carries ``__sspo_verl_wrapped__``); logs
once; fails loudly if verl moved the target; installed from the ``verl.plugins`` entry point, i.e. during
``import verl``, before ``verl.workers.engine_workers`` binds ``ppo_loss``. Modules that already imported the
name are rebound too.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import sys
from contextvars import ContextVar
from typing import Any, Optional

import torch

from sspo_verl.adapter import diagnostics

logger = logging.getLogger(__name__)

TARGET_MODULE = "verl.workers.utils.losses"
TARGET_NAME = "ppo_loss"
TARGET_PARAMS = ("config", "model_output", "data", "dp_group")
LOOKUP_NAME = "get_policy_loss_fn"  # ppo_loss's registry lookup, wrapped to add the granularity diagnostics
# Modules that do `from verl.workers.utils.losses import ppo_loss` and must see the wrapper.
IMPORTERS = ("verl.workers.engine_workers", "verl.trainer.distillation.losses")
MARK = "__sspo_verl_wrapped__"
MIN_MAX_METRIC_PREFIX = "actor/sspo/"

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
        self._segments = {}

    def segments(self, key, build):
        """Segments of this micro-batch for ``key`` (granularity and its options), built once by ``build()``.

        The SSPO loss and the diagnostics share them instead of segmenting twice.
        """
        if key not in self._segments:
            self._segments[key] = build()
        return self._segments[key]

    def response_ids(self, response_length: int) -> torch.Tensor:
        """Response token ids. Shape: (B, response_length), 0 beyond each response."""
        if "responses" not in self.data.keys():
            raise KeyError(
                "the micro-batch has no 'responses' field, which SSPO segments on; verl 0.9.1's actor update "
                f"keeps it (fields present: {sorted(self.data.keys())})"
            )
        ids = self.data["responses"]
        if ids.is_nested:
            ids = torch.nested.to_padded_tensor(ids, 0)
        return _fit_width(ids, response_length, 0)

    def entropy(self, response_length: int) -> Optional[torch.Tensor]:
        """Token entropy of the current policy, detached, or None when verl did not compute it.

        Shape: (B, response_length).
        """
        ent = self.model_output.get("entropy", None)
        if ent is None:
            return None
        from verl.workers.utils.padding import no_padding_2_padding

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
    from verl.utils.metric import AggregationType, Metric

    for key, val in list(metrics.items()):
        if not key.startswith(MIN_MAX_METRIC_PREFIX):
            continue
        agg = AggregationType.MIN if key.endswith("_min") else AggregationType.MAX if key.endswith("_max") else None
        if agg is not None and isinstance(val, Metric) and val.aggregation != agg:
            tagged = Metric(aggregation=agg)
            tagged.extend(val.values)
            metrics[key] = tagged
    return metrics


def _wrap(original):
    @functools.wraps(original)
    def ppo_loss(config, model_output, data, dp_group=None):
        with microbatch_context(data, model_output):
            loss, metrics = original(config, model_output, data, dp_group)
        return loss, _tag_min_max(metrics)

    setattr(ppo_loss, MARK, original)
    return ppo_loss


def _with_diagnostics(policy_loss_fn):
    """Wrap a policy loss so the granularity diagnostics join its metrics (see adapter.diagnostics)."""
    if hasattr(policy_loss_fn, MARK):
        return policy_loss_fn

    @functools.wraps(policy_loss_fn)
    def policy_loss(*args, **kwargs):
        loss, metrics = policy_loss_fn(*args, **kwargs)
        microbatch = _CURRENT.get()
        if microbatch is not None and not args and diagnostics.enabled():
            metrics = {**metrics, **diagnostics.diagnostics(microbatch, **kwargs)}
        return loss, metrics

    setattr(policy_loss, MARK, policy_loss_fn)
    return policy_loss


def _wrap_lookup(original_lookup):
    @functools.wraps(original_lookup)
    def get_policy_loss_fn(name):
        return _with_diagnostics(original_lookup(name))

    setattr(get_policy_loss_fn, MARK, original_lookup)
    return get_policy_loss_fn


def _target_module():
    try:
        module = importlib.import_module(TARGET_MODULE)
    except ImportError as e:
        raise RuntimeError(
            f"sspo-verl cannot install its micro-batch context: {TARGET_MODULE} failed to import ({e}). "
            "sspo-verl supports verl 0.9.1 only (pip install 'verl[verl-core]==0.9.1')."
        ) from e
    fn = getattr(module, TARGET_NAME, None)
    if fn is None:
        raise RuntimeError(
            f"sspo-verl cannot install its micro-batch context: {TARGET_MODULE}.{TARGET_NAME} does not exist in "
            "this verl. sspo-verl supports verl 0.9.1 only."
        )
    original = getattr(fn, MARK, fn)
    params = tuple(inspect.signature(original).parameters)
    if params != TARGET_PARAMS:
        raise RuntimeError(
            f"sspo-verl cannot install its micro-batch context: {TARGET_MODULE}.{TARGET_NAME} has parameters "
            f"{params}, expected {TARGET_PARAMS} (verl 0.9.1). sspo-verl supports verl 0.9.1 only."
        )
    return module, fn


def is_installed() -> bool:
    """True when ``ppo_loss`` and every already-imported importer of it are the wrapper."""
    module = sys.modules.get(TARGET_MODULE)
    if module is None or not hasattr(getattr(module, TARGET_NAME, None), MARK):
        return False
    if not hasattr(getattr(module, LOOKUP_NAME, None), MARK):
        return False
    for name in IMPORTERS:
        importer = sys.modules.get(name)
        if importer is not None and not hasattr(getattr(importer, TARGET_NAME, None), MARK):
            return False
    return True


def install() -> bool:
    """Wrap ``ppo_loss`` (idempotent). Returns True when this call changed anything."""
    module, fn = _target_module()
    changed = False
    if hasattr(fn, MARK):
        wrapper = fn
    else:
        wrapper = _wrap(fn)
        setattr(module, TARGET_NAME, wrapper)
        changed = True
    lookup = getattr(module, LOOKUP_NAME, None)
    if lookup is None:
        raise RuntimeError(f"sspo-verl expected {TARGET_MODULE}.{LOOKUP_NAME} (verl 0.9.1); it is gone in this verl")
    if not hasattr(lookup, MARK):
        setattr(module, LOOKUP_NAME, _wrap_lookup(lookup))
        changed = True
    for name in IMPORTERS:
        importer = sys.modules.get(name)
        if importer is None:
            continue  # imports the wrapper when it loads
        bound = getattr(importer, TARGET_NAME, None)
        if bound is None:
            raise RuntimeError(f"sspo-verl expected {name}.{TARGET_NAME} (verl 0.9.1); it is gone in this verl")
        if not hasattr(bound, MARK):
            setattr(importer, TARGET_NAME, wrapper)
            changed = True
    if changed:
        logger.info("sspo-verl: %s.%s wrapped to expose the micro-batch to policy losses", TARGET_MODULE, TARGET_NAME)
    return changed


def uninstall() -> None:
    """Restore verl's ``ppo_loss`` everywhere (tests use this to prove the loss fails loudly without it)."""
    module = sys.modules.get(TARGET_MODULE)
    fn = getattr(module, TARGET_NAME, None) if module else None
    original: Any = getattr(fn, MARK, None)
    if original is None:
        return
    setattr(module, TARGET_NAME, original)
    lookup = getattr(module, LOOKUP_NAME, None)
    if hasattr(lookup, MARK):
        setattr(module, LOOKUP_NAME, getattr(lookup, MARK))
    for name in IMPORTERS:
        importer = sys.modules.get(name)
        if importer is not None and hasattr(getattr(importer, TARGET_NAME, None), MARK):
            setattr(importer, TARGET_NAME, original)
