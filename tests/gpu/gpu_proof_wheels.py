"""The wheels the GPU proof carries to the lent GPU machine, and their manifest (``gpu_proof_wheels.json``).

The machine (torch 2.11 cu130, Python 3.12, no network; /work/.library/device/KINDS.md lists its packages) lacks
verl and what verl imports; :data:`WHEELS` is that list, each pinned at the version the README's GPU install
resolves (verl 0.9.1's stack), every one a module the proof's code path imports (found by importing that path
with ``sys.modules`` recorded, less what the image holds). Ray is needed only because ``import verl`` imports
it: its wheel (79 MB) is carried without the parts that start or serve a cluster (:data:`RAY_DROPPED`), which
the proof never starts. The total stays under the device call's 64 MiB with the repository.

    python tests/gpu/gpu_proof_wheels.py build     # pip download into .gpu-wheels/ (git-ignored), slim Ray, write the manifest
    python tests/gpu/gpu_proof_wheels.py verify    # .gpu-wheels/ against the manifest: names, sizes, sha256, total
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHEEL_DIR = REPO / ".gpu-wheels"  # git-ignored; the device call carries it (carry: [".gpu-wheels"])
MANIFEST = Path(__file__).with_name("gpu_proof_wheels.json")
LIMIT = 64 * 2**20  # the device call's working tree + carried paths
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")

# (distribution, version): missing from the GPU image and imported on the proof's path. Versions: what
# `pip install -e ".[gpu,math]"` resolves next to torch 2.11 (transformers 5.9.0 there: the image's 5.17.0 is newer
# than vLLM 0.24 allows, so the proof runs the version users get).
WHEELS = (
    ("verl", "0.9.1"),
    ("ray", "2.60.0"),
    ("transformers", "5.9.0"),
    ("tokenizers", "0.22.2"),
    ("tensordict", "0.10.0"),
    ("pyvers", "0.1.0"),
    ("omegaconf", "2.3.1"),
    ("hydra-core", "1.3.8"),
    ("antlr4-python3-runtime", "4.9.3"),
    ("codetiming", "1.4.0"),
    ("datasets", "5.2.0"),
    ("dill", "0.4.1"),
    ("multiprocess", "0.70.19"),
    ("torchdata", "0.11.0"),
    ("TransferQueue", "0.1.11"),
    ("msgspec", "0.23.0"),
    ("orjson", "3.13.0"),
    ("pyzmq", "27.3.0"),
    ("fastapi", "0.136.3"),
    ("starlette", "1.10.0"),
    ("uvicorn", "0.55.0"),
    ("pydantic", "2.14.4"),
    ("pydantic-core", "2.50.5"),
    ("pydantic-extra-types", "2.11.1"),
    ("annotated-types", "0.8.0"),
    ("typing-inspection", "0.4.5"),
    ("email-validator", "2.4.0"),
    ("python-multipart", "0.0.34"),
    ("watchfiles", "1.3.0"),
    ("sniffio", "1.3.1"),
    ("cachetools", "8.0.3"),
    ("jmespath", "1.1.0"),
    ("colorful", "0.5.8"),
    ("jsonschema", "4.26.0"),
    ("jsonschema-specifications", "2025.9.1"),
    ("referencing", "0.37.0"),
    ("rpds-py", "2026.9.1"),
    ("nvtx", "0.2.17"),
)
# Pure-Python packages published only as an sdist: built into a py3-none-any wheel here (pip wheel --no-deps).
FROM_SDIST = ("antlr4-python3-runtime",)
# Parts of Ray's wheel that only start, serve or extend a cluster (never imported by `import ray` / verl here).
RAY_DROPPED = (
    "ray/jars/",  # the Java worker (31 MiB)
    "ray/core/src/ray/gcs/gcs_server",  # the cluster's control-plane binary (ray.init starts it)
    "ray/core/src/ray/raylet/raylet",  # the node daemon binary (ray.init starts it)
    "ray/dashboard/client/",  # the dashboard's web build
    "ray/rllib/", "ray/data/", "ray/serve/", "ray/tune/", "ray/train/", "ray/llm/",  # libraries verl does not import
)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def wheel_of(name: str, directory: Path) -> Path:
    """The one wheel of distribution ``name`` in ``directory``."""
    found = [p for p in directory.glob("*.whl") if _norm(p.name.split("-")[0]) == _norm(name)]
    if len(found) != 1:
        raise SystemExit(f"{directory}: expected one wheel of {name}, found {[p.name for p in found]}")
    return found[0]


def slim_ray(path: Path) -> list[str]:
    """Rewrite Ray's wheel without :data:`RAY_DROPPED` (RECORD rewritten to match); the dropped prefixes found."""
    dropped = set()
    tmp = path.with_suffix(".slim")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            prefix = next((p for p in RAY_DROPPED if info.filename.startswith(p)), None)
            if prefix:
                dropped.add(prefix)
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines()
                data = ("\n".join(l for l in lines if not any(l.startswith(p) for p in RAY_DROPPED)) + "\n").encode()
            dst.writestr(info, data)
    tmp.replace(path)
    return sorted(dropped)


def build(directory: Path = WHEEL_DIR) -> dict:
    """Download every wheel of :data:`WHEELS` for CPython 3.12 manylinux x86-64, slim Ray, write the manifest."""
    directory.mkdir(exist_ok=True)
    for old in directory.glob("*.whl"):
        old.unlink()
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           PYTHON, "--implementation", "cp", "-d", str(directory)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + [f"{n}=={v}" for n, v in WHEELS if n not in FROM_SDIST], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(directory)]
                   + [f"{n}=={v}" for n, v in WHEELS if n in FROM_SDIST], check=True)
    entries = []
    for name, version in WHEELS:
        path = wheel_of(name, directory)
        note = "PyPI sdist, built here (pure Python)" if name in FROM_SDIST else "PyPI"
        if name == "ray":
            note = "PyPI, slimmed: dropped " + ", ".join(slim_ray(path))
        entries.append(dict(name=name, version=version, file=path.name, size=path.stat().st_size,
                            sha256=sha256(path), source=note))
    manifest = dict(python=PYTHON, platforms=list(PLATFORMS), total_bytes=sum(e["size"] for e in entries),
                    wheels=entries)
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def verify(directory: Path = WHEEL_DIR, manifest_path: Path = MANIFEST, require_wheels: bool = True) -> list[str]:
    """``directory`` against the manifest: the problems as sentences (empty: it matches, and fits the limit).
    ``require_wheels=False``: a missing ``directory`` is no problem (the manifest is still checked)."""
    manifest = json.loads(manifest_path.read_text())
    problems = []
    pinned = {(_norm(n), v) for n, v in WHEELS}
    listed = {(_norm(e["name"]), e["version"]) for e in manifest["wheels"]}
    if pinned != listed:
        problems.append(f"manifest {manifest_path.name} lists {sorted(listed ^ pinned)} unlike WHEELS: rebuild it "
                        f"(python tests/gpu/gpu_proof_wheels.py build)")
    if not directory.is_dir():
        missing = [f"{directory} is missing: python tests/gpu/gpu_proof_wheels.py build"] if require_wheels else []
        return problems + missing
    present = {p.name for p in directory.glob("*.whl")}
    for e in manifest["wheels"]:
        path = directory / e["file"]
        if e["file"] not in present:
            problems.append(f"{e['file']} ({e['name']} {e['version']}) is missing from {directory}")
        elif path.stat().st_size != e["size"] or sha256(path) != e["sha256"]:
            problems.append(f"{e['file']}: size/sha256 differ from the manifest (rebuild both)")
    extra = present - {e["file"] for e in manifest["wheels"]}
    if extra:
        problems.append(f"{directory} holds wheels the manifest does not list: {sorted(extra)} (two versions of "
                        "a package stop the install there)")
    total = manifest["total_bytes"]
    if total > LIMIT:
        problems.append(f"the wheels total {total / 2**20:.1f} MiB, over the call's {LIMIT / 2**20:.0f} MiB")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("build", "verify"))
    args = parser.parse_args(argv)
    if args.action == "build":
        m = build()
        print(f"{len(m['wheels'])} wheels, {m['total_bytes'] / 2**20:.1f} MiB -> {WHEEL_DIR}; manifest {MANIFEST}")
        for e in m["wheels"]:
            print(f"  {e['name']:28s} {e['version']:10s} {e['size'] / 2**20:7.2f} MiB  {e['sha256'][:12]}  {e['source']}")
    problems = verify()
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
