"""Pre-flight checks: a wrong training config fails in the driver, before Ray starts, with the fix in the message.

``sspo-train`` runs :func:`run_preflight` on every composed config (each job of a multirun). verl itself checks
little before its workers start: a misspelt ``loss_mode`` fails at the first update inside a Ray worker, a
cluster with fewer GPUs than ``trainer.nnodes × n_gpus_per_node`` makes verl wait for them.

Public API:
    run_preflight(config, ...) -> PreflightReport   check, apply the documented fixes in place, log; raise on errors
    PreflightReport, Finding, PreflightError
    RATIO_LOSSES, GROUP_ESTIMATORS                    the loss modes / estimators the checks know about

Checks, in order (the ``check`` name of each finding):
    registry        loss_mode / adv_estimator not registered in verl → error listing the registered ones
    sspo_config     loss_mode=sspo without ``policy_loss._target_=sspo_verl.SSPOPolicyLossConfig`` → error;
                    ``tokenizer_path`` unset → fix: the model's tokenizer path (``model.tokenizer_path``, else
                    ``model.path``); entropy clipping on with ``calculate_entropy=false`` → fix: enable it
                    (logged; chosen over refusing because entropy is a by-product of the forward pass the loss
                    needs anyway and ``entropy_clip=false`` is the explicit way to run without it)
    on_policy       a ratio-based loss with one mini-batch per rollout batch and one epoch (synchronous
                    trainer): every ratio is 1 and GRPO / GSPO / SSPO give the same gradient → loud warning
    clip_scale      GSPO (a sequence-level ratio) with GRPO-scale ε, or a token/subsentence ratio with
                    GSPO-scale ε → warning (quiet for a preset that declares that scale on purpose: gspo_wide)
    preset          loss_mode differs from the algorithm preset's, or a loss_agg_mode the preset's paper did not
                    use → warning
    group_size      a group-relative advantage estimator with rollout.n < 2 → warning
    files           data.train_files / data.val_files / a local model path / the reward module missing → error
    cluster         trainer.nnodes × n_gpus_per_node against Slurm's allocation, a Ray cluster given by address
                    (queried in a subprocess with a timeout; Ray is not started), or the GPUs visible here
    verl            verl's own ``validate_config`` (verl.utils.config) on a copy of the config

Thresholds are [ours]: ε below ``SEQUENCE_SCALE_EPS`` (0.01) counts as sequence scale (the GSPO paper uses
3e-4 / 4e-4), at or above it as token scale (GRPO: 0.2 / 0.28).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import importlib.util
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

__all__ = [
    "GROUP_ESTIMATORS",
    "RATIO_LOSSES",
    "SEQUENCE_SCALE_EPS",
    "Finding",
    "PreflightError",
    "PreflightReport",
    "run_preflight",
]

logger = logging.getLogger("sspo_verl.preflight")
if logger.level == logging.NOTSET:  # verl lowers the root logger to WARNING; fixes are logged at WARNING anyway
    logger.setLevel(logging.INFO)

ACTOR = "actor_rollout_ref.actor"
POLICY_LOSS = f"{ACTOR}.policy_loss"

# Policy losses built on the PPO importance ratio π_θ/π_old: fully on-policy, every one of them sees ratio 1.
RATIO_LOSSES = frozenset(
    {"vanilla", "gspo", "sspo", "sapo", "cispo", "geo_mean", "clip_cov", "kl_cov", "dppo_tv", "dppo_kl", "dro"}
)
# Advantage estimators that compare the responses of one prompt with each other (they need rollout.n ≥ 2).
GROUP_ESTIMATORS = frozenset(
    {"grpo", "grpo_vectorized", "grpo_passk", "rloo", "rloo_vectorized", "opo", "sspo", "reinforce_plus_plus_baseline"}
)
# ε below this is "sequence scale" (GSPO paper: 3e-4 / 4e-4), at or above it "token scale" (GRPO: 0.2 / 0.28). [ours]
SEQUENCE_SCALE_EPS = 0.01
_REMOTE_PREFIXES = ("hdfs://", "s3://", "gs://", "oss://", "http://", "https://")
_SLURM_NODES_VARS = ("SLURM_JOB_NUM_NODES", "SLURM_NNODES")

GpuCounter = Callable[[Mapping[str, str]], Optional[int]]
ClusterProbe = Callable[[str, float], list[float]]


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


def _get(config: DictConfig, key: str, default: Any = None) -> Any:
    return OmegaConf.select(config, key, default=default)


def _set(config: DictConfig, key: str, value: Any) -> None:
    with open_dict(config):
        OmegaConf.update(config, key, value, merge=False)


# --------------------------------------------------------------------------------------------------- checks


def check_registry(config: DictConfig, report: PreflightReport) -> None:
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    loss_mode = _get(config, f"{POLICY_LOSS}.loss_mode")
    adv = _get(config, "algorithm.adv_estimator")
    if loss_mode == "sspo" or adv == "sspo":
        from sspo_verl.adapter.plugin import ensure_registered

        try:
            ensure_registered()  # both registrations and the ppo_loss micro-batch context SSPO's loss reads
        except RuntimeError as exc:
            report.add("error", "registry", str(exc))
            return
    if loss_mode not in POLICY_LOSS_REGISTRY:
        report.add(
            "error",
            "registry",
            f"{POLICY_LOSS}.loss_mode={loss_mode!r} is not a registered verl policy loss. Registered: "
            f"{', '.join(sorted(POLICY_LOSS_REGISTRY))}. Pick one (algorithm=grpo|gspo|gspo_wide|sspo sets it), or "
            "register yours with verl.trainer.ppo.core_algos.register_policy_loss in a verl.plugins entry point.",
        )
    if adv not in ADV_ESTIMATOR_REGISTRY:
        report.add(
            "error",
            "registry",
            f"algorithm.adv_estimator={adv!r} is not a registered verl advantage estimator. Registered: "
            f"{', '.join(sorted(ADV_ESTIMATOR_REGISTRY))}. Pick one (the algorithm presets set it), or register "
            "yours with verl.trainer.ppo.core_algos.register_adv_est.",
        )


def _policy_loss_class(target: Optional[str]):
    if not target:
        return None
    from hydra.utils import get_class

    try:
        return get_class(target)
    except Exception:  # reported by verl's validate_config with hydra's own message
        return None


def check_sspo_config(config: DictConfig, report: PreflightReport) -> None:
    if _get(config, f"{POLICY_LOSS}.loss_mode") != "sspo":
        return
    from sspo_verl.adapter.config import SSPOPolicyLossConfig

    target = _get(config, f"{POLICY_LOSS}._target_")
    cls = _policy_loss_class(target)
    if not (isinstance(cls, type) and issubclass(cls, SSPOPolicyLossConfig)):
        report.add(
            "error",
            "sspo_config",
            f"{POLICY_LOSS}.loss_mode=sspo needs SSPO's typed config, but {POLICY_LOSS}._target_={target!r}. "
            "Use the preset (algorithm=sspo), or set "
            f"{POLICY_LOSS}._target_=sspo_verl.SSPOPolicyLossConfig.",
        )
        return
    if not _get(config, f"{POLICY_LOSS}.tokenizer_path"):
        source_key = "actor_rollout_ref.model.tokenizer_path"
        path = _get(config, source_key)
        if not path:
            source_key = "actor_rollout_ref.model.path"
            path = _get(config, source_key)
        if path:
            _set(config, f"{POLICY_LOSS}.tokenizer_path", path)
            report.add(
                "fix",
                "sspo_config",
                f"{POLICY_LOSS}.tokenizer_path was unset: set to {source_key}={path!r} (SSPO segments the response "
                "ids with this tokenizer's vocabulary; set tokenizer_path explicitly if they differ).",
            )
        else:
            report.add(
                "error",
                "sspo_config",
                f"{POLICY_LOSS}.tokenizer_path and actor_rollout_ref.model.path are both unset: SSPO needs the "
                "tokenizer that produced the responses. Set actor_rollout_ref.model.path (model=...).",
            )
    if _get(config, f"{POLICY_LOSS}.entropy_clip") and not _get(config, f"{ACTOR}.calculate_entropy"):
        _set(config, f"{ACTOR}.calculate_entropy", True)
        report.add(
            "fix",
            "sspo_config",
            f"SSPO's entropy-adaptive clip bounds ({POLICY_LOSS}.entropy_clip=true) need the token entropy: set "
            f"{ACTOR}.calculate_entropy=true (it was false). To run SSPO without them, set "
            f"{POLICY_LOSS}.entropy_clip=false.",
        )


def _num_mini_batches(config: DictConfig) -> tuple[int, int, int]:
    """(train_batch_size, ppo_mini_batch_size, mini-batches per rollout batch), all counted in prompts."""
    train = int(_get(config, "data.train_batch_size"))
    mini = int(_get(config, f"{ACTOR}.ppo_mini_batch_size"))
    return train, mini, -(-train // max(mini, 1))


def _is_synchronous(config: DictConfig) -> bool:
    if not _get(config, "trainer.use_v1", True):
        return True
    return _get(config, "trainer.v1.trainer_mode", "sync") == "sync"


def check_on_policy(config: DictConfig, report: PreflightReport) -> None:
    loss_mode = _get(config, f"{POLICY_LOSS}.loss_mode")
    if loss_mode not in RATIO_LOSSES or not _is_synchronous(config):
        return
    train, mini, n_mini = _num_mini_batches(config)
    epochs = int(_get(config, f"{ACTOR}.ppo_epochs", 1))
    if n_mini == 1 and epochs == 1:
        report.add(
            "warning",
            "on_policy",
            f"FULLY ON-POLICY: loss_mode={loss_mode!r} with one mini-batch per rollout batch "
            f"(data.train_batch_size={train}, {ACTOR}.ppo_mini_batch_size={mini}) and {ACTOR}.ppo_epochs=1. "
            "Every importance ratio is exactly 1, nothing is ever clipped, and GRPO, GSPO and SSPO give the same "
            "gradient: an algorithm comparison run like this compares nothing. Use several mini-batches "
            f"(num_mini_batches=4, the presets' setting, or {ACTOR}.ppo_mini_batch_size < data.train_batch_size) "
            f"or {ACTOR}.ppo_epochs > 1.",
        )


def _clip_eps(config: DictConfig) -> tuple[float, float]:
    base = _get(config, f"{ACTOR}.clip_ratio", 0.2)
    low = _get(config, f"{ACTOR}.clip_ratio_low")
    high = _get(config, f"{ACTOR}.clip_ratio_high")
    return float(base if low is None else low), float(base if high is None else high)


def _natural_clip_scale(config: DictConfig, loss_mode: str) -> Optional[str]:
    """The ε scale a loss's ratio needs: ``sequence`` (one ratio per response) or ``token``; None: not judged."""
    if loss_mode == "gspo":
        return "sequence"
    if loss_mode == "sspo":
        return "sequence" if _get(config, f"{POLICY_LOSS}.granularity") == "sequence" else "token"
    if loss_mode == "vanilla":
        return "token"
    return None


def check_clip_scale(config: DictConfig, report: PreflightReport) -> None:
    loss_mode = _get(config, f"{POLICY_LOSS}.loss_mode")
    natural = _natural_clip_scale(config, loss_mode)
    if natural is None:
        return
    low, high = _clip_eps(config)
    actual = "sequence" if max(low, high) < SEQUENCE_SCALE_EPS else "token"
    if actual == natural:
        return
    preset = _get(config, "algorithm_preset") or {}
    if preset.get("loss_mode") == loss_mode and preset.get("clip_scale") == actual:
        return  # the preset chose this scale on purpose (gspo_wide)
    eps = f"clip_ratio_low={low:g}, clip_ratio_high={high:g}"
    if natural == "sequence":
        report.add(
            "warning",
            "clip_scale",
            f"loss_mode={loss_mode!r} computes one ratio per response (a length-normalised geometric mean, close to "
            f"1) but the clip range is GRPO-scale ({eps}): almost no response is ever clipped. The GSPO paper uses "
            f"3e-4 / 4e-4 (algorithm=gspo). If GRPO-scale ε is what you want (the SSPO paper's likely baseline), use "
            "algorithm=gspo_wide, which states it.",
        )
    else:
        report.add(
            "warning",
            "clip_scale",
            f"loss_mode={loss_mode!r} computes per-token / per-subsentence ratios but the clip range is GSPO-scale "
            f"({eps}): nearly every token is clipped and gets no gradient. Use ε around 0.2 / 0.28 "
            "(algorithm=grpo or algorithm=sspo), or loss_mode=gspo for ε of this size.",
        )


def check_preset(config: DictConfig, report: PreflightReport) -> None:
    preset = _get(config, "algorithm_preset")
    if not preset:
        return
    name = preset.get("name", "?")
    loss_mode = _get(config, f"{POLICY_LOSS}.loss_mode")
    if preset.get("loss_mode") and loss_mode != preset.get("loss_mode"):
        report.add(
            "warning",
            "preset",
            f"algorithm={name} is a preset for loss_mode={preset.get('loss_mode')!r}, but {POLICY_LOSS}.loss_mode="
            f"{loss_mode!r}: the run is neither preset. Switch algorithms with the preset (algorithm=grpo|gspo|"
            "gspo_wide|sspo) rather than loss_mode alone, so clip range, aggregation and estimator match.",
        )
        return
    agg = _get(config, f"{ACTOR}.loss_agg_mode")
    allowed = list(preset.get("loss_agg_modes") or [])
    if allowed and agg not in allowed:
        report.add(
            "warning",
            "preset",
            f"{ACTOR}.loss_agg_mode={agg!r}: preset {name} follows {preset.get('source')}, which aggregates with "
            f"{' or '.join(allowed)}; results will not be comparable with that paper. Set "
            f"{ACTOR}.loss_agg_mode={allowed[0]} unless this is a deliberate ablation.",
        )


def check_group_size(config: DictConfig, report: PreflightReport) -> None:
    adv = _get(config, "algorithm.adv_estimator")
    n = int(_get(config, "actor_rollout_ref.rollout.n", 1))
    if adv in GROUP_ESTIMATORS and n < 2:
        report.add(
            "warning",
            "group_size",
            f"algorithm.adv_estimator={adv!r} compares the responses to one prompt, but "
            f"actor_rollout_ref.rollout.n={n}: there is no group (verl then uses the raw reward as the advantage, "
            "with no baseline). Set actor_rollout_ref.rollout.n to 2 or more (sspo-train's default: 8).",
        )


def _as_paths(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (ListConfig, list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _looks_local(path: str) -> bool:
    return path.startswith(("/", "~", "./", "../", "file://")) or os.path.exists(path)


def check_files(config: DictConfig, report: PreflightReport) -> None:
    data_dir = _get(config, "data_dir")
    setup_hint = _get(config, "preflight.setup_hint")  # e.g. model=tiny: the demo builds model and data
    for key in ("data.train_files", "data.val_files"):
        missing = [
            p for p in _as_paths(_get(config, key))
            if not p.startswith(_REMOTE_PREFIXES) and not os.path.exists(os.path.expanduser(p.removeprefix("file://")))
        ]
        for path in missing:
            report.add(
                "error",
                "files",
                f"{key}: {path} does not exist. Build it with `{setup_hint}`, or set {key} to your verl parquet "
                "file(s)." if setup_hint else
                f"{key}: {path} does not exist. Build the data sets with `sspo-data prepare-all --out-dir "
                f"{data_dir or '<data_dir>'}` (data_dir=... or SSPO_DATA_DIR points the configs elsewhere), or set "
                f"{key} to your verl parquet file(s).",
            )
    for key in ("actor_rollout_ref.model.path", "actor_rollout_ref.model.tokenizer_path"):
        path = _get(config, key)
        if isinstance(path, str) and path and _looks_local(path) and not path.startswith(_REMOTE_PREFIXES):
            if not os.path.exists(os.path.expanduser(path.removeprefix("file://"))):
                report.add(
                    "error",
                    "files",
                    f"{key}={path}: no such directory. Build it with `{setup_hint}`." if setup_hint else
                    f"{key}={path}: no such directory. Point it at a Hugging Face model directory or a hub id "
                    "such as Qwen/Qwen2.5-Math-1.5B (model=qwen2.5-math-1.5b).",
                )
    reward_path = _get(config, "reward.custom_reward_function.path")
    if reward_path:
        if reward_path.startswith("pkg://"):
            module = reward_path[len("pkg://"):].replace("/", ".")
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                report.add(
                    "error",
                    "files",
                    f"reward.custom_reward_function.path={reward_path}: module {module!r} cannot be imported here. "
                    "Install the package that provides it, or set reward.custom_reward_function.path to a .py file "
                    "(null: verl's default_compute_score).",
                )
        elif not os.path.exists(os.path.expanduser(reward_path.removeprefix("file://"))):
            report.add(
                "error",
                "files",
                f"reward.custom_reward_function.path={reward_path}: no such file. Point it at the .py file that "
                "defines reward.custom_reward_function.name, or use pkg://sspo_verl.reward.math_reward.",
            )


# ------------------------------------------------------------------------------------------------- cluster


def count_visible_gpus(env: Mapping[str, str]) -> Optional[int]:
    """GPUs this process could use: ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L`` (no CUDA context is
    created in the driver). None when it cannot tell (no nvidia-smi)."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [d for d in visible.split(",") if d.strip() and d.strip() != "-1"]
        return len(entries)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def _slurm_gpus_per_node(env: Mapping[str, str]) -> Optional[int]:
    """GPUs per node of the Slurm allocation: SLURM_GPUS_ON_NODE, else SLURM_GPUS_PER_NODE (``8``, ``h100:8``),
    else SLURM_JOB_GPUS / SLURM_STEP_GPUS (a comma list of indices). None when the job did not request GPUs."""
    if env.get("SLURM_GPUS_ON_NODE", "").strip().isdigit():
        return int(env["SLURM_GPUS_ON_NODE"])
    per_node = env.get("SLURM_GPUS_PER_NODE", "").strip()
    if per_node:
        last = per_node.split(",")[0].split(":")[-1].split("(")[0]
        if last.isdigit():
            return int(last)
    for key in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        if env.get(key, "").strip():
            return len([g for g in env[key].split(",") if g.strip()])
    return None


_PROBE_CODE = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
try:
    print("SSPO_RAY_NODES=" + json.dumps([n["Resources"].get("GPU", 0.0) for n in ray.nodes() if n.get("Alive")]))
finally:
    ray.shutdown()
"""


def probe_ray_cluster(address: str, timeout_s: float) -> list[float]:
    """GPUs of each alive node of the Ray cluster at ``address``, read by connecting from a subprocess (bounded by
    ``timeout_s``); this process never connects, so verl's own ``ray.init`` later is unaffected.

    Raises:
        RuntimeError: the cluster did not answer in time or the connection failed.
    """
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE_CODE, address], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"no answer from the Ray cluster at {address!r} within {timeout_s:g} s") from exc
    for line in out.stdout.splitlines():
        if line.startswith("SSPO_RAY_NODES="):
            return [float(g) for g in json.loads(line.split("=", 1)[1])]
    tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
    raise RuntimeError(f"could not connect to the Ray cluster at {address!r}: {' | '.join(tail) or 'no output'}")


def _ray_address(config: DictConfig, env: Mapping[str, str]) -> Optional[str]:
    address = _get(config, "ray_kwargs.ray_init.address") or env.get("RAY_ADDRESS") or None
    if address in (None, "", "local"):
        return None
    return str(address)


def check_cluster(
    config: DictConfig,
    report: PreflightReport,
    env: Mapping[str, str],
    gpu_counter: GpuCounter,
    cluster_probe: ClusterProbe,
) -> None:
    if _get(config, "trainer.device") == "cpu":
        return  # the CPU backend schedules on logical GPU slots it sets up itself (sspo_verl.cpu.launch)
    nnodes = int(_get(config, "trainer.nnodes"))
    per_node = int(_get(config, "trainer.n_gpus_per_node"))
    want = f"trainer.nnodes={nnodes} × trainer.n_gpus_per_node={per_node}"
    address = _ray_address(config, env)
    if address is not None:
        timeout_s = float(_get(config, "preflight.cluster_timeout_s", 60))
        try:
            node_gpus = cluster_probe(address, timeout_s)
        except RuntimeError as exc:
            report.add(
                "error",
                "cluster",
                f"{exc}. Start the cluster first (ray start --head; workers: ray start --address=HEAD:6379), fix "
                "RAY_ADDRESS / ray_kwargs.ray_init.address, or unset both to let verl start a local Ray.",
            )
            return
        fitting = [g for g in node_gpus if g >= per_node]
        if len(fitting) < nnodes:
            report.add(
                "error",
                "cluster",
                f"{want}, but the Ray cluster at {address} has {len(node_gpus)} alive node(s) with GPUs "
                f"{[int(g) for g in node_gpus]}; only {len(fitting)} node(s) have {per_node}. verl would wait for "
                "them. Set trainer.nnodes / trainer.n_gpus_per_node to the cluster, or wait until every node joined "
                "(ray status).",
            )
        elif sum(node_gpus) > nnodes * per_node:
            report.add(
                "warning",
                "cluster",
                f"{want} = {nnodes * per_node} GPUs, but the Ray cluster at {address} has {int(sum(node_gpus))}: "
                "the rest stay idle. Raise trainer.nnodes / trainer.n_gpus_per_node to use them.",
            )
        return
    if any(env.get(k) for k in ("SLURM_JOB_ID",) + _SLURM_NODES_VARS):
        nodes_var = next((k for k in _SLURM_NODES_VARS if env.get(k, "").strip().isdigit()), None)
        if nodes_var is not None:
            slurm_nodes = int(env[nodes_var])
            if nnodes > slurm_nodes:
                report.add(
                    "error",
                    "cluster",
                    f"{want}, but the Slurm allocation has {nodes_var}={slurm_nodes} node(s). Set "
                    f"trainer.nnodes={slurm_nodes}, or request {nnodes} nodes (#SBATCH --nodes={nnodes}).",
                )
            elif nnodes < slurm_nodes:
                report.add(
                    "warning",
                    "cluster",
                    f"{want}, but the Slurm allocation has {nodes_var}={slurm_nodes} nodes: "
                    f"{slurm_nodes - nnodes} stay idle. Set trainer.nnodes={slurm_nodes}.",
                )
        slurm_gpus = _slurm_gpus_per_node(env)
        if slurm_gpus is not None:
            if per_node > slurm_gpus:
                report.add(
                    "error",
                    "cluster",
                    f"{want}, but Slurm gives {slurm_gpus} GPU(s) per node. Set trainer.n_gpus_per_node={slurm_gpus}, "
                    f"or request {per_node} (#SBATCH --gpus-per-node={per_node}).",
                )
            elif per_node < slurm_gpus:
                report.add(
                    "warning",
                    "cluster",
                    f"{want}, but Slurm gives {slurm_gpus} GPUs per node: {slurm_gpus - per_node} per node stay idle. "
                    f"Set trainer.n_gpus_per_node={slurm_gpus}.",
                )
        return
    # No cluster named: verl starts a local Ray with the GPUs of this machine.
    if nnodes > 1:
        report.add(
            "error",
            "cluster",
            f"{want}, but no cluster is given: no RAY_ADDRESS, no ray_kwargs.ray_init.address, no Slurm allocation. "
            "verl would start a one-node Ray here and wait for the other nodes forever. Start a Ray cluster and "
            "export RAY_ADDRESS=HEAD:6379 (or RAY_ADDRESS=auto on the head), use recipes/slurm/train.sbatch, or set "
            "trainer.nnodes=1.",
        )
        return
    visible = gpu_counter(env)
    if visible is None or visible == 0:
        report.add(
            "warning",
            "cluster",
            f"{want}, but no GPU is visible here ({'no nvidia-smi' if visible is None else 'nvidia-smi lists none'}"
            "; CUDA_VISIBLE_DEVICES unset): cannot check the GPU count. On a machine without GPUs use hardware=cpu "
            "(with model=tiny rollout=hf).",
        )
    elif per_node > visible:
        report.add(
            "error",
            "cluster",
            f"{want}, but this machine shows {visible} GPU(s). Set trainer.n_gpus_per_node={visible} (keep "
            "data.train_batch_size × rollout.n divisible by it), or run where there are more.",
        )
    elif per_node < visible:
        report.add(
            "warning",
            "cluster",
            f"{want}, but this machine shows {visible} GPUs: {visible - per_node} stay idle. Set "
            f"trainer.n_gpus_per_node={visible}, or CUDA_VISIBLE_DEVICES to the ones to use.",
        )


# ---------------------------------------------------------------------------------------------------- verl


def check_verl(config: DictConfig, report: PreflightReport) -> None:
    """verl's own ``validate_config`` (the check ``verl.trainer.main_ppo`` runs first), on a copy."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = copy.deepcopy(config)
    captured = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
            warnings.simplefilter("ignore")
            validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except Exception as exc:  # verl raises AssertionError, ValueError, hydra InstantiationException, ...
        detail = str(exc).strip() or type(exc).__name__
        report.add(
            "error",
            "verl",
            f"verl's validate_config rejected the config: {type(exc).__name__}: {detail}",
        )
        return
    logger.debug("verl validate_config: %s", captured.getvalue().strip())


# ----------------------------------------------------------------------------------------------------- run


def run_preflight(
    config: DictConfig,
    *,
    env: Optional[Mapping[str, str]] = None,
    gpu_counter: GpuCounter = count_visible_gpus,
    cluster_probe: ClusterProbe = probe_ray_cluster,
    raise_on_error: bool = True,
) -> PreflightReport:
    """Check a composed training config, apply the documented fixes in place, log every finding.

    Args:
        config: the composed ``sspo_trainer`` config (``DictConfig``); fixes are written into it.
        env: environment to read Slurm / Ray / CUDA variables from (default ``os.environ``).
        gpu_counter: how to count the GPUs visible here (tests pass a fake).
        cluster_probe: how to ask a Ray cluster for its GPUs per node (tests pass a fake).
        raise_on_error: raise :class:`PreflightError` when there are errors (or warnings with
            ``preflight.strict=true``); otherwise only return them.

    Returns:
        The report: every error, warning and fix.
    """
    env = os.environ if env is None else env
    report = PreflightReport()
    check_registry(config, report)
    check_sspo_config(config, report)
    check_on_policy(config, report)
    check_clip_scale(config, report)
    check_preset(config, report)
    check_group_size(config, report)
    if _get(config, "preflight.check_files", True):
        check_files(config, report)
    if _get(config, "preflight.check_cluster", True):
        check_cluster(config, report, env, gpu_counter, cluster_probe)
    if not report.errors:  # verl's checks assume the config is otherwise sane
        check_verl(config, report)

    for finding in report.fixes:
        logger.warning("sspo-train pre-flight set a value: %s", finding.message)
    for finding in report.warnings:
        if finding.check == "on_policy":
            bar = "!" * 100
            logger.warning("\n%s\n%s\n%s", bar, finding.message, bar)
        else:
            logger.warning("sspo-train pre-flight warning [%s]: %s", finding.check, finding.message)
    strict = bool(_get(config, "preflight.strict", False))
    blocking = report.errors + (report.warnings if strict else [])
    if not blocking:
        logger.info(
            "sspo-train pre-flight passed (%d warning(s), %d fix(es))", len(report.warnings), len(report.fixes)
        )
    elif raise_on_error:
        raise PreflightError(blocking)
    return report
