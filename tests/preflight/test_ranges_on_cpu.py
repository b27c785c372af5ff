"""sspo_verl.preflight.ranges: each numeric key out of range is refused naming the key and the rule, each relation
that does not hold naming every key; the presets and their values pass. (A value of the wrong type is the schema's:
tests/preflight/test_schema_on_cpu.py.)"""

from __future__ import annotations

import pytest

from sspo_verl.preflight.ranges import CHOICES, RANGES, RELATIONS
from tests.preflight.configs import ALGORITHMS, check, config, messages

A = "actor_rollout_ref.actor"
R = "actor_rollout_ref.rollout"

# (key, a bad value): the silent cases first, then one bad value per RANGES entry.
BAD = [
    (f"{A}.clip_ratio_low", -0.2), (f"{A}.clip_ratio_high", -0.28), (f"{A}.clip_ratio_low", 1.5),
    (f"{A}.clip_ratio", 0), (f"{A}.clip_ratio_c", 0.5),
    ("data.train_batch_size", 0), ("data.val_batch_size", -1), (f"{A}.ppo_mini_batch_size", 0),
    (f"{A}.ppo_micro_batch_size_per_gpu", 0), (f"{A}.ppo_max_token_len_per_gpu", -5), (f"{A}.ppo_epochs", 0),
    (f"{R}.log_prob_micro_batch_size_per_gpu", 0), (f"{R}.n", 0), (f"{R}.val_kwargs.n", 0),
    ("trainer.total_epochs", 0), ("trainer.total_training_steps", -3), ("trainer.nnodes", 0),
    ("trainer.n_gpus_per_node", 0), ("trainer.save_freq", 0), ("trainer.test_freq", -2),
    ("data.max_prompt_length", 0), ("data.max_response_length", -1),
    (f"{A}.optim.lr", 0), (f"{A}.optim.lr", -1e-6), (f"{A}.optim.weight_decay", -0.1),
    (f"{A}.optim.lr_warmup_steps_ratio", 1.5), (f"{A}.grad_clip", 0), (f"{A}.entropy_coeff", -0.01),
    (f"{A}.kl_loss_coef", -1), ("algorithm.kl_ctrl.kl_coef", -1), (f"{R}.temperature", 0),
    (f"{R}.top_p", 0), (f"{R}.top_p", 1.2), (f"{R}.top_k", -5), (f"{R}.val_kwargs.temperature", -1),
    (f"{R}.val_kwargs.top_p", 0), (f"{R}.gpu_memory_utilization", 1.5), ("preflight.gpu_memory_gib", 0),
]


def test_every_range_has_a_bad_value_here():
    assert {spec.key for spec in RANGES} <= {key for key, _ in BAD}


@pytest.mark.parametrize(("key", "value"), BAD, ids=[f"{k.rsplit('.', 1)[-1]}={v}" for k, v in BAD])
def test_out_of_range_value_is_refused_naming_the_key(data_dir, key, value):
    _, report = check([f"{key}={value}", "preflight.check_cluster=false"])
    errors = messages(report, "ranges", "error")
    # (a derived key may be refused too: data.train_batch_size=0 makes the presets' ppo_mini_batch_size 0)
    assert any(f"{key}={value!r}" in e and "it must be" in e for e in errors), report.findings


def test_a_value_that_is_not_a_number_is_refused_once_and_the_later_checks_do_not_crash(data_dir):
    # ppo_mini_batch_size = ${sspo.div:${data.train_batch_size},...} cannot resolve either: its cause is named, not it
    _, report = check(["data.train_batch_size=many", "preflight.check_cluster=false"])
    (msg,) = messages(report, "schema", "error")
    assert "data.train_batch_size='many': expected an integer" in msg
    assert messages(report, "ranges") == []


@pytest.mark.parametrize("relation", RELATIONS, ids=[r.key.rsplit(".", 1)[-1] for r in RELATIONS])
def test_a_relation_that_does_not_hold_is_refused_naming_every_key(data_dir, relation):
    switch = [f"{relation.when}=true"] if relation.when else []
    ok = [*switch, f"{relation.key}=64", *(f"{k}=32" for k in relation.at_least)]
    assert messages(check([*ok, "preflight.check_cluster=false"])[1], "ranges") == []
    _, report = check([*switch, f"{relation.key}=63", *(f"{k}=32" for k in relation.at_least),
                       "preflight.check_cluster=false"])
    (msg,) = messages(report, "ranges", "error")
    assert msg.startswith(f"{relation.key}=63 is less than") and all(f"{k}=32" in msg for k in relation.at_least)
    if relation.when:  # the switch off: the relation does not apply
        _, report = check([f"{relation.when}=false", f"{relation.key}=63", "preflight.check_cluster=false"])
        assert messages(report, "ranges") == []


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_presets_are_in_range(data_dir, algorithm):
    for extra in ([], ["experiment=paper_qwen2.5_math_7b"], ["hardware=cpu", "model=tiny", "rollout=hf"]):
        _, report = check([f"algorithm={algorithm}", *extra, "preflight.check_files=false"])
        assert messages(report, "ranges") == [], (extra, messages(report, "ranges"))


def test_minus_one_means_off_where_verl_says_so(data_dir):
    _, report = check(["trainer.save_freq=-1", "trainer.test_freq=-1", f"{R}.top_k=-1"])
    assert messages(report, "ranges") == []


TINY_CPU = ["hardware=cpu", "model=tiny", "rollout=hf", "preflight.check_files=false",
            "preflight.check_cluster=false"]


def _allowed(choice, overrides=TINY_CPU):
    from sspo_verl.preflight.context import Context, PreflightReport

    ctx = Context(config(overrides), PreflightReport(), {}, lambda *_: 8, lambda *_: [])
    return choice.allowed(ctx)


def _written(choice, *values) -> str:
    """``key=value`` for the override parser: a list key as a list, a ``sep`` row's parts joined and quoted."""
    if choice.key == "trainer.logger":
        return f"{choice.key}=[{','.join(values)}]"
    if choice.sep:
        return f"{choice.key}='{choice.sep.join(values)}'"
    assert len(values) == 1
    return f"{choice.key}={values[0]}"


@pytest.mark.parametrize("choice", CHOICES, ids=[c.key for c in CHOICES])
def test_a_string_outside_verls_choices_is_refused_and_each_choice_passes(choice):
    allowed = _allowed(choice)
    assert allowed, choice  # read from verl: an empty list would make the check refuse everything
    typo = allowed[0] + "x"
    value = _written(choice, allowed[0], typo) if choice.key == "trainer.logger" or choice.sep else _written(choice, typo)
    (msg,) = messages(check([value, *TINY_CPU])[1], "ranges", "error")  # one: not again for ref.strategy (derived)
    assert msg.startswith(f"{choice.key}=") and repr(typo) in msg and repr(allowed[-1]) in msg, msg
    for good in allowed:
        if choice.key == "trainer.resume_mode" and good == "resume_path":
            continue  # needs trainer.resume_from_path (the files check's)
        assert messages(check([_written(choice, good), *TINY_CPU])[1], "ranges") == [], good


# How to register one more name where each row's values live in verl (a row reading verl needs an entry here).
def _register_rollout(monkeypatch, name):
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY

    monkeypatch.setitem(_ROLLOUT_REGISTRY, (name, name), "some.module.ServerAdapter")


def _register_engine(monkeypatch, name):
    from verl.workers.engine.base import EngineRegistry

    monkeypatch.setitem(EngineRegistry._engines["language_model"], name, {})


def _register_checkpoint_engine(monkeypatch, name):
    from verl.checkpoint_engine import CheckpointEngineRegistry

    monkeypatch.setitem(CheckpointEngineRegistry._registry, name, object)


def _register_tracker(monkeypatch, name):
    from verl.utils.tracking import Tracking

    monkeypatch.setattr(Tracking, "supported_backend", [*Tracking.supported_backend, name])


def _register_rs_option(monkeypatch, name):
    import verl.trainer.ppo.rollout_corr_helper as helper

    monkeypatch.setattr(helper, "SUPPORTED_ROLLOUT_RS_OPTIONS", {*helper.SUPPORTED_ROLLOUT_RS_OPTIONS, name})


REGISTER = {
    "trainer.logger": _register_tracker,
    f"{R}.name": _register_rollout,
    f"{R}.mode": _register_rollout,
    f"{A}.strategy": _register_engine,
    "actor_rollout_ref.ref.strategy": _register_engine,
    f"{R}.checkpoint_engine.backend": _register_checkpoint_engine,
    "algorithm.rollout_correction.rollout_rs": _register_rs_option,
}
FROM_VERL = [c for c in CHOICES if not isinstance(c.values, tuple)]


def test_every_row_read_from_verl_has_a_way_to_register_a_name_here():
    assert {c.key for c in FROM_VERL} == set(REGISTER)


@pytest.mark.parametrize("choice", FROM_VERL, ids=[c.key for c in FROM_VERL])
def test_a_name_registered_in_verl_is_accepted(monkeypatch, choice):
    name = "registered_here"
    assert name not in _allowed(choice)
    REGISTER[choice.key](monkeypatch, name)
    assert name in _allowed(choice)
    assert messages(check([_written(choice, name), *TINY_CPU])[1], "ranges") == []


def test_the_cpu_rollouts_are_accepted_on_cpu_only(monkeypatch):
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY

    monkeypatch.delitem(_ROLLOUT_REGISTRY, ("hf", "async"), raising=False)  # an earlier test may have activated it
    assert messages(check([f"{R}.name=hf", *TINY_CPU])[1], "ranges") == []  # registered by the CPU backend
    (msg,) = messages(check([f"{R}.name=hf", "preflight.check_files=false", "preflight.check_cluster=false"])[1],
                      "ranges", "error")
    assert msg.startswith(f"{R}.name='hf': 'hf' is not one of") and "'vllm'" in msg


def test_a_custom_checkpoint_engine_module_is_imported_and_a_missing_one_named():
    # hardware=cpu names sspo's gloo engine in custom_backend_module: importing it registers the backend
    assert messages(check([f"{R}.checkpoint_engine.backend=gloo", *TINY_CPU])[1], "ranges") == []
    (msg,) = messages(check([f"{R}.checkpoint_engine.custom_backend_module=no_such_module", *TINY_CPU])[1],
                      "ranges", "error")
    assert "custom_backend_module='no_such_module' does not import" in msg, msg
