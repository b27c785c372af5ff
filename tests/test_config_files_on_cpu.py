"""Where sspo-train finds its Hydra configs in a source checkout (an installed wheel: tests/test_train_on_cpu.py's
non-editable install)."""

from pathlib import Path

from sspo_verl.config_files import CONFIG_NAME, config_dir

REPO = Path(__file__).resolve().parents[1]


def test_config_dir_is_the_source_checkout_in_development():
    assert Path(config_dir()) == REPO / "hydra_configs"
    assert (Path(config_dir()) / f"{CONFIG_NAME}.yaml").is_file()
