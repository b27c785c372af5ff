"""sspo-report on the command line: run, sweep and project directories; bad input exits 2 naming the path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from sspo_verl.report.cli import main


def test_a_project_directory_stands_for_its_runs(fixture_runs, tmp_path, capsys):
    project = os.path.dirname(fixture_runs["grpo-tiny-seed1"])
    out = tmp_path / "report"
    assert main([project, "--out", os.fspath(out), "--smooth", "2"]) == 0
    printed = capsys.readouterr().out
    assert "grpo: 2 run(s), seeds 1, 2" in printed and "sspo: 2 run(s), seeds 1, 2" in printed
    assert (out / "report.md").is_file() and (out / "clipping.png").is_file()


def test_a_directory_without_metrics_exits_2_naming_it(fixture_runs, tmp_path, capsys):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    assert main([fixture_runs["grpo-tiny-seed1"], os.fspath(empty), "--out", os.fspath(tmp_path / "o")]) == 2
    assert f"sspo-report: {empty}: no metrics here" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main([fixture_runs["grpo-tiny-seed1"], "--smooth", "0"]) == 2
    copy = tmp_path / "again" / "grpo-tiny-seed1"
    shutil.copytree(fixture_runs["grpo-tiny-seed1"], copy)
    assert main([fixture_runs["grpo-tiny-seed1"], os.fspath(copy), "--out", os.fspath(tmp_path / "o")]) == 2
    assert "pass only one of them" in capsys.readouterr().err


def test_the_console_script(fixture_runs, tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "sspo-report")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "sspo_verl.report.cli"]
    result = subprocess.run([*command, fixture_runs["sspo-tiny-seed1"], "--out", os.fspath(tmp_path / "r"),
                             "--source", "tensorboard"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "sspo: 1 run(s), seeds 1" in result.stdout and (tmp_path / "r" / "sspo.png").is_file()


def test_an_out_that_is_a_file_or_below_one_exits_2_naming_it(fixture_runs, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main([fixture_runs["grpo-tiny-seed1"], "--out", os.fspath(afile)]) == 2
    assert f"--out {afile} is a file" in capsys.readouterr().err
    assert main([fixture_runs["grpo-tiny-seed1"], "--out", os.fspath(afile / "sub")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the report to --out {afile / 'sub'}" in err and "Traceback" not in err
    assert afile.read_text() == "keep me"
