"""``sspo-eval run --backend vllm`` on the CPU build of vLLM, for real: one engine run on a checkpoint of a run
(the tiny model, the tiny task's held-out split), then HF generate on the same checkpoint; the greedy answers of
the two backends are compared problem by problem and the agreement printed (README "Data, reward and evaluation").
"""

from __future__ import annotations

import json
import shutil

import pytest

from sspo_verl.eval.cli import main as eval_main
from sspo_verl.eval.results import read_samples

pytestmark = pytest.mark.slow  # one vLLM engine start-up (~40 s on 2 cores) and one HF run


@pytest.fixture(scope="module")
def both_backends(tiny_model, tmp_path_factory):
    import yaml

    from sspo_verl.demo.task import write_dataset

    root = tmp_path_factory.mktemp("vllm_eval")
    run_dir = root / "demo" / "grpo"
    checkpoint = run_dir / "checkpoints" / "global_step_2"
    shutil.copytree(tiny_model, checkpoint / "actor" / "huggingface")
    (run_dir / "resolved_config.yaml").write_text(yaml.safe_dump({"algorithm_preset": {"name": "grpo"}, "seed": 3}))
    data = root / "data"
    write_dataset(str(data), n_train=16, n_val=4, n_eval=64, seed=0)
    out = {}
    for backend in ("vllm", "hf"):
        out[backend] = root / f"eval_{backend}"
        assert eval_main(["run", "--model", str(checkpoint), "--benchmarks", "tiny_eval", "--data-dir", str(data),
                          "--out-dir", str(out[backend]), "--backend", backend, "--max-new-tokens", "32"]) == 0
    return out


def test_vllm_runs_bounded_like_training_and_names_the_run(both_backends):
    results = json.loads((both_backends["vllm"] / "results.json").read_text())
    assert results["backend"] == "vllm" and results["versions"]["vllm"]
    assert results["engine"] == {"device": "cpu", "dtype": "float32", "enforce_eager": True,
                                 "kv_cache_memory_bytes": 128 * 2**20}
    assert results["run"]["algorithm"] == "grpo" and results["run"]["seed"] == 3 and results["run"]["step"] == 2
    table = (both_backends["vllm"] / "table.md").read_text()
    assert "| grpo (seed 3, step 2) |" in table and "vLLM on cpu, float32, eager, KV cache 128 MiB" in table
    m = results["benchmarks"]["tiny_eval"]
    assert m["n_problems"] == 64 and 0 < m["mean_response_tokens"] <= 32


def test_greedy_answers_of_vllm_and_hf_agree(both_backends):
    vllm, hf = (read_samples(both_backends[b] / "samples" / "tiny_eval.jsonl") for b in ("vllm", "hf"))
    assert [p.question for p in vllm] == [p.question for p in hf]
    same = [a.responses == b.responses and a.num_tokens == b.num_tokens for a, b in zip(vllm, hf)]
    print(f"\nvLLM-CPU vs HF generate, greedy, float32, 32 new tokens: {sum(same)}/{len(same)} problems identical")
    for a, b, ok in zip(vllm, hf, same):
        if not ok:
            print(f"  differs on {a.question!r}:\n    vllm {a.responses[0]!r}\n    hf   {b.responses[0]!r}")
    assert sum(same) >= 0.95 * len(same)  # float32 on both; see the README for the measured agreement
    assert all(a.scores == b.scores and a.rewards == b.rewards for a, b, ok in zip(vllm, hf, same) if ok)
