"""The pre-flight run: every check of :data:`CHECKS` in order on one config, the findings logged, errors raised."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Optional

from omegaconf import DictConfig

from sspo_verl.preflight import (
    algorithm,
    cluster,
    cuda,
    files,
    gpu,
    memory,
    packages,
    schema,
    tokenizer,
    trainer_mode,
    validate,
)
from sspo_verl.preflight.context import (
    ClusterProbe,
    Context,
    CudaProbe,
    GpuCounter,
    GpuQuery,
    PreflightError,
    PreflightReport,
)
from sspo_verl.ray_probe import probe_ray_cluster

__all__ = ["CHECKS", "run_preflight"]

logger = logging.getLogger("sspo_verl.preflight")
if logger.level == logging.NOTSET:  # verl lowers the root logger to WARNING; fixes are logged at WARNING anyway
    logger.setLevel(logging.INFO)

# Every check, in the order they run. A check is ``fn(ctx: Context) -> None``: it reads ``ctx.get(key)`` and
# reports through ``ctx.error`` / ``ctx.warning`` / ``ctx.fix``; it returns early when its ``preflight.*`` switch
# is off. Add a check by writing such a function in the module of its concern and listing it here.
CHECKS: tuple[Callable[[Context], None], ...] = (
    schema.check_schema,  # first: types, finiteness, ranges, relations; the checks after it compute with these
    validate.check_verl,  # verl's own validate_config, on the values just checked; what it refuses is not rechecked
    algorithm.check_registry,
    algorithm.check_sspo_config,
    algorithm.check_on_policy,
    algorithm.check_clip_scale,
    algorithm.check_preset,
    algorithm.check_group_size,
    files.check_files,
    tokenizer.check_sspo_tokenizer,
    tokenizer.check_model_limits,  # after files: reads the model's config.json and loads its tokenizer
    tokenizer.check_prompt_lengths,  # after files: reads the prompts of files that passed
    cluster.check_cluster,
    packages.check_packages,  # a GPU run's attention kernel installed here
    cuda.check_cuda,  # after cluster: a node without GPUs is refused there
    memory.check_memory,  # after files: reads the model's config.json
    trainer_mode.check_trainer_mode,
)


def run_preflight(
    config: DictConfig,
    *,
    env: Optional[Mapping[str, str]] = None,
    gpu_counter: GpuCounter = cluster.count_visible_gpus,
    cluster_probe: ClusterProbe = probe_ray_cluster,
    gpu_query: GpuQuery = gpu.query_gpus,
    cuda_probe: CudaProbe = gpu.probe_torch_cuda,
    raise_on_error: bool = True,
) -> PreflightReport:
    """Check a composed training config, apply the documented fixes in place, log every finding.

    Args:
        config: the composed ``sspo_trainer`` config (``DictConfig``); fixes are written into it.
        env: environment to read Slurm / Ray / CUDA variables from (default ``os.environ``).
        gpu_counter: how to count the GPUs visible here (tests pass a fake).
        cluster_probe: how to ask a Ray cluster for its GPUs per node (tests pass a fake).
        gpu_query: how to read this node's GPU inventory (tests put a stand-in nvidia-smi on ``env``'s PATH).
        cuda_probe: how to ask torch about CUDA in a fresh process (tests pass another command).
        raise_on_error: raise :class:`PreflightError` when there are errors (or warnings with
            ``preflight.strict=true``); otherwise only return them.

    Returns:
        The report: every error, warning and fix.
    """
    ctx = Context(
        config=config,
        report=PreflightReport(),
        env=os.environ if env is None else env,
        gpu_counter=gpu_counter,
        cluster_probe=cluster_probe,
        gpu_query=gpu_query,
        cuda_probe=cuda_probe,
    )
    for check in CHECKS:
        try:
            check(ctx)
        except (TypeError, ValueError, ArithmeticError):
            if not ctx.report.errors:
                raise
            # a value an earlier check already refused (e.g. a batch size that is not a number) broke this one
            logger.debug("pre-flight check %s skipped after earlier errors", check.__name__, exc_info=True)
    report = ctx.report

    for finding in report.fixes:
        logger.warning("sspo-train pre-flight set a value: %s", finding.message)
    for finding in report.warnings:
        if finding.check == "on_policy":
            bar = "!" * 100
            logger.warning("\n%s\n%s\n%s", bar, finding.message, bar)
        else:
            logger.warning("sspo-train pre-flight warning [%s]: %s", finding.check, finding.message)
    strict = bool(ctx.get("preflight.strict", False))
    blocking = report.errors + (report.warnings if strict else [])
    if not blocking:
        logger.info(
            "sspo-train pre-flight passed (%d warning(s), %d fix(es))", len(report.warnings), len(report.fixes)
        )
    elif raise_on_error:
        raise PreflightError(blocking)
    return report
