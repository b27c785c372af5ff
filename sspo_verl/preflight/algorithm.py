"""Algorithm checks: names verl has registered, SSPO's typed config, and settings under which a comparison of
GRPO, GSPO and SSPO would compare nothing (fully on-policy, ε at the wrong scale, the preset left half-way).

The names come from verl's registries (``core_algos.POLICY_LOSS_REGISTRY`` / ``ADV_ESTIMATOR_REGISTRY``), so a
loss or estimator registered there is accepted without a change here. Whether an estimator compares the responses
to one prompt is read from its signature; the two properties of a policy loss that verl does not state are the
two small tables below.
"""

from __future__ import annotations

import inspect
from typing import Optional

from sspo_verl.preflight.context import ACTOR, POLICY_LOSS, Context

__all__ = [
    "NO_OLD_POLICY_RATIO",
    "RATIO_LEVEL",
    "SEQUENCE_SCALE_EPS",
    "check_clip_scale",
    "check_group_size",
    "check_on_policy",
    "check_preset",
    "check_registry",
    "check_sspo_config",
]

# What verl's policy-loss registry cannot tell: it holds bare functions, each handed π_old's log-probs
# (``old_log_prob``) by verl. [ours, read from verl 0.9.1's core_algos]
# Losses that form no π_θ/π_old ratio from them, so a fully on-policy run loses nothing they use (``on_policy``):
# gpg is −log π · A; bypass_mode's "old" log-probs are the rollout engine's. Every other loss is taken to be one.
NO_OLD_POLICY_RATIO = frozenset({"gpg", "bypass_mode"})
# The level of the ratio that ε clips, which sets the ε scale it needs (``clip_scale``), for the two verl losses
# the presets compare: vanilla clips each token's ratio, gspo one length-normalised ratio per response. SSPO's is
# read from its own config (``policy_loss.granularity``); any other loss is not judged.
RATIO_LEVEL = {"vanilla": "token", "gspo": "sequence"}

# ε below this is "sequence scale" (GSPO paper: 3e-4 / 4e-4), at or above it "token scale" (GRPO: 0.2 / 0.28). [ours]
SEQUENCE_SCALE_EPS = 0.01


def check_registry(ctx: Context) -> None:
    """``loss_mode`` / ``adv_estimator`` not registered in verl → error listing the registered ones."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    loss_mode = ctx.get(f"{POLICY_LOSS}.loss_mode")
    adv = ctx.get("algorithm.adv_estimator")
    if loss_mode == "sspo" or adv == "sspo":
        from sspo_verl.adapter.plugin import ensure_registered

        try:
            ensure_registered()  # both registrations and the ppo_loss micro-batch context SSPO's loss reads
        except RuntimeError as exc:
            ctx.error("registry", str(exc))
            return
    if loss_mode not in POLICY_LOSS_REGISTRY:
        ctx.error(
            "registry",
            f"{POLICY_LOSS}.loss_mode={loss_mode!r} is not a registered verl policy loss. Registered: "
            f"{', '.join(sorted(POLICY_LOSS_REGISTRY))}. Pick one (algorithm=grpo|gspo|gspo_wide|sspo sets it), or "
            "register yours with verl.trainer.ppo.core_algos.register_policy_loss in a verl.plugins entry point.",
        )
    if adv not in ADV_ESTIMATOR_REGISTRY:
        ctx.error(
            "registry",
            f"algorithm.adv_estimator={adv!r} is not a registered verl advantage estimator. Registered: "
            f"{', '.join(sorted(ADV_ESTIMATOR_REGISTRY))}. Pick one (the algorithm presets set it), or register "
            "yours with verl.trainer.ppo.core_algos.register_adv_est.",
        )


def check_sspo_config(ctx: Context) -> None:
    """``loss_mode=sspo`` without SSPO's typed config → error. Entropy clipping (spec §5):
    ``entropy_source=old`` (the preset) where verl stores no old entropy — the legacy trainer
    (``trainer.use_v1=false``) or ``algorithm.rollout_correction.bypass_mode=true`` (no old-log-prob pass) → error
    naming the fix; ``entropy_source=old`` with ``calculate_entropy=true`` and ``entropy_coeff=0`` → warning (the
    update would compute and back-propagate an entropy nothing uses); ``entropy_source=current`` needs
    ``calculate_entropy=true``: filled when unset (the preset leaves it null), an error when set false. The
    segmentation tokenizer is the actor's own (the worker takes verl's), so ``tokenizer_path`` is not filled in."""
    if ctx.get(f"{POLICY_LOSS}.loss_mode") != "sspo":
        return
    from hydra.utils import get_class

    from sspo_verl.adapter.config import SSPOPolicyLossConfig

    target = ctx.get(f"{POLICY_LOSS}._target_")
    try:
        cls = get_class(target) if target else None
    except Exception:  # an unloadable _target_: verl's validate_config refuses it, naming the key
        return
    if not (isinstance(cls, type) and issubclass(cls, SSPOPolicyLossConfig)):
        ctx.error(
            "sspo_config",
            f"{POLICY_LOSS}.loss_mode=sspo needs SSPO's typed config, but {POLICY_LOSS}._target_={target!r}. "
            "Use the preset (algorithm=sspo), or set "
            f"{POLICY_LOSS}._target_=sspo_verl.SSPOPolicyLossConfig.",
        )
        return
    if not ctx.get(f"{POLICY_LOSS}.entropy_clip", True):
        return
    source = ctx.get(f"{POLICY_LOSS}.entropy_source", "old")
    if source == "current":
        ctx.require("sspo_config", f"{ACTOR}.calculate_entropy", True, because=f"{POLICY_LOSS}.entropy_source=current",
                    reason="the clip bounds scale with π_θ's token entropy in the update (entropy_source=old uses the "
                           "sampling policy's at no extra cost; entropy_clip=false runs without)")
        return
    fix = (f"set {POLICY_LOSS}.entropy_source=current (π_θ's entropy per micro-batch; split-dependent) or "
           f"{POLICY_LOSS}.entropy_clip=false")
    if not ctx.get("trainer.use_v1", True):
        ctx.error(
            "sspo_config",
            f"{POLICY_LOSS}.entropy_source=old needs the sampling policy's token entropy, which only verl's V1 "
            f"trainer keeps (it stores it at the old-log-prob pass; the legacy trainer, trainer.use_v1=false, drops "
            f"it). Fix: trainer.use_v1=true, or {fix}.",
        )
    if ctx.get("algorithm.rollout_correction.bypass_mode", False):
        ctx.error(
            "sspo_config",
            f"{POLICY_LOSS}.entropy_source=old needs the sampling policy's token entropy, which verl computes at the "
            "old-log-prob pass, but algorithm.rollout_correction.bypass_mode=true skips that pass (old log-probs are "
            f"the rollout's), so verl stores no entropy. Fix: {fix}, or "
            "algorithm.rollout_correction.bypass_mode=false.",
        )
    if ctx.get(f"{ACTOR}.calculate_entropy") and not ctx.get(f"{ACTOR}.entropy_coeff", 0.0):
        ctx.warning(
            "sspo_config",
            f"{ACTOR}.calculate_entropy=true with entropy_coeff=0: every actor update computes π_θ's token entropy "
            "and "
            "back-propagates through it (verl subtracts 0 · entropy; in-place log-softmax backward is off), a cost "
            f"GRPO does not pay, while SSPO ({POLICY_LOSS}.entropy_source=old) uses the sampling policy's entropy. "
            f"Set {ACTOR}.calculate_entropy=false unless you want actor/entropy_loss logged.",
        )


def _num_mini_batches(ctx: Context) -> tuple[int, int, int]:
    """(train_batch_size, ppo_mini_batch_size, mini-batches per rollout batch), all counted in prompts."""
    train = int(ctx.get("data.train_batch_size"))
    mini = int(ctx.get(f"{ACTOR}.ppo_mini_batch_size"))
    return train, mini, -(-train // max(mini, 1))


def _is_synchronous(ctx: Context) -> bool:
    if not ctx.get("trainer.use_v1", True):
        return True
    return ctx.get("trainer.v1.trainer_mode", "sync") == "sync"


def check_on_policy(ctx: Context) -> None:
    """A ratio-based loss with one mini-batch per rollout batch and one epoch (synchronous trainer): every ratio
    is 1 and GRPO / GSPO / SSPO give the same gradient → loud warning."""
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

    loss_mode = ctx.get(f"{POLICY_LOSS}.loss_mode")
    if loss_mode not in POLICY_LOSS_REGISTRY or loss_mode in NO_OLD_POLICY_RATIO or not _is_synchronous(ctx):
        return
    train, mini, n_mini = _num_mini_batches(ctx)
    epochs = int(ctx.get(f"{ACTOR}.ppo_epochs", 1))
    if n_mini == 1 and epochs == 1:
        ctx.warning(
            "on_policy",
            f"FULLY ON-POLICY: loss_mode={loss_mode!r} with one mini-batch per rollout batch "
            f"(data.train_batch_size={train}, {ACTOR}.ppo_mini_batch_size={mini}) and {ACTOR}.ppo_epochs=1. "
            "Every importance ratio is exactly 1, nothing is ever clipped, and GRPO, GSPO and SSPO give the same "
            "gradient: an algorithm comparison run like this compares nothing. Use several mini-batches "
            f"(num_mini_batches=4, the presets' setting, or {ACTOR}.ppo_mini_batch_size < data.train_batch_size) "
            f"or {ACTOR}.ppo_epochs > 1.",
        )


def _clip_eps(ctx: Context) -> tuple[float, float]:
    base = ctx.get(f"{ACTOR}.clip_ratio", 0.2)
    low = ctx.get(f"{ACTOR}.clip_ratio_low")
    high = ctx.get(f"{ACTOR}.clip_ratio_high")
    return float(base if low is None else low), float(base if high is None else high)


def _natural_clip_scale(ctx: Context, loss_mode: str) -> Optional[str]:
    """The ε scale a loss's ratio needs: its :data:`RATIO_LEVEL`, SSPO's by its granularity; None: not judged."""
    if loss_mode == "sspo":
        return "sequence" if ctx.get(f"{POLICY_LOSS}.granularity") == "sequence" else "token"
    return RATIO_LEVEL.get(loss_mode)


def check_clip_scale(ctx: Context) -> None:
    """GSPO (a sequence-level ratio) with GRPO-scale ε, or a token/subsentence ratio with GSPO-scale ε → warning
    (quiet for a preset that declares that scale on purpose: gspo_wide)."""
    loss_mode = ctx.get(f"{POLICY_LOSS}.loss_mode")
    natural = _natural_clip_scale(ctx, loss_mode)
    if natural is None:
        return
    low, high = _clip_eps(ctx)
    actual = "sequence" if max(low, high) < SEQUENCE_SCALE_EPS else "token"
    if actual == natural:
        return
    preset = ctx.get("algorithm_preset") or {}
    if preset.get("loss_mode") == loss_mode and preset.get("clip_scale") == actual:
        return  # the preset chose this scale on purpose (gspo_wide)
    eps = f"clip_ratio_low={low:g}, clip_ratio_high={high:g}"
    if natural == "sequence":
        ctx.warning(
            "clip_scale",
            f"loss_mode={loss_mode!r} computes one ratio per response (a length-normalised geometric mean, close to "
            f"1) but the clip range is GRPO-scale ({eps}): almost no response is ever clipped. The GSPO paper uses "
            f"3e-4 / 4e-4 (algorithm=gspo). If GRPO-scale ε is what you want (the SSPO paper's likely baseline), use "
            "algorithm=gspo_wide, which states it.",
        )
    else:
        ctx.warning(
            "clip_scale",
            f"loss_mode={loss_mode!r} computes per-token / per-subsentence ratios but the clip range is GSPO-scale "
            f"({eps}): nearly every token is clipped and gets no gradient. Use ε around 0.2 / 0.28 "
            "(algorithm=grpo or algorithm=sspo), or loss_mode=gspo for ε of this size.",
        )


def check_preset(ctx: Context) -> None:
    """``loss_mode`` differs from the algorithm preset's, or a ``loss_agg_mode`` the preset's paper did not use →
    warning."""
    preset = ctx.get("algorithm_preset")
    if not preset:
        return
    name = preset.get("name", "?")
    loss_mode = ctx.get(f"{POLICY_LOSS}.loss_mode")
    if preset.get("loss_mode") and loss_mode != preset.get("loss_mode"):
        ctx.warning(
            "preset",
            f"algorithm={name} is a preset for loss_mode={preset.get('loss_mode')!r}, but {POLICY_LOSS}.loss_mode="
            f"{loss_mode!r}: the run is neither preset. Switch algorithms with the preset (algorithm=grpo|gspo|"
            "gspo_wide|sspo) rather than loss_mode alone, so clip range, aggregation and estimator match.",
        )
        return
    agg = ctx.get(f"{ACTOR}.loss_agg_mode")
    allowed = list(preset.get("loss_agg_modes") or [])
    if allowed and agg not in allowed:
        ctx.warning(
            "preset",
            f"{ACTOR}.loss_agg_mode={agg!r}: preset {name} follows {preset.get('source')}, which aggregates with "
            f"{' or '.join(allowed)}; results will not be comparable with that paper. Set "
            f"{ACTOR}.loss_agg_mode={allowed[0]} unless this is a deliberate ablation.",
        )


def check_group_size(ctx: Context) -> None:
    """A group-relative advantage estimator with ``rollout.n < 2`` → warning. An estimator is group-relative when
    it takes ``index``, the prompt id of each response, which verl passes so that it can group them."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

    adv = ctx.get("algorithm.adv_estimator")
    n = int(ctx.get("actor_rollout_ref.rollout.n", 1))
    estimator = ADV_ESTIMATOR_REGISTRY.get(adv)
    if estimator is not None and "index" in inspect.signature(estimator).parameters and n < 2:
        ctx.warning(
            "group_size",
            f"algorithm.adv_estimator={adv!r} compares the responses to one prompt, but "
            f"actor_rollout_ref.rollout.n={n}: there is no group (verl then uses the raw reward as the advantage, "
            "with no baseline). Set actor_rollout_ref.rollout.n to 2 or more (sspo-train's default: 8).",
        )
