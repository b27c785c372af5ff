"""sspo_verl.preflight.schema, tested from the schema itself: every typed value of the tiny CPU config (enumerated by
the walk, so a field verl or we add later is covered) refuses a value of the wrong type naming its key, every float
refuses NaN and ±inf; every preset's config passes (no false refusal)."""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import re
from typing import Literal, Optional, Union

import pytest
from omegaconf import OmegaConf

from sspo_verl.preflight.context import Context, PreflightReport
from sspo_verl.preflight.schema import Leaf, Type, check_schema, leaves, problem
from tests.preflight.configs import GROUPS, config

TINY = ("hardware=cpu", "model=tiny")
WRONG = ("two", True, ["two"], {"two": 2})  # a string, a bool, a list, a mapping: the first the type refuses


def errors(cfg) -> list[str]:
    ctx = Context(config=cfg, report=PreflightReport(), env={}, gpu_counter=None, cluster_probe=None)
    check_schema(ctx)
    return [f.message for f in ctx.report.errors]


def wrong_value(leaf: Leaf):
    """A value of another type than ``leaf``'s schema allows (None: the schema allows anything, e.g. ``Any``)."""
    return next((v for v in WRONG if problem(dataclasses.replace(leaf, value=v)) is not None), None)


def is_float(leaf: Leaf) -> bool:
    """A number that may have a fraction (a text field accepts 0.5 too, but also "two")."""
    return problem(dataclasses.replace(leaf, value=0.5)) is None and problem(dataclasses.replace(leaf, value="two"))


@functools.lru_cache(maxsize=None)
def tiny_leaves() -> dict[str, Leaf]:
    """Every value of the tiny CPU config that is not a mapping, by key (lists and their elements included)."""
    return {leaf.key: leaf for leaf in leaves(config(TINY)) if not isinstance(leaf.value, dict)}


def typed_keys() -> list[str]:
    return [key for key, leaf in tiny_leaves().items() if leaf.type_ is not None and wrong_value(leaf) is not None]


def float_keys() -> list[str]:
    return [key for key, leaf in tiny_leaves().items() if leaf.type_ is not None and is_float(leaf)]


def _put(tree, key: str, value) -> None:
    """Set ``key`` (``a.b``, ``a.b[1]``) in plain containers."""
    *path, last = re.findall(r"[^.\[\]]+", key)
    for part in path:
        tree = tree[int(part)] if isinstance(tree, list) else tree[part]
    tree[int(last) if isinstance(tree, list) else last] = value


@functools.lru_cache(maxsize=None)
def errors_with(kind: str) -> tuple[str, ...]:
    """The schema's errors on the tiny config with every typed value (``wrong``; lists in a second config, as their
    elements are values too) or every float value (``nan``, ``inf``, ``-inf``) replaced at once: one walk each."""
    found = []
    if kind == "wrong":
        scalars = {k: leaf for k in typed_keys() if not isinstance((leaf := tiny_leaves()[k]).value, list)}
        lists = {k: leaf for k in typed_keys() if isinstance((leaf := tiny_leaves()[k]).value, list)}
        batches = [{k: wrong_value(leaf) for k, leaf in scalars.items()},
                   {k: wrong_value(leaf) for k, leaf in lists.items()}]
    else:
        batches = [{k: float(kind) for k in float_keys()}]
    for batch in batches:
        tree = OmegaConf.to_container(config(TINY), resolve=True)
        for key, value in batch.items():
            _put(tree, key, value)
        found += errors(OmegaConf.create(tree))
    return tuple(found)


def test_the_tiny_config_passes_and_most_of_it_is_typed():
    assert errors(config(TINY)) == []
    # verl's dataclasses and the defaults type most values; the rest are Any, dict or null-only defaults
    assert len(typed_keys()) > 0.8 * len(tiny_leaves()), (len(typed_keys()), len(tiny_leaves()))
    assert len(float_keys()) > 40


@pytest.mark.parametrize("key", typed_keys())
def test_every_typed_value_refuses_a_wrong_type_naming_the_key(key):
    leaf = tiny_leaves()[key]
    shown = f"{key}={wrong_value(leaf)!r}: expected "
    assert any(e.startswith(shown) for e in errors_with("wrong")), (shown, leaf.type_)


@pytest.mark.parametrize("key", float_keys())
def test_every_float_refuses_nan_and_inf_naming_the_key(key):
    for bad in ("nan", "inf", "-inf"):
        assert any(e.startswith(f"{key}={float(bad)!r}: not a finite number") for e in errors_with(bad)), bad


def test_the_issue_s_examples_name_key_value_schema_and_fix():
    msgs = errors(config([*TINY, "actor_rollout_ref.actor.ppo_epochs=two", "data.shuffle=maybe",
                          "trainer.save_freq=1.5", "actor_rollout_ref.actor.optim.lr=nan",
                          "algorithm.kl_ctrl.kl_coef=inf", "actor_rollout_ref.actor.optim.betas=[0.9,nan]"]))
    assert sorted(msgs) == sorted([
        "actor_rollout_ref.actor.ppo_epochs='two': expected an integer (FSDPActorConfig.ppo_epochs: int); "
        "set a whole number.",
        "data.shuffle='maybe': expected true or false (default True in verl's ppo_trainer); set true or false.",
        "trainer.save_freq=1.5: expected an integer (default -1 in verl's ppo_trainer); set a whole number.",
        "actor_rollout_ref.actor.optim.lr=nan: not a finite number (FSDPOptimizerConfig.lr: float); "
        "set a finite number.",
        "algorithm.kl_ctrl.kl_coef=inf: not a finite number (KLControlConfig.kl_coef: float); set a finite number.",
        "actor_rollout_ref.actor.optim.betas[1]=nan: not a finite number (FSDPOptimizerConfig.betas: "
        "tuple[float, float]); set a finite number.",
    ])


@pytest.mark.parametrize("override", [
    "actor_rollout_ref.actor.optim.lr=1",  # an int where a float is expected
    "trainer.experiment_name=2024",  # Hydra parses it as an int; verl uses it as text
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=null",  # Optional[int]
    "trainer.total_training_steps=5",  # verl's default is null: no type to check
    "trainer.logger=[console]",
    "trainer.logger=console",  # verl's Tracking takes str | list[str]
])
def test_what_verl_accepts_passes(override):
    assert errors(config([*TINY, override])) == []


def test_a_value_derived_from_a_refused_one_is_not_reported_again():
    # critic.ppo_epochs is ${actor_rollout_ref.actor.ppo_epochs}: one refusal, at the value the user wrote
    assert len(errors(config([*TINY, "actor_rollout_ref.actor.ppo_epochs=two"]))) == 1


def test_an_interpolation_that_cannot_resolve_is_refused_with_its_resolver_s_reason():
    (msg,) = errors(config([*TINY, "data.train_batch_size=6"]))  # ppo_mini_batch_size = ${sspo.div:6,4}
    assert msg.startswith("actor_rollout_ref.actor.ppo_mini_batch_size=") and "not divisible into 4" in msg


class Color(enum.Enum):
    RED = "red"


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("mode", "a", True), ("mode", "c", False), ("color", "red", True), ("color", "RED", True),
    ("color", "blue", False), ("either", 3, True), ("either", [1, 2], True), ("either", "x", False),
    ("maybe", None, True), ("maybe", 2, True), ("maybe", True, False), ("maybe", math.inf, False),
])
def test_literal_enum_union_and_optional_hints(field, value, ok):
    hint = {"mode": Literal["a", "b"], "color": Color, "either": Union[int, list[int]], "maybe": Optional[float]}[field]
    leaf = Leaf(f"x.{field}", value, Type(hint, field == "maybe", f"Example.{field}"))
    message = problem(leaf)
    assert (message is None) == ok, message
    if not ok:
        assert message.startswith(f"x.{field}={value!r}: ") and "; set " in message


# Every option of every group is composed at least once (rows cycle through each group's options), with verl's
# defaults and ours, as sspo-train hands them to the pre-flight (hardware=cpu: after the CPU launcher's fills): none
# of their values is refused, but rollout=hf where the rows put it on GPUs (the CPU backend's rollout, not verl's).
_OPTIONS = {
    "algorithm": ["grpo", "gspo", "gspo_wide", "sspo"],
    "model": ["qwen2.5-math-1.5b", "qwen2.5-math-7b", "tiny"],
    "hardware": ["gpu_1x8", "gpu_nx8", "cpu"],
    "mode": ["sync", "colocate_async", "separate_async"],
    "rollout": ["vllm", "hf"],
    "experiment": ["null", "paper_qwen2.5_math_1.5b", "paper_qwen2.5_math_7b"],
}
ROWS = [tuple(f"{g}={opts[i % len(opts)]}" for g, opts in _OPTIONS.items()) for i in range(4)]


def test_the_rows_cover_every_option_of_every_group():
    import os

    from sspo_verl.config_files import config_dir

    assert set(_OPTIONS) == set(GROUPS)
    for group, options in _OPTIONS.items():
        files = {name[:-5] for name in os.listdir(os.path.join(config_dir(), group)) if name.endswith(".yaml")}
        assert files == set(options) - {"null"}, group


@pytest.mark.parametrize("row", ROWS, ids=["+".join(o.split("=")[1] for o in row) for row in ROWS])
def test_every_preset_passes(row):
    from sspo_verl.cpu.launch import apply_to_config

    cfg = config([o for o in row if o != "experiment=null"])
    if "hardware=cpu" in row:
        apply_to_config(cfg)  # e.g. the gloo checkpoint engine in place of separate_async's nccl
    found = errors(cfg)
    if "rollout=hf" in row and "hardware=cpu" not in row:
        assert [m.split(":")[0] for m in found] == ["actor_rollout_ref.rollout.name='hf'"], found
    else:
        assert found == []
