"""Metrics of known scores and the paper-style table layout."""

import pytest

from sspo_verl.eval.decoding import DecodingConfig
from sspo_verl.eval.pass_at_k import pass_at_k
from sspo_verl.eval.results import ProblemResult, average_of_five, benchmark_metrics, markdown_table, run_label

FIVE = ["aime24", "amc23", "math500", "minerva_math", "olympiadbench"]


def _problem(i, scores, preds=None, reasons=None):
    return ProblemResult(
        index=i, question=f"q{i}", ground_truth="1", responses=["r"] * len(scores), scores=scores,
        preds=preds or ["1"] * len(scores), num_tokens=[10] * len(scores),
        finish_reasons=reasons or ["stop"] * len(scores),
    )


def test_benchmark_metrics_known_values():
    d = DecodingConfig(temperature=1.0, n=4, pass_k=(1, 2, 4))
    problems = [
        _problem(0, [1, 0, 0, 0], preds=["1", "", "", "2"], reasons=["stop", "length", "stop", "stop"]),
        _problem(1, [1, 1, 1, 1]),
        _problem(2, [0, 0, 0, 0]),
    ]
    m = benchmark_metrics(problems, d)
    assert m["accuracy"] == pytest.approx(100 * (0.25 + 1 + 0) / 3)
    assert m["pass@k"]["1"] == pytest.approx(m["accuracy"])
    assert m["pass@k"]["2"] == pytest.approx(100 * (pass_at_k(4, 1, 2) + 1 + 0) / 3)
    assert m["pass@k"]["4"] == pytest.approx(100 * 2 / 3)
    assert m["truncated_pct"] == pytest.approx(100 / 12) and m["no_answer_pct"] == pytest.approx(200 / 12)
    assert m["n_problems"] == 3 and m["n_samples"] == 12
    with pytest.raises(ValueError, match="expected n=4"):
        benchmark_metrics([_problem(0, [1, 0])], d)


def _results(label, accs, decoding=None, with_aime25=True):
    d = decoding or DecodingConfig()
    benches = {name: {"accuracy": a, "pass@k": {}} for name, a in zip(FIVE, accs)}
    if with_aime25:
        benches["aime25"] = {"accuracy": 3.3333, "pass@k": {}}
    return {"label": label, "benchmarks": benches, "average": average_of_five(benches), "decoding": d.to_dict(),
            "backend": "vllm", "model": {"source": f"/ckpt/{label}"}}


def test_table_layout_like_the_paper():
    text = markdown_table([_results("GRPO", [10, 40, 70, 20, 30]), _results("SSPO", [20, 50, 80, 30, 40])])
    lines = text.splitlines()
    assert lines[0] == "| Model | AIME24 | AMC23 | MATH-500 | Minerva | OlympiadBench | Avg. | AIME25 |"
    assert lines[1] == "|:--|--:|--:|--:|--:|--:|--:|--:|"
    assert lines[2] == "| GRPO | 10.00 | 40.00 | 70.00 | 20.00 | 30.00 | 34.00 | 3.33 |"
    assert lines[3] == "| SSPO | 20.00 | 50.00 | 80.00 | 30.00 | 40.00 | 44.00 | 3.33 |"
    assert "greedy accuracy (%), greedy decoding, max 3000 new tokens; all problems; backend vllm" in text


def test_missing_benchmark_gives_no_average():
    r = _results("partial", [10, 40, 70, 20], with_aime25=False)
    assert r["average"] is None
    row = markdown_table([r]).splitlines()[2]
    assert row == "| partial | 10.00 | 40.00 | 70.00 | 20.00 | — | — | — |"


def test_mixed_settings_are_refused_unless_allowed():
    a = _results("a", [1, 2, 3, 4, 5])
    b = _results("b", [1, 2, 3, 4, 5], DecodingConfig(temperature=0.6, n=8))
    with pytest.raises(ValueError, match="different decoding settings"):
        markdown_table([a, b])
    text = markdown_table([a, b], allow_mixed_settings=True)
    assert "avg@8 accuracy" in text and "greedy accuracy" in text


def test_limit_is_shown_and_not_mixed():
    a, b = _results("a", [1, 2, 3, 4, 5]), _results("b", [1, 2, 3, 4, 5])
    a["limit"] = b["limit"] = 8
    assert "first 8 problems per benchmark (--limit 8)" in markdown_table([a, b])
    b["limit"] = None
    with pytest.raises(ValueError, match=r"a: greedy decoding, max 3000 new tokens, first 8 .*b: .*all problems"):
        markdown_table([a, b])


def test_task_benchmark_columns_and_reward():
    d = DecodingConfig()
    problems = [ProblemResult(0, "q", "42", ["42"], [1.0], rewards=[1.8]),
                ProblemResult(1, "q", "7", ["8"], [0.0], rewards=[0.6])]
    m = benchmark_metrics(problems, d)
    assert m["accuracy"] == 50.0 and m["mean_reward"] == pytest.approx(1.2)
    r = {"label": "sspo (seed 0, step 30)", "benchmarks": {"tiny_eval": m}, "average": None,
         "decoding": d.to_dict(), "backend": "hf", "model": {"source": "/x"}, "limit": None}
    lines = markdown_table([r]).splitlines()
    assert lines[0] == "| Model | tiny_eval | tiny_eval reward |"  # no empty math columns
    assert lines[2] == "| sspo (seed 0, step 30) | 50.00 | 1.20 |"


def test_rows_are_named_after_the_run():
    run = {"name": "sspo", "algorithm": "sspo", "seed": 1, "step": 30}
    assert run_label(run, 30, "global_step_30") == "sspo (seed 1, step 30)"
    run = {"name": "sspo-tiny-seed1", "algorithm": "sspo", "seed": 1, "step": 30}
    assert run_label(run, 30, "global_step_30") == "sspo-tiny-seed1 (sspo, seed 1, step 30)"
    assert run_label(dict.fromkeys(run), None, "Qwen2.5-Math-1.5B") == "Qwen2.5-Math-1.5B"
