"""The demo's figure and summary from verl file-logger records."""

from __future__ import annotations

import math

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


def test_plot_writes_a_png(tmp_path):
    runs = {"grpo": _records(8), "gspo": _records(8, reward0=0.2), "sspo": _records(8, sspo=True)}
    runs["gspo"][3]["data"]["actor/entropy"] = math.nan  # a NaN is skipped, not plotted
    path = report.plot_comparison(runs, str(tmp_path / "demo.png"), title="t")
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_summary_has_a_row_per_run_and_sspo_metrics():
    runs = {"grpo": _records(10), "sspo": _records(10, sspo=True)}
    info = {
        "grpo": {"ok": True, "wall_s": 120.0, "startup_s": 95.0, "peak_rss_gb": 5.1, "metrics": "grpo/metrics.jsonl"},
        "sspo": {"ok": False, "error": "sspo: no new step\nlog", "wall_s": 1.0, "metrics": "sspo/metrics.jsonl"},
    }
    md = report.summary_markdown(runs, info, {"machine": "test box"}, "demo.png")
    assert "- **machine**: test box" in md and "![comparison](demo.png)" in md
    grpo_row = next(line for line in md.splitlines() if line.startswith("| grpo |"))
    assert "| 10 | 0.330 → 0.380 |" in grpo_row and "| 5.10 |" in grpo_row and "| 3.05 |" in grpo_row
    assert "| sspo | 2.55 | 0.0200 | 0.0000 |" in md
    assert "- sspo: sspo: no new step" in md  # failures are listed
    assert "not evidence about which algorithm is better" in md
