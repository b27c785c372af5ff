"""sspo-verl: SSPO (Subsentence-level Policy Optimization, arXiv 2511.04256) next to GRPO and GSPO on verl.

Layers (each imports only what is listed above it):
    sspo_verl.core       SSPO's math in plain torch (segmentation, ratio, clip bounds, loss, advantage,
                         diagnostics); imports no verl, Ray, Hydra or OmegaConf
    sspo_verl.patching   the one mechanism that replaces a name verl or torch binds (:class:`~sspo_verl.patching.Patch`)
    sspo_verl.known_warnings  the third-party warnings silenced by message and module; imports nothing of ours
    sspo_verl.cpu        the CPU backend (platform, FSDP on CPU, ``hf`` and vLLM rollouts, three patches); active
                         only with ``VERL_PLATFORM=cpu``; imports verl, torch and ``patching``
    sspo_verl.adapter    what verl loads in every process (``verl.plugins`` entry point): ``loss_mode=sspo``,
                         ``adv_estimator=sspo``, the config dataclass, four patches; imports verl, ``core``,
                         ``patching``, ``known_warnings``, and activates ``cpu`` on CPU runs
    drivers              ``sspo-train`` (``train``, ``preflight``: import verl; ``rundir``, ``root_cause``),
                         ``sspo-data``, the math reward,
                         ``sspo-eval``, ``sspo-report``, the demo (``data``, ``reward``, ``eval``, ``report``,
                         ``demo``: no verl import)

Every patched verl / torch name, with its reason, is in the README's architecture section.

``from sspo_verl import SSPOPolicyLossConfig`` is resolved lazily so that ``sspo_verl.core`` stays
importable without verl.
"""

__version__ = "0.1.0"
SUPPORTED_VERL_VERSION = "0.9.1"

__all__ = ["SSPOPolicyLossConfig", "SUPPORTED_VERL_VERSION", "__version__"]


def __getattr__(name):
    if name == "SSPOPolicyLossConfig":
        from sspo_verl.adapter.config import SSPOPolicyLossConfig

        return SSPOPolicyLossConfig
    raise AttributeError(f"module 'sspo_verl' has no attribute {name!r}")
