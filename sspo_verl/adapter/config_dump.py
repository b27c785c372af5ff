"""verl's start-up dump of the whole resolved config goes to a YAML file, named in one printed line: :data:`CONFIG_DUMP`.

verl 0.9.1's TaskRunner prints ``pprint(OmegaConf.to_container(config, resolve=True))`` when it starts (976 of
the 1,074 lines of a 2-step CPU run), with no switch to turn it off. With ``SSPO_VERL_CONFIG_PATH`` set
(``sspo-train`` sets it for every Ray worker to ``<run dir>/verl_config.yaml``) the ``pprint`` that
``verl.trainer.main_ppo`` binds writes that same object as YAML to the path and prints one line naming it. That
module calls ``pprint`` for this dump only; every other ``pprint`` in verl has its own binding and is untouched.
Without the variable, for any other call, or when the file cannot be written (a warning says why), verl's
``pprint`` prints as before.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Callable

from sspo_verl.patching import Patch

__all__ = ["CONFIG_DUMP", "CONFIG_PATH_ENV"]

logger = logging.getLogger(__name__)

CONFIG_PATH_ENV = "SSPO_VERL_CONFIG_PATH"


def _write_yaml(config: dict, path: str) -> None:
    import yaml

    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=False)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(partial, path)  # a reader never sees half a file


def _wrap_pprint(pprint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(pprint)
    def config_to_file(object, *args, **kwargs):  # noqa: A002  (pprint's own parameter name)
        path = os.environ.get(CONFIG_PATH_ENV)
        if not path or args or kwargs or not isinstance(object, dict):
            return pprint(object, *args, **kwargs)
        try:
            _write_yaml(object, path)
        except Exception as exc:  # noqa: BLE001 -- an unwritable path or an unrepresentable value: verl's dump
            logger.warning(
                "sspo-verl: cannot write verl's resolved config to %s=%s (%s: %s); printing it instead. Fix: a "
                "writable path shared by the nodes (sspo-train sets it to <run dir>/verl_config.yaml).",
                CONFIG_PATH_ENV, path, type(exc).__name__, exc,
            )
            return pprint(object, *args, **kwargs)
        print(f"sspo-verl: verl's resolved config (its start-up dump) is in {path}", flush=True)
        return None

    return config_to_file


CONFIG_DUMP = Patch(
    module="verl.trainer.main_ppo",
    name="pprint",
    params=("object", ...),
    wrap=_wrap_pprint,
    why="write verl's start-up dump of the resolved config to a file (SSPO_VERL_CONFIG_PATH) instead of the console",
)
