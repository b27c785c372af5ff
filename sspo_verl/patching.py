"""The one way sspo-verl replaces a name that verl or torch binds: :class:`Patch`.

A patch is the last resort (STYLE.md §3); every one in the package is a module-level :class:`Patch` constant,
listed with its reason in the README's architecture section. A :class:`Patch` names its target
(``module.name``), the parameters it expects the original to have, the function that builds the replacement
from the original, and the modules that did ``from module import name`` (they hold their own binding and are
rebound too). Installing is idempotent: the replacement carries ``__sspo_verl_original__`` in its own
``__dict__`` (functions and classes alike; a subclass of a marked class is not marked), so a second install
finds it and changes nothing. When verl moves or reshapes a target, :class:`PatchTargetError` names it, the
reason for the patch, what is wrong, and the supported verl version, at install time (in every process, from
the ``verl.plugins`` entry point), not at the first update inside a Ray worker.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable, Optional

from sspo_verl.verl_version import SUPPORTED_VERL_VERSION

__all__ = ["MARK", "Patch", "PatchTargetError"]

logger = logging.getLogger(__name__)

MARK = "__sspo_verl_original__"
_MISSING = object()


class PatchTargetError(RuntimeError):
    """A patch target is not what sspo-verl expects (module failed to import, name gone, parameters differ)."""


def _original_of(obj: Any) -> Any:
    """The object a replacement was built from, or ``obj`` itself when it is not a replacement."""
    return getattr(obj, "__dict__", {}).get(MARK, obj)


def _is_marked(obj: Any) -> bool:
    return MARK in getattr(obj, "__dict__", {})


def _installed_versions() -> str:
    found = []
    for dist in ("verl", "torch"):
        try:
            found.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            found.append(f"{dist} not installed")
    return ", ".join(found)


@dataclass(frozen=True, eq=False, kw_only=True)
class Patch:
    """One replaced name.

    Args:
        module: dotted name of the module that binds the target, e.g. ``"verl.workers.utils.losses"``.
        name: the attribute replaced in ``module`` (or in ``owner``).
        owner: a class defined in ``module`` whose attribute ``name`` is replaced (a method: subclasses that do
            not override it see the replacement); ``None``: ``name`` is a module attribute.
        params: parameter names the original must have, in order (``inspect.signature``); a trailing ``...``
            means "these first, any others may follow" (for targets whose tail changes between releases the
            wrap does not touch). ``None``: no signature check.
        wrap: builds the replacement from the original (called once per install).
        importers: modules that did ``from module import name``; when already imported they are rebound,
            when imported later they bind the replacement themselves.
        why: what the patch is for, in a few words (logged, and named in every error).
    """

    module: str
    name: str
    params: Optional[tuple]
    wrap: Callable[[Any], Any]
    importers: tuple[str, ...] = ()
    why: str
    owner: Optional[str] = None

    def __post_init__(self):
        if self.owner is not None and self.importers:
            raise ValueError(f"{self.target}: a class attribute has no importers (they bind the class)")

    @property
    def target(self) -> str:
        return ".".join(part for part in (self.module, self.owner, self.name) if part)

    def _holder_of(self, module) -> Any:
        """What binds ``name``: the module, or its class ``owner`` (``_MISSING`` when the module lacks it)."""
        if module is None or self.owner is None:
            return module
        return getattr(module, self.owner, _MISSING)

    def holder(self) -> Any:
        """The module or class whose attribute ``name`` is replaced (imports the module)."""
        holder = self._holder_of(self._import(self.module))
        if holder is _MISSING:
            raise self._error(f"{self.module} has no attribute {self.owner!r}")
        return holder

    def _error(self, problem: str) -> PatchTargetError:
        return PatchTargetError(
            f"sspo-verl cannot patch {self.target} ({self.why}): {problem}. sspo-verl supports verl "
            f"{SUPPORTED_VERL_VERSION} (pip install 'verl[verl-core]=={SUPPORTED_VERL_VERSION}'); installed: "
            f"{_installed_versions()}."
        )

    def _import(self, module_name: str):
        try:
            return importlib.import_module(module_name)
        except ImportError as e:
            raise self._error(f"module {module_name} failed to import ({e})") from e

    def _check_params(self, original: Any) -> None:
        if self.params is None:
            return
        try:
            found = tuple(inspect.signature(original).parameters)
        except (TypeError, ValueError) as e:
            raise self._error(f"its signature cannot be read ({e})") from e
        expected = self.params
        if expected and expected[-1] is Ellipsis:
            expected = expected[:-1]
            found = found[: len(expected)]
        if found != expected:
            raise self._error(f"parameters differ: found {found}, expected {expected}")

    def _resolve(self):
        """(module, current object, original) of the target, with the original's parameters checked."""
        holder = self.holder()
        current = vars(holder).get(self.name, _MISSING) if self.owner else getattr(holder, self.name, _MISSING)
        if current is _MISSING:  # (a class attribute must be the class's own, not inherited)
            raise self._error(f"{self.owner or self.module} has no attribute {self.name!r}")
        original = _original_of(current)
        self._check_params(original)
        return holder, current, original

    def original(self) -> Any:
        """The unwrapped object (whether or not the patch is installed)."""
        return self._resolve()[2]

    def install(self) -> bool:
        """Replace the target and rebind every loaded importer (idempotent). True when this call changed anything."""
        holder, current, original = self._resolve()
        changed = False
        if _is_marked(current):
            replacement = current
        else:
            replacement = self.wrap(original)
            setattr(replacement, MARK, original)  # into the replacement's own __dict__
            setattr(holder, self.name, replacement)
            changed = True
        for importer_name in self.importers:
            importer = sys.modules.get(importer_name)
            if importer is None:
                continue  # binds the replacement when it is imported
            bound = getattr(importer, self.name, _MISSING)
            if bound is _MISSING:
                raise self._error(f"{importer_name} no longer binds {self.name!r}")
            if bound is replacement:
                continue
            if bound is not original and not _is_marked(bound):
                raise self._error(f"{importer_name}.{self.name} is {bound!r}, not the object {self.target} binds")
            setattr(importer, self.name, replacement)
            changed = True
        if changed:
            logger.info("sspo-verl: patched %s (%s)", self.target, self.why)
        return changed

    def is_installed(self) -> bool:
        """True when the target and every loaded importer hold the replacement (imports nothing)."""
        holder = self._holder_of(sys.modules.get(self.module))
        current = getattr(holder, self.name, _MISSING) if holder is not None and holder is not _MISSING else _MISSING
        if not _is_marked(current):
            return False
        for importer_name in self.importers:
            importer = sys.modules.get(importer_name)
            if importer is not None and getattr(importer, self.name, _MISSING) is not current:
                return False
        return True

    def uninstall(self) -> None:
        """Restore the original on the target and on every loaded importer (tests)."""
        holder = self._holder_of(sys.modules.get(self.module))
        current = getattr(holder, self.name, _MISSING) if holder is not None and holder is not _MISSING else _MISSING
        if not _is_marked(current):
            return
        original = current.__dict__[MARK]
        setattr(holder, self.name, original)
        for importer_name in self.importers:
            importer = sys.modules.get(importer_name)
            if importer is not None and _is_marked(getattr(importer, self.name, None)):
                setattr(importer, self.name, original)
