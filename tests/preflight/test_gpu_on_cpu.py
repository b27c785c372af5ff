"""The GPU inventory read from nvidia-smi: a real subprocess running a stand-in ``nvidia-smi`` on PATH (nothing real
can run here), CUDA_VISIBLE_DEVICES applied as CUDA applies it, and the answers for 'no GPU' and 'cannot tell'."""

import os
import stat

import pytest

from sspo_verl.preflight.gpu import GpuInfo, parse_query, probe_torch_cuda, query_gpus, visible

ROWS = (
    "0, GPU-aaaa-0000, NVIDIA H100 80GB HBM3, 81559, 580.65.06\n"
    "1, GPU-bbbb-1111, NVIDIA H100 80GB HBM3, 81559, 580.65.06\n"
)


def _fake_smi(tmp_path, body: str) -> dict:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + body)
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{tmp_path}:{os.environ['PATH']}"}


def test_parse_query_reads_memory_in_bytes():
    gpus = parse_query(ROWS)
    assert gpus[1] == GpuInfo(1, "GPU-bbbb-1111", "NVIDIA H100 80GB HBM3", 81559 * 2**20, "580.65.06")


@pytest.mark.parametrize("row", ["0, GPU-a, H100, 81559", "x, GPU-a, H100, 81559, 580", "0, GPU-a, H100, [N/A], 580"])
def test_parse_query_refuses_rows_it_cannot_read(row):
    with pytest.raises(ValueError, match="nvidia-smi row"):
        parse_query(row)


@pytest.mark.parametrize(
    ("cvd", "indices"),
    [(None, [0, 1]), ("1", [1]), ("GPU-bbbb-1111,0", [1, 0]), ("GPU-bbbb", [1]), ("0,7,1", [0]), ("", []), ("-1", [])],
)
def test_visible_applies_cuda_visible_devices_as_cuda_does(cvd, indices):
    assert [g.index for g in visible(parse_query(ROWS), cvd)] == indices


def test_query_gpus_runs_nvidia_smi(tmp_path):
    env = _fake_smi(tmp_path, f"cat <<'EOF'\n{ROWS}EOF\n")
    assert [g.index for g in query_gpus(env)] == [0, 1]
    assert [g.index for g in query_gpus({**env, "CUDA_VISIBLE_DEVICES": "1"})] == [1]


def test_query_gpus_no_devices_is_empty_and_garbage_is_unknown(tmp_path):
    assert query_gpus(_fake_smi(tmp_path, "echo 'No devices were found'; exit 6\n")) == []
    assert query_gpus(_fake_smi(tmp_path, "echo 'NVIDIA-SMI has failed'; exit 9\n")) is None
    assert query_gpus(_fake_smi(tmp_path, "echo 'garbage'\n")) is None


def test_query_gpus_hung_driver_names_the_knob(tmp_path):
    with pytest.raises(RuntimeError, match="preflight.gpu_query_timeout_s"):
        query_gpus(_fake_smi(tmp_path, "sleep 5\n"), timeout_s=0.5)


def test_the_real_probe_on_this_machine_reports_cpu_only_torch():
    import torch

    found = probe_torch_cuda({"PATH": "/usr/bin:/bin"}, timeout_s=120)
    assert found.torch == torch.__version__ and found.cuda is None and not found.available
    assert found.device_count == 0 and "not compiled with CUDA" in found.error
