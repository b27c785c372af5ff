"""The patch discipline, for every :class:`sspo_verl.patching.Patch` in the package (found by walking it, so a new
patch is covered the moment it exists): idempotent, marked, logged once, restorable, importers rebound, and a
:class:`PatchTargetError` naming the target and the fix when verl or torch moves or reshapes it."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
import sys
import warnings

import pytest

import sspo_verl
from sspo_verl.patching import MARK, Patch, PatchTargetError
from sspo_verl.verl_version import SUPPORTED_VERL_VERSION

pytestmark = pytest.mark.filterwarnings("ignore:.*engine is not available")


# The vLLM-on-CPU modules import vLLM (the cpu-vllm extra, which `make setup` installs); without it they are skipped
# here as their own tests skip, and any other import error fails the collection.
NEEDS_VLLM = "sspo_verl.cpu.vllm_"
HAVE_VLLM = importlib.util.find_spec("vllm") is not None


def _all_patches() -> list[tuple[str, Patch]]:
    found = {}
    for info in pkgutil.walk_packages(sspo_verl.__path__, prefix="sspo_verl."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # running it is the program
        if info.name.startswith(NEEDS_VLLM) and not HAVE_VLLM:
            continue
        with warnings.catch_warnings():  # verl warns once per optional engine it cannot import
            warnings.filterwarnings("ignore", message=r".* engine is not available", category=UserWarning)
            module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if isinstance(value, Patch) and value.module and id(value) not in found:
                found[id(value)] = (f"{info.name}.{attr}", value)
    return sorted(found.values(), key=lambda item: item[0])


PATCHES = _all_patches()


def test_the_walk_finds_every_known_patch():
    names = {name for name, _ in PATCHES}
    assert {"sspo_verl.adapter.microbatch.PPO_LOSS", "sspo_verl.adapter.diagnostics.POLICY_LOSS_LOOKUP",
            "sspo_verl.cpu.process_group.INIT_PROCESS_GROUP", "sspo_verl.cpu.fsdp.UNPINNED_OFFLOAD",
            "sspo_verl.adapter.advantage.MULTI_TRAJECTORY", "sspo_verl.adapter.entropy_reference.UPDATE_ACTOR",
            "sspo_verl.adapter.config_dump.CONFIG_DUMP"} <= names
    targets = [patch.target for _, patch in PATCHES]
    assert len(targets) == len(set(targets)), "two patches replace the same name"


@pytest.fixture(params=PATCHES, ids=[name for name, _ in PATCHES])
def patch(request):
    """A patch, uninstalled for the test with its importers loaded, and put back as it was afterwards."""
    _, patch = request.param
    was_installed = patch.is_installed()
    patch.uninstall()
    for name in patch.importers:
        importlib.import_module(name)
    yield patch
    patch.uninstall()
    if was_installed:
        patch.install()
    assert patch.is_installed() == was_installed


def _bound(patch: Patch) -> list:
    """What the target module and every importer bind now."""
    return [getattr(patch.holder(), patch.name)] + [getattr(sys.modules[m], patch.name) for m in patch.importers]


def test_install_marks_rebinds_importers_and_is_idempotent(patch, caplog):
    original = patch.original()
    assert MARK not in vars(original) and all(obj is original for obj in _bound(patch))
    with caplog.at_level(logging.INFO, logger="sspo_verl.patching"):
        assert patch.install() is True
        replacement = getattr(patch.holder(), patch.name)
        assert patch.install() is False  # second install changes nothing
    assert vars(replacement)[MARK] is original and patch.original() is original
    assert all(obj is replacement for obj in _bound(patch))  # importers loaded before install were rebound
    assert patch.is_installed()
    lines = [r.getMessage() for r in caplog.records if r.name == "sspo_verl.patching"]
    assert lines == [f"sspo-verl: patched {patch.target} ({patch.why})"]


def test_uninstall_restores_the_original_everywhere(patch):
    original = patch.original()
    patch.install()
    patch.uninstall()
    assert not patch.is_installed() and all(obj is original for obj in _bound(patch))
    patch.uninstall()  # nothing to do
    assert all(obj is original for obj in _bound(patch))


def test_a_subclass_or_copy_of_the_replacement_is_not_the_patch(patch):
    patch.install()
    replacement = getattr(patch.holder(), patch.name)
    if isinstance(replacement, type):
        assert MARK not in vars(type("Sub", (replacement,), {}))
    for importer in patch.importers[:1]:  # an importer that holds something else: not installed
        setattr(sys.modules[importer], patch.name, patch.original())
        assert not patch.is_installed()


def _assert_names_the_target(err: pytest.ExceptionInfo, patch: Patch, problem: str):
    msg = str(err.value)
    assert patch.target in msg and patch.why in msg and problem in msg
    assert f"supports verl {SUPPORTED_VERL_VERSION}" in msg


def test_a_moved_target_fails_loudly(patch, monkeypatch):
    monkeypatch.delattr(patch.holder(), patch.name)
    with pytest.raises(PatchTargetError) as err:
        patch.install()
    _assert_names_the_target(err, patch, f"has no attribute {patch.name!r}")
    monkeypatch.undo()

    monkeypatch.setitem(sys.modules, patch.module, None)  # the module fails to import
    with pytest.raises(PatchTargetError) as err:
        patch.install()
    _assert_names_the_target(err, patch, "failed to import")
    monkeypatch.undo()

    for importer in patch.importers:
        monkeypatch.delattr(sys.modules[importer], patch.name)
        with pytest.raises(PatchTargetError) as err:
            patch.install()
        _assert_names_the_target(err, patch, f"{importer} no longer binds")
        monkeypatch.undo()
        patch.uninstall()


def test_a_changed_signature_fails_loudly(patch, monkeypatch):
    if patch.params is None:
        pytest.skip("no signature check for this target")

    def reshaped(*, not_a_parameter_of_the_original=None):
        return None

    monkeypatch.setattr(patch.holder(), patch.name, reshaped)
    with pytest.raises(PatchTargetError) as err:
        patch.install()
    _assert_names_the_target(err, patch, "parameters differ: found ('not_a_parameter_of_the_original',)")
    assert getattr(patch.holder(), patch.name) is reshaped  # nothing was replaced


def test_a_trailing_ellipsis_accepts_more_parameters_and_an_unreadable_signature_is_an_error():
    def target(a, b, c=None):
        return a

    module = type(sys)("sspo_verl_patching_probe")
    module.target = target
    sys.modules[module.__name__] = module
    try:
        loose = Patch(module=module.__name__, name="target", params=("a", ...), wrap=lambda f: lambda *a: f(*a),
                      why="probe")
        assert loose.original() is target
        strict = Patch(module=module.__name__, name="target", params=("a", "b"), wrap=lambda f: f, why="probe")
        with pytest.raises(PatchTargetError, match=r"found \('a', 'b', 'c'\), expected \('a', 'b'\)"):
            strict.install()
        module.target = 42  # not callable: no signature
        with pytest.raises(PatchTargetError, match="signature"):
            loose.install()
    finally:
        del sys.modules[module.__name__]


def test_a_method_patch_reaches_the_subclasses_that_inherit_it():
    """``owner``: verl's V1 trainers (sync, async) inherit ``PPOTrainer._update_actor`` and see the replacement."""
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    from sspo_verl.adapter.entropy_reference import UPDATE_ACTOR

    assert UPDATE_ACTOR.is_installed() and UPDATE_ACTOR.holder() is PPOTrainer
    assert MARK in vars(PPOTrainerSync._update_actor) and "_update_actor" not in vars(PPOTrainerSync)
    with pytest.raises(ValueError, match="no importers"):
        Patch(module="m", owner="C", name="f", params=None, wrap=lambda f: f, importers=("x",), why="probe")
