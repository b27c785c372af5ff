"""The embedded task: verl-format rows with subsentence answers, and its reward (dense char-F1 + strict exact)."""

from __future__ import annotations

import pandas as pd
import pytest

from sspo_verl.data import tiny_task as task


def test_rows_are_verl_rl_format_and_seeded():
    rows = task.make_rows(5, seed=3, split="train")
    assert rows == task.make_rows(5, seed=3, split="train")
    assert rows != task.make_rows(5, seed=4, split="train")
    assert rows != task.make_rows(5, seed=3, split="val")
    r = rows[0]
    assert r["data_source"] == task.DATA_SOURCE and r["prompt"][0]["role"] == "user"
    a, b = (int(x) for x in r["prompt"][0]["content"].removeprefix("What is ").rstrip("?").split(" + "))
    assert r["reward_model"]["ground_truth"] == str(a + b)
    assert r["extra_info"]["reference"] == task.reference_solution(a, b)


def test_reference_solution_has_subsentences():
    ref = task.reference_solution(12, 30)
    assert ref == "First, take 12. Then, add 30; so the answer is 42."
    assert sum(ref.count(c) for c in ",.;") == 5  # five clause ends: SSPO has segments to work with


def test_write_dataset_round_trips(tmp_path):
    paths = task.write_dataset(str(tmp_path), n_train=6, n_val=2, seed=1)
    train, val = pd.read_parquet(paths["train"]), pd.read_parquet(paths["val"])
    assert len(train) == 6 and len(val) == 2
    assert set(train.columns) >= {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    assert train.iloc[0]["extra_info"]["reference"].startswith("First, take ")


@pytest.mark.parametrize(
    "response, f1, exact",
    [
        ("First, take 12. Then, add 30; so the answer is 42.", 1.0, 1.0),  # the reference itself
        ("so the answer is 42", None, 1.0),  # strict part only needs the final number
        ("the answer is 42, not 41", None, 0.0),  # the last number counts
        ("", 0.0, 0.0),
        ("zzzz", 0.0, 0.0),  # no shared character
    ],
)
def test_compute_score(response, f1, exact):
    info = {"reference": task.reference_solution(12, 30)}
    out = task.compute_score(task.DATA_SOURCE, response, "42", info)
    assert out["exact"] == exact
    if f1 is not None:
        assert out["char_f1"] == pytest.approx(f1)
    assert out["score"] == pytest.approx(out["char_f1"] + out["exact"])
    assert 0.0 <= out["char_f1"] <= 1.0


def test_char_f1_is_dense_and_rises_toward_the_reference():
    ref = task.reference_solution(12, 30)
    noise, closer = "qx#@", "First, take 1 2; answer"
    assert 0 <= task.char_f1(noise, ref) < task.char_f1(closer, ref) < task.char_f1(ref, ref) == 1.0
    # hand-worked: "ab" vs "abb": overlap 2, precision 1, recall 2/3 -> F1 0.8
    assert task.char_f1("ab", "abb") == pytest.approx(0.8)


def test_final_number_parses_thousands_and_decimals():
    assert task.final_number("x 1,000 then 3.14.") == "3.14"
    assert task.final_number("total 1,000.") == "1000"
    assert task.final_number("no digits") is None


def test_rows_without_reference_are_refused():
    with pytest.raises(ValueError, match="reference"):
        task.compute_score("openai/gsm8k", "42", "42", {})


def test_held_out_split_shares_no_problem_with_training(tmp_path):
    paths = task.write_dataset(str(tmp_path), n_train=512, n_val=32, n_eval=64, seed=0)
    pairs = {s: [task.operands(r) for r in pd.read_parquet(p).to_dict("records")] for s, p in paths.items()}
    assert len(pairs[task.EVAL_SPLIT]) == 64
    assert not set(pairs[task.EVAL_SPLIT]) & (set(pairs["train"]) | set(pairs["val"]))
    # the training splits are what they were before the held-out split existed (same seed, same files)
    assert pairs["train"] == [task.operands(r) for r in task.make_rows(512, 0, "train")]
