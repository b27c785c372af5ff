"""``rollout.name=vllm`` on the CPU backend: verl's registries point at verl's own vLLM classes, specialised.

In a fresh CPU-backend interpreter (``VERL_PLATFORM=cpu``), as in a trainer worker or the rollout server's process.
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
    import importlib, json
    import verl  # the CPU backend activates here
    from verl.plugin.platform import get_platform
    from verl.workers.rollout.base import get_rollout_class
    from verl.workers.rollout.replica import RolloutReplicaRegistry
    from verl.workers.rollout.vllm_rollout.vllm_async_server import vLLMHttpServer, vLLMReplica
    from verl.workers.rollout.vllm_rollout.vllm_rollout import ServerAdapter
    from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension
    from sspo_verl.cpu import vllm_server, vllm_weight_sync

    adapter = get_rollout_class("vllm", "async")
    replica = RolloutReplicaRegistry.get("vllm")
    ext_path = vllm_server.CPUvLLMHttpServer._get_worker_extension_cls(None)
    module, name = ext_path.rsplit(".", 1)
    ext = getattr(importlib.import_module(module), name)
    print("STATE " + json.dumps(dict(
        adapter=[adapter.__name__, issubclass(adapter, ServerAdapter)],
        replica=[replica.__name__, issubclass(replica, vLLMReplica)],
        server=issubclass(vllm_server.CPUvLLMHttpServer, vLLMHttpServer),
        extension=[name, issubclass(ext, vLLMColocateWorkerExtension)],
        # everything else is verl's: the subclasses override only what the module docstring lists
        overrides=sorted(k for cls in (adapter, vllm_server.CPUvLLMHttpServer, replica, ext)
                         for k, v in vars(cls).items() if callable(v) and not k.startswith("__")),
        env=get_platform().rollout_env_vars(),
        sender_patched=vllm_weight_sync.SENDER_PATCH.is_installed(),
    )))
    """
)


def test_cpu_runs_use_verls_vllm_classes_with_the_cpu_specialisations_only():
    env = {k: v for k, v in os.environ.items() if k != "VERL_USE_EXTERNAL_MODULES"}
    env["VERL_PLATFORM"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("STATE "))[len("STATE "):])
    assert out["adapter"] == ["CPUServerAdapter", True]
    assert out["replica"] == ["CPUvLLMReplica", True]
    assert out["server"] is True and out["extension"] == ["CPUWorkerExtension", True]
    assert out["overrides"] == ["_execute_method", "_get_worker_extension_cls", "update_weights",
                                "update_weights_from_ipc"]
    assert out["env"] == {"TORCHDYNAMO_DISABLE": "1"}
    assert out["sender_patched"] is False  # installed when verl builds the adapter, in the trainer workers only
