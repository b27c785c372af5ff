"""sspo_verl.preflight.packages: flash attention asked for but not installed (the real negative: flash-attn is not
installed here), and installed (a stand-in ``flash_attn`` package on sys.path); Ulysses without flash attention."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import pytest

from sspo_verl import train
from sspo_verl.preflight.packages import ATTN_KEY, FLASH_ATTN_INSTALL
from tests.preflight.configs import NX8, check, messages
from tests.test_train_on_cpu import NO_CLUSTER, dirs, run_cli  # noqa: F401  (dirs: a fixture)

FA2 = f"{ATTN_KEY}=flash_attention_2"


@pytest.fixture
def no_flash_attn():
    if importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash_attn is installed in this Python: the negative case needs it absent")


@pytest.fixture
def stand_in_flash_attn(tmp_path, monkeypatch):
    """A ``flash_attn`` package on sys.path: what find_spec sees after `pip install flash-attn` (never imported)."""
    (tmp_path / "site" / "flash_attn").mkdir(parents=True)
    (tmp_path / "site" / "flash_attn" / "__init__.py").write_text("raise ImportError('a stand-in: never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    yield
    sys.modules.pop("flash_attn", None)


def test_gpu_presets_use_sdpa_and_pass(data_dir, no_flash_attn):
    for hardware in ([], NX8):
        cfg, report = check(hardware)
        assert cfg.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
        assert messages(report, "packages") == [], hardware


def test_flash_attention_without_flash_attn_is_refused_with_both_fixes(data_dir, no_flash_attn):
    _, report = check([FA2])
    (msg,) = messages(report, "packages", "error")
    assert FA2 in msg and "flash-attn package, which is not installed" in msg
    assert FLASH_ATTN_INSTALL in msg and f"{ATTN_KEY}=sdpa" in msg and sys.executable in msg
    # Unset: verl's own default (flash_attention_2) applies, and the switch needs Hydra's `+`.
    _, report = check([f"~{ATTN_KEY}"])
    (msg,) = messages(report, "packages", "error")
    assert "(verl's default)" in msg and f"+{ATTN_KEY}=sdpa" in msg


def test_flash_attention_with_flash_attn_installed_passes(data_dir, stand_in_flash_attn):
    _, report = check([FA2])
    assert messages(report, "packages") == []
    assert "flash_attn" not in sys.modules  # read with find_spec, never imported


def test_cpu_runs_are_left_to_the_cpu_backend(data_dir, no_flash_attn):
    _, report = check(["hardware=cpu", FA2])
    assert messages(report, "packages") == []


def test_ulysses_needs_flash_attention(data_dir, stand_in_flash_attn):
    sp = "actor_rollout_ref.actor.ulysses_sequence_parallel_size=2"
    _, report = check([sp])
    (msg,) = messages(report, "packages", "error")
    assert "ulysses_sequence_parallel_size=2" in msg and f"{ATTN_KEY}=sdpa" in msg
    assert f"{ATTN_KEY}=flash_attention_2" in msg and "=1" in msg
    _, report = check([sp, FA2])
    assert messages(report, "packages") == []


def test_sspo_train_refuses_before_anything_is_written(dirs, monkeypatch, capsys, no_flash_attn):  # noqa: F811
    _, out = dirs
    code, _, err = run_cli(monkeypatch, capsys, FA2, NO_CLUSTER)
    assert code == train.EXIT_PREFLIGHT
    assert FLASH_ATTN_INSTALL in err and "Traceback" not in err
    # Only the launch record every sspo-train invocation leaves (README: What is checked before start-up).
    written = {p.name for run_dir in out.glob("*/*") for p in run_dir.iterdir()}
    assert written <= {".hydra", "train.log"}, written
