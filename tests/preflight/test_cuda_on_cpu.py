"""The CUDA check: the real probe subprocess on this machine (CPU-only torch), the check on the real composed config
with a stand-in ``nvidia-smi`` on PATH for the node's GPUs and driver, and injected probe commands for what torch
says on GPU nodes (a driver too old for CUDA 13.0, a GPU in an error state, a probe that hangs)."""

from __future__ import annotations

import functools
import json
import sys
import time

import pytest

from sspo_verl.preflight import run_preflight
from sspo_verl.preflight.cuda import min_driver
from sspo_verl.preflight.gpu import TorchCuda, probe_torch_cuda
from tests.preflight.configs import FakeCluster, config, messages
from tests.preflight.test_gpu_on_cpu import _fake_smi


def _node(tmp_path, driver: str, n: int = 8) -> dict:
    rows = "".join(f"{i}, GPU-{i:04d}, NVIDIA H100 80GB HBM3, 81559, {driver}\n" for i in range(n))
    return _fake_smi(tmp_path, f"cat <<'EOF'\n{rows}EOF\n")


def _says(**torch_cuda) -> functools.partial:
    """A probe whose subprocess prints what torch would say on a GPU node (parsed by the real probe)."""
    line = "SSPO_TORCH_CUDA " + json.dumps({"available": False, "device_count": 0, "error": None, **torch_cuda})
    return functools.partial(probe_torch_cuda, command=[sys.executable, "-c", f"print({line!r})"])


def _check(overrides, env, probe=probe_torch_cuda):
    return run_preflight(config(overrides), env=env, gpu_counter=lambda _e, _t: 8, cluster_probe=FakeCluster(),
                         cuda_probe=probe, raise_on_error=False)


def test_gpu_run_with_cpu_only_torch_on_a_gpu_node_is_refused_with_the_install_fix(tmp_path, data_dir):
    """The real probe (this machine's CPU torch) with a stand-in nvidia-smi showing 8 H100s."""
    report = _check([], _node(tmp_path, "580.65.06"))
    (msg,) = messages(report, "cuda", "error")
    assert "trainer.device=cuda" in msg and "8 NVIDIA GPU(s), driver 580.65.06" in msg
    assert "CPU-only build (torch.version.cuda is None)" in msg and 'pip install -e ".[gpu,math]"' in msg
    assert "hardware=cpu" in msg


@pytest.mark.parametrize(("cuda", "driver", "need", "runs"), [("13.0", "570.86.15", "580", "12"),
                                                                ("12.8", "470.256.02", "525.60.13", "11")])
def test_driver_too_old_for_torchs_cuda_names_both_and_the_minimum(tmp_path, data_dir, cuda, driver, need, runs):
    probe = _says(torch="2.11.0+cu130", cuda=cuda, error="RuntimeError: The NVIDIA driver on your system is too old "
                  "(found version 12080).")
    (msg,) = messages(_check([], _node(tmp_path, driver), probe), "cuda", "error")
    assert f"the NVIDIA driver {driver} on this node is too old for torch 2.11.0+cu130, built for CUDA {cuda}" in msg
    assert f"driver >= {need}" in msg and f"Upgrade the driver to >= {need}" in msg and "found version 12080" in msg
    assert f"a torch built for CUDA {runs}.x" in msg


def test_other_cuda_failures_name_what_torch_said(tmp_path, data_dir):
    probe = _says(torch="2.11.0+cu130", cuda="13.0", error="RuntimeError: CUDA error: uncorrectable ECC error")
    (msg,) = messages(_check([], {**_node(tmp_path, "580.95.05"), "CUDA_VISIBLE_DEVICES": "0,1"}, probe), "cuda")
    assert "torch 2.11.0+cu130 (CUDA 13.0) cannot use them" in msg and "uncorrectable ECC error" in msg
    assert "CUDA_VISIBLE_DEVICES=0,1" in msg and "nvidia-smi" in msg
    probe = _says(torch=None, cuda=None, error="ModuleNotFoundError: No module named 'torch'")
    (msg,) = messages(_check([], _node(tmp_path, "580.95.05"), probe), "cuda")
    assert "torch does not import" in msg and "No module named 'torch'" in msg


def test_a_working_cuda_passes(tmp_path, data_dir):
    probe = _says(torch="2.11.0+cu130", cuda="13.0", available=True, device_count=8)
    assert messages(_check([], _node(tmp_path, "580.95.05"), probe), "cuda") == []


def test_a_hung_probe_is_an_error_naming_the_knob(tmp_path, data_dir):
    probe = functools.partial(probe_torch_cuda, command=[sys.executable, "-c", "import time; time.sleep(30)"])
    start = time.monotonic()
    (msg,) = messages(_check(["preflight.cuda_probe_timeout_s=1"], _node(tmp_path, "580.95.05"), probe), "cuda")
    assert time.monotonic() - start < 15
    assert "did not finish within 1 s" in msg and "preflight.cuda_probe_timeout_s" in msg
    assert "preflight.check_cuda=false" in msg


def test_not_run_without_nvidia_devices_on_cpu_runs_or_when_off(tmp_path, data_dir):
    calls = []

    def probe(env, timeout_s):
        calls.append(timeout_s)
        return TorchCuda("2.13.0", None, False, 0, None)

    (tmp_path / "none").mkdir()
    no_devices = _fake_smi(tmp_path / "none", "echo 'No devices were found'; exit 6\n")
    assert messages(_check([], no_devices, probe), "cuda") == []
    node = _node(tmp_path, "580.95.05")
    assert messages(_check(["preflight.check_cuda=false"], node, probe), "cuda") == []
    assert messages(_check(["hardware=cpu", "model=tiny", "rollout=hf", "preflight.check_files=false"], node, probe),
                    "cuda") == []
    assert calls == []
    assert messages(_check([], node, probe), "cuda", "error") and calls == [120.0]


def test_min_driver_table():
    assert min_driver("13.0") == "580" and min_driver("13.2") == "580"
    assert min_driver("12.8") == "525.60.13" and min_driver("11.8") == "450.80.02" and min_driver("10.2") is None
