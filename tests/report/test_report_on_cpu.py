"""write_report on the logs of real CPU runs: figures, tables with the right numbers, missing metrics, sources."""

from __future__ import annotations

import json
import os
import shutil
import statistics

import pytest

from sspo_verl.report import write_report
from sspo_verl.report.aggregate import SeedStat
from sspo_verl.report.tables import format_stat
from tests.report.fixture_runs import raw_steps

VAL = "val-core/sspo_verl/arith_demo/reward/mean@1"


def _expected(run_dirs, key, stat):
    """Mean ± sample std over seeds of a per-run statistic, from the raw JSONL (independent of the package)."""
    values = []
    for run_dir in run_dirs:
        series = [row[key] for _, row in sorted(raw_steps(run_dir).items()) if key in row]
        if series:
            values.append({"final": series[-1], "best": max(series), "mean": statistics.fmean(series)}[stat])
    std = statistics.stdev(values) if len(values) > 1 else None
    return SeedStat(statistics.fmean(values), std, len(values))


def _png_shape(path):
    import matplotlib.image

    return matplotlib.image.imread(path).shape


@pytest.fixture(scope="module")
def report(shared_fixture_runs, tmp_path_factory):
    """The report of the four fixture runs, written once for the module (drawing takes seconds)."""
    out = tmp_path_factory.mktemp("report")
    return write_report(list(shared_fixture_runs.values()), os.fspath(out), title="fixture runs")


def test_figures_are_written_for_every_algorithm(report):
    names = sorted(os.path.basename(f) for f in report.figures)
    assert names == ["clipping.png", "off_policy.png", "sspo.png", "training.png"]
    for path in report.figures:
        height, width, channels = _png_shape(path)
        assert height > 300 and width > 400 and channels in (3, 4)
    assert list(report.groups) == ["grpo", "sspo"]


TABLE_STATS = (
    ("critic/score/mean", "final"),
    ("critic/score/mean", "best"),
    (VAL, "final"),
    (VAL, "best"),
    ("actor/entropy", "final"),
    ("response_length/mean", "final"),
    ("actor/diag/token/clipfrac", "mean"),
    ("actor/diag/subsentence/clipfrac", "mean"),
    ("actor/diag/sequence/seq_all_clipped_frac", "mean"),
    ("actor/diag/kl_old_new", "mean"),
    ("actor/diag/zero_adv_seq_frac", "mean"),
)


def test_table_numbers_are_the_fixtures_statistics(report, shared_fixture_runs):
    summary = json.load(open(report.summary, encoding="utf-8"))["stats"]
    markdown = open(report.markdown, encoding="utf-8").read()
    for key, stat in TABLE_STATS:
        for algorithm in ("grpo", "sspo"):
            dirs = [shared_fixture_runs[f"{algorithm}-tiny-seed{s}"] for s in (1, 2)]
            expected = _expected(dirs, key, stat)
            got = summary[algorithm][f"{key}:{stat}"]
            assert got["n"] == 2 and got["mean"] == pytest.approx(expected.mean, rel=1e-12), (key, stat)
            assert got["std"] == pytest.approx(expected.std, rel=1e-9, abs=1e-15), (key, stat)
            assert format_stat(expected) in markdown, (key, stat)


def test_resumed_run_counts_with_its_last_step_and_rows_name_seeds(report, shared_fixture_runs):
    markdown = open(report.markdown, encoding="utf-8").read()
    assert "| grpo | 2 (1, 2) | 2–3 |" in markdown  # seed 1 resumed to step 3, seed 2 stopped at 2
    assert "| sspo | 2 (1, 2) | 2 |" in markdown
    # the Runs table: 8 prompts / 2 per mini-batch = 4 mini-batches, 1 epoch (from each resolved_config.yaml)
    assert markdown.count("| 4 × 1 = 4 |") == 4
    # grpo's final reward: step 3 of seed 1 (second attempt's file) and step 2 of seed 2
    final = json.load(open(report.summary, encoding="utf-8"))["stats"]["grpo"]["critic/score/mean:final"]
    seed1 = raw_steps(shared_fixture_runs["grpo-tiny-seed1"])[3]["critic/score/mean"]
    seed2 = raw_steps(shared_fixture_runs["grpo-tiny-seed2"])[2]["critic/score/mean"]
    assert final["mean"] == pytest.approx((seed1 + seed2) / 2)


def test_sspo_only_metrics_show_as_missing_for_grpo(report):
    stats = json.load(open(report.summary, encoding="utf-8"))["stats"]
    assert stats["grpo"]["actor/sspo/segments_per_seq:mean"] is None
    assert stats["sspo"]["actor/sspo/segments_per_seq:mean"]["mean"] >= 1.0


def test_missing_metrics_are_skipped_with_a_note(fixture_runs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "sspo.png").write_bytes(b"stale")
    stripped = []
    for name in ("grpo-tiny-seed1", "grpo-tiny-seed2"):  # GRPO only, validation removed
        run_dir = fixture_runs[name]
        for part in os.listdir(run_dir):
            if part.endswith(".jsonl"):
                path = os.path.join(run_dir, part)
                lines = [json.loads(x) for x in open(path, encoding="utf-8")]
                with open(path, "w", encoding="utf-8") as fh:
                    for record in lines:
                        data = {k: v for k, v in record["data"].items() if not k.startswith("val-")}
                        fh.write(json.dumps({"step": record["step"], "data": data}) + "\n")
        stripped.append(run_dir)
    report = write_report(stripped, os.fspath(out))
    assert not (out / "sspo.png").exists()  # not written, and the stale one is gone
    notes = "\n".join(report.notes)
    assert "sspo.png: not written" in notes and "val-core/<source>/<variable>/mean@<n>" in notes
    markdown = open(report.markdown, encoding="utf-8").read()
    assert "## Notes" in markdown and "val " not in markdown.split("## Tables")[1].split("## Notes")[0]


def test_tensorboard_source_gives_the_same_tables(shared_fixture_runs, tmp_path, report):
    board = write_report(list(shared_fixture_runs.values()), os.fspath(tmp_path / "tb"), source="tensorboard")
    jsonl = json.load(open(report.summary, encoding="utf-8"))["stats"]
    tb = json.load(open(board.summary, encoding="utf-8"))["stats"]
    for label in jsonl:
        for column, value in jsonl[label].items():
            if value is None:
                assert tb[label][column] is None
            else:
                assert tb[label][column]["mean"] == pytest.approx(value["mean"], rel=1e-5, abs=1e-7), column


def test_demo_style_run_directories(fixture_runs, tmp_path):
    """The CPU demo writes <out>/demo/<algorithm>/ with resolved_config.yaml: one run per algorithm."""
    demo = tmp_path / "demo"
    for algorithm in ("grpo", "sspo"):
        shutil.copytree(fixture_runs[f"{algorithm}-tiny-seed1"], demo / algorithm)
    report = write_report([os.fspath(demo / "grpo"), os.fspath(demo / "sspo")], os.fspath(demo),
                          conditions={"machine": "test"}, extra_markdown="## Timing\n\nx")
    markdown = open(report.markdown, encoding="utf-8").read()
    assert "- **machine**: test" in markdown and markdown.rstrip().endswith("## Timing\n\nx")
    assert {k: [r.seed for r in v] for k, v in report.groups.items()} == {"grpo": [1], "sspo": [1]}
    stats = json.load(open(report.summary, encoding="utf-8"))["stats"]
    assert stats["grpo"]["critic/score/mean:final"]["std"] is None  # one seed: no spread
