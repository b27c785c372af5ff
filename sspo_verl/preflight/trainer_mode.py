"""Trainer-mode check: what verl 0.9.1's V1 trainers (``trainer.v1.trainer_mode``) assert, or fail on, inside Ray,
checked before Ray starts — the mode, the batch geometry, the standalone rollout pool and its weight transport,
and the rollout engine.

The rules come from verl's own code (``verl/trainer/ppo/v1``):

* ``trainer_base.PPOTrainer.step``: ``data.train_batch_size % parameter_sync_step == 0`` (every mode; only
  ``separate_async`` has a ``parameter_sync_step`` key, the others use 1).
* ``trainer_separate_async.PPOTrainerSeparateAsync.__init__``: ``train_batch_size == parameter_sync_step ×
  actor.ppo_mini_batch_size`` (and, since it computes log-probs per mini-batch, log-prob micro-batches that divide
  a rank's share of one); ``actor_rollout_ref.hybrid_engine=false`` dies in its ``_setup`` (a logging call with
  ``flush=True``); ``rollout.nnodes > 0`` and ``rollout.n_gpus_per_node > 0`` (the standalone
  rollout pool); ``rollout.checkpoint_engine.backend != "naive"`` (weights must travel between processes);
  a reward model needs its own resource pool.
* ``trainer_base.PPOTrainer._build_replay_buffer`` picks the trainer class by name
  (``verl.trainer.ppo.v1.get_trainer_cls``); the names are the mode sections of ``trainer.v1`` in verl's
  ``ppo_trainer.yaml``, which is where this check reads them from.

What sspo-verl adds: the ``hf`` rollout (sspo_verl/cpu/hf_server.py) cannot abort or resume a request, which
both asynchronous trainers do at every weight update (partial rollout); every checkpoint engine of verl 0.9.1
other than ``naive`` moves device memory (nccl, hccl, nixl, mooncake, kimi), so on the CPU backend
``separate_async`` needs sspo-verl's ``gloo`` engine (sspo_verl/cpu/checkpoint_engine.py; the CPU launcher selects
it, and sizes Ray's logical slots for the standalone pool); on GPUs the standalone pool must fit next to the
trainer on the GPUs of this machine.
"""

from __future__ import annotations

from sspo_verl.preflight.context import ACTOR, Context

__all__ = ["check_trainer_mode", "trainer_modes"]

MODE = "trainer.v1.trainer_mode"
ROLLOUT = "actor_rollout_ref.rollout"
_NOT_MODES = ("trainer_mode", "sampler")  # the other keys of trainer.v1 in verl's ppo_trainer.yaml
_NO_PARTIAL_ROLLOUT = ("hf",)  # rollouts whose abort_all_requests / resume_generation do nothing


def trainer_modes(ctx: Context) -> list[str]:
    """The trainer modes verl's config defines: the sections of ``trainer.v1`` (sync, colocate_async, ...)."""
    v1 = ctx.get("trainer.v1") or {}
    return sorted(k for k in v1 if k not in _NOT_MODES)


def _int(ctx: Context, key: str, default=None):
    value = ctx.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_trainer_mode(ctx: Context) -> None:
    """Refuse a trainer mode verl would assert on (or hang in) inside Ray, naming the key, the value and the fix."""
    mode = ctx.get(MODE, "sync")
    modes = trainer_modes(ctx)
    if mode not in modes:
        ctx.error("trainer_mode", f"{MODE}={mode!r} is not a mode of verl's V1 trainer ({', '.join(modes)}). "
                                  f"Use mode=<{'|'.join(modes)}> (the sspo-train group) or fix {MODE}.")
        return
    if mode == "sync":
        return
    if not ctx.get("trainer.use_v1", True):
        ctx.error("trainer_mode", f"{MODE}={mode} needs verl's V1 trainer, but trainer.use_v1=false. Set "
                                  "trainer.use_v1=true (verl's default), or use mode=sync.")
        return
    _check_geometry(ctx, mode)
    rollout = ctx.get(f"{ROLLOUT}.name")
    if rollout in _NO_PARTIAL_ROLLOUT:
        ctx.error(
            "trainer_mode",
            f"{MODE}={mode} with {ROLLOUT}.name={rollout!r}: the asynchronous trainers pause generation at every "
            "weight update by aborting the running requests and resume them on the new weights (partial rollout); "
            f"the {rollout} rollout server can neither abort nor resume a request. Use rollout=vllm (on CPU: the "
            "cpu-vllm extra), or mode=sync.",
        )
    if mode == "separate_async":
        _check_standalone_pool(ctx)


def _check_geometry(ctx: Context, mode: str) -> None:
    train = _int(ctx, "data.train_batch_size")
    sync_key = f"trainer.v1.{mode}.parameter_sync_step"
    sync_step = _int(ctx, sync_key, 1)
    if train is None or sync_step is None or sync_step <= 0:
        ctx.error("trainer_mode", f"{sync_key}={ctx.get(sync_key)!r} must be a positive integer (mini-batches "
                                  "trained between two weight pushes). Set it to num_mini_batches.")
        return
    if train % sync_step:
        ctx.error("trainer_mode", f"{sync_key}={sync_step} does not divide data.train_batch_size={train}: verl "
                                  "samples train_batch_size / parameter_sync_step prompts per update. Set "
                                  f"{sync_key} to a divisor of {train}.")
        return
    if mode != "separate_async":
        return
    mini = _int(ctx, f"{ACTOR}.ppo_mini_batch_size")
    if mini is not None and train != sync_step * mini:
        fit = train // mini if mini and train % mini == 0 else None
        fix = (f"set {sync_key}={fit} (= data.train_batch_size / ppo_mini_batch_size)" if fit else
               f"set num_mini_batches={sync_step} (ppo_mini_batch_size = train_batch_size / num_mini_batches)")
        ctx.error(
            "trainer_mode",
            f"{MODE}=separate_async trains one mini-batch per weight-push slot, so verl asserts data.train_batch_size "
            f"== {sync_key} × {ACTOR}.ppo_mini_batch_size, but {train} != {sync_step} × {mini}. Fix: {fix}.",
        )
        return
    if mini is not None:
        _check_log_prob_micro_batches(ctx, mini)


def _check_log_prob_micro_batches(ctx: Context, mini: int) -> None:
    """separate_async computes old (and reference) log-probs one mini-batch at a time, not per rollout batch: verl
    asserts that each rank's share of a mini-batch splits into whole micro-batches (``prepare_micro_batches``)."""
    n = _int(ctx, f"{ROLLOUT}.n", 1) or 1
    ranks = (_int(ctx, "trainer.nnodes", 1) or 1) * (_int(ctx, "trainer.n_gpus_per_node", 1) or 1)
    per_rank, uneven = divmod(mini * n, ranks)
    if uneven:
        return  # the data-parallel split itself does not divide: not this check's business
    passes = [ROLLOUT]
    if ctx.get("algorithm.use_kl_in_reward", False) or ctx.get(f"{ACTOR}.use_kl_loss", False):
        passes.append("actor_rollout_ref.ref")  # verl's need_reference_policy
    for section in passes:
        micro = _int(ctx, f"{section}.log_prob_micro_batch_size_per_gpu")
        if micro is None or micro <= 0 or ctx.get(f"{section}.log_prob_use_dynamic_bsz", False):
            continue
        if per_rank % micro:
            fit = max(d for d in range(1, min(micro, per_rank) + 1) if per_rank % d == 0)
            ctx.error(
                "trainer_mode",
                f"{MODE}=separate_async computes log-probs one mini-batch at a time: {ACTOR}.ppo_mini_batch_size="
                f"{mini} prompts × {ROLLOUT}.n={n} / {ranks} trainer rank(s) = {per_rank} samples per rank, which "
                f"{section}.log_prob_micro_batch_size_per_gpu={micro} does not divide (verl asserts it at the first "
                f"step). Set {section}.log_prob_micro_batch_size_per_gpu={fit}.",
            )


def _check_standalone_pool(ctx: Context) -> None:
    nnodes = _int(ctx, f"{ROLLOUT}.nnodes", 0)
    per_node = _int(ctx, f"{ROLLOUT}.n_gpus_per_node", 0)
    if not nnodes or nnodes <= 0 or not per_node or per_node <= 0:
        ctx.error(
            "trainer_mode",
            f"{MODE}=separate_async generates on a standalone rollout pool of {ROLLOUT}.nnodes × "
            f"{ROLLOUT}.n_gpus_per_node GPUs, but they are {ctx.get(f'{ROLLOUT}.nnodes')!r} × "
            f"{ctx.get(f'{ROLLOUT}.n_gpus_per_node')!r} (verl asserts both > 0). Set {ROLLOUT}.nnodes=1 and "
            f"{ROLLOUT}.n_gpus_per_node to the rollout's GPUs (mode=separate_async sets nnodes=1).",
        )
        return
    if ctx.get("actor_rollout_ref.hybrid_engine", True) is False:
        # verl 0.9.1 PPOTrainerSeparateAsync._setup, hybrid replicas disabled: logger.info(..., flush=True)
        ctx.error(
            "trainer_mode",
            f"{MODE}=separate_async with actor_rollout_ref.hybrid_engine=false: verl 0.9.1's trainer dies while "
            "setting up (its log line for that case passes flush=True to logging: \"TypeError: Logger._log() got an "
            "unexpected keyword argument 'flush'\"). Keep actor_rollout_ref.hybrid_engine=true (verl's default: a "
            "replica on the trainer's devices too, idle unless trainer.v1.separate_async.hybrid_rollout.enable_switch).",
        )
    backend = ctx.get(f"{ROLLOUT}.checkpoint_engine.backend")
    on_cpu = ctx.get("trainer.device") == "cpu"
    if backend == "naive":
        fix = "gloo (sspo-verl's CPU engine)" if on_cpu else "nccl (mode=separate_async's default), or nixl / mooncake"
        ctx.error(
            "trainer_mode",
            f"{MODE}=separate_async with {ROLLOUT}.checkpoint_engine.backend='naive': 'naive' hands weights over "
            f"inside one process (colocated replicas) and verl refuses it here. Set "
            f"{ROLLOUT}.checkpoint_engine.backend={fix}.",
        )
    elif on_cpu and backend != "gloo":
        ctx.error(
            "trainer_mode",
            f"{MODE}=separate_async on trainer.device=cpu with {ROLLOUT}.checkpoint_engine.backend={backend!r}: "
            "that engine moves device memory; on CPU the trainer's weights reach the standalone pool through "
            f"sspo-verl's 'gloo' engine. Set {ROLLOUT}.checkpoint_engine.backend=gloo (sspo-train sets it in place "
            "of the mode's default nccl) with hardware=cpu, which registers it (checkpoint_engine.custom_backend_module).",
        )
    reward_model = ctx.get("reward.reward_model.enable", False)
    if reward_model and not ctx.get("reward.reward_model.enable_resource_pool", False):
        ctx.error(
            "trainer_mode",
            f"{MODE}=separate_async with a colocated reward model (reward.reward_model.enable_resource_pool=false): "
            "the standalone rollout never pauses to free its memory, so verl refuses it. Set "
            "reward.reward_model.enable_resource_pool=true.",
        )
    tp = _int(ctx, f"{ROLLOUT}.tensor_model_parallel_size", 1) or 1
    if (nnodes * per_node) % tp:
        ctx.error(
            "trainer_mode",
            f"{ROLLOUT}.nnodes × n_gpus_per_node = {nnodes * per_node} GPUs cannot hold whole replicas of "
            f"{ROLLOUT}.tensor_model_parallel_size={tp}. Make the pool a multiple of {tp} GPUs.",
        )
    if not on_cpu:  # on CPU the slots are logical: the CPU launcher gives Ray trainer ranks + pool slots
        _check_pool_fits(ctx, nnodes, per_node)


def _check_pool_fits(ctx: Context, nnodes: int, per_node: int) -> None:
    """On one machine with no cluster given (where verl starts its own Ray), trainer + rollout GPUs must be there."""
    if not ctx.get("preflight.check_cluster", True):
        return
    if (ctx.get("ray_kwargs.ray_init.address") not in (None, "", "local") or ctx.env.get("RAY_ADDRESS")
            or ctx.env.get("SLURM_JOB_ID")):
        return  # a cluster: its GPUs per node are the cluster check's business; Ray places the pools across nodes
    trainer_nodes = _int(ctx, "trainer.nnodes", 1) or 1
    trainer_gpus = _int(ctx, "trainer.n_gpus_per_node", 0) or 0
    if trainer_nodes != 1 or nnodes != 1:
        return  # more than one node without a cluster: the cluster check refuses it
    try:
        visible = ctx.gpu_counter(ctx.env, float(ctx.get("preflight.gpu_query_timeout_s", 20)))
    except RuntimeError:
        return  # the cluster check reports the hung driver
    if visible is None:
        ctx.warning("trainer_mode", "cannot count the GPUs here (no nvidia-smi): whether the trainer's "
                                    f"{trainer_gpus} and the rollout pool's {per_node} GPUs fit is not checked.")
    elif trainer_gpus + per_node > visible:
        half = visible // 2
        ctx.error(
            "trainer_mode",
            f"{MODE}=separate_async needs trainer.n_gpus_per_node={trainer_gpus} GPUs for the trainer plus "
            f"{ROLLOUT}.n_gpus_per_node={per_node} for the standalone rollout pool on this machine, which shows "
            f"{visible}: Ray would wait for the rest forever. Split them, e.g. trainer.n_gpus_per_node={half} "
            f"{ROLLOUT}.n_gpus_per_node={visible - half}.",
        )
