"""What every pre-flight check gets: the config, this machine's environment and probes, and the report it adds to."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf, open_dict

from sspo_verl.preflight.gpu import GpuInfo, TorchCuda, probe_torch_cuda, query_gpus

__all__ = ["ACTOR", "POLICY_LOSS", "Context", "Finding", "PreflightError", "PreflightReport"]

ACTOR = "actor_rollout_ref.actor"
POLICY_LOSS = f"{ACTOR}.policy_loss"

GpuCounter = Callable[[Mapping[str, str], float], Optional[int]]
ClusterProbe = Callable[[str, float], list[float]]
GpuQuery = Callable[[Mapping[str, str], float], Optional[list[GpuInfo]]]
CudaProbe = Callable[[Mapping[str, str], float], TorchCuda]


@dataclasses.dataclass(frozen=True)
class Finding:
    """One pre-flight result. ``level``: ``error`` (the run must not start), ``warning``, or ``fix`` (a value the
    pre-flight set, with the reason)."""

    level: str
    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.level}: {self.check}] {self.message}"


class PreflightError(ValueError):
    """The config cannot run; ``findings`` holds every error (and, in strict mode, every warning)."""

    def __init__(self, findings: Sequence[Finding]):
        self.findings = list(findings)
        lines = "\n".join(f"  - {f}" for f in self.findings)
        super().__init__(
            f"sspo-train pre-flight found {len(self.findings)} problem(s); nothing was started:\n{lines}"
        )


@dataclasses.dataclass
class PreflightReport:
    findings: list[Finding] = dataclasses.field(default_factory=list)

    def of(self, level: str) -> list[Finding]:
        return [f for f in self.findings if f.level == level]

    @property
    def errors(self) -> list[Finding]:
        return self.of("error")

    @property
    def warnings(self) -> list[Finding]:
        return self.of("warning")

    @property
    def fixes(self) -> list[Finding]:
        return self.of("fix")

    def checks(self, level: Optional[str] = None) -> set[str]:
        """Names of the checks that reported (at ``level``)."""
        return {f.check for f in self.findings if level is None or f.level == level}

    def add(self, level: str, check: str, message: str) -> None:
        self.findings.append(Finding(level, check, message))


@dataclasses.dataclass
class Context:
    """The argument of every check: ``check(ctx)`` reads ``ctx.get(key)`` and reports with ``ctx.error`` /
    ``ctx.warning`` / ``ctx.fix``; it raises nothing for a bad config.

    Attributes:
        config: the composed training config; a fix writes into it.
        report: where the findings go.
        env: the environment to read Slurm / Ray / CUDA variables from.
        gpu_counter: GPUs visible here, given the environment and a timeout in seconds (tests pass a fake).
        cluster_probe: GPUs per node of a Ray cluster at an address, within a timeout (tests pass a fake).
        gpu_query: this node's GPU inventory, given the environment and a timeout (sspo_verl.preflight.gpu).
        cuda_probe: what torch in a fresh process says about CUDA, given the environment and a timeout.
    """

    config: DictConfig
    report: PreflightReport
    env: Mapping[str, str]
    gpu_counter: GpuCounter
    cluster_probe: ClusterProbe
    gpu_query: GpuQuery = query_gpus
    cuda_probe: CudaProbe = probe_torch_cuda

    def get(self, key: str, default: Any = None) -> Any:
        """The value at a dotted key (``default`` when missing)."""
        return OmegaConf.select(self.config, key, default=default)

    def set(self, key: str, value: Any) -> None:
        """Write a value at a dotted key (creating it); report it with :meth:`fix`."""
        with open_dict(self.config):
            OmegaConf.update(self.config, key, value, merge=False)

    def error(self, check: str, message: str) -> None:
        self.report.add("error", check, message)

    def warning(self, check: str, message: str) -> None:
        self.report.add("warning", check, message)

    def fix(self, check: str, message: str) -> None:
        self.report.add("fix", check, message)

    def require(self, check: str, key: str, value: Any, *, because: str, reason: str) -> bool:
        """``key`` must hold ``value`` because of the setting ``because`` (a ``key=value`` text): fill it when unset
        (null or missing) and report the fill (run_preflight prints each fill once at start-up); a different value
        someone set is an error naming both keys. Never overwrites a value.

        Args:
            check: the check's name.
            key: the dotted key that must hold ``value``.
            because: the setting that needs it, e.g. ``"actor_rollout_ref.actor.policy_loss.entropy_source=current"``.
            reason: why, in a few words (goes into both messages).

        Returns:
            Whether ``key`` holds ``value`` now.
        """
        current = self.get(key)
        if current is None:
            self.set(key, value)
            self.fix(check, f"{key} was unset: set to {value!r} because {because} ({reason}).")
            return True
        if current == value:
            return True
        self.error(
            check,
            f"{key}={current!r} contradicts {because}: {reason}, so it needs {key}={value!r}. Set {key}={value!r} "
            f"(or leave it unset), or change {because.split('=', 1)[0]}.",
        )
        return False
