"""The ``verl.plugins`` entry point (``sspo = sspo_verl.adapter.plugin`` in setup.py).

verl imports this module in every process that imports verl — the driver, the TaskRunner, every Ray worker —
so that ``loss_mode=sspo`` and ``adv_estimator=sspo`` are registered, and the adapter's patches (micro-batch
context, diagnostics, the ``sspo`` session path, SSPO's entropy reference μ, verl's config dump to a file;
:mod:`sspo_verl.patching`) are installed before any worker builds its loss or the trainer computes its first
advantages. With ``VERL_PLATFORM=cpu`` it also activates the CPU backend (:mod:`sspo_verl.cpu`); on any other
platform the CPU backend is never imported.

verl swallows entry-point errors at DEBUG level, so a failure here is logged at ERROR level before it is
re-raised; :func:`ensure_registered` is the loud check callers run before training starts. It also silences the
third-party warnings known to be harmless in every process (:func:`sspo_verl.known_warnings.silence_everywhere`).
"""

from __future__ import annotations

import logging
import os

from sspo_verl.known_warnings import silence_everywhere

logger = logging.getLogger("sspo_verl")

POLICY_LOSS = "sspo"
ADV_ESTIMATOR = "sspo"


def _patches():
    """The adapter's patches, in install order (the trainer patches import verl's trainer modules, so they come after
    the CPU platform is active)."""
    # The adapter is imported inside the functions so that any failure, an import error included, happens inside
    # the logged register() call below: verl swallows entry-point errors at DEBUG level.
    from sspo_verl.adapter import advantage, config_dump, diagnostics, entropy_reference, microbatch

    trainer = (advantage.MULTI_TRAJECTORY, entropy_reference.UPDATE_ACTOR, config_dump.CONFIG_DUMP)
    return (microbatch.PPO_LOSS, diagnostics.POLICY_LOSS_LOOKUP), trainer


def register() -> None:
    """Register SSPO in verl and install the adapter's patches (idempotent)."""
    from sspo_verl.adapter import advantage, policy_loss  # noqa: F401  (registration by decorator)

    loss_patches, trainer_patches = _patches()
    for patch in loss_patches:
        patch.install()
    if os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu":
        from sspo_verl.cpu import activate  # never imported on another platform

        activate()
    for patch in trainer_patches:
        patch.install()


def ensure_registered() -> None:
    """Raise with a fix if SSPO is not fully registered in this process."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    missing = []
    if POLICY_LOSS not in POLICY_LOSS_REGISTRY:
        missing.append(f"policy loss {POLICY_LOSS!r}")
    if ADV_ESTIMATOR not in ADV_ESTIMATOR_REGISTRY:
        missing.append(f"advantage estimator {ADV_ESTIMATOR!r}")
    loss_patches, trainer_patches = _patches()
    missing += [f"the patch of {p.target} ({p.why})" for p in loss_patches + trainer_patches if not p.is_installed()]
    if missing:
        raise RuntimeError(
            "sspo-verl is not registered in verl in this process (missing: " + ", ".join(missing) + "). "
            "Install the package where verl runs (pip install sspo-verl / pip install -e .), do not exclude it "
            "with VERL_USE_EXTERNAL_PLUGINS, or set VERL_USE_EXTERNAL_MODULES=sspo_verl.adapter.plugin."
        )


silence_everywhere()  # before register(): its trainer patches import verl's engines
try:
    register()
except Exception:
    logger.exception(
        "sspo-verl plugin failed to load: loss_mode=sspo and adv_estimator=sspo are NOT registered in this process"
    )
    raise
