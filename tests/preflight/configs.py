"""Configs for the pre-flight tests: ``sspo-train <overrides>``'s config through the pre-flight, from the real
Hydra composition (sspo_verl.train.compose); the environment, the GPU count and the Ray cluster are passed in as
fakes, so nothing here needs a GPU or a cluster."""

from __future__ import annotations

import copy
import functools

from sspo_verl.preflight import run_preflight
from sspo_verl.train import compose

ALGORITHMS = ("grpo", "gspo", "gspo_wide", "sspo")
DATA_FILES = ("math_l35", "math500", "aime24", "amc23", "minerva_math", "olympiadbench")
HUB_MODELS = ("Qwen/Qwen2.5-Math-1.5B", "Qwen/Qwen2.5-Math-7B")
GROUPS = ("algorithm", "model", "rollout", "hardware", "mode", "experiment")
NX8 = ["hardware=gpu_nx8", "trainer.nnodes=2"]


def write_verl_parquet(path, rows=None) -> None:
    """A small parquet file with verl's columns (data_source, prompt, reward_model, ...), as sspo-data writes."""
    from sspo_verl.data.prepare import write_parquet

    rows = rows or [
        {"data_source": "math500", "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}], "ability": "math",
         "reward_model": {"style": "rule", "ground_truth": str(2 * i)}, "extra_info": {"index": i}}
        for i in range(2)
    ]
    write_parquet(rows, path)


def fake_hub_snapshot(cache, repo_id, files=None) -> str:
    """``repo_id`` in a Hugging Face hub cache laid out as huggingface_hub writes it; returns the snapshot dir."""
    import json

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text("0123456789abcdef")
    for name, text in (files or {"config.json": json.dumps({"model_type": "qwen2"})}).items():
        (snapshot / name).write_text(text)
    return str(snapshot)


def stage_training_files(tmp_path, monkeypatch):
    """Every file the configs name, for the files check: the parquet files in ``tmp_path/data`` (SSPO_DATA_DIR),
    the Hub models in ``tmp_path/hf`` (HF_HUB_CACHE); SSPO_OUTPUT_DIR is ``tmp_path/out``. Returns the data dir."""
    out = tmp_path / "data"
    out.mkdir()
    for name in DATA_FILES:
        write_verl_parquet(out / f"{name}.parquet")
    for repo_id in HUB_MODELS:
        fake_hub_snapshot(tmp_path / "hf", repo_id)
    monkeypatch.setenv("SSPO_DATA_DIR", str(out))
    monkeypatch.setenv("SSPO_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return out


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
