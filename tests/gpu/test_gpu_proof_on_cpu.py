"""The GPU proof's CPU twin: tests/gpu/gpu_proof.py with --device cpu --small runs every part (the same code the
one GPU call runs, at seconds-sized shapes), so the call cannot die of a typo; and the wheel manifest is whole."""

import json
import subprocess
import sys

import pytest

from tests.gpu import gpu_proof, gpu_proof_wheels


def test_manifest_lists_every_pinned_wheel_within_the_call_limit():
    manifest = json.loads(gpu_proof_wheels.MANIFEST.read_text())
    assert [(e["name"], e["version"]) for e in manifest["wheels"]] == list(gpu_proof_wheels.WHEELS)
    assert all(len(e["sha256"]) == 64 and e["size"] > 0 for e in manifest["wheels"])
    assert manifest["total_bytes"] == sum(e["size"] for e in manifest["wheels"]) <= gpu_proof_wheels.LIMIT
    assert gpu_proof_wheels.verify(require_wheels=False) == []


def test_verify_names_a_wheel_that_differs_from_the_manifest(tmp_path):
    manifest = json.loads(gpu_proof_wheels.MANIFEST.read_text())
    first = manifest["wheels"][0]
    (tmp_path / first["file"]).write_bytes(b"not the wheel")
    problems = gpu_proof_wheels.verify(directory=tmp_path)
    assert any(first["file"] in p and "sha256" in p for p in problems)
    assert any("missing" in p for p in problems)  # the others are absent


@pytest.mark.slow
def test_cpu_twin_runs_every_part(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, gpu_proof.__file__, "--device", "cpu", "--small", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads((out / "gpu_proof.json").read_text())
    assert list(result["parts"]) == list(gpu_proof.PARTS)
    assert all(p["ok"] for p in result["parts"].values())
    rows = {r["variant"]: r for r in result["parts"]["actor_update"]["figures"]["rows"]}
    assert rows["grpo"]["loss"] == pytest.approx(rows["sspo_token"]["loss"], rel=1e-5)
    assert rows["grpo"]["grad_norm"] == pytest.approx(rows["sspo_token"]["grad_norm"], rel=1e-5)
    bf16 = result["parts"]["bf16_loss"]["figures"]
    assert all(v["loss_rel_err"] < 2e-5 for k, v in bf16.items() if "loss_rel_err" in v)
    assert (out / "gpu_proof.md").read_text().startswith("# GPU proof")
