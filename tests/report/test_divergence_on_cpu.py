"""sspo_verl.report.divergence: a run that logged NaN / inf is shown as diverged (the step of its first
non-finite value), never hidden; an all-NaN metric reads NaN, not "not logged". Runs are JSONL files written the
way verl's file logger writes them (json.dumps of floats: NaN and Infinity literals)."""

from __future__ import annotations

import json
import math

from sspo_verl.report import write_report
from sspo_verl.report.divergence import find_divergence, only_non_finite
from sspo_verl.report.runs import load_run


def _run(path, rows):
    path.mkdir(parents=True)
    with open(path / "metrics.jsonl", "w", encoding="utf-8") as f:
        for step, data in rows:
            f.write(json.dumps({"step": step, "data": data}) + "\n")  # allow_nan: NaN / Infinity, as verl
    return str(path)


def _diverged(tmp_path):
    nan, inf = float("nan"), float("inf")
    good = _run(tmp_path / "grpo-tiny-seed1", [(s, {"critic/score/mean": 0.1 * s, "actor/pg_loss": 0.5})
                                               for s in (1, 2, 3)])
    bad = _run(tmp_path / "sspo-tiny-seed1", [
        (1, {"critic/score/mean": 0.2, "actor/pg_loss": 0.4, "actor/grad_norm": 1.0}),
        (2, {"critic/score/mean": 0.3, "actor/pg_loss": nan, "actor/grad_norm": inf}),
        (3, {"critic/score/mean": nan, "actor/pg_loss": nan, "actor/grad_norm": nan}),
    ])
    allnan = _run(tmp_path / "gspo-tiny-seed1", [(s, {"critic/score/mean": nan, "actor/pg_loss": 0.3})
                                                  for s in (1, 2)])
    return good, bad, allnan


def test_first_non_finite_step_per_metric(tmp_path):
    good, bad, allnan = (load_run(p) for p in _diverged(tmp_path))
    found = find_divergence([good, bad, allnan])
    assert [d.run for d in found] == ["gspo-tiny-seed1", "sspo-tiny-seed1"]  # earliest first
    sspo = found[1]
    assert sspo.first_step == 2
    assert sspo.metrics == {"actor/grad_norm": 2, "actor/pg_loss": 2, "critic/score/mean": 3}
    assert math.isinf(sspo.first_values["actor/grad_norm"]) and math.isnan(sspo.first_values["actor/pg_loss"])
    assert only_non_finite([allnan], "critic/score/mean") and not only_non_finite([bad], "critic/score/mean")


def test_the_report_shows_divergence_and_an_all_nan_metric_as_nan(tmp_path):
    report = write_report(list(_diverged(tmp_path)), str(tmp_path / "report"))
    text = open(report.markdown, encoding="utf-8").read()
    assert "## Divergence" in text and "2 run(s) logged NaN or inf" in text
    row = next(line for line in text.splitlines() if "`sspo-tiny-seed1`" in line and "| 2 |" in line)
    assert "`actor/grad_norm` (2, inf)" in row and "`actor/pg_loss` (2, nan)" in row
    gspo = next(line for line in text.splitlines() if line.startswith("| gspo |") and "NaN (diverged)" in line)
    assert gspo  # gspo's reward: logged, every value NaN — not "not logged"
    summary = json.load(open(report.summary, encoding="utf-8"))
    assert summary["divergence"]["sspo-tiny-seed1"]["first_step"] == 2
    assert report.divergence and report.divergence[0].run == "gspo-tiny-seed1"


def test_a_finite_run_has_no_divergence_section(tmp_path):
    good, _, _ = _diverged(tmp_path)
    report = write_report([good], str(tmp_path / "report"))
    assert "## Divergence" not in open(report.markdown, encoding="utf-8").read() and report.divergence == []
