"""The demo's job table, and its use of the shared report library."""

from __future__ import annotations

import pytest

from sspo_verl.demo import report


def _records(n, *, sspo=False, reward0=0.3):
    out = []
    for s in range(1, n + 1):
        data = {
            "critic/score/mean": reward0 + 0.01 * s,
            "actor/entropy": 6.5 - 0.05 * s,
            "actor/pg_clipfrac": 0.01,
            "response_length/mean": 30.0,
            "timing_s/step": 20.0 if s == 1 else 3.0 + 0.1 * (s % 2),
        }
        if sspo:
            data |= {"actor/sspo/segments_per_seq": 2.0 + 0.1 * s, "actor/sspo/segment_clipfrac": 0.02,
                     "actor/sspo/seq_all_clipped_frac": 0.0}
        out.append({"step": s, "data": data})
    return out


def test_step_time_stats_skip_warmup():
    st = report.step_time_stats(_records(6))
    assert st["n"] == 4 and st["max"] < 20.0  # the 20 s first step is excluded
    assert st["median"] == pytest.approx(3.05)
    assert report.step_time_stats(_records(2)) is None


def test_jobs_markdown_has_a_row_per_run_and_lists_failures():
    runs = {"grpo": _records(10), "sspo": _records(10, sspo=True)}
    info = {
        "grpo": {"ok": True, "wall_s": 120.0, "startup_s": 95.0, "peak_rss_gb": 5.1},
        "sspo": {"ok": False, "error": "sspo: no new step\nlog", "wall_s": 1.0},
    }
    md = report.jobs_markdown(runs, info)
    grpo_row = next(line for line in md.splitlines() if line.startswith("| grpo |"))
    assert grpo_row == "| grpo | 10 | 3.05 | 95 | 5.10 | 120 |"
    assert "| sspo | 10 | 3.05 | n/a | n/a | 1 |" in md
    assert "- sspo: sspo: no new step" in md  # failures are listed, first line only
    assert "not evidence about which algorithm is better" in md


def test_demo_report_is_the_shared_report_library(tmp_path):
    """The demo's figures and tables come from sspo_verl.report (what sspo-report writes), on real CPU runs."""
    import os
    import shutil

    from sspo_verl.report import write_report

    fixtures = os.path.join(os.path.dirname(__file__), "..", "report", "fixtures", "cpu_runs")
    runs = sorted(d for d in os.listdir(fixtures) if os.path.isdir(os.path.join(fixtures, d)))
    assert runs, "real CPU run fixtures missing"
    for d in runs:
        shutil.copytree(os.path.join(fixtures, d), tmp_path / d)
    out = write_report([str(tmp_path / d) for d in runs], str(tmp_path / "out"), window=5,
                       extra_markdown=report.jobs_markdown({d: _records(3) for d in runs}, {}))
    text = open(out.markdown, encoding="utf-8").read()
    assert "## The runs as jobs" in text and "training.png" in text
    for fig in out.figures:
        with open(fig, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
