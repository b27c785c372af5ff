"""Pre-flight checks: a wrong training config fails in the driver, before Ray starts, with the fix in the message.

``sspo-train`` runs :func:`run_preflight` on every composed config (each job of a multirun). verl itself checks
little before its workers start: a misspelt ``loss_mode`` fails at the first update inside a Ray worker, a
cluster with fewer GPUs than ``trainer.nnodes × n_gpus_per_node`` makes verl wait for them.

Public API:
    run_preflight(config, ...) -> PreflightReport   run every check, apply the documented fixes in place, log;
                                                    raise PreflightError on errors
    CHECKS                                          the checks in the order they run (runner.py)
    Context                                         what a check gets: ctx.get(key), ctx.error / warning / fix
    PreflightReport, Finding, PreflightError
    NO_OLD_POLICY_RATIO, RATIO_LEVEL                the two facts of verl's policy losses its registry does not state
    count_visible_gpus, probe_ray_cluster           this machine's GPUs, a Ray cluster's GPUs per node

Adding a check: write ``def check_x(ctx: Context) -> None`` in the module of its concern (or a new one), report
with ``ctx.error("x", message)`` (the message names the key and the fix), and list it in ``runner.CHECKS``.

Checks, in order (the ``check`` name of each finding; module):
    schema, ranges  every value against its type from verl's config dataclasses / the defaults' types (a wrong
                    type, NaN/inf, null where not optional) → error; then the range and relation tables (schema,
                    ranges)
    verl            verl's own ``validate_config`` (verl.utils.config) on a copy of the config, when the schema check
                    found nothing; what it refuses is not checked again (validate)
    registry        loss_mode / adv_estimator not registered in verl → error listing the registered ones (algorithm)
    sspo_config     loss_mode=sspo without ``policy_loss._target_=sspo_verl.SSPOPolicyLossConfig`` → error;
                    ``entropy_source=old`` (the preset) where verl keeps no sampling-policy entropy
                    (``trainer.use_v1=false``, ``algorithm.rollout_correction.bypass_mode=true``) → error naming
                    the fix; ``entropy_source=old`` with ``calculate_entropy=true`` and no entropy bonus → warning
                    (an entropy backward nothing uses); ``entropy_source=current``: ``calculate_entropy=true``
                    filled when unset, an error naming both keys when set false (algorithm)
    on_policy       a ratio-based loss (any but NO_OLD_POLICY_RATIO) with one mini-batch per rollout batch and one
                    epoch (synchronous trainer): every ratio is 1 and GRPO / GSPO / SSPO give the same gradient →
                    loud warning
    clip_scale      GSPO (a sequence-level ratio) with GRPO-scale ε, or a token/subsentence ratio with
                    GSPO-scale ε → warning (quiet for a preset that declares that scale on purpose: gspo_wide)
    preset          loss_mode differs from the algorithm preset's, or a loss_agg_mode the preset's paper did not
                    use → warning
    group_size      a group-relative advantage estimator (one taking verl's prompt ``index``) with rollout.n < 2
                    → warning
    files           data.train_files / data.val_files / a local model path / the reward module missing → error
    cluster         trainer.nnodes × n_gpus_per_node against Slurm's allocation, a Ray cluster given by address
                    (queried in a subprocess with a timeout; Ray is not started), or the GPUs visible here
    packages        trainer.device=cuda with an attn_implementation whose package is not installed here
                    (flash_attention_2 without flash-attn), or Ulysses sequence parallelism without flash
                    attention → error naming the install line and the sdpa switch (packages)
    cuda            trainer.device=cuda on a node with NVIDIA GPUs where torch, imported in a fresh process, cannot
                    use CUDA: a CPU-only torch, a driver older than torch's CUDA needs (names both), another init error
    memory          the per-GPU memory estimate (model config.json, FSDP shards, AdamW, logits, activations, vLLM's
                    share) logged; above the card (preflight.gpu_memory_gib or nvidia-smi's smallest GPU) → error
                    naming the knobs; no card or no readable config.json → logged, not blocked (memory)
    trainer_mode    an asynchronous ``trainer.v1.trainer_mode`` verl would assert on inside Ray: batch geometry
                    (parameter_sync_step), the standalone rollout pool (size, checkpoint engine, fit on this
                    machine), the hf rollout (no partial rollout), separate_async on CPU → error (trainer_mode)

Thresholds are [ours]: ε below ``SEQUENCE_SCALE_EPS`` (0.01) counts as sequence scale (the GSPO paper uses
3e-4 / 4e-4), at or above it as token scale (GRPO: 0.2 / 0.28).
"""

from sspo_verl.preflight.context import Context, Finding, PreflightError, PreflightReport
from sspo_verl.preflight.algorithm import NO_OLD_POLICY_RATIO, RATIO_LEVEL, SEQUENCE_SCALE_EPS
from sspo_verl.preflight.cluster import count_visible_gpus
from sspo_verl.preflight.runner import CHECKS, run_preflight
from sspo_verl.ray_probe import probe_ray_cluster

__all__ = [
    "CHECKS",
    "NO_OLD_POLICY_RATIO",
    "RATIO_LEVEL",
    "SEQUENCE_SCALE_EPS",
    "Context",
    "Finding",
    "PreflightError",
    "PreflightReport",
    "count_visible_gpus",
    "probe_ray_cluster",
    "run_preflight",
]
