"""sspo_verl.cluster's node commands for real on this machine: the head address and the per-node check.

The real 2-node Slurm tests (tests/recipes/test_train_sbatch_slurm_on_cpu.py) run them on every node through srun.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from sspo_verl.cluster import node
from sspo_verl.cluster.__main__ import main

VENV_BIN = str(Path(sys.executable).parent)


def test_head_ip_of_an_interface_and_of_the_host_name():
    assert node.head_ip("lo") == "127.0.0.1"
    assert not ipaddress.ip_address(node.head_ip()).is_loopback


def test_head_ip_skips_a_host_name_that_resolves_to_loopback(monkeypatch):
    # Debian maps the host name to 127.0.1.1: the node's first non-loopback interface address is used instead
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(socket.AF_INET, 0, 0, "", ("127.0.1.1", 0))])
    assert not ipaddress.ip_address(node.head_ip()).is_loopback


def test_head_ip_of_a_missing_interface_names_the_knob(monkeypatch, capsys):
    monkeypatch.setenv("SLURMD_NODENAME", "gpu007")
    with pytest.raises(LookupError, match=r"NET_IFACE=ib9: no such interface on gpu007 \(it has .*lo"):
        node.head_ip("ib9")
    assert main(["head-ip", "--iface=ib9"]) == 1
    assert capsys.readouterr().out.startswith("SSPO_HEAD_IP_FAIL NET_IFACE=ib9: no such interface")
    assert main(["head-ip", "--iface=lo"]) == 0
    assert capsys.readouterr().out == "SSPO_HEAD_IP 127.0.0.1\n"


def test_node_check_passes_here(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + os.environ["PATH"])  # sspo-train
    monkeypatch.setenv("SLURMD_NODENAME", "n7")
    shared = tmp_path / "shared"
    shared.touch()
    assert node.node_problems("sspo-train", str(shared), 0) == []  # verl imports, SSPO registered
    assert main(["node-check", f"--shared-file={shared}"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "SSPO_NODE_OK n7"


def test_node_check_reports_every_problem_on_one_line(monkeypatch, tmp_path, capsys):
    import sspo_verl.adapter.plugin as plugin

    def broken():
        raise RuntimeError("loss_mode=sspo is not registered")

    monkeypatch.setattr(plugin, "ensure_registered", broken)
    monkeypatch.setenv("SLURMD_NODENAME", "n7")
    missing = tmp_path / "absent"
    assert main(["node-check", "--train-cmd=no-such-trainer", f"--shared-file={missing}", "--gpus=1"]) == 1
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("SSPO_NODE_FAIL n7: no-such-trainer is not on PATH")
    assert f"cannot see {missing}: RUNS_ROOT must be on a filesystem shared by all nodes" in line
    assert "RuntimeError: loss_mode=sspo is not registered" in line
    assert "torch sees 0 GPU(s), expected 1" in line  # CPU-only torch here


# ------------------------------------------------------------------ the model and tokenizer, from this node
HUB_ID = "Qwen/Qwen2.5-Math-1.5B"
MODEL = "actor_rollout_ref.model.path"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on return: nothing listens there


def test_a_local_model_directory_loads_and_a_missing_or_empty_one_is_named(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "tokenizer_config.json").write_text("{}")
    tokenizer_key = "actor_rollout_ref.model.tokenizer_path"
    assert node.model_problems({MODEL: str(model), tokenizer_key: str(model)}) == []
    assert node.model_problems({MODEL: "hdfs://cluster/models/x"}) == []  # verl copies remote paths itself
    (problem,) = node.model_problems({MODEL: str(tmp_path / "absent")})
    assert problem.startswith(f"{MODEL}={tmp_path / 'absent'}: no such directory on this node")
    assert "storage shared by all nodes" in problem
    (model / "tokenizer_config.json").unlink()
    (problem,) = node.model_problems({tokenizer_key: str(model)})
    assert f"{tokenizer_key}={model}: {model} has none of ['tokenizer.json'" in problem


def test_a_hub_id_needs_this_nodes_cache_or_the_hub(tmp_path, monkeypatch):
    from tests.preflight.configs import fake_hub_snapshot

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (problem,) = node.model_problems({MODEL: HUB_ID})
    assert f"{MODEL}={HUB_ID}: not in this node's Hugging Face cache ({tmp_path / 'hf'}) and HF_HUB_OFFLINE=1" in problem
    assert f"huggingface-cli download {HUB_ID}" in problem and "HF_HOME" in problem
    fake_hub_snapshot(tmp_path / "hf", HUB_ID)
    assert node.model_problems({MODEL: HUB_ID}) == []


def test_a_hub_that_does_not_answer_is_named_within_the_bound(tmp_path, monkeypatch):
    """HF_ENDPOINT at a closed loopback port: the real huggingface_hub client, never the internet."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    start = time.monotonic()
    problems = node.model_problems({MODEL: HUB_ID, "actor_rollout_ref.model.tokenizer_path": HUB_ID}, timeout_s=3)
    assert time.monotonic() - start < 10
    assert len(problems) == 2  # both keys named, the Hub asked once
    assert f"the Hub at {endpoint} did not serve it within 3s" in problems[0]
    assert f"huggingface-cli download {HUB_ID}" in problems[0]


def test_node_check_composes_the_trainers_config_for_the_model(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("SLURMD_NODENAME", "n7")
    monkeypatch.setenv("SSPO_TINY_DIR", str(tmp_path / "tiny"))  # model=tiny's path: $SSPO_TINY_DIR/model
    shared = tmp_path / "shared"
    shared.touch()
    assert main(["node-check", f"--shared-file={shared}", "--", "model=tiny", "rollout=hf", "hardware=cpu"]) == 1
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith(f"SSPO_NODE_FAIL n7: {MODEL}={tmp_path / 'tiny' / 'model'}: no such directory on this node")
    (tmp_path / "tiny" / "model").mkdir(parents=True)
    (tmp_path / "tiny" / "model" / "config.json").write_text("{}")
    assert main(["node-check", f"--shared-file={shared}", "--", "model=tiny", "rollout=hf", "hardware=cpu"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "SSPO_NODE_OK n7"


def test_node_check_says_why_torch_sees_no_gpu(monkeypatch, tmp_path, capsys):
    """The pre-flight's CUDA diagnosis on each node: a stand-in nvidia-smi lists 8 GPUs, this torch is CPU-only."""
    import torch

    from tests.preflight.test_cuda_on_cpu import _node

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    node_env = _node(tmp_path, "580.65.06")
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + node_env["PATH"])
    monkeypatch.setenv("SLURMD_NODENAME", "n7")
    shared = tmp_path / "shared"
    shared.touch()
    assert main(["node-check", f"--shared-file={shared}", "--gpus=8"]) == 1
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("SSPO_NODE_FAIL n7: torch sees 0 GPU(s), expected 8 (CUDA_VISIBLE_DEVICES=None): this node "
                           f"has 8 NVIDIA GPU(s), driver 580.65.06, but torch {torch.__version__} is a CPU-only")
    assert "(torch.version.cuda is None)" in line and 'pip install -e ".[gpu,math]"' in line
