"""verl's own pre-Ray config check, ``verl.utils.config.validate_config`` (what ``verl.trainer.main_ppo`` runs first;
it builds the actor's config dataclasses, so their ``__post_init__`` checks and SSPO's run too), reported with the
keys its refusal concerns. What it refuses is not checked again by sspo-verl's own checks
(tests/preflight/test_validate_on_cpu.py lists those inputs and asserts this check refuses each, and hands verl
every out-of-range value of ranges.RANGES: it accepts all but the two node / GPU counts, whose refusal names no key).
"""

from __future__ import annotations

import contextlib
import copy
import io
import linecache
import logging
import re
import warnings

from omegaconf import DictConfig, OmegaConf

from sspo_verl.preflight.context import Context

__all__ = ["check_verl", "keys_of"]

logger = logging.getLogger("sspo_verl.preflight")


def check_verl(ctx: Context) -> None:
    """verl's ``validate_config`` rejects the config → error with verl's message and the keys it concerns.

    Runs only when the check before it in ``runner.CHECKS`` (the schema: types, ranges, relations) found nothing:
    verl computes with the values, and a string or a zero divisor would fail there with a message naming no key.
    """
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
        root = _chain(exc)[-1]
        detail = str(root).strip() or f"verl asserts `{_failing_source(root).removeprefix('assert ')}`"  # bare assert
        keys = ", ".join(f"{key}={ctx.get(key)!r}" for key in keys_of(exc, ctx.config))
        ctx.error("verl", f"verl's validate_config refused {keys or 'the config'}: {type(root).__name__}: {detail}")
        return
    logger.debug("verl validate_config: %s", captured.getvalue().strip())


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, the first one last (hydra wraps a dataclass's own error in InstantiationException)."""
    chain = [exc]
    while (cause := chain[-1].__cause__ or (None if chain[-1].__suppress_context__ else chain[-1].__context__)):
        chain.append(cause)
    return chain


def _failing_source(exc: BaseException) -> str:
    """The source line that raised ``exc`` (verl's ``assert`` / ``raise``)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno).strip() if tb is not None else ""


def _leaves(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in node.keys():
        path, child = f"{prefix}.{key}" if prefix else str(key), node._get_node(key)
        keys += _leaves(child, path) if isinstance(child, DictConfig) else [path]
    return keys


def keys_of(exc: BaseException, config: DictConfig) -> list[str]:
    """The config keys a validate_config refusal names, where they can be derived: each name in verl's message or
    in its failing ``assert`` / ``raise`` (``self.x``, ``config.a.b``, ``'a.b'``) that matches exactly one key —
    one key of the node hydra failed to build, if it names one; else a key of that node whose value the message
    quotes (an unloadable ``_target_``)."""
    chain = _chain(exc)
    text = "\n".join([*map(str, chain), _failing_source(chain[-1])])
    full_keys = re.findall(r"full_key: (\S+)", text)  # hydra names the node it failed to build
    scope = [k for k in _leaves(config) if not full_keys or k.startswith(full_keys[-1] + ".")]
    quoted = set(re.findall(r"'([^'\s]+)'", text))
    names = {re.sub(r"^(self|config)\.", "", w) for w in re.findall(r"\w[\w.]*\w", text) if "_" in w} | quoted
    keys = [m[0] for w in names if len(m := [k for k in scope if k == w or k.endswith("." + w)]) == 1]
    if not keys and full_keys:
        keys = [k for k in scope
                if isinstance(v := OmegaConf.select(config, k, throw_on_resolution_failure=False), str) and v in quoted]
    return sorted(set(keys))
