"""verl's own config check: ``verl.utils.config.validate_config``, the check ``verl.trainer.main_ppo`` runs first,
on a copy of the config and only when every other check passed (it assumes an otherwise sane config)."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings

from sspo_verl.preflight.context import Context

__all__ = ["check_verl"]

logger = logging.getLogger("sspo_verl.preflight")


def check_verl(ctx: Context) -> None:
    """verl's ``validate_config`` rejects the config → error with verl's message."""
    if ctx.report.errors:
        return
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = copy.deepcopy(ctx.config)
    captured = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
            warnings.simplefilter("ignore")
            validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except Exception as exc:  # verl raises AssertionError, ValueError, hydra InstantiationException, ...
        detail = str(exc).strip() or type(exc).__name__
        ctx.error("verl", f"verl's validate_config rejected the config: {type(exc).__name__}: {detail}")
        return
    logger.debug("verl validate_config: %s", captured.getvalue().strip())
