"""The config's schema, checked before Ray starts: every value of the resolved config against its type (numbers:
finite), then against its range and the relations of :mod:`sspo_verl.preflight.ranges`.

Where a key's type comes from (the rule; no key is listed by hand):

* Inside a node whose ``_target_`` names a dataclass (verl's ``ActorConfig``, ``RolloutConfig``,
  ``OptimizerConfig``, ``FSDPEngineConfig``, ``CheckpointConfig``, ..., our ``SSPOPolicyLossConfig``), and in a
  node a dataclass field types as a dataclass: that dataclass's type hint for the key
  (``typing.get_type_hints``: ``Optional``, ``Union``, ``Literal``, ``Enum``, ``list`` / ``tuple`` / ``dict`` of
  a type, nested dataclasses).
* Everywhere else (verl's plain-YAML ``trainer.*``, ``data.*``, ``ray_kwargs.*``, our top-level keys and
  ``preflight.*``, a key a dataclass does not declare, the inside of a field typed ``dict`` or ``Any``): the types
  of the key's defaults in verl's ``_generated_ppo_trainer.yaml`` (verl's ``ppo_trainer`` composed) and in every
  file of ``hydra_configs/``, interpolations left out; a list default also admits one string (verl reads such keys
  as ``str | list``: ``trainer.logger``, ``data.train_files``). A key whose defaults are all null or
  interpolations has no type to check.

Null is accepted where the hint is ``Optional``, the dataclass field's default is None, a default above is null,
or it comes from an interpolation (verl's ``${oc.select:...,null}`` defaults). Types as verl reads them:
interpolations are resolved first, ListConfig / DictConfig are lists / dicts, an int is a float but a bool is
neither, a number where text is expected is text (Hydra parses ``trainer.experiment_name=2024`` as an int), a
string is never a number or a bool. No float anywhere may be NaN or ±inf (no default is). A hint that says nothing
checkable (``Any``, a class that is not a dataclass) is not checked. Choices a dataclass checks in its
``__post_init__`` instead of typing them as a ``Literal`` (``granularity``, ...) cannot be read from the types; the
actor's run before Ray in verl's own validate_config (validate.py).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import math
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional, Union

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from sspo_verl.preflight.context import Context
from sspo_verl.preflight.ranges import check_choice, check_range, check_relations

__all__ = ["Leaf", "Type", "check_schema", "leaves", "plain_defaults", "problem"]

CHECK = "schema"
_NONE = type(None)
_UNSET = object()


@dataclasses.dataclass(frozen=True)
class Type:
    """What a key must hold: ``hint`` (a type hint; ``Any``: unchecked), ``nullable``, and ``source`` (where the
    schema says so, for the message: ``ActorConfig.ppo_epochs: int`` or ``default -1 in verl's ppo_trainer``)."""

    hint: Any
    nullable: bool
    source: str


@dataclasses.dataclass(frozen=True)
class Leaf:
    """A value of the config with its schema (``type_`` None: no schema); ``error``: why it could not be resolved;
    ``derived``: it comes from an interpolation (its own or a parent's)."""

    key: str
    value: Any
    type_: Optional[Type]
    error: Optional[str] = None
    derived: bool = False


# ---------------------------------------------------------------------------------------------------------------
# The schema of plain-YAML keys: the types of their defaults.


@dataclasses.dataclass
class _Default:
    kinds: set = dataclasses.field(default_factory=set)  # type(value) of each non-null default
    nullable: bool = False
    first: Any = _UNSET  # the first non-null default and where it is
    where: str = ""


def _hydra_config_files() -> list[tuple[str, str]]:
    from sspo_verl.config_files import config_dir

    root = config_dir()
    found = []
    for folder, _dirs, names in sorted(os.walk(root)):
        for name in sorted(names):
            if name.endswith(".yaml"):
                path = os.path.join(folder, name)
                found.append((path, "hydra_configs/" + os.path.relpath(path, root)))
    return found


def _yaml_loader() -> type:
    """PyYAML's C loader reading scalars as OmegaConf does (``1e-6`` a float, no timestamps): 10x OmegaConf.load."""
    from omegaconf._utils import get_yaml_loader

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return type("DefaultsLoader", (base,), {"yaml_implicit_resolvers": get_yaml_loader().yaml_implicit_resolvers})


@functools.lru_cache(maxsize=None)
def plain_defaults() -> Mapping[str, _Default]:
    """Dotted key → the types of its defaults in verl's generated ppo_trainer config and in hydra_configs/."""
    import verl.trainer.config as verl_config

    generated = os.path.join(os.path.dirname(verl_config.__file__), "_generated_ppo_trainer.yaml")
    loader = _yaml_loader()
    table: dict[str, _Default] = {}
    for path, where in [(generated, "verl's ppo_trainer"), *_hydra_config_files()]:
        with open(path, encoding="utf-8") as f:
            tree = yaml.load(f, Loader=loader)
        if isinstance(tree, dict):
            _collect({k: v for k, v in tree.items() if k not in ("hydra", "defaults")}, "", where, table)
    return table


def _collect(tree: dict, prefix: str, where: str, table: dict[str, _Default]) -> None:
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if (isinstance(value, str) and "${" in value) or value == "???":
            continue  # an interpolation (its type is its target's) or a value Hydra requires
        default = table.setdefault(key, _Default())
        if isinstance(value, dict):
            default.kinds.add(dict)
            _collect(value, f"{key}.", where, table)
        elif value is None:
            default.nullable = True
        else:
            default.kinds.add(type(value))
            if default.first is _UNSET:
                default.first, default.where = value, where


def _plain_type(key: str) -> Optional[Type]:
    default = plain_defaults().get(_generic(key))
    if default is None or not default.kinds:
        return None
    kinds = default.kinds
    if float in kinds:
        kinds = kinds - {int}
    if list in kinds:
        kinds = kinds | {str}  # verl reads a plain list key as `str | list` (trainer.logger, data.train_files)
    hint = Union[tuple(sorted(kinds, key=lambda k: k.__name__))] if len(kinds) > 1 else next(iter(kinds))
    shown = "{...}" if isinstance(default.first, Mapping) else repr(default.first)
    return Type(hint, default.nullable, f"default {shown} in {default.where}")


def _generic(key: str) -> str:
    """A list element's key without its index: ``trainer.logger[0]`` → ``trainer.logger``."""
    return key.split("[", 1)[0]


# ---------------------------------------------------------------------------------------------------------------
# The walk.


def _target_class(target: Any) -> Optional[type]:
    if not isinstance(target, str):
        return None
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None  # verl's own instantiate names a bad _target_ (check_verl); no schema here
    return cls if dataclasses.is_dataclass(cls) else None


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> Mapping[str, tuple[Any, Any]]:
    """Field name → (type hint, default) of a dataclass; a hint that cannot be resolved is ``Any``."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a forward reference verl does not import: no hints (nothing checked) rather than a crash
        hints = {}
    out = {}
    for field in dataclasses.fields(cls):
        default = field.default if field.default is not dataclasses.MISSING else _UNSET
        out[field.name] = (hints.get(field.name, Any), default)
    return out


def _hint_text(hint: Any) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("NoneType", "None")


def _nullable(hint: Any) -> bool:
    return hint is Any or hint is None or hint is _NONE or (_is_union(hint) and _NONE in typing.get_args(hint))


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


@dataclasses.dataclass(frozen=True)
class _Unresolvable:
    raw: Any  # the interpolation's text
    error: str


def _resolve_each(node: Any) -> Any:
    """``node`` as plain containers, each value resolved on its own: one that cannot be becomes
    :class:`_Unresolvable` (the slow path, only taken when resolving the whole config fails)."""
    if not isinstance(node, (DictConfig, ListConfig)):
        return node
    out: Any = {} if isinstance(node, DictConfig) else []
    for name in node.keys() if isinstance(node, DictConfig) else range(len(node)):
        try:
            value = _resolve_each(node[name])
        except Exception as exc:  # e.g. ${sspo.div:...} of a batch size that is not a number
            text = re.sub(r"^\w+ raised while resolving interpolation: ", "", str(exc).splitlines()[0])
            value = _Unresolvable(node._get_node(name)._value(), text.rstrip(". "))
        if isinstance(out, dict):
            out[name] = value
        else:
            out.append(value)
    return out


def leaves(config: DictConfig) -> Iterator[Leaf]:
    """Every value of ``config`` (mappings, lists and what is inside them), resolved, with the type its schema
    gives it. ``_target_`` keys are not values; values Hydra marks missing (``???``) are left out."""
    raw = OmegaConf.to_container(config, resolve=False)
    try:
        resolved = OmegaConf.to_container(config, resolve=True)
    except Exception:
        resolved = _resolve_each(config)
    yield from _walk_mapping(resolved, raw, "", None, False)


def _is_interpolation(raw: Any) -> bool:
    return isinstance(raw, str) and "${" in raw


def _walk_mapping(values: dict, raw: Any, prefix: str, cls: Optional[type], derived: bool) -> Iterator[Leaf]:
    cls = _target_class(values.get("_target_")) or cls
    fields = _fields(cls) if cls is not None else {}
    raw = raw if isinstance(raw, dict) else {}
    for name, value in values.items():
        if name == "_target_" or raw.get(name) == "???":
            continue
        key = f"{prefix}{name}"
        if isinstance(value, _Unresolvable):
            yield Leaf(key, value.raw, None, value.error, derived=True)
            continue
        if name in fields:
            hint, default = fields[name]
            nullable = _nullable(hint) or default is None or _plain_nullable(key)
            type_ = Type(hint, nullable, f"{cls.__name__}.{name}: {_hint_text(hint)}")
        else:
            type_ = _plain_type(key)
        here = derived or _is_interpolation(raw.get(name))
        if value is None and type_ is not None and here:
            type_ = dataclasses.replace(type_, nullable=True)  # a default's own null (${oc.select:...,null})
        yield from _walk_value(value, raw.get(name), key, type_, here)


def _plain_nullable(key: str) -> bool:
    default = plain_defaults().get(_generic(key))
    return default is not None and default.nullable


def _walk_value(value: Any, raw: Any, key: str, type_: Optional[Type], derived: bool) -> Iterator[Leaf]:
    """The leaf at ``key`` and, for a mapping or list, what is inside it (with the types the hint gives it)."""
    hint = type_.hint if type_ is not None else Any
    yield Leaf(key, value, type_, derived=derived)
    if isinstance(value, dict):
        cls, inner = _mapping_schema(hint)
        if cls is not None or inner is None:
            yield from _walk_mapping(value, raw, f"{key}.", cls, derived)
            return
        raw = raw if isinstance(raw, dict) else {}
        for name, item in value.items():
            sub, here = f"{key}.{name}", derived or _is_interpolation(raw.get(name))
            if isinstance(item, _Unresolvable):
                yield Leaf(sub, item.raw, None, item.error, derived=True)
            else:
                yield from _walk_value(item, raw.get(name), sub, Type(inner, _nullable(inner) or here, type_.source),
                                      here)
    elif isinstance(value, list):
        raw = raw if isinstance(raw, list) and len(raw) == len(value) else [None] * len(value)
        for i, item in enumerate(value):
            sub, here = f"{key}[{i}]", derived or _is_interpolation(raw[i])
            if isinstance(item, _Unresolvable):
                yield Leaf(sub, item.raw, None, item.error, derived=True)
                continue
            inner = _element_hint(hint, i)  # None: no element type (a plain list, list, Any)
            yield from _walk_value(item, raw[i], sub,
                                   None if inner is None else Type(inner, _nullable(inner) or here, type_.source), here)


def _arms(hint) -> tuple:
    return tuple(a for a in typing.get_args(hint) if a is not _NONE) if _is_union(hint) else (hint,)


def _mapping_schema(hint) -> tuple[Optional[type], Any]:
    """For a mapping under ``hint``: (the dataclass its keys are fields of, None) or (None, the type of its values;
    None: walk by plain defaults)."""
    for arm in _arms(hint):
        if isinstance(arm, type) and dataclasses.is_dataclass(arm):
            return arm, None
        origin = typing.get_origin(arm)
        if origin in (dict, Mapping):
            args = typing.get_args(arm)
            if len(args) == 2 and args[1] is not Any:
                return None, args[1]
    return None, None


def _element_hint(hint, index: int):
    for arm in _arms(hint):
        origin, args = typing.get_origin(arm), typing.get_args(arm)
        if origin in (list, Sequence, set, frozenset) and args:
            return args[0]
        if origin is tuple and args:
            if len(args) == 2 and args[1] is Ellipsis:
                return args[0]
            return args[index] if index < len(args) else None
    return None


# ---------------------------------------------------------------------------------------------------------------
# One value against one hint.

_KIND = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
         tuple: "a list", dict: "a mapping"}
_FIX = {bool: "set true or false", int: "set a whole number", float: "set a finite number",
        str: "set a string (quote it)", list: "set a list, e.g. key=[a,b]", tuple: "set a list, e.g. key=[a,b]",
        dict: "set a mapping, e.g. key={a: 1}"}


def _accepts(value, hint) -> bool:
    """Whether ``value`` (not None) is of the type ``hint`` says, shallowly (a container's items are leaves)."""
    if hint is Any or hint is object or isinstance(hint, typing.TypeVar):
        return True
    if _is_union(hint):
        return any(_accepts(value, arm) for arm in typing.get_args(hint) if arm is not _NONE)
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in typing.get_args(hint))
    if origin is not None:
        hint = origin
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if hint in (list, tuple, set, frozenset, Sequence):
        return isinstance(value, (ListConfig, list, tuple))
    if hint in (dict, Mapping):
        return isinstance(value, (DictConfig, dict))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return isinstance(value, hint) or value in {m.value for m in hint} or value in hint.__members__
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(value, (DictConfig, dict))
    return True  # a class the config cannot hold (a tokenizer object, ...): nothing to check


def _admits_float(hint) -> bool:
    return any(a is float or a is Any for a in _arms(hint))


def _expected(hint) -> tuple[str, str]:
    """(what is expected, how to fix it) in words."""
    parts = []
    for arm in _arms(hint):
        origin = typing.get_origin(arm)
        if origin is typing.Literal:
            choices = list(typing.get_args(arm))
            parts.append((f"one of {choices}", f"set one of {choices}"))
        elif isinstance(arm, type) and issubclass(arm, enum.Enum):
            choices = [m.value for m in arm]
            parts.append((f"one of {choices}", f"set one of {choices}"))
        elif isinstance(arm, type) and dataclasses.is_dataclass(arm):
            parts.append((f"a mapping of {arm.__name__}'s fields", f"set the fields of {arm.__name__}"))
        else:
            base = origin or arm
            base = list if base in (Sequence, set, frozenset) else base
            base = dict if base is Mapping else base
            parts.append((_KIND.get(base, _hint_text(arm)), _FIX.get(base, f"set {_hint_text(arm)}")))
    return " or ".join(p[0] for p in parts), " or ".join(dict.fromkeys(p[1] for p in parts))


def problem(leaf: Leaf) -> Optional[str]:
    """Why ``leaf`` breaks its schema (a message naming the key, the value and the fix), or None."""
    key, value, type_ = leaf.key, leaf.value, leaf.type_
    if leaf.error is not None:
        return (f"{key}={value!r} cannot be resolved: {leaf.error}. Fix the value(s) it refers to, or set {key} "
                "directly.")
    shown = f"{key}={value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        where = f" ({type_.source})" if type_ is not None else ""
        return f"{shown}: not a finite number{where}; set a finite number."
    if type_ is None:
        return None
    if value is None:
        if type_.nullable:
            return None
        what, fix = _expected(type_.hint)
        return f"{shown}: expected {what}, not null ({type_.source}); {fix}."
    if _accepts(value, type_.hint):
        return None
    what, fix = _expected(type_.hint)
    return f"{shown}: expected {what} ({type_.source}); {fix}."


def check_schema(ctx: Context) -> None:
    """Every value of the config against its schema (type, finiteness), then its range; then the relations between
    values (ranges.RELATIONS) → an error per value naming the key, the value, the schema and the fix.

    A value that comes from an interpolation (``critic.ppo_epochs: ${actor_rollout_ref.actor.ppo_epochs}``, an
    ``${sspo.div:...}`` that cannot resolve) is reported only when no value written as such was refused: then its
    cause is, and that refusal names it."""
    good: dict[str, Any] = {}
    derived: dict[str, str] = {}  # a derived value's problem (one per unresolvable cause) → its message
    derived_keys: set[str] = set()
    written_refused = False
    for leaf in leaves(ctx.config):
        if leaf.derived:
            derived_keys.add(leaf.key)
        message = problem(leaf)
        if message is not None:
            if leaf.derived:
                derived.setdefault(leaf.error or message, message)
            else:
                ctx.error(CHECK, message)
                written_refused = True
            continue
        if not leaf.derived:  # (a derived choice is checked where it is written: ref.strategy, the actor's)
            check_choice(ctx, leaf.key, leaf.value)
        if not isinstance(leaf.value, (dict, list)):
            good[leaf.key] = leaf.value
            check_range(ctx, leaf.key, leaf.value)
    if not written_refused:
        for message in derived.values():
            ctx.error(CHECK, message)
    check_relations(ctx, good, derived_keys)
