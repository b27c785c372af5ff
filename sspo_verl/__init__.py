"""sspo-verl: SSPO (Subsentence-level Policy Optimization, arXiv 2511.04256) next to GRPO and GSPO on verl.

Layout:
    sspo_verl.core      pure torch math (segmentation, ratio, clip bounds, loss, advantage); no verl import
    sspo_verl.adapter   the only verl-facing code: registrations, config dataclass, micro-batch context

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
