"""Where sspo-train's Hydra config files are: the installed package's or the source checkout's."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_NAME", "config_dir"]

CONFIG_NAME = "sspo_trainer"


def config_dir() -> str:
    """The directory holding ``sspo_trainer.yaml``: ``sspo_verl/hydra_configs`` in an installed wheel (setup.py
    maps the top-level ``hydra_configs/`` there), else the source checkout's ``hydra_configs/`` (editable install,
    or running from the repository)."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "hydra_configs", package.parent / "hydra_configs"):
        if (candidate / f"{CONFIG_NAME}.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"sspo-train cannot find its Hydra configs ({CONFIG_NAME}.yaml) in {package / 'hydra_configs'} or "
        f"{package.parent / 'hydra_configs'}. Reinstall the package (pip install .), or run from a source checkout."
    )
