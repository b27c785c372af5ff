"""sspo-data downloads what is missing through huggingface_hub's real download code, against a Hub stand-in on
loopback (``HF_ENDPOINT``; tests/data/hub_server.py), never the internet: the pinned revision is the one fetched,
the Hub cache serves later runs offline (``HF_HUB_OFFLINE=1``) and with the Hub unreachable, and a dataset that is
neither cached nor reachable fails naming the dataset and the command that fetches it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sspo_verl.data.sources import SOURCES

from .hub_server import HubServer, Repo

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SSPO_DATA = [sys.executable, "-m", "sspo_verl.data.cli"]
MAIN_SHA = "0123456789abcdef0123456789abcdef01234567"  # amc23 has no pinned revision: read at main


def _repos(aime25_sha: str = SOURCES["aime25"].revision) -> dict[str, Repo]:
    return {
        "math-ai/aime25": Repo({"test.jsonl": (FIXTURES / "aime25.jsonl").read_bytes(), "README.md": b"card"},
                               aime25_sha),
        "math-ai/amc23": Repo({"data/test-00000-of-00001.jsonl": (FIXTURES / "amc23.jsonl").read_bytes()}, MAIN_SHA),
    }


def _sspo_data(tmp_path, endpoint: str, *args: str, offline: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_ETAG_TIMEOUT="5", HF_HUB_DOWNLOAD_TIMEOUT="5")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([*SSPO_DATA, "prepare-all", "--out-dir", str(tmp_path / "out"), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_download_then_cache_offline_and_unreachable(tmp_path):
    with HubServer(_repos()) as hub:
        proc = _sspo_data(tmp_path, hub.endpoint, "--datasets", "aime25,amc23")
        assert proc.returncode == 0, proc.stderr
        pinned = SOURCES["aime25"].revision
        assert f"hf-hub-download:math-ai/aime25@{pinned}" in proc.stdout
        assert f"hf-hub-download:math-ai/amc23@{MAIN_SHA}" in proc.stdout  # unpinned: main, the commit recorded
        assert ("GET", f"/datasets/math-ai/aime25/resolve/{pinned}/test.jsonl") in hub.requests
        assert not any("README" in path for _, path in hub.requests)  # only data files are fetched
        endpoint = hub.endpoint
    first = _rows(tmp_path / "out" / "aime25.parquet")
    assert [r["reward_model"]["ground_truth"] for r in first] == ["99", "121"]

    # the Hub cache serves the same files offline, and with the Hub gone (no HF_HUB_OFFLINE)
    for offline in (True, False):
        proc = _sspo_data(tmp_path, endpoint, "--datasets", "aime25,amc23", offline=offline)
        assert proc.returncode == 0, proc.stderr
        assert f"hf-hub-cache:math-ai/aime25@{pinned}" in proc.stdout and "hf-hub-download" not in proc.stdout
        again = _rows(tmp_path / "out" / "aime25.parquet")
        assert [(r["prompt"], r["reward_model"]) for r in again] == [(r["prompt"], r["reward_model"]) for r in first]

    # not cached: offline, or unreachable, fails naming the dataset and the command that fetches it
    proc = _sspo_data(tmp_path, endpoint, "--datasets", "math500", offline=True)
    assert proc.returncode == 2 and "dataset math500 (HuggingFaceH4/MATH-500@" in proc.stderr
    assert "HF_HUB_OFFLINE is set" in proc.stderr and "sspo-data prepare-all --datasets math500" in proc.stderr
    proc = _sspo_data(tmp_path, endpoint, "--datasets", "math500")
    assert proc.returncode == 2 and "dataset math500" in proc.stderr
    assert f"the download from {endpoint} failed" in proc.stderr
    assert not (tmp_path / "out" / "math500.parquet").exists()


def test_only_the_pinned_revision_is_downloaded(tmp_path):
    other = "f" * 40
    with HubServer(_repos(aime25_sha=other)) as hub:  # the Hub's aime25 is at another commit than the pin
        proc = _sspo_data(tmp_path, hub.endpoint, "--datasets", "aime25")
    assert proc.returncode == 2 and "dataset aime25" in proc.stderr and "RevisionNotFound" in proc.stderr
    assert not (tmp_path / "out" / "aime25.parquet").exists()


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_pins_are_commit_hashes_or_unpinned(name):
    revision = SOURCES[name].revision
    assert revision is None or (len(revision) == 40 and int(revision, 16) >= 0)
