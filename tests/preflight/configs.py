"""Configs for the pre-flight tests: ``sspo-train <overrides>``'s config through the pre-flight, from the real
Hydra composition (sspo_verl.train.compose); the environment, the GPU count and the Ray cluster are passed in as
fakes, so nothing here needs a GPU or a cluster."""

from __future__ import annotations

import copy
import functools

from sspo_verl.preflight import run_preflight
from sspo_verl.train import compose

ALGORITHMS = ("grpo", "gspo", "gspo_wide", "sspo")
GROUPS = ("algorithm", "model", "rollout", "hardware", "experiment")
NX8 = ["hardware=gpu_nx8", "trainer.nnodes=2"]


class FakeCluster:
    def __init__(self, node_gpus=None, error=None):
        self.node_gpus, self.error, self.calls = node_gpus or [], error, []

    def __call__(self, address, timeout_s):
        self.calls.append((address, timeout_s))
        if self.error:
            raise RuntimeError(self.error)
        return list(self.node_gpus)


@functools.lru_cache(maxsize=None)
def _composed(groups: tuple[str, ...]):
    cfg = compose(list(groups))
    cfg.trainer.experiment_name = cfg.trainer.experiment_name  # bake ${hydra:runtime.choices...} in
    return cfg


def config(overrides=()):
    """The config of `sspo-train <overrides>`: group choices composed by Hydra (cached), value overrides applied
    by Hydra's own override code on a copy (composition itself is tested in tests/hydra_configs)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    groups = tuple(o for o in overrides if o.split("=", 1)[0] in GROUPS)
    values = [o for o in overrides if o not in groups]
    cfg = copy.deepcopy(_composed(groups))
    ConfigLoaderImpl._apply_overrides_to_config(OverridesParser.create().parse_overrides(values), cfg)
    return cfg


def check(overrides=(), *, env=None, gpus=8, cluster=None):
    """`sspo-train <overrides>`'s config through the pre-flight, without raising."""
    cfg = config(overrides)
    report = run_preflight(
        cfg, env=env or {}, gpu_counter=lambda _env, _timeout: gpus, cluster_probe=cluster or FakeCluster(), raise_on_error=False
    )
    return cfg, report


def messages(report, check_name, level=None):
    return [f.message for f in report.findings if f.check == check_name and (level is None or f.level == level)]
