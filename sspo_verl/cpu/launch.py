"""What a CPU run needs from its launcher: environment, Ray settings, and a config check — from one place.

A CPU run (``trainer.device=cpu``, ``hardware=cpu``) needs, in every process:

* ``VERL_PLATFORM=cpu`` — verl's platform override; it also makes this package's ``verl.plugins`` entry point
  call :func:`sspo_verl.cpu.activate`. The driver must have it **before importing verl** (verl resolves its
  platform on first use and ``main_ppo`` would otherwise reset ``trainer.device`` to ``cuda``); Ray workers get
  it through ``ray_kwargs.ray_init.runtime_env.env_vars``.

and a Ray cluster that verl can schedule on:

* ``address=local`` — a private local Ray instance; a CPU run never joins another user's cluster. A config that
  names a running cluster (``ray_kwargs.ray_init.address=HEAD:PORT``, as ``recipes/slurm/train.sbatch`` passes)
  joins it instead and may span its nodes (``trainer.nnodes > 1``); its slots are then the ones each node's
  ``ray start --num-cpus/--num-gpus`` declared, and ``num_cpus`` / ``num_gpus`` must be null (Ray refuses them
  from a driver that joins).
* ``num_gpus=<slots>`` — logical GPU slots: verl's placement groups ask for one ``GPU`` per trainer rank, and
  ``mode=separate_async`` for one per slot of its standalone rollout pool (``rollout.nnodes ×
  rollout.n_gpus_per_node``); no GPU is touched.
* ``num_cpus`` — logical CPU slots, at least :func:`required_ray_cpus`. The V1 trainer's TransferQueue starts
  ``num_data_storage_units`` actors of one CPU each inside a placement group and waits for it without a
  timeout: with fewer logical CPUs than its actors reserve, the run **hangs silently** (on a 2-core machine Ray
  detects 2). The default is ``max(16, required)``; logical CPUs are scheduling slots, not threads.

and, for ``mode=separate_async``, a weight transport between processes: the checkpoint engine ``gloo``
(:mod:`sspo_verl.cpu.checkpoint_engine`) in place of the mode's GPU default ``nccl``.

``sspo-train`` calls :func:`prepare_driver` then :func:`apply_to_config` for ``trainer.device=cpu``; scripts that
call ``python -m verl.trainer.main_ppo`` directly can use :func:`cli_overrides` and export :func:`cpu_env_vars`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from sspo_verl.cpu import vllm_checks

__all__ = [
    "CHECKPOINT_ENGINE",
    "CPU_ENV_VARS",
    "CPU_ROLLOUTS",
    "DEFAULT_RAY_NUM_CPUS",
    "DEFAULT_STORAGE_UNITS",
    "REPLAY_BUFFER",
    "REPLAY_BUFFER_ASYNC",
    "CPUConfigError",
    "apply_to_config",
    "cpu_env_vars",
    "cli_overrides",
    "prepare_driver",
    "ray_init_settings",
    "required_ray_cpus",
    "standalone_rollout_slots",
]

# Environment for the driver and every Ray worker of a CPU run (hardware/cpu.yaml lists the same).
CPU_ENV_VARS: dict[str, str] = {
    "VERL_PLATFORM": "cpu",  # verl's platform override → sspo_verl.cpu.activate() via the verl.plugins entry point
    "TOKENIZERS_PARALLELISM": "false",  # tokenizers' thread pool fights torch for a few cores
}
DEFAULT_RAY_NUM_CPUS = 16
# rollout.name values the CPU backend runs: verl's vLLM rollout on vLLM's CPU build, and sspo-verl's HF server.
CPU_ROLLOUTS = ("vllm", "hf")
# TransferQueue storage units for a CPU run (verl's default 8 reserves 8 logical CPUs for a tiny batch).
DEFAULT_STORAGE_UNITS = 2
# verl's ResourcePoolManager reserves this many CPU slots per trainer-rank bundle (max_colocate_count=3), and per
# bundle of separate_async's standalone rollout pool (RolloutReplica.init_standalone: max_colocate_count=2).
_CPUS_PER_RANK_BUNDLE = 3
_CPUS_PER_ROLLOUT_BUNDLE = 2
# The checkpoint engine that carries separate_async's weight pushes on CPU, and the GPU one the mode defaults to.
CHECKPOINT_ENGINE = "gloo"
_GPU_CHECKPOINT_ENGINE = "nccl"
_ENGINE_KEY = "actor_rollout_ref.rollout.checkpoint_engine.backend"


def cpu_env_vars() -> dict[str, str]:
    """:data:`CPU_ENV_VARS` plus what depends on this machine: ``TQ_NUM_THREADS`` (TransferQueue asks torch for 8
    threads per put/get and logs a warning on every call when the machine has fewer physical cores)."""
    import psutil

    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return {**CPU_ENV_VARS, "TQ_NUM_THREADS": str(max(1, min(8, cores)))}


# trainer.v1.sampler.custom_sampler of hardware/cpu.yaml: verl's replay buffer polling every 0.1 s, not 2 s;
# apply_to_config swaps in the asynchronous one for an asynchronous trainer mode.
REPLAY_BUFFER = {"path": "pkg://sspo_verl.cpu.replay_buffer", "name": "CPUReplayBuffer"}
REPLAY_BUFFER_ASYNC = {"path": "pkg://sspo_verl.cpu.replay_buffer", "name": "CPUReplayBufferAsync"}


class CPUConfigError(ValueError):
    """A trainer config that cannot run on the CPU backend (the message says how to fix it)."""


def required_ray_cpus(n_ranks: int, storage_units: int = DEFAULT_STORAGE_UNITS, rollout_slots: int = 0) -> int:
    """Logical CPU slots the V1 trainer reserves: TransferQueue controller (1) + storage units + per-rank bundles
    (3 each) + the standalone rollout pool's bundles (2 each, ``mode=separate_async``) + 1 slot for scheduling the
    actors that hold none once placed (TaskRunner, agent/reward workers)."""
    return (1 + int(storage_units) + _CPUS_PER_RANK_BUNDLE * int(n_ranks) + _CPUS_PER_ROLLOUT_BUNDLE * int(rollout_slots)
            + 1)


def standalone_rollout_slots(config) -> int:
    """GPU slots of ``mode=separate_async``'s standalone rollout pool (``rollout.nnodes × n_gpus_per_node``); 0 for
    the other modes, whose rollout shares the trainer's slots."""
    if _get(config, "trainer.v1.trainer_mode", "sync") != "separate_async":
        return 0
    nnodes = _get(config, "actor_rollout_ref.rollout.nnodes", 0)
    per_node = _get(config, "actor_rollout_ref.rollout.n_gpus_per_node", 0)
    return max(0, int(nnodes or 0)) * max(0, int(per_node or 0))


def ray_init_settings(n_ranks: int, storage_units: int = DEFAULT_STORAGE_UNITS, num_cpus: int | None = None,
                      rollout_slots: int = 0) -> dict:
    """``ray_kwargs.ray_init`` values for a CPU run with ``n_ranks`` trainer ranks and ``rollout_slots`` standalone
    rollout slots (see the module docstring)."""
    need = required_ray_cpus(n_ranks, storage_units, rollout_slots)
    return {
        "address": "local",
        "num_cpus": max(DEFAULT_RAY_NUM_CPUS, need) if num_cpus is None else int(num_cpus),
        "num_gpus": int(n_ranks) + int(rollout_slots),
        "include_dashboard": False,
        "runtime_env": {"env_vars": cpu_env_vars()},
    }


def prepare_driver() -> None:
    """Set :func:`cpu_env_vars` in this process; activate the backend now if verl is already imported.

    Call before importing verl when you can. If verl was imported first (``sspo-train`` composes its config,
    which imports verl, before it knows the device), :func:`sspo_verl.cpu.activate` registers the CPU platform
    and replaces the one verl resolved in this driver, which runs no engine.
    """
    for key, value in cpu_env_vars().items():
        os.environ[key] = value
    if "verl" in sys.modules:
        from sspo_verl.cpu import activate

        activate(resolved_before=True)


def _get(cfg, dotted: str, default=None):
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, dotted, default=default)


def _largest_divisor(total: int, at_most: int) -> int:
    return max(d for d in range(1, max(1, min(total, at_most)) + 1) if total % d == 0) if total > 0 else 1


def apply_to_config(config) -> dict[str, Any]:
    """Fill a composed trainer config's Ray settings and worker environment for CPU, and check it can run.

    Args:
        config: the composed trainer config (``DictConfig``) with ``trainer.device=cpu``. Modified in place.

    Returns:
        The values it set, by dotted key (for the launcher to print).

    Raises:
        CPUConfigError: with what is wrong and the override that fixes it.
    """
    from omegaconf import OmegaConf, open_dict

    problems, applied = [], {}
    if standalone_rollout_slots(config) and _get(config, _ENGINE_KEY) == _GPU_CHECKPOINT_ENGINE:
        # mode=separate_async's default transport moves GPU memory; on CPU its weight pushes take the gloo engine
        OmegaConf.update(config, _ENGINE_KEY, CHECKPOINT_ENGINE)
        applied[_ENGINE_KEY] = CHECKPOINT_ENGINE
    device = _get(config, "trainer.device")
    if device != "cpu":
        problems.append(f"trainer.device={device!r}: the CPU backend needs trainer.device=cpu (hardware=cpu).")
    address = _get(config, "ray_kwargs.ray_init.address")
    joins = address not in (None, "", "local")  # a running cluster given by address
    nnodes = int(_get(config, "trainer.nnodes", 1))
    if nnodes != 1 and not joins:
        problems.append(
            f"trainer.nnodes={nnodes}: without a running Ray cluster the CPU backend runs on one machine; set "
            "trainer.nnodes=1, or join one with ray_kwargs.ray_init.address=HEAD:PORT (as recipes/slurm/train.sbatch "
            "does)."
        )
    n_ranks = int(_get(config, "trainer.n_gpus_per_node", 1)) * nnodes
    rollout = _get(config, "actor_rollout_ref.rollout.name")
    if rollout not in CPU_ROLLOUTS:
        problems.append(
            f"actor_rollout_ref.rollout.name={rollout!r}: the rollouts that run on CPU are {', '.join(CPU_ROLLOUTS)}; "
            "use rollout=vllm (verl's vLLM server on the CPU build of vLLM) or rollout=hf."
        )
    tp = int(_get(config, "actor_rollout_ref.rollout.tensor_model_parallel_size", 1) or 1)
    if tp != 1:
        problems.append(
            f"actor_rollout_ref.rollout.tensor_model_parallel_size={tp}: must be 1 on CPU (one rollout replica per "
            "trainer rank)."
        )
    problems += vllm_checks.media_package_problems()
    if rollout == "vllm":
        problems += vllm_checks.all_problems(config, int(_get(config, "trainer.n_gpus_per_node", 1)))
    for role in ("actor", "ref"):
        strategy = _get(config, f"actor_rollout_ref.{role}.strategy")
        if strategy not in (None, "fsdp", "fsdp2"):
            problems.append(
                f"actor_rollout_ref.{role}.strategy={strategy!r}: only the FSDP engine runs on CPU; use fsdp2."
            )
    attn = _get(config, "actor_rollout_ref.model.override_config.attn_implementation")
    if attn in (None, "flash_attention_2", "flash_attention_3"):
        problems.append(
            f"actor_rollout_ref.model.override_config.attn_implementation={attn!r}: flash-attention needs CUDA; "
            "set +actor_rollout_ref.model.override_config.attn_implementation=sdpa (hardware=cpu does)."
        )
    micro = _get(config, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu")
    mini = _get(config, "actor_rollout_ref.actor.ppo_mini_batch_size")
    n = _get(config, "actor_rollout_ref.rollout.n", 1)
    if micro and mini and not _get(config, "actor_rollout_ref.actor.use_dynamic_bsz", False):
        per_rank = int(mini) * int(n) // max(1, n_ranks)
        if per_rank % int(micro):
            # verl asserts this inside the trainer worker, at the first update ("data size must be divisible by
            # force_group_size * micro_batch_size_per_gpu")
            problems.append(
                f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro} does not divide the {per_rank} "
                f"responses each of the {n_ranks} trainer rank(s) gets per mini-batch (ppo_mini_batch_size={mini} "
                f"prompts x rollout.n={n} / {n_ranks}); verl would stop at the first update. Set it to a divisor "
                f"of {per_rank}, "
                f"e.g. actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={_largest_divisor(per_rank, int(micro))}."
            )
    rollout_slots = standalone_rollout_slots(config)
    engine = _get(config, _ENGINE_KEY)
    if rollout_slots and engine not in (CHECKPOINT_ENGINE, "naive"):
        # ('naive' is refused for separate_async on every device by pre-flight: sspo_verl/preflight/trainer_mode.py)
        problems.append(
            f"{_ENGINE_KEY}={engine!r}: mode=separate_async pushes weights to its standalone rollout pool through a "
            f"checkpoint engine, and on CPU only {CHECKPOINT_ENGINE!r} (sspo_verl.cpu.checkpoint_engine) has a "
            f"transport without a GPU; set {_ENGINE_KEY}={CHECKPOINT_ENGINE}."
        )
    storage_units = int(_get(config, "transfer_queue.backend.SimpleStorage.num_data_storage_units", 8))
    need = required_ray_cpus(n_ranks, storage_units, rollout_slots)
    num_cpus = _get(config, "ray_kwargs.ray_init.num_cpus")
    num_gpus = _get(config, "ray_kwargs.ray_init.num_gpus")
    if joins:
        for key, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
            if value is not None:
                problems.append(
                    f"ray_kwargs.ray_init.{key}={value} with ray_kwargs.ray_init.address={address}: Ray refuses {key} "
                    f"from a driver that joins a running cluster (its `ray start --{key.replace('_', '-')}` counts); "
                    f"set ray_kwargs.ray_init.{key}=null."
                )
        num_cpus = num_gpus = None
    if num_cpus is not None and int(num_cpus) < need:
        problems.append(
            f"ray_kwargs.ray_init.num_cpus={num_cpus} is below the {need} logical CPUs this run's Ray actors reserve "
            f"(TransferQueue: 1 controller + {storage_units} storage units, {_CPUS_PER_RANK_BUNDLE} per trainer rank "
            f"x {n_ranks}, {_CPUS_PER_ROLLOUT_BUNDLE} per standalone rollout slot x {rollout_slots}, 1 for "
            "scheduling); Ray would wait forever for them. Set ray_kwargs.ray_init.num_cpus="
            f"{max(DEFAULT_RAY_NUM_CPUS, need)} (logical slots, not cores) or lower "
            "transfer_queue.backend.SimpleStorage.num_data_storage_units."
        )
    if num_gpus is not None and int(num_gpus) < n_ranks + rollout_slots:
        pool = f" and {rollout_slots} standalone rollout slot(s) (mode=separate_async)" if rollout_slots else ""
        problems.append(
            f"ray_kwargs.ray_init.num_gpus={num_gpus}: verl places one (logical) GPU per trainer rank and per "
            f"standalone rollout slot; the run has {n_ranks} trainer rank(s){pool}, and Ray would wait forever for "
            f"the rest. Remove the override or set it to {n_ranks + rollout_slots}."
        )
    if problems:
        raise CPUConfigError("This config cannot run on the CPU backend:\n  - " + "\n  - ".join(problems))

    settings = ray_init_settings(n_ranks, storage_units, num_cpus, rollout_slots)
    with open_dict(config):
        sampler = _get(config, "trainer.v1.sampler.custom_sampler")
        if sampler is not None and sampler.get("path") == REPLAY_BUFFER["path"]:
            mode = _get(config, "trainer.v1.trainer_mode", "sync")
            if _get(config, "algorithm.filter_groups.enable", False):
                # verl gives a custom sampler no DAPO arguments
                sampler.path, sampler.name = None, None
                applied["trainer.v1.sampler.custom_sampler"] = "verl's own (DAPO filtering)"
            elif mode != "sync":
                sampler.name = REPLAY_BUFFER_ASYNC["name"]
                applied["trainer.v1.sampler.custom_sampler.name"] = REPLAY_BUFFER_ASYNC["name"]
        ray_init = config.ray_kwargs.ray_init
        for key in ("include_dashboard",) if joins else ("address", "num_cpus", "num_gpus", "include_dashboard"):
            if ray_init.get(key) is None:
                ray_init[key] = settings[key]
                applied[f"ray_kwargs.ray_init.{key}"] = settings[key]
        if ray_init.get("runtime_env") is None:
            ray_init.runtime_env = {}
        if ray_init.runtime_env.get("env_vars") is None:
            ray_init.runtime_env.env_vars = {}
        for key, value in cpu_env_vars().items():
            if ray_init.runtime_env.env_vars.get(key) != value:
                ray_init.runtime_env.env_vars[key] = value
                applied[f"ray_kwargs.ray_init.runtime_env.env_vars.{key}"] = value
    return applied


def cli_overrides(n_ranks: int = 1, storage_units: int = DEFAULT_STORAGE_UNITS) -> list[str]:
    """Hydra overrides that put a ``verl.trainer.main_ppo`` command line on the CPU backend.

    The same settings as ``hydra_configs/hardware/cpu.yaml`` + ``rollout/hf.yaml``, for a command line over
    verl's own ``ppo_trainer`` config. The driver still needs :data:`CPU_ENV_VARS` in its environment.
    """
    ray = ray_init_settings(n_ranks, storage_units)
    overrides = [
        "trainer.device=cpu",
        "trainer.nnodes=1",
        f"trainer.n_gpus_per_node={n_ranks}",
        "actor_rollout_ref.actor.strategy=fsdp2",
        "actor_rollout_ref.ref.strategy=fsdp2",
        "actor_rollout_ref.actor.fsdp_config.dtype=float32",
        "actor_rollout_ref.ref.fsdp_config.dtype=float32",
        "actor_rollout_ref.actor.use_torch_compile=False",
        "actor_rollout_ref.actor.fsdp_config.use_torch_compile=False",
        "actor_rollout_ref.ref.use_torch_compile=False",
        "actor_rollout_ref.model.use_remove_padding=False",
        "actor_rollout_ref.model.enable_gradient_checkpointing=False",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.rollout.name=hf",
        "actor_rollout_ref.rollout.dtype=float32",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "actor_rollout_ref.rollout.checkpoint_engine.custom_backend_module=sspo_verl.cpu.checkpoint_engine",
        "reward.num_workers=1",
        "data.dataloader_num_workers=0",
        f"trainer.v1.sampler.custom_sampler.path={REPLAY_BUFFER['path']}",
        f"trainer.v1.sampler.custom_sampler.name={REPLAY_BUFFER['name']}",
        f"transfer_queue.backend.SimpleStorage.num_data_storage_units={storage_units}",
        f"+ray_kwargs.ray_init.address={ray['address']}",
        f"ray_kwargs.ray_init.num_cpus={ray['num_cpus']}",
        f"+ray_kwargs.ray_init.num_gpus={ray['num_gpus']}",
        "+ray_kwargs.ray_init.include_dashboard=false",
    ]
    overrides += [f"+ray_kwargs.ray_init.runtime_env.env_vars.{k}={v}" for k, v in cpu_env_vars().items()]
    return overrides
