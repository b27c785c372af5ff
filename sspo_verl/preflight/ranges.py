"""Numeric ranges: every number GRPO, GSPO and SSPO depend on is checked against the range where it means
something, so that a negative clip ratio or a zero batch is refused here instead of trained on (or failing minutes
later inside a Ray worker).

:data:`RANGES` is the one table: key, bounds, and what the value means. A key that is missing or null is not
checked (verl's default or the key's own "unset" applies); a value that is not a number is an error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from sspo_verl.preflight.context import ACTOR, Context

__all__ = ["RANGES", "Range", "check_ranges"]

ROLLOUT = "actor_rollout_ref.rollout"


@dataclasses.dataclass(frozen=True)
class Range:
    """``low`` ≤ value ≤ ``high`` (strict where ``*_open``); ``integer``: a whole number; ``also``: other values
    with a meaning of their own (e.g. -1 = off)."""

    key: str
    meaning: str
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    also: tuple = ()

    def rule(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '≥'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '≤'} {self.high:g}")
        text = ("an integer " if self.integer else "a number ") + " and ".join(parts)
        if self.also:
            text += " (or " + " / ".join(repr(a) for a in self.also) + ")"
        return text.strip()

    def holds(self, value: float) -> bool:
        if value in self.also:
            return True
        if not math.isfinite(value) or (self.integer and value != int(value)):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True


def _positive_int(key: str, meaning: str, also: tuple = ()) -> Range:
    return Range(key, meaning, low=1, integer=True, also=also)


RANGES: tuple[Range, ...] = (
    # Clipping (PPO / GRPO / GSPO / SSPO): the ratio is clipped to [1 - ε_low, 1 + ε_high].
    Range(f"{ACTOR}.clip_ratio", "ε, the default of clip_ratio_low / clip_ratio_high", low=0, high=1, low_open=True,
          high_open=True),
    Range(f"{ACTOR}.clip_ratio_low", "ε_low: the ratio's lower clip bound is 1 - ε_low, which must stay above 0",
          low=0, high=1, low_open=True, high_open=True),
    Range(f"{ACTOR}.clip_ratio_high", "ε_high: the ratio's upper clip bound is 1 + ε_high", low=0, low_open=True),
    Range(f"{ACTOR}.clip_ratio_c", "the dual-clip constant c (verl asserts c > 1 at the first update)", low=1,
          low_open=True),
    # Batch sizes, epochs, steps.
    _positive_int("data.train_batch_size", "prompts per rollout batch"),
    _positive_int("data.val_batch_size", "prompts per validation batch"),
    _positive_int(f"{ACTOR}.ppo_mini_batch_size", "prompts per PPO mini-batch"),
    _positive_int(f"{ACTOR}.ppo_micro_batch_size_per_gpu", "samples per forward pass and GPU"),
    _positive_int(f"{ACTOR}.ppo_max_token_len_per_gpu", "tokens per forward pass and GPU (dynamic batch size)"),
    _positive_int(f"{ACTOR}.ppo_epochs", "passes of the PPO update over each rollout batch"),
    _positive_int(f"{ROLLOUT}.log_prob_micro_batch_size_per_gpu", "samples per log-prob forward pass and GPU"),
    _positive_int(f"{ROLLOUT}.n", "responses per prompt"),
    _positive_int(f"{ROLLOUT}.val_kwargs.n", "responses per validation prompt"),
    _positive_int("trainer.total_epochs", "passes over the training data"),
    _positive_int("trainer.total_training_steps", "training steps (null: from total_epochs)"),
    _positive_int("trainer.nnodes", "nodes"),
    _positive_int("trainer.n_gpus_per_node", "GPUs (or CPU ranks) per node"),
    _positive_int("trainer.save_freq", "steps between checkpoints", also=(-1,)),
    _positive_int("trainer.test_freq", "steps between validations", also=(-1,)),
    # Lengths.
    _positive_int("data.max_prompt_length", "prompt tokens"),
    _positive_int("data.max_response_length", "response tokens"),
    # Optimiser.
    Range(f"{ACTOR}.optim.lr", "the actor's learning rate", low=0, high=1, low_open=True),
    Range(f"{ACTOR}.optim.weight_decay", "weight decay", low=0),
    Range(f"{ACTOR}.optim.lr_warmup_steps_ratio", "fraction of steps spent warming up", low=0, high=1),
    Range(f"{ACTOR}.grad_clip", "the gradient-norm clip", low=0, low_open=True),
    # Regularisers.
    Range(f"{ACTOR}.entropy_coeff", "the entropy bonus coefficient", low=0),
    Range(f"{ACTOR}.kl_loss_coef", "the KL-loss coefficient", low=0),
    Range("algorithm.kl_ctrl.kl_coef", "the in-reward KL coefficient", low=0),
    # Sampling.
    Range(f"{ROLLOUT}.temperature", "the sampling temperature (log-probs are computed at it: 0 divides by zero)",
          low=0, low_open=True),
    Range(f"{ROLLOUT}.top_p", "nucleus sampling's probability mass", low=0, high=1, low_open=True),
    Range(f"{ROLLOUT}.top_k", "top-k sampling", low=1, integer=True, also=(-1, 0)),
    Range(f"{ROLLOUT}.val_kwargs.temperature", "the validation temperature (0: greedy)", low=0),
    Range(f"{ROLLOUT}.val_kwargs.top_p", "the validation nucleus mass", low=0, high=1, low_open=True),
    Range(f"{ROLLOUT}.gpu_memory_utilization", "the rollout engine's GPU memory fraction", low=0, high=1,
          low_open=True),
)


def check_ranges(ctx: Context) -> None:
    """A value of :data:`RANGES` out of its range, or not a number → error naming the key, the rule and the
    meaning."""
    for spec in RANGES:
        value = ctx.get(spec.key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.error("ranges", f"{spec.key}={value!r} is not a number: it must be {spec.rule()} ({spec.meaning}).")
            continue
        if not spec.holds(float(value)):
            ctx.error(
                "ranges",
                f"{spec.key}={value!r} is out of range: it must be {spec.rule()} ({spec.meaning}). Set "
                f"{spec.key} to a value in that range (the presets' values are in hydra_configs/).",
            )
