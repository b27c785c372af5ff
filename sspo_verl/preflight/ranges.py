"""The tables next to the schema: the range of every number GRPO, GSPO and SSPO depend on, and the arithmetic
relations between values, and the choices of the strings verl types as plain ``str``, so that a negative clip ratio,
a zero batch, a token budget below the sequence length or ``data.truncation=errror`` is refused before Ray instead
of trained on (or failing minutes later inside a Ray worker).

:data:`RANGES` (key, bounds, what the value means), :data:`RELATIONS` (key ≥ a sum of keys, when a switch is on)
and :data:`CHOICES` (key, the strings verl accepts, read from verl's registries and constants where verl states
them) are the tables; the schema walk (:mod:`sspo_verl.preflight.schema`) checks a value's range right after its
type (a choice likewise, each element of a list, where the value is written rather than interpolated), and the
relations after every value. A key that is missing or null is not checked (verl's default or the
key's own "unset" applies).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, Optional, Union

from sspo_verl.preflight.context import ACTOR, Context

__all__ = [
    "CHOICES",
    "RANGES",
    "RELATIONS",
    "Choice",
    "Range",
    "Relation",
    "check_choice",
    "check_range",
    "check_relations",
    "in_range",
]

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


@dataclasses.dataclass(frozen=True)
class Relation:
    """``key`` ≥ the sum of the values at ``at_least``, where the bool at ``when`` (if given) is true."""

    key: str
    at_least: tuple[str, ...]
    meaning: str
    when: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Choice:
    """``key`` (each element, for a list; each ``sep``-separated part, where given) is one of ``values``: strings verl
    types as ``str`` and checks only in code that runs inside Ray. ``values`` is a tuple, or a function of the
    pre-flight's context reading them from verl where verl states them (a registry: what this process holds)."""

    key: str
    meaning: str
    values: Union[tuple[str, ...], Callable[[Context], Collection[str]]]
    sep: Optional[str] = None

    def allowed(self, ctx: Context) -> tuple[str, ...]:
        return tuple(self.values if isinstance(self.values, tuple) else sorted(self.values(ctx)))


def _tracking_backends(_ctx: Context) -> Collection[str]:
    from verl.utils.tracking import Tracking

    return Tracking.supported_backend


def _rollout_registry() -> Collection[tuple[str, str]]:
    """verl's rollout registry's keys, (rollout.name, rollout.mode): each trainer worker asserts its pair is one
    (``verl.workers.rollout.base.get_rollout_class``)."""
    from sspo_verl.cpu import verl_internals

    return verl_internals.resolve("verl.workers.rollout.base._ROLLOUT_REGISTRY")


def _rollout_names(ctx: Context) -> Collection[str]:
    """The names in verl's rollout registry; on ``trainer.device=cpu`` also the CPU backend's rollouts, which
    :func:`sspo_verl.cpu.activate` registers in every process of the run (a dry run does not activate it)."""
    from sspo_verl.cpu.launch import CPU_ROLLOUTS

    names = {name for name, _mode in _rollout_registry()}
    return names | set(CPU_ROLLOUTS) if ctx.get("trainer.device") == "cpu" else names


def _rollout_modes(_ctx: Context) -> Collection[str]:
    return {mode for _name, mode in _rollout_registry()}


def _engine_strategies(_ctx: Context) -> Collection[str]:
    """The training-engine backends verl registers here for the actor's and the reference's model type
    (``EngineRegistry.new(model_type="language_model", backend=strategy)`` in ``verl.workers.engine_workers``)."""
    from sspo_verl.cpu import verl_internals

    return verl_internals.resolve("verl.workers.engine.base.EngineRegistry._engines")["language_model"]


def _checkpoint_engines(ctx: Context) -> Collection[str]:
    """verl's checkpoint engines registered here, after importing ``checkpoint_engine.custom_backend_module`` as
    verl does before it looks the backend up (``verl.workers.engine_workers``)."""
    import importlib

    from sspo_verl.cpu import verl_internals

    registry = verl_internals.resolve("verl.checkpoint_engine.base.CheckpointEngineRegistry._registry")
    module = ctx.get(f"{ROLLOUT}.checkpoint_engine.custom_backend_module")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"{ROLLOUT}.checkpoint_engine.custom_backend_module={module!r} does not import ({exc}); "
                             "verl imports it in every worker before it looks the backend up. Fix the module name, "
                             "or install it.") from exc
    return registry


def _rollout_rs_options(_ctx: Context) -> Collection[str]:
    from verl.trainer.ppo.rollout_corr_helper import SUPPORTED_ROLLOUT_RS_OPTIONS

    return SUPPORTED_ROLLOUT_RS_OPTIONS


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
    # Pre-flight's own knobs.
    Range("preflight.gpu_memory_gib", "the card's memory in GiB the estimate is checked against (e.g. 80 for an "
          "H100 80GB; null: read it from nvidia-smi)", low=0, low_open=True),
)


# Relations between values, [ours] where not said otherwise.
RELATIONS: tuple[Relation, ...] = (
    # verl's dynamic batching (seqlen_balancing.rearrange_micro_batches) asserts that the token budget of a
    # micro-batch holds the longest sequence, at the first update inside a Ray worker.
    Relation(f"{ACTOR}.ppo_max_token_len_per_gpu", ("data.max_prompt_length", "data.max_response_length"),
             "the update's micro-batch token budget must hold the longest prompt + response (verl asserts it "
             "inside a Ray worker)", when=f"{ACTOR}.use_dynamic_bsz"),
    Relation(f"{ROLLOUT}.log_prob_max_token_len_per_gpu", ("data.max_prompt_length", "data.max_response_length"),
             "the log-prob pass's micro-batch token budget must hold the longest prompt + response (verl asserts "
             "it inside a Ray worker)", when=f"{ROLLOUT}.log_prob_use_dynamic_bsz"),
)

# verl.trainer.ppo.core_algos.kl_penalty: kl_penalty_forward's if-chain ("full" raises NotImplementedError), each
# also with the straight-through suffix "+" (e.g. "k3+").
_KL_ESTIMATORS = tuple(f"{name}{plus}" for name in ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3")
                       for plus in ("", "+"))
RC = "algorithm.rollout_correction"

# String choices verl enforces only where it uses them, inside Ray.
CHOICES: tuple[Choice, ...] = (
    # verl.utils.torch_functional.postprocess_data asserts these, in the dataset of the first rollout batch.
    Choice("data.truncation", "what verl does with a prompt longer than data.max_prompt_length",
           ("error", "left", "right", "middle")),
    # verl.trainer.ppo.v1.trainer_base._load_checkpoint: any other value logs "Unknown resume mode" and then fails.
    Choice("trainer.resume_mode", "where the run resumes from", ("auto", "disable", "resume_path")),
    Choice("trainer.logger", "verl's metric loggers (verl.utils.tracking.Tracking asserts each)", _tracking_backends),
    Choice(f"{ROLLOUT}.name", "the rollout engines registered in verl (on trainer.device=cpu: with the CPU backend's)",
           _rollout_names),
    Choice(f"{ROLLOUT}.mode", "the rollout modes of verl's rollout registry", _rollout_modes),
    Choice(f"{ACTOR}.strategy", "the training engines registered in verl here", _engine_strategies),
    Choice("actor_rollout_ref.ref.strategy", "the training engines registered in verl here", _engine_strategies),
    Choice(f"{ROLLOUT}.checkpoint_engine.backend", "the trainer-to-rollout weight transports verl registered here: "
           "not those whose transport package does not import, e.g. nccl without cupy (pip install 'verl[cupy-cu130]')",
           _checkpoint_engines),
    # verl.trainer.ppo.rollout_corr_helper.compute_rollout_correction_weights: its valid_is_levels.
    Choice(f"{RC}.rollout_is", "the importance-weight level (null: no weights)", ("sequence", "token")),
    Choice(f"{RC}.rollout_rs", "rejection-sampling criteria, comma-separated (null: none)", _rollout_rs_options,
           sep=","),
    # verl.trainer.ppo.core_algos.compute_policy_loss_bypass_mode: an if-chain, else ValueError.
    Choice(f"{RC}.loss_type", "the bypass-mode loss", ("ppo_clip", "reinforce")),
    # verl.trainer.ppo.v1.replay_buffer.ReplayBuffer.__init__ asserts these.
    Choice("trainer.v1.sampler.max_off_policy_strategy", "what the replay buffer does with a too-stale sample",
           ("drop", "wait")),
    Choice(f"{ACTOR}.kl_loss_type", "the KL-loss estimator", _KL_ESTIMATORS),
    Choice("algorithm.kl_penalty", "the in-reward KL estimator", _KL_ESTIMATORS),
    # verl.trainer.ppo.core_algos.get_kl_controller: an if-chain, else NotImplementedError.
    Choice("algorithm.kl_ctrl.type", "the in-reward KL controller", ("adaptive", "fixed")),
)

_BY_KEY = {spec.key: spec for spec in RANGES}
_CHOICE_BY_KEY = {spec.key: spec for spec in CHOICES}


def in_range(key: str, value) -> bool:
    """Whether ``value`` is a number that holds ``key``'s row of :data:`RANGES` (a key without a row: any number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return key not in _BY_KEY or _BY_KEY[key].holds(float(value))


def check_range(ctx: Context, key: str, value) -> None:
    """``key``'s row of :data:`RANGES` (if it has one): a value out of its range, or not a number → error naming
    the key, the rule and the meaning. A null value is not checked (verl's default or the key's "unset")."""
    spec = _BY_KEY.get(key)
    if spec is None or value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        ctx.error("ranges", f"{key}={value!r} is not a number: it must be {spec.rule()} ({spec.meaning}).")
    elif not spec.holds(float(value)):
        ctx.error(
            "ranges",
            f"{key}={value!r} is out of range: it must be {spec.rule()} ({spec.meaning}). Set {key} to a value in "
            "that range (the presets' values are in hydra_configs/).",
        )


def check_choice(ctx: Context, key: str, value) -> None:
    """``key``'s row of :data:`CHOICES` (if it has one): a string (or a list element, or a part) not among its values
    → error naming the key, the value and the values verl accepts. A null value is not checked."""
    spec = _CHOICE_BY_KEY.get(key)
    if spec is None or value is None:
        return
    try:
        allowed = spec.allowed(ctx)
    except ValueError as exc:  # what the values depend on is itself wrong (a custom module that does not import)
        ctx.error("ranges", f"{key}={value!r} cannot be checked: {exc}")
        return
    items = value if isinstance(value, (list, tuple)) else [value]
    if spec.sep is not None and isinstance(value, str):
        items = [part.strip() for part in value.split(spec.sep) if part.strip()] or [value]
    for item in items:
        if item not in allowed:
            ctx.error(
                "ranges",
                f"{key}={value!r}: {item!r} is not one of {', '.join(map(repr, allowed))} ({spec.meaning}); set "
                f"{key} to one of them.",
            )


def check_relations(ctx: Context, values: Mapping[str, Any], derived: Collection[str] = ()) -> None:
    """Each row of :data:`RELATIONS` whose values all passed their own checks (``values``: key → value) and whose
    ``when`` holds → error naming every key, the numbers and the fix. A row whose key is ``derived`` (an
    interpolation, e.g. the log-prob budget that defaults to the update's) is reported only when no other row was."""
    refused: list[tuple[bool, str]] = []
    for rel in RELATIONS:
        numbers = [values.get(k) for k in (rel.key, *rel.at_least)]
        if rel.when is not None and values.get(rel.when) is not True:
            continue
        if any(isinstance(n, bool) or not isinstance(n, (int, float)) for n in numbers):
            continue  # unset, or refused above
        need = sum(numbers[1:])
        if numbers[0] < need:
            terms = " + ".join(f"{k}={v!r}" for k, v in zip(rel.at_least, numbers[1:]))
            refused.append((rel.key in derived, (
                f"{rel.key}={numbers[0]!r} is less than {terms} = {need:g}: {rel.meaning}"
                f"{f' (with {rel.when}=true)' if rel.when else ''}. Set {rel.key} to at least {need:g}, or lower "
                f"{' / '.join(rel.at_least)}."
            )))
    written = [message for is_derived, message in refused if not is_derived]
    for message in written or [message for _, message in refused]:
        ctx.error("ranges", message)
