"""Activation contract: the CPU backend changes verl only with ``VERL_PLATFORM=cpu``, once, in every process.

Each case runs in a fresh interpreter (activation is process-wide, and the test session itself is not a CPU run):
``import verl`` loads the package's ``verl.plugins`` entry point exactly as in a Ray worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

_PROBE = textwrap.dedent(
    """
    import json, sys
    if sys.argv[1] == "plain":
        # the rollout server's Ray process imports the server module first, then verl: no import cycle
        import sspo_verl.cpu.hf_server
    import verl  # the verl.plugins entry point runs here
    from verl.plugin.platform import PlatformRegistry
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry
    import sspo_verl.cpu as cpu
    import sspo_verl.cpu.launch  # importing the package and its launcher patches nothing
    from sspo_verl.cpu.process_group import INIT_PROCESS_GROUP

    def state():
        import logging
        from sspo_verl.known_warnings import CPU_BACKEND_RECORDS, cpu_backend_filter
        s = dict(
            active=cpu.is_active(),
            known_cpu_warnings_dropped=all(
                cpu_backend_filter() in logging.getLogger(name).filters for name in CPU_BACKEND_RECORDS
            ),
            platform_registered="cpu" in PlatformRegistry.registered_names(),
            init_pg_wrapped=INIT_PROCESS_GROUP.is_installed(),
            hf_rollout=("hf", "async") in _ROLLOUT_REGISTRY,
            hf_replica="hf" in RolloutReplicaRegistry._registry,
        )
        if s["active"]:
            from verl.plugin.platform import get_platform
            from verl.workers.engine.base import EngineRegistry
            from verl.workers.engine.fsdp import transformer_impl
            s["platform"] = get_platform().device_name
            s["engine"] = EngineRegistry.get_engine_cls("language_model", "fsdp2").__name__
            s["ref_offload_pinned"] = transformer_impl.CPUOffloadPolicy(pin_memory=True).pin_memory
        return s

    out = {"at_import": state()}
    if sys.argv[1] == "late":
        out["activate_without_env"] = None
        try:
            cpu.activate()
        except RuntimeError as e:
            out["activate_without_env"] = str(e)
        from verl.plugin.platform import get_platform
        out["platform_before"] = get_platform().device_name  # verl resolved a platform before the CPU run was asked
        sspo_verl.cpu.launch.prepare_driver()
        out["after_prepare_driver"] = state()
    cpu.activate()  # idempotent
    print("STATE " + json.dumps(out))
    """
)


def _probe(mode, env_platform):
    env = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "VERL_USE_EXTERNAL_MODULES")}
    if env_platform:
        env["VERL_PLATFORM"] = env_platform
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("STATE "))
    return json.loads(line[len("STATE ") :]), proc.stderr


def test_with_verl_platform_cpu_every_part_is_active_once():
    out, stderr = _probe("plain", "cpu")
    s = out["at_import"]
    assert s == {
        "active": True,
        "known_cpu_warnings_dropped": True,
        "platform_registered": True,
        "init_pg_wrapped": True,
        "hf_rollout": True,
        "hf_replica": True,
        "platform": "cpu",
        "engine": "FSDPEngineWithLMHead",
        "ref_offload_pinned": False,
    }
    assert stderr.count("CPU backend active") == 1  # logged once, although activate() ran twice
    assert "engine is not available" not in stderr  # verl's optional-engine warnings are not repeated


def test_without_verl_platform_cpu_nothing_changes_until_asked():
    out, stderr = _probe("late", None)
    assert out["at_import"] == {
        "active": False,
        "known_cpu_warnings_dropped": False,  # a GPU run keeps them
        "platform_registered": False,
        "init_pg_wrapped": False,
        "hf_rollout": False,
        "hf_replica": False,
    }
    assert "VERL_PLATFORM=cpu" in out["activate_without_env"]
    # a driver that imported verl first and then asks for a CPU run: the CPU platform replaces the resolved one
    assert out["platform_before"] == "cuda"
    assert out["after_prepare_driver"]["active"] and out["after_prepare_driver"]["platform"] == "cpu"
    assert "replacing it with 'cpu'" not in stderr  # prepare_driver expects it: no warning
