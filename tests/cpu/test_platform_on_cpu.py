"""The ``cpu`` verl platform and its ``torch.cuda`` stand-in (instances only: nothing is registered here)."""

from __future__ import annotations

import pytest
import torch

from sspo_verl.cpu.platform import CPUDeviceModule, CPUPlatform


def test_platform_answers_like_an_accelerator_that_is_the_cpu():
    p = CPUPlatform()
    assert (p.device_name, p.vendor_name, p.communication_backend_name()) == ("cpu", "cpu", "gloo")
    assert p.current_device() == torch.device("cpu")  # verl does tensor.to(get_device_id())
    assert torch.ones(2).to(p.current_device()).device.type == "cpu"
    assert p.device_count() == 1 and p.is_available()
    assert p.ray_resource_name() == "GPU" and p.ray_resource_options(1) == {"num_gpus": 1}
    assert p.get_device_capability() == (None, None)
    assert not p.is_ipc_supported()
    with p.nvtx_range("x"):
        pass


def test_platform_is_never_auto_detected():
    # verl probes registered platforms with is_platform_available(use_smi_check=True) when VERL_PLATFORM is unset:
    # the CPU platform must never win that probe (GPU runs never see it).
    assert CPUPlatform().is_platform_available(use_smi_check=True) is False


def test_seeding_goes_to_torch():
    p = CPUPlatform()
    p.manual_seed(123)
    a = torch.rand(3)
    p.device_module.manual_seed(123)
    assert torch.equal(a, torch.rand(3))
    state = p.device_module.get_rng_state()
    b = torch.rand(2)
    p.device_module.set_rng_state(state)
    assert torch.equal(b, torch.rand(2))


def test_memory_queries_report_the_process_rss():
    import psutil

    mod = CPUDeviceModule()
    rss = psutil.Process().memory_info().rss
    assert 0.5 * rss < mod.memory_allocated() < 2 * rss
    assert mod.max_memory_allocated() >= mod.memory_allocated() * 0.9
    free, total = mod.mem_get_info()
    assert 0 < free <= total
    mod.empty_cache()
    mod.reset_peak_memory_stats()
    mod.synchronize()
    assert mod.is_available()


def test_unknown_attributes_raise_naming_them():
    mod = CPUDeviceModule()
    with pytest.raises(AttributeError, match="'nccl_magic'"):
        mod.nccl_magic  # noqa: B018
    assert not hasattr(mod, "npu_format_cast")  # hasattr-based feature checks in verl keep their meaning
