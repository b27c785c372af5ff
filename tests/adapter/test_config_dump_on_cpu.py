"""sspo_verl.adapter.config_dump: verl's start-up dump of the resolved config goes to the file SSPO_VERL_CONFIG_PATH
names, as YAML that loads back to the very object verl passed to ``pprint``, with one printed line naming it; without
the variable, for anything else, or when the file cannot be written, verl's ``pprint`` prints as before; no other
``pprint`` changes. (The real run, driver output included: tests/e2e/test_train_on_cpu.py.)"""

from __future__ import annotations

import inspect
import logging
import pprint as pprint_module

import pytest
import yaml
from omegaconf import OmegaConf

from sspo_verl.adapter.config_dump import CONFIG_DUMP, CONFIG_PATH_ENV
from sspo_verl.patching import MARK

pytestmark = pytest.mark.filterwarnings("ignore:.*engine is not available")


@pytest.fixture(scope="module")
def resolved():
    """What verl's TaskRunner dumps: the container of a composed, resolved sspo-train config (CPU, tiny model)."""
    from sspo_verl.train import compose

    config = compose(["hardware=cpu", "model=tiny", "rollout=hf", "algorithm=sspo"])
    config.transfer_queue.enable = True  # as TaskRunnerV1.run sets it before its dump
    return OmegaConf.to_container(config, resolve=True)


@pytest.fixture
def dump(monkeypatch):
    """``pprint`` as ``verl.trainer.main_ppo`` binds it, with the plugin's patch installed."""
    import verl.trainer.main_ppo as main_ppo

    assert CONFIG_DUMP.is_installed()  # by the verl.plugins entry point, as in every Ray worker
    monkeypatch.delenv(CONFIG_PATH_ENV, raising=False)
    return main_ppo.pprint


def test_verls_task_runner_dumps_through_the_patched_name():
    """TaskRunnerV1.run looks ``pprint`` up in its module's globals when it runs: the name the patch replaces."""
    import verl.trainer.main_ppo as main_ppo

    run = inspect.unwrap(main_ppo.TaskRunnerV1.__ray_metadata__.modified_class.run)  # under Ray's tracing wrapper
    assert "pprint" in run.__code__.co_names and run.__globals__ is vars(main_ppo)
    assert MARK in vars(run.__globals__["pprint"])


def test_the_config_goes_to_the_file_and_one_line_names_it(dump, resolved, tmp_path, monkeypatch, capsys):
    path = tmp_path / "run" / "verl_config.yaml"
    monkeypatch.setenv(CONFIG_PATH_ENV, str(path))
    dump(resolved)
    out = capsys.readouterr().out
    assert out.splitlines() == [f"sspo-verl: verl's resolved config (its start-up dump) is in {path}"]
    written = yaml.safe_load(path.read_text())
    assert written == resolved  # every key and value verl would have printed
    assert written["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] == "sspo"
    assert list(written) == list(resolved)  # in verl's order
    assert not list(tmp_path.glob("run/*.partial"))


def test_without_the_variable_verl_prints_as_before(dump, resolved, capsys):
    pprint_module.pprint(resolved)
    before = capsys.readouterr().out
    dump(resolved)
    assert capsys.readouterr().out == before and before.count("\n") > 500


@pytest.mark.parametrize("call", [("not a config",), ({"a": 1}, None, 4)], ids=["not-a-dict", "pprint-options"])
def test_anything_but_the_dump_is_printed_as_before(dump, call, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CONFIG_PATH_ENV, str(tmp_path / "verl_config.yaml"))
    pprint_module.pprint(*call)
    before = capsys.readouterr().out
    dump(*call)
    assert capsys.readouterr().out == before
    assert not (tmp_path / "verl_config.yaml").exists()


def test_an_unwritable_path_prints_the_dump_and_says_why(dump, resolved, tmp_path, monkeypatch, capsys, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv(CONFIG_PATH_ENV, str(blocker / "verl_config.yaml"))  # a directory inside a file
    with caplog.at_level(logging.WARNING, logger="sspo_verl.adapter.config_dump"):
        dump(resolved)
    assert capsys.readouterr().out == pprint_module.pformat(resolved) + "\n"
    (warning,) = [r.getMessage() for r in caplog.records]
    assert CONFIG_PATH_ENV in warning and str(blocker) in warning and "printing it instead" in warning


def test_no_other_pprint_changes():
    import verl.trainer.ppo.v1.trainer_base as trainer_base  # its validation metrics

    assert MARK not in vars(pprint_module.pprint)
    assert trainer_base.pprint is pprint_module.pprint
