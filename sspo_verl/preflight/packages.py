"""Packages check: the attention kernel a GPU run's config asks for is installed here, read from the installed
distributions (``importlib.util.find_spec`` / ``importlib.metadata``; nothing heavy is imported).

verl loads the actor and reference models with ``actor_rollout_ref.model.override_config.attn_implementation``
(verl's default ``flash_attention_2``); transformers refuses ``flash_attention_2`` without the ``flash_attn``
package, inside the first Ray worker that loads the model, after Ray, vLLM and the rollout servers have started.
PyPI has no flash-attn wheel for verl 0.9.1's torch 2.11 (``pip install -e ".[gpu,math]"`` leaves it out), so this
is what a fresh install meets when it sets ``flash_attention_2``. The check also refuses Ulysses sequence parallelism
with another attention: verl 0.9.1 routes Ulysses' all-to-all only through transformers' flash-attention forward
(``verl.models.transformers.monkey_patch``), so with SDPA each rank would attend within its own slice of the
sequence.

Only for ``trainer.device=cuda``: the CPU backend checks its own (``sspo_verl.cpu.launch``). The driver's
environment stands for every node's (a shared venv or image, as the README's cluster section asks).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig

from sspo_verl.cpu.vllm_checks import _version as installed_version
from sspo_verl.preflight.context import Context

__all__ = ["ATTENTION_PACKAGES", "FLASH_ATTN_INSTALL", "check_packages"]

ATTN_KEY = "actor_rollout_ref.model.override_config.attn_implementation"
VERL_DEFAULT_ATTN = "flash_attention_2"  # verl.workers.config.model.HFModelConfig: override_config.get(..., this)
FLASH_ATTN_INSTALL = "pip install --no-build-isolation flash-attn==2.8.3"  # the README's optional GPU step
# attn_implementation -> (module transformers imports for it, the distribution that provides it, how to install it)
ATTENTION_PACKAGES = {
    "flash_attention_2": ("flash_attn", "flash-attn", f"{FLASH_ATTN_INSTALL} (see the README's GPU install)"),
    "flash_attention_3": ("flash_attn_interface", "flash-attn-3", "build flash-attn's hopper/ package"),
}
FLASH_ATTENTIONS = tuple(ATTENTION_PACKAGES)


def _module_installed(module: str) -> bool:
    """Whether ``import module`` would find it, without importing it (or its parent packages)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _keys_named(node: Any, name: str, prefix: str) -> Iterator[tuple[str, Any]]:
    """Every ``(dotted key, value)`` under ``node`` whose last part is ``name`` (interpolations resolved)."""
    if isinstance(node, DictConfig):
        for key in node.keys():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            try:
                value = node[key]
            except Exception:  # an interpolation that does not resolve here: another check reports it
                continue
            if key == name and not isinstance(value, (DictConfig, ListConfig)):
                yield dotted, value
            else:
                yield from _keys_named(value, name, dotted)
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            yield from _keys_named(item, name, f"{prefix}[{i}]")


def _set_hint(ctx: Context, key: str, value: str) -> str:
    """``key=value`` as a command-line override: ``+key=value`` when the composed config has no such key."""
    return f"{key}={value}" if ctx.get(key) is not None else f"+{key}={value}"


def check_packages(ctx: Context) -> None:
    """``attn_implementation`` (``flash_attention_2`` / ``_3``) needs its package installed; Ulysses needs one of them."""
    if str(ctx.get("trainer.device", "cuda")) != "cuda":
        return
    attn = ctx.get(ATTN_KEY) or VERL_DEFAULT_ATTN
    shown = f"{ATTN_KEY}={attn}" + (" (verl's default)" if ctx.get(ATTN_KEY) is None else "")
    sdpa = _set_hint(ctx, ATTN_KEY, "sdpa")
    if attn in ATTENTION_PACKAGES:
        module, dist, install = ATTENTION_PACKAGES[attn]
        if not _module_installed(module):
            torch_version = installed_version("torch") or "not installed"
            ctx.error(
                "packages",
                f"{shown} needs the {dist} package, which is not installed in this Python ({sys.executable}; torch "
                f"{torch_version}); verl would fail when its first worker loads the model. Either install it: "
                f"{install}, or use PyTorch's attention: {sdpa} (what hardware=gpu_1x8 / gpu_nx8 set).",
            )
    sp_sizes = [
        (key, value)
        for key, value in _keys_named(ctx.get("actor_rollout_ref"), "ulysses_sequence_parallel_size", "actor_rollout_ref")
        if isinstance(value, int) and value > 1
    ]
    if sp_sizes and attn not in FLASH_ATTENTIONS:
        key, value = sp_sizes[0]
        ctx.error(
            "packages",
            f"{key}={value} (Ulysses sequence parallelism) with {shown}: verl 0.9.1 runs Ulysses' all-to-all only "
            f"inside flash-attention, so with {attn} each rank would attend only within its slice of the sequence. "
            f"Set {_set_hint(ctx, ATTN_KEY, 'flash_attention_2')} (needs flash-attn: {FLASH_ATTN_INSTALL}), or "
            f"{key}=1.",
        )

