"""sspo-data: fixtures in each source's schema → verl parquet; local caches; clear errors on bad input."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sspo_verl.data.cli import main as data_main
from sspo_verl.data.prepare import build_rows, prepare_dataset, read_verl_rows
from sspo_verl.data.readers import DataError
from sspo_verl.data.sources import EVAL_BENCHMARKS, SOURCES, TRAIN_SETS, get_source
from sspo_verl.data.templates import BOXED_INSTRUCTION, build_prompt

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    assert data_main(["prepare-all", "--input-dir", str(FIXTURES), "--out-dir", str(out)]) == 0
    return out


def _rows(path):
    return pq.read_table(path).to_pylist()


def test_every_dataset_is_written_in_verl_format(prepared):
    for name in TRAIN_SETS + EVAL_BENCHMARKS + ("aime25",):
        rows = read_verl_rows(prepared / f"{name}.parquet")
        for i, row in enumerate(rows):
            assert row["data_source"] == name and row["ability"] == "math"
            assert row["reward_model"]["style"] == "rule" and row["reward_model"]["ground_truth"]
            assert row["prompt"][-1]["role"] == "user"
            assert row["prompt"][-1]["content"].endswith("\n" + BOXED_INSTRUCTION)
            extra = row["extra_info"]
            assert extra["index"] == i and extra["split"] == ("train" if name in TRAIN_SETS else "test")
            assert row["prompt"][-1]["content"].startswith(extra["question"])


def test_answers_are_mapped_per_source(prepared):
    def answers(name):
        return [r["reward_model"]["ground_truth"] for r in _rows(prepared / f"{name}.parquet")]

    assert answers("math_l35") == [r"\frac{3}{4}", "3", r"\{1,2\}"]  # levels 3-5 only, from \boxed
    assert [r["extra_info"]["level"] for r in _rows(prepared / "math_l35.parquet")] == [3, 4, 5]
    assert answers("gsm8k") == ["7", "1000", "9"]  # after ####, commas removed
    assert answers("dapo_math_17k") == ["10", "81", "4"]  # deduplicated
    assert _rows(prepared / "dapo_math_17k.parquet")[0]["extra_info"]["question"] == "What is $5 + 5$?"
    assert answers("amc23") == ["0.75", "42"]  # numbers as text, 42.0 -> 42
    assert answers("olympiadbench") == ["2,-2", "120"]  # final_answer list, $ stripped
    assert answers("aime24") == ["200", "015", "32"]
    assert answers("math500") == [r"2\sqrt{2}", r"\frac{1}{2}", "9"]
    assert answers("minerva_math") == ["0.5", "2000"]


def test_verl_rlhf_dataset_reads_the_output(prepared, tmp_path):
    """The parquet goes through verl's own RLHFDataset (prompt filtering, raw_prompt)."""
    from omegaconf import OmegaConf

    from sspo_verl.demo.tiny_model import build_tokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    tokenizer = build_tokenizer(str(tmp_path / "tok"))
    config = OmegaConf.create({"max_prompt_length": 512, "filter_overlong_prompts": True, "cache_dir": str(tmp_path)})
    dataset = RLHFDataset(str(prepared / "math500.parquet"), tokenizer, config)
    assert len(dataset) == 3
    item = dataset[0]
    assert item["raw_prompt"][-1]["content"].startswith("Simplify")
    assert item["reward_model"]["ground_truth"] == r"2\sqrt{2}"


def test_templates():
    assert build_prompt("Q", "qwen_boxed") == [{"role": "user", "content": "Q\n" + BOXED_INSTRUCTION}]
    assert [m["role"] for m in build_prompt("Q", "qwen_boxed_system")] == ["system", "user"]
    assert build_prompt("Q", "qwen_math_system") == [
        {"role": "system", "content": BOXED_INSTRUCTION},
        {"role": "user", "content": "Q"},
    ]
    with pytest.raises(ValueError, match="unknown prompt template"):
        build_prompt("Q", "nope")


def test_missing_input_fails_clearly(tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    assert data_main(["prepare", "math500", "--input", str(missing), "--out", str(tmp_path / "o.parquet")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err
    assert not (tmp_path / "o.parquet").exists()


def test_corrupt_jsonl_names_file_and_line(tmp_path):
    bad = tmp_path / "math500.jsonl"
    bad.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "oops", \n')
    with pytest.raises(DataError, match=r"math500\.jsonl:2: invalid JSON"):
        prepare_dataset("math500", tmp_path / "o.parquet", input_path=str(bad))


def test_corrupt_parquet_names_file(tmp_path):
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"PAR1 definitely not parquet")
    with pytest.raises(DataError, match=r"x\.parquet: not a readable parquet"):
        prepare_dataset("dapo_math_17k", tmp_path / "o.parquet", input_path=str(bad))


def test_invalid_rows_fail_with_row_numbers_or_are_skipped(tmp_path):
    src = tmp_path / "aime24.jsonl"
    rows = [
        {"problem": "ok?", "answer": "1"},
        {"problem": "", "answer": "2"},
        {"problem": "no answer", "answer": None},
        {"problem": "fine", "answer": 3},
    ]
    src.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError) as info:
        prepare_dataset("aime24", tmp_path / "o.parquet", input_path=str(src))
    message = str(info.value)
    assert "2 of 4 rows are invalid" in message and "row 1: no question" in message and "row 2: no answer" in message
    assert "--skip-invalid" in message
    report = prepare_dataset("aime24", tmp_path / "o.parquet", input_path=str(src), skip_invalid=True)
    assert (report.written, report.invalid) == (2, 2)
    assert [r["reward_model"]["ground_truth"] for r in _rows(tmp_path / "o.parquet")] == ["1", "3"]


def test_wrong_file_for_dataset_fails(tmp_path):
    # GSM8K rows are not DAPO rows: every row invalid -> clear failure, not an empty parquet.
    with pytest.raises(DataError, match="rows are invalid"):
        prepare_dataset("dapo_math_17k", tmp_path / "o.parquet", input_path=str(FIXTURES / "gsm8k.jsonl"))
    assert not (tmp_path / "o.parquet").exists()


def test_hub_cache_snapshot_offline(tmp_path, monkeypatch):
    """A `hf download` snapshot of another revision than the pinned one, offline: used, and the label says so;
    config `main` and split `train` picked among several files."""
    snap = tmp_path / "hub" / "datasets--openai--gsm8k" / "snapshots" / "abc123"
    (tmp_path / "hub" / "datasets--openai--gsm8k" / "refs").mkdir(parents=True)
    (tmp_path / "hub" / "datasets--openai--gsm8k" / "refs" / "main").write_text("abc123")
    for config, split, answer in [("main", "train", "5"), ("main", "test", "6"), ("socratic", "train", "7")]:
        (snap / config).mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist([{"question": f"{config} {split}?", "answer": f"x\n#### {answer}"}])
        pq.write_table(table, snap / config / f"{split}-00000-of-00001.parquet")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    report = prepare_dataset("gsm8k", tmp_path / "o.parquet")
    assert report.source == "hf-hub-cache:openai/gsm8k@abc123 (not the pinned cc7b047b6e5bb11b4f1af84efc572db110a51b3c)"
    assert [r["reward_model"]["ground_truth"] for r in _rows(tmp_path / "o.parquet")] == ["5"]
    with pytest.raises(DataError, match="no files for split 'validation'"):
        prepare_dataset("gsm8k", tmp_path / "o.parquet", split="validation")


def test_not_cached_explains_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        prepare_dataset("aime25", tmp_path / "o.parquet")
    message = str(err.value)
    assert message.startswith("dataset aime25 (math-ai/aime25@563bb8404243c5f09de6ec262f2db674fe5bce9b")
    assert "HF_HUB_OFFLINE is set" in message and "sspo-data prepare-all --datasets aime25" in message
    assert "hf download --repo-type dataset math-ai/aime25 --revision 563bb84" in message


def test_save_to_disk_directory(tmp_path):
    import datasets

    dd = datasets.DatasetDict(
        {
            "test": datasets.Dataset.from_list([{"problem": "p", "answer": "1"}]),
            "train": datasets.Dataset.from_list([{"problem": "q", "answer": "2"}]),
        }
    )
    dd.save_to_disk(str(tmp_path / "saved"))
    prepare_dataset("math500", tmp_path / "o.parquet", input_path=str(tmp_path / "saved"))
    assert _rows(tmp_path / "o.parquet")[0]["reward_model"]["ground_truth"] == "1"  # math500's split: test
    with pytest.raises(DataError, match="split 'dev' not found"):
        prepare_dataset("math500", tmp_path / "o.parquet", input_path=str(tmp_path / "saved"), split="dev")


def test_generic_mapping_covers_benchmark_mirrors():
    """Other common mirrors of the eval sets map without code changes (their real column names)."""
    spec = get_source("aime24")
    records = [
        {"ID": "2024-I-1", "Problem": "P1", "Solution": "long text", "Answer": 204},  # Maxwell-Jia/AIME_2024
        {"id": 0, "problem": "P2", "solution": "\\boxed{25}", "url": "u"},  # math-ai/aime24: answer in solution
        {"id": 1, "problem": "P3", "solution": "$113$"},
        {"idx": 7, "problem": "P4", "solution": "We compute ... so the answer is \\boxed{\\frac{1}{2}}."},  # Qwen jsonl
        {"question": "P5", "final_answer": ["$3$", "$4$"]},  # OlympiadBench, two answers
    ]
    rows, _ = build_rows(spec, records, "mem")
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["204", "25", "113", "\\frac{1}{2}", "3, 4"]
    with pytest.raises(DataError, match="no answer"):
        build_rows(spec, [{"problem": "P", "solution": "A long derivation without any final box at all."}], "mem")


def test_build_rows_limit_and_known_sources():
    assert set(SOURCES) == set(TRAIN_SETS + EVAL_BENCHMARKS + ("aime25",))
    records = [{"question": f"q{i}", "answer": f"x #### {i}"} for i in range(10)]
    rows, report = build_rows(get_source("gsm8k"), records, "mem", limit=4)
    assert len(rows) == 4 and report.written == 4
    with pytest.raises(ValueError, match="unknown dataset"):
        get_source("math")


def test_a_dict_answer_is_an_invalid_row_not_its_repr(tmp_path):
    src = tmp_path / "aime24.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [{"problem": "ok?", "answer": "1"},
                                                     {"problem": "dict?", "answer": {"value": 3}}]))
    with pytest.raises(DataError, match=r"row 1: the answer is a mapping"):
        prepare_dataset("aime24", tmp_path / "o.parquet", input_path=str(src))


def test_duplicates_are_counted_whether_dropped_or_kept(tmp_path, capsys):
    src = tmp_path / "aime24.jsonl"  # an eval set: duplicates kept, and the summary says so
    src.write_text("\n".join(json.dumps({"problem": "same?", "answer": str(i)}) for i in range(3)))
    assert data_main(["prepare", "aime24", "--input", str(src), "--out", str(tmp_path / "o.parquet")]) == 0
    assert "wrote 3" in (out := capsys.readouterr().out) and "duplicates 2 (kept)" in out
    dedup = next(s for s in SOURCES.values() if s.dedup)
    rows, report = build_rows(dedup, [dict(r) for r in _dedup_records(dedup)], "x")
    assert report.duplicates == 1 and len(rows) == report.written == 1 and "(kept)" not in report.summary()


def _dedup_records(spec):
    """Two records with the same question for a dedup training set, in its own source format."""
    import itertools

    for record in itertools.islice(_fixture_records(spec.name), 1):
        return [record, dict(record)]
    raise AssertionError(f"no fixture for {spec.name}")


def _fixture_records(name):
    from sspo_verl.data.readers import resolve_records

    path = next(p for p in FIXTURES.iterdir() if p.stem == name)
    return resolve_records(str(path), None, None, None)[0]


def test_prompts_over_max_prompt_tokens_are_dropped_and_reported(tmp_path, tiny_model_dir, capsys):
    src = tmp_path / "aime24.jsonl"
    rows = [{"problem": "short?", "answer": "1"}, {"problem": "long " * 2000 + "?", "answer": "2"},
            {"problem": "also short?", "answer": "3"}]
    src.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "o.parquet"
    args = ["prepare", "aime24", "--input", str(src), "--out", str(out), "--max-prompt-tokens", "256"]
    assert data_main([*args, "--tokenizer", str(tiny_model_dir)]) == 0
    text = capsys.readouterr().out
    assert "wrote 2" in text and "too long 1" in text and "row 1: prompt of" in text and "> --max-prompt-tokens 256" in text
    assert [r["reward_model"]["ground_truth"] for r in _rows(out)] == ["1", "3"]
    assert data_main(args) == 2  # --max-prompt-tokens without a tokenizer
    assert "needs --tokenizer" in capsys.readouterr().err
