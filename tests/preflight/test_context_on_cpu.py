"""sspo_verl.preflight.context: Context.require fills only unset values, reports each fill, and refuses a value
that contradicts the setting that needs another one, naming both keys."""

from __future__ import annotations

from omegaconf import OmegaConf

from sspo_verl.preflight import Context, PreflightReport


def _ctx(**values):
    config = OmegaConf.create({"a": {"flag": None, **values}})
    return Context(config=config, report=PreflightReport(), env={}, gpu_counter=lambda _e, _t: 0,
                   cluster_probe=lambda _a, _t: [])


def test_require_fills_an_unset_value_and_reports_it():
    ctx = _ctx()
    assert ctx.require("demo", "a.flag", True, because="a.mode=x", reason="x needs the flag")
    assert ctx.config.a.flag is True
    (fix,) = ctx.report.fixes
    assert "a.flag was unset" in fix.message and "a.mode=x" in fix.message and fix.check == "demo"
    ctx = _ctx()
    assert ctx.require("demo", "a.missing", 3, because="a.mode=x", reason="r")  # a missing key counts as unset
    assert ctx.config.a.missing == 3


def test_require_keeps_an_agreeing_value_silently():
    ctx = _ctx(flag=True)
    assert ctx.require("demo", "a.flag", True, because="a.mode=x", reason="r")
    assert ctx.report.findings == []


def test_require_refuses_a_contradicting_value_naming_both_keys():
    ctx = _ctx(flag=False)
    assert not ctx.require("demo", "a.flag", True, because="a.mode=x", reason="x needs the flag")
    assert ctx.config.a.flag is False  # never overwritten
    (error,) = ctx.report.errors
    assert "a.flag=False contradicts a.mode=x" in error.message and "change a.mode" in error.message
