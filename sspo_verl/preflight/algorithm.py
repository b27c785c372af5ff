"""Algorithm checks: names verl has registered, SSPO's typed config, and settings under which a comparison of
GRPO, GSPO and SSPO would compare nothing (fully on-policy, ε at the wrong scale, the preset left half-way).

The facts the checks need about verl's policy losses and advantage estimators are in one table each
(:data:`POLICY_LOSSES`, :data:`ADV_ESTIMATORS`); a CPU test fails when verl registers a name they do not cover.
A name outside the tables (a loss a user registered) is checked for registration only.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from sspo_verl.preflight.context import ACTOR, POLICY_LOSS, Context

__all__ = [
    "ADV_ESTIMATORS",
    "POLICY_LOSSES",
    "SEQUENCE_SCALE_EPS",
    "LossFacts",
    "check_clip_scale",
    "check_group_size",
    "check_on_policy",
    "check_preset",
    "check_registry",
    "check_sspo_config",
]


@dataclasses.dataclass(frozen=True)
class LossFacts:
    """What the checks need to know of a policy loss.

    Attributes:
        ratio: built on the PPO importance ratio π_θ/π_old, so fully on-policy every ratio is 1 and nothing is
            clipped (``on_policy`` check).
        clip_scale: the ε scale its ratio needs: ``token`` (per-token ratios, GRPO's 0.2 / 0.28), ``sequence``
            (one length-normalised ratio per response, GSPO's 3e-4 / 4e-4), ``granularity`` (SSPO: sequence
            for ``policy_loss.granularity=sequence``, token otherwise), or None (not judged; ``clip_scale``).
    """

    ratio: bool
    clip_scale: Optional[str] = None


# Every policy loss of verl 0.9.1 (verl.trainer.ppo.core_algos.POLICY_LOSS_REGISTRY) and sspo's.
POLICY_LOSSES: dict[str, LossFacts] = {
    "vanilla": LossFacts(ratio=True, clip_scale="token"),  # PPO-clip
    "gspo": LossFacts(ratio=True, clip_scale="sequence"),  # sequence-level geometric-mean ratio
    "sspo": LossFacts(ratio=True, clip_scale="granularity"),  # subsentence-level ratio (docs/SSPO.md)
    "sapo": LossFacts(ratio=True),  # soft gate on the token ratio
    "cispo": LossFacts(ratio=True),  # clipped, stop-gradient ratio as an IS weight
    "geo_mean": LossFacts(ratio=True),  # GMPO: geometric mean of token ratios
    "clip_cov": LossFacts(ratio=True),
    "kl_cov": LossFacts(ratio=True),
    "dppo_tv": LossFacts(ratio=True),
    "dppo_kl": LossFacts(ratio=True),
    "dro": LossFacts(ratio=True),  # quadratic log-ratio penalty
    "gpg": LossFacts(ratio=False),  # plain policy gradient, no ratio
    "bypass_mode": LossFacts(ratio=False),  # ratio against the rollout policy, not π_old (rollout correction)
}

# Every advantage estimator of verl 0.9.1 (core_algos.ADV_ESTIMATOR_REGISTRY) and sspo's: True when it compares
# the responses to one prompt with each other, so it needs actor_rollout_ref.rollout.n ≥ 2 (``group_size``).
ADV_ESTIMATORS: dict[str, bool] = {
    "grpo": True,
    "grpo_vectorized": True,
    "grpo_passk": True,
    "rloo": True,
    "rloo_vectorized": True,
    "opo": True,
    "sspo": True,
    "reinforce_plus_plus_baseline": True,
    "gdpo": True,  # per-reward group normalisation
    "gpg": True,  # group-mean baseline
    "optimal_token_baseline": True,  # per-group token baseline
    "tir_optimal_token_baseline": True,
    "gae": False,  # a critic's value baseline
    "reinforce_plus_plus": False,
    "remax": False,  # a greedy response's reward as the baseline
}

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


def _policy_loss_class(target: Optional[str]):
    if not target:
        return None
    from hydra.utils import get_class

    try:
        return get_class(target)
    except Exception:  # reported by verl's validate_config with hydra's own message
        return None


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
    from sspo_verl.adapter.config import SSPOPolicyLossConfig

    target = ctx.get(f"{POLICY_LOSS}._target_")
    cls = _policy_loss_class(target)
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
    loss_mode = ctx.get(f"{POLICY_LOSS}.loss_mode")
    facts = POLICY_LOSSES.get(loss_mode)
    if facts is None or not facts.ratio or not _is_synchronous(ctx):
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
    """The ε scale a loss's ratio needs (:attr:`LossFacts.clip_scale`, SSPO's resolved by its granularity)."""
    facts = POLICY_LOSSES.get(loss_mode)
    scale = facts.clip_scale if facts else None
    if scale == "granularity":
        return "sequence" if ctx.get(f"{POLICY_LOSS}.granularity") == "sequence" else "token"
    return scale


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
    """A group-relative advantage estimator with ``rollout.n < 2`` → warning."""
    adv = ctx.get("algorithm.adv_estimator")
    n = int(ctx.get("actor_rollout_ref.rollout.n", 1))
    if ADV_ESTIMATORS.get(adv, False) and n < 2:
        ctx.warning(
            "group_size",
            f"algorithm.adv_estimator={adv!r} compares the responses to one prompt, but "
            f"actor_rollout_ref.rollout.n={n}: there is no group (verl then uses the raw reward as the advantage, "
            "with no baseline). Set actor_rollout_ref.rollout.n to 2 or more (sspo-train's default: 8).",
        )
