"""sspo-verl: SSPO (Subsentence-level Policy Optimization, arXiv 2511.04256) next to GRPO and GSPO on verl.

Who may import whom is the table in the README's Architecture section (held against the code by
``tests/test_layers_on_cpu.py``); every patched verl / torch name, with its reason, is listed there too.

``from sspo_verl import SSPOPolicyLossConfig`` is resolved lazily so that ``sspo_verl.core`` stays
importable without verl.
"""

__version__ = "0.1.0"

__all__ = ["SSPOPolicyLossConfig", "__version__"]


def __getattr__(name):
    if name == "SSPOPolicyLossConfig":
        from sspo_verl.adapter.config import SSPOPolicyLossConfig

        return SSPOPolicyLossConfig
    raise AttributeError(f"module 'sspo_verl' has no attribute {name!r}")
