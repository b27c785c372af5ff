"""Every verl symbol and behaviour the CPU backend relies on still exists in the installed verl.

A failure here names the symbol (or the attribute verl now calls) and is the first thing a verl upgrade breaks.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from sspo_verl.cpu import verl_internals
from sspo_verl.cpu.verl_internals import PRIVATE_SYMBOLS, PUBLIC_SYMBOLS, VerlInternalsError

pytestmark = pytest.mark.filterwarnings("ignore:.*engine is not available")


@pytest.mark.parametrize("symbol", PRIVATE_SYMBOLS + PUBLIC_SYMBOLS, ids=lambda s: s.path)
def test_symbol_resolves(symbol):
    try:
        verl_internals.resolve(symbol.path)
    except VerlInternalsError as e:
        pytest.fail(f"verl moved {symbol.path}: {e}")


def test_check_all_reports_nothing():
    assert verl_internals.check_all() == []


def test_private_symbols_have_the_shape_the_backend_uses():
    registry = verl_internals.resolve("verl.workers.rollout.base._ROLLOUT_REGISTRY")
    assert isinstance(registry, dict) and ("vllm", "async") in registry
    engines = verl_internals.resolve("verl.workers.engine.base.EngineRegistry._engines")
    assert "cuda" in engines["language_model"]["fsdp2"]


def test_a_moved_symbol_fails_loudly_naming_it(monkeypatch):
    import verl.workers.rollout.base as base

    monkeypatch.delattr(base, "_ROLLOUT_REGISTRY")
    with pytest.raises(VerlInternalsError) as err:
        verl_internals.resolve("verl.workers.rollout.base._ROLLOUT_REGISTRY")
    msg = str(err.value)
    assert "verl.workers.rollout.base._ROLLOUT_REGISTRY" in msg and "has no attribute '_ROLLOUT_REGISTRY'" in msg
    assert "0.9.1" in msg


def test_an_unlisted_symbol_is_refused():
    with pytest.raises(KeyError, match="not listed"):
        verl_internals.resolve("verl.trainer.main_ppo.main")


def _verl_sources():
    import verl

    root = Path(verl.__file__).parent
    return [(p, p.read_text(encoding="utf-8", errors="replace")) for p in root.rglob("*.py")]


def test_cpu_device_module_provides_every_attribute_verl_calls():
    """verl calls ``get_torch_device().<name>`` (torch.cuda on GPU); the CPU stand-in must answer each one."""
    from sspo_verl.cpu.platform import CPUDeviceModule

    module = CPUDeviceModule()
    called = set()
    for _, text in _verl_sources():
        called.update(re.findall(r"get_torch_device\(\)\.([A-Za-z_]\w*)", text))
    assert {"empty_cache", "synchronize", "max_memory_allocated"} <= called  # the scan itself works
    missing = sorted(name for name in called if not hasattr(module, name))
    assert not missing, f"verl now calls get_torch_device().{missing} which the CPU device module lacks"


def test_hf_server_answers_every_method_verl_calls_on_a_rollout_server():
    """verl drives rollout servers through ``server.<method>.remote(...)`` (replica.py, llm_server.py)."""
    from sspo_verl.cpu.rollout import HFServer

    import verl.workers.rollout.llm_server as llm_server
    import verl.workers.rollout.replica as replica

    called = set()
    for module in (replica, llm_server):
        called.update(re.findall(r"\bserver\.(\w+)\.remote\(", inspect.getsource(module)))
    assert {"generate", "wake_up", "sleep"} <= called  # the scan itself works
    missing = sorted(name for name in called if not callable(getattr(HFServer, name, None)))
    assert not missing, f"verl now calls rollout server methods {missing} that HFServer lacks"


def test_hf_server_generate_accepts_the_keywords_verl_passes():
    from sspo_verl.cpu.rollout import HFServer

    import verl.workers.rollout.llm_server as llm_server

    source = inspect.getsource(llm_server)
    call = source[source.index("await server.generate.remote(") :]
    call = call[: call.index(")\n")]
    passed = set(re.findall(r"^\s*(\w+)=", call, flags=re.M))
    assert {"request_id", "prompt_ids", "sampling_params"} <= passed  # the scan itself works
    params = inspect.signature(HFServer.generate).parameters
    assert passed <= set(params), f"verl passes {sorted(passed - set(params))} to generate() by name"
