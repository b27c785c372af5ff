"""docker/: static checks of the image definition (no Docker engine needed; hadolint and shellcheck: make lint).

The base image is pinned and agrees with the Dockerfile's stack ARGs and with verl's own vLLM-extra pins;
the GPU stack is frozen, never reinstalled; every COPY source exists and passes the .dockerignore; the files the
image copies build a wheel with the Hydra configs and the entry points; build.sh names the tag from the sources.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement

import sspo_verl
from sspo_verl.verl_version import SUPPORTED_VERL_VERSION
from tests.conftest import PACKAGE_SOURCES

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / "docker" / "Dockerfile.dockerignore"
BUILD_SH = REPO / "docker" / "build.sh"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _args() -> dict[str, str]:
    return dict(rest.split("=", 1) for word, rest in _instructions() if word == "ARG" and "=" in rest)




def test_base_image_is_verl_vllm_image_with_a_pinned_tag():
    froms = [rest for word, rest in _instructions() if word == "FROM"]
    assert len(froms) == 1
    image = froms[0]
    match = re.fullmatch(r"verlai/verl:vllm(\d)(\d\d)\.(dev\d+)(@sha256:[0-9a-f]{64})?", image)
    assert match, f"FROM {image}: expected verl's vLLM image with a fixed tag such as verlai/verl:vllm024.dev2"
    # The tag's vLLM minor (vllm024 -> 0.24) is the one the ARG and the tag of build.sh claim.
    major, minor = match.group(1), int(match.group(2))
    assert _args()["VLLM_VERSION"].startswith(f"{major}.{minor}.")
    # The image's label names the same base.
    assert f'org.opencontainers.image.base.name="{image.split("@")[0]}"' in DOCKERFILE.read_text()


def test_stack_args_match_verls_own_vllm_extra():
    """verl (the version installed here, pinned in setup.py) pins torch and vLLM in its `vllm` extra."""
    verl_requires = requires("verl") or []
    pins = {}
    for req in verl_requires:
        match = re.match(r"(torch|vllm)==([\w.]+); extra == \"vllm\"", req)
        if match:
            pins[match.group(1)] = match.group(2)
    assert set(pins) == {"torch", "vllm"}, verl_requires
    args = _args()
    assert (args["TORCH_VERSION"], args["VLLM_VERSION"]) == (pins["torch"], pins["vllm"])
    assert re.fullmatch(r"\d+\.\d+", args["CUDA_VERSION"])


def test_gpu_stack_is_frozen_and_never_reinstalled():
    runs = [rest for word, rest in _instructions() if word == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs, "the Dockerfile installs nothing"
    for cmd in installs:
        assert "--constraint /etc/sspo-verl-constraints.txt" in cmd, cmd
        for pkg in ("torch", "vllm", "flash-attn", "flash_attn", "transformers", "verl=="):
            assert not re.search(rf"(^|\s){re.escape(pkg)}(==|\s|$)", cmd.split("pip install", 1)[1]), (pkg, cmd)
    freeze = next(r for r in runs if "pip freeze" in r)
    for pkg in ("torch", "vllm", "flash[-_]attn"):
        assert pkg in freeze
    # The package is installed with the extras that carry verl's vLLM stack and the math reward.
    assert any('".[vllm,math]"' in cmd for cmd in installs)
    ours = [Requirement(r) for r in requires("sspo-verl") or []]
    assert any(r.name == "verl" and {"vllm", "cupy-cu130"} <= r.extras and str(r.specifier) == f"=={SUPPORTED_VERL_VERSION}"
               and r.marker and r.marker.evaluate({"extra": "vllm"}) for r in ours), ours
    assert any(r.marker and r.marker.evaluate({"extra": "math"}) for r in ours), ours


def test_copy_sources_exist_and_pass_the_dockerignore():
    copied = []
    for word, rest in _instructions():
        if word == "COPY":
            copied += rest.split()[:-1]
    assert {*PACKAGE_SOURCES, "recipes"} <= set(copied)  # the package_source fixture builds from the same files
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "the .dockerignore should start by excluding everything"
    for src in copied:
        assert (REPO / src).exists(), src
        assert f"!{src}" in lines, f"{src} is copied but excluded by {DOCKERIGNORE.name}"


def test_copied_files_build_a_wheel_with_configs_and_entry_points(tmp_path, package_source):
    """What `pip install .` does in the image, on the files the image copies (in a temporary directory)."""
    try:
        import setuptools  # noqa: F401  (present: build without fetching it)
        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []  # pip fetches setuptools into an isolated build environment
    src = package_source
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(tmp_path), "."],
        cwd=src, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    configs = {n for n in names if n.startswith("sspo_verl/hydra_configs/")}
    repo_configs = {f"sspo_verl/hydra_configs/{p.relative_to(REPO / 'hydra_configs')}"
                    for p in (REPO / "hydra_configs").rglob("*.yaml")}
    assert repo_configs <= configs
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "sspo-train = sspo_verl.train:main" in entry_points
    assert "sspo = sspo_verl.adapter.plugin" in entry_points


def test_build_script_tags_the_image_after_its_stack():
    out = subprocess.run(["bash", str(BUILD_SH), "--print-tag"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    args = _args()
    want = (f"sspo-verl:{sspo_verl.__version__}-verl{SUPPORTED_VERL_VERSION}-vllm{args['VLLM_VERSION']}"
            f"-torch{args['TORCH_VERSION']}-cu{args['CUDA_VERSION']}")
    assert out.stdout.strip() == want
    assert "verl0.9.1" in want  # the pin this project supports
    named = subprocess.run(["bash", str(BUILD_SH), "--print-tag"], capture_output=True, text=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin", "IMAGE_NAME": "ghcr.io/x/sspo-verl"})
    assert named.stdout.strip() == want.replace("sspo-verl:", "ghcr.io/x/sspo-verl:", 1)


def test_build_script_without_docker_says_so(tmp_path):
    out = subprocess.run(["bash", str(BUILD_SH)], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "DOCKER": "no-such-docker"})
    assert out.returncode != 0
    assert "no-such-docker not found" in out.stderr
