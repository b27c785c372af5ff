"""Every install line that README.md and docker/ give for GPU machines resolves with pip's own resolver
(``pip install --dry-run --ignore-installed --report``) against the package index, read from the files themselves.

Nothing is installed and no large wheel is downloaded: the index this machine and CI reach serves no PEP 658
metadata links (pip then downloads every wheel: 3.86 GB for the README's line, measured), so pip reads each wheel's
METADATA by HTTP range requests (``--use-feature=fast-deps``, with pip ``PIP_VERSION``: the pip 23.2.1 of a
Python 3.11 venv still downloaded every wheel, 7.1 GB for this module); the test fails if pip downloads any file
over ``MAX_DOWNLOAD_MB``. It needs the network to PyPI, as CI has; when the index
cannot be reached it fails, naming the cause, rather than skipping: a skip would let a broken install line pass
unnoticed, and this resolution is the only check of those lines before a user runs them.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sspo_verl.verl_version import SUPPORTED_VERL_VERSION
from tests.conftest import copy_package_sources

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "README.md", REPO / "docker" / "README.md")
DOCKERFILE = REPO / "docker" / "Dockerfile"
PIP_VERSION = "26.3"  # run from a scratch --target dir, whatever pip the test's environment has
MAX_DOWNLOAD_MB = 10  # the flash-attn source (8.4 MB) is the largest file a line needs; torch's wheel is 531 MB
# sdist-only distributions in the GPU stack whose build needs nothing but setuptools (pure Python; the measured
# full install built them): any other sdist is what broke the README's install before (flash-attn) and fails here.
PURE_PYTHON_SDISTS = {"antlr4-python3-runtime"}
# No nvcc here: with this, flash-attn's setup.py writes its metadata (all a dry run needs) without compiling.
PIP_ENV = {"FLASH_ATTENTION_SKIP_CUDA_BUILD": "TRUE", "PIP_PROGRESS_BAR": "off"}
_NETWORK_ERRORS = ("NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution",
                   "Network is unreachable", "ConnectTimeout", "ReadTimeoutError")


@dataclass(frozen=True)
class InstallLine:
    source: str  # "README.md:43"
    text: str  # the line as the docs give it
    chain: tuple[tuple[str, ...], ...]  # the `pip install` arguments of each `&&`-chained command, in order

    def __str__(self) -> str:
        return f"{self.source}: {self.text}"


def _pip_segments(command: str) -> tuple[tuple[str, ...], ...]:
    """The arguments after ``pip install`` of every ``&&``-chained pip install in a shell command."""
    segments = []
    for part in command.split("&&"):
        words = shlex.split(part, comments=True)
        for i in range(len(words) - 1):
            if words[i].endswith("pip") and words[i + 1] == "install":
                segments.append(tuple(words[i + 2:]))
                break
    return tuple(segments)


def install_lines() -> list[InstallLine]:
    """`pip install` commands of the fenced code blocks of README.md and docker/README.md, and the Dockerfile's."""
    lines = []
    for doc in DOCS:
        fenced = False
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif fenced and "pip install" in line:
                lines.append(InstallLine(f"{doc.relative_to(REPO)}:{number}", line.strip(), _pip_segments(line)))
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    for line in text.splitlines():
        if line.startswith("RUN ") and "pip install" in line:
            lines.append(InstallLine(str(DOCKERFILE.relative_to(REPO)), " ".join(line.split()), _pip_segments(line)))
    return lines


def _dockerfile_constraints(path: Path) -> Path:
    """The constraints the Dockerfile freezes from its base image, as its ARGs name them (the build checks the two
    agree): torch and vLLM at the image's versions."""
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(), re.M))
    path.write_text(f"torch=={args['TORCH_VERSION']}\nvllm=={args['VLLM_VERSION']}\n")
    return path


def _pip(target: Path) -> dict:
    """The environment that runs pip ``PIP_VERSION`` (installed into ``target``) as ``python -m pip``."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    f"pip=={PIP_VERSION}"], check=True, capture_output=True, timeout=300)
    return {**os.environ, **PIP_ENV, "PYTHONPATH": str(target)}


def _resolve(args: tuple[str, ...], cwd: Path, work: Path, env: dict) -> dict:
    """``pip install <args> --dry-run --ignore-installed --report``: the report, pip's log, seconds, largest download."""
    report, log = work / "report.json", work / "pip.log"
    cmd = [sys.executable, "-m", "pip", "install", *args, "--dry-run", "--ignore-installed", "--use-feature=fast-deps",
           "--report", str(report), "--log", str(log), "--quiet", "--timeout", "30", "--retries", "2"]
    start = time.monotonic()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - start
    log_text = log.read_text() if log.exists() else ""
    if out.returncode != 0:
        network = any(e in out.stdout + out.stderr + log_text for e in _NETWORK_ERRORS)
        cause = ("the package index could not be reached (this test needs the network to PyPI, as CI has)"
                 if network else "pip could not resolve it")
        raise AssertionError(f"{cause}: {shlex.join(cmd)}\n{(out.stdout + out.stderr)[-3000:]}")
    downloads = [(float(size) * {"kB": 1e-3, "MB": 1.0, "GB": 1e3}[unit], name) for name, size, unit in
                 re.findall(r"Downloading (\S+) \(([\d.]+) (kB|MB|GB)\)", log_text)]
    return {"report": json.loads(report.read_text()), "seconds": seconds, "downloads": downloads}


def _resolve_line(line: InstallLine, src: Path, work: Path, pip_env: dict) -> list[dict]:
    """Resolve each command of the line; a command that a later one needs (``pip install wheel && ...``) is
    installed for real into a scratch ``--target`` put on PYTHONPATH (so it must be small)."""
    env = dict(pip_env)
    results = []
    for i, args in enumerate(line.chain):
        step = work / str(i)
        step.mkdir(parents=True)
        args = tuple(str(_dockerfile_constraints(step / "constraints.txt")) if a.startswith("/etc/") else a
                     for a in args)
        results.append(_resolve(args, src, step, env))
        if i < len(line.chain) - 1:
            target = step / "target"
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), *args],
                           cwd=src, env=env, check=True, capture_output=True, timeout=300)
            env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(target)])
    return results


LINES = install_lines()


@pytest.fixture(scope="module")
def resolved(tmp_path_factory):
    """Every line resolved, in parallel (pip waits on the network, not the CPU); line -> results or the error."""
    src = copy_package_sources(tmp_path_factory.mktemp("src"))  # what `.` means in the lines: the files setup.py reads
    work = tmp_path_factory.mktemp("pip")
    pip_env = _pip(work / "pip")
    with concurrent.futures.ThreadPoolExecutor(len(LINES)) as pool:
        futures = {line: pool.submit(_resolve_line, line, src, work / str(n), pip_env) for n, line in enumerate(LINES)}
    return {line: (f.exception() or f.result()) for line, f in futures.items()}


def test_the_docs_give_the_gpu_install_lines():
    texts = [line.text for line in LINES]
    assert any('".[gpu,math]"' in t for t in texts), texts  # README's GPU install
    assert any('".[vllm,math]"' in t and line.source.endswith("Dockerfile") for line in LINES for t in [line.text])
    assert all(line.chain for line in LINES), [str(line) for line in LINES if not line.chain]


@pytest.mark.slow  # one resolution of the GPU stack: ~100 s cold (452 index pages, range requests)
@pytest.mark.parametrize("line", LINES, ids=[line.source for line in LINES])
def test_install_line_resolves_from_wheels_without_large_downloads(line, resolved):
    results = resolved[line]
    if isinstance(results, BaseException):
        raise AssertionError(f"{line}\n{results}") from results
    for args, result in zip(line.chain, results):
        installs = {canonicalize_name(item["metadata"]["name"]): item for item in result["report"]["install"]}
        big = [(mb, name) for mb, name in result["downloads"] if mb > MAX_DOWNLOAD_MB]
        assert not big, f"{line}: pip downloaded {big} to resolve (no PEP 658 metadata?)"
        requested = {canonicalize_name(Requirement(a).name) for a in args if re.match(r"^[A-Za-z][\w.-]*(\[|==|$)", a)}
        sdists = {name for name, item in installs.items()
                  if not item["download_info"]["url"].endswith(".whl") and not item.get("is_direct")}
        unexpected = sdists - PURE_PYTHON_SDISTS - requested
        assert not unexpected, (
            f"{line}: {sorted(unexpected)} would be built from source (no wheel for this platform); a build that "
            "needs torch or nvcc fails under pip's build isolation, as flash-attn did"
        )
        if "verl" in installs:  # the GPU stack: verl at our pin, with its own vllm-extra torch and vLLM
            assert installs["verl"]["metadata"]["version"] == SUPPORTED_VERL_VERSION
            pins = {}
            for req in map(Requirement, installs["verl"]["metadata"].get("requires_dist", [])):
                if req.marker and req.marker.evaluate({"extra": "vllm"}) and req.name in ("torch", "vllm"):
                    pins[req.name] = next(iter(req.specifier)).version
            assert {name: installs[name]["metadata"]["version"] for name in pins} == pins, line
            assert set(pins) == {"torch", "vllm"}
            # verl registers its NCCL checkpoint engine (mode=separate_async on GPUs) only where cupy imports
            assert "cupy-cuda13x" in installs, line
