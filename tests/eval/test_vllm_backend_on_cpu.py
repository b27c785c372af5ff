"""``sspo-eval run --backend vllm`` on the CPU build of vLLM, for real: one engine run on a checkpoint of a run
(the tiny model, the tiny task's held-out split), then HF generate on the same checkpoint; the greedy answers of
the two backends are compared problem by problem and the agreement printed (README "Data, reward and evaluation").

The checkpoint is the tiny model after a few seconds of supervised training on the task's reference solutions:
the random-weight model greedily repeats its last prompt token (tied embeddings), which any two backends agree
on; the trained one writes ``First, take 16. Then, add 0; so the answer is ...`` with numbers of its own.
"""

from __future__ import annotations

import json
import pytest

from sspo_verl.eval.cli import main as eval_main
from sspo_verl.eval.results import read_samples

pytestmark = pytest.mark.slow  # one vLLM engine start-up (~40 s on 2 cores) and one HF run


def _train_on_references(tiny_model: str, out: str, data, steps: int = 150) -> None:
    """Teacher-forced next-token training of the tiny model on the train split's reference solutions."""
    import pandas as pd
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    rows = pd.read_parquet(data / "train.parquet").to_dict("records")
    texts = [tokenizer.apply_chat_template([*row["prompt"], {"role": "assistant",
                                                             "content": row["extra_info"]["reference"]}],
                                           tokenize=False) for row in rows]
    batch = tokenizer(texts, padding=True, return_tensors="pt")  # (N, T)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)  # (N, T)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        idx = torch.randint(0, len(texts), (32,))
        loss = model(input_ids=batch["input_ids"][idx], attention_mask=batch["attention_mask"][idx],
                     labels=labels[idx]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


@pytest.fixture(scope="module")
def both_backends(tiny_model, tmp_path_factory):
    import yaml

    from sspo_verl.data.tiny_task import write_dataset

    root = tmp_path_factory.mktemp("vllm_eval")
    data = root / "data"
    write_dataset(str(data), n_train=512, n_val=4, n_eval=64, seed=0)
    run_dir = root / "demo" / "grpo"
    checkpoint = run_dir / "checkpoints" / "global_step_2"
    _train_on_references(tiny_model, str(checkpoint / "actor" / "huggingface"), data)
    (run_dir / "resolved_config.yaml").write_text(yaml.safe_dump({"algorithm_preset": {"name": "grpo"}, "seed": 3}))
    out = {}
    for backend in ("vllm", "hf"):
        out[backend] = root / f"eval_{backend}"
        assert eval_main(["run", "--model", str(checkpoint), "--benchmarks", "tiny_eval", "--data-dir", str(data),
                          "--out-dir", str(out[backend]), "--backend", backend, "--max-new-tokens", "32"]) == 0
    return out


def test_vllm_runs_bounded_like_training_and_names_the_run(both_backends):
    results = json.loads((both_backends["vllm"] / "results.json").read_text())
    assert results["backend"] == "vllm" and results["versions"]["vllm"].endswith("(cpu build)")
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
    assert len({p.responses[0] for p in hf}) >= 4  # answers that differ between problems, not one repeated token
    same = [a.responses == b.responses and a.num_tokens == b.num_tokens for a, b in zip(vllm, hf)]
    print(f"\nvLLM-CPU vs HF generate, greedy, float32, 32 new tokens: {sum(same)}/{len(same)} problems identical")
    for a, b, ok in zip(vllm, hf, same):
        if not ok:
            print(f"  differs on {a.question!r}:\n    vllm {a.responses[0]!r}\n    hf   {b.responses[0]!r}")
    assert sum(same) >= 0.95 * len(same)  # float32 on both; see the README for the measured agreement
    assert all(a.scores == b.scores and a.rewards == b.rewards for a, b, ok in zip(vllm, hf, same) if ok)
