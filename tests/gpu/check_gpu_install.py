"""Checks an environment that holds the GPU stack (``pip install -e ".[gpu,math]"``); runs without a GPU.

Run it in that environment: ``python tests/gpu/check_gpu_install.py`` (exit 0: all passed; 1: something failed;
one line per check). It imports torch, vLLM, verl, flash-attn (if installed) and this plugin; composes every GPU
preset (model x rollout x GPU hardware) and both ``paper_*`` experiments and passes each through the pre-flight
(the packages check included; files and cluster off: no data, no GPUs here); turns each preset's rollout config
into vLLM's engine arguments with verl's own ``vLLMHttpServer.launch_server`` (stopped where it would start the
server) and builds vLLM's real ``AsyncEngineArgs`` from them; and checks that SDPA keeps verl's packed
(remove-padding) sequences apart in this transformers. Self-contained: imports nothing from ``tests/``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata as md
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable

RESULTS: list[tuple[str, bool, str]] = []
_UNREACHABLE: dict[str, str] = {}  # Hub ids whose config.json could not be read (asked once each)


def check(name: str, fn: Callable[[], str]) -> None:
    """Run one check; record (name, passed, detail) and print one line."""
    start = time.monotonic()
    try:
        detail, ok = fn(), True
    except Exception as exc:  # a check's failure is reported, the others still run
        detail, ok = f"{type(exc).__name__}: {exc}", False
        traceback.print_exc()
    RESULTS.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'} {name} ({time.monotonic() - start:.1f} s): {detail}", flush=True)


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def check_imports() -> str:
    import torch
    import verl
    import vllm

    from sspo_verl.verl_version import SUPPORTED_VERL_VERSION
    from sspo_verl.adapter.plugin import ensure_registered

    ensure_registered()
    pins = {}
    from packaging.requirements import Requirement

    for req in map(Requirement, md.requires("verl") or []):
        if req.marker and req.marker.evaluate({"extra": "vllm"}) and req.name in ("torch", "vllm", "transformers"):
            pins[req.name] = next(iter(req.specifier)).version
    got = {"torch": torch.__version__.split("+")[0], "vllm": vllm.__version__, "transformers": _version("transformers")}
    assert verl.__version__ == SUPPORTED_VERL_VERSION, (verl.__version__, SUPPORTED_VERL_VERSION)
    assert {k: got[k] for k in pins} == pins, f"installed {got}, verl's vllm extra pins {pins}"
    flash = importlib.util.find_spec("flash_attn")
    if flash is not None:
        import flash_attn  # noqa: F401  (imports its CUDA extension: needs the CUDA libraries, not a GPU)
    return (f"torch {torch.__version__} (CUDA {torch.version.cuda}, GPU available: {torch.cuda.is_available()}), "
            f"vLLM {vllm.__version__}, verl {verl.__version__}, transformers {got['transformers']}, ray "
            f"{_version('ray')}, flash-attn {_version('flash-attn')}, sspo-verl {_version('sspo-verl')}; SSPO registered")


def gpu_presets() -> list[list[str]]:
    """Every model x rollout x GPU hardware choice of hydra_configs, and every experiment."""
    from sspo_verl.config_files import config_dir
    from pathlib import Path

    root = Path(config_dir())
    names = {group: sorted(p.stem for p in (root / group).glob("*.yaml")) for group in ("model", "rollout",
                                                                                       "hardware", "experiment")}
    combos = []
    for hardware in (h for h in names["hardware"] if h.startswith("gpu")):
        for model in names["model"]:
            for rollout in (r for r in names["rollout"] if r != "hf"):  # hf: the CPU backend's rollout only
                combos.append([f"hardware={hardware}", f"model={model}", f"rollout={rollout}"])
    combos += [[f"experiment={e}"] for e in names["experiment"]]
    return [c + (["trainer.nnodes=2"] if "hardware=gpu_nx8" in c else []) for c in combos]


def _compose(overrides: list[str]):
    from omegaconf import OmegaConf

    from sspo_verl.train import compose

    cfg = compose(overrides)
    OmegaConf.resolve(cfg)
    return cfg


def check_preflight(overrides: list[str]) -> str:
    from sspo_verl.preflight import run_preflight

    cfg = _compose([*overrides, "preflight.check_files=false", "preflight.check_cluster=false"])
    report = run_preflight(cfg, env={}, raise_on_error=True)
    return (f"attn_implementation={cfg.actor_rollout_ref.model.override_config.get('attn_implementation')}, "
            f"{len(report.warnings)} warning(s)")


def _device_type_for_vllm() -> str:
    """On a machine without the NVIDIA driver, give vLLM a platform whose device type is "cuda" (vLLM's own
    CudaPlatform cannot be imported without libcuda.so.1, and its argument parser needs a device type); on a GPU
    machine vLLM detects its platform itself. Returns what was done."""
    import torch

    if torch.cuda.is_available():
        return "vLLM platform: detected"
    import vllm.platforms
    from vllm.platforms.interface import UnspecifiedPlatform

    class NoDriverCuda(UnspecifiedPlatform):
        device_type = "cuda"

        def is_sleep_mode_available(self) -> bool:  # as vLLM's CudaPlatform answers (the presets use sleep mode)
            return True

    vllm.platforms._current_platform = NoDriverCuda()
    return "vLLM platform: a stand-in with device_type='cuda' and sleep mode (no NVIDIA driver here)"


def engine_args_from_verl(cfg):
    """vLLM's AsyncEngineArgs as verl 0.9.1's vLLMHttpServer.launch_server builds them for replica 0 (its CLI args
    through vLLM's own `vllm serve` parser), stopped before run_server starts the engine."""
    from verl.utils.config import omega_conf_to_dataclass
    from verl.utils.profiler.profile import build_rollout_dist_profiler
    from verl.workers.rollout.vllm_rollout.vllm_async_server import vLLMHttpServer
    from vllm.engine.arg_utils import AsyncEngineArgs

    server = object.__new__(vLLMHttpServer)  # __init__ needs a Ray actor context and the model's config.json
    server.config = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    # What launch_server reads of HFModelConfig (whose __post_init__ would load config.json from the Hub).
    server.model_config = types.SimpleNamespace(
        local_path=cfg.actor_rollout_ref.model.path, trust_remote_code=cfg.actor_rollout_ref.model.trust_remote_code,
        lora=dict(cfg.actor_rollout_ref.model.get("lora") or {}), lora_rank=cfg.actor_rollout_ref.model.lora_rank,
        hf_config=types.SimpleNamespace(quantization_config=None),
    )
    server.replica_rank, server.node_rank, server.nnodes = 0, 0, 1
    server.gpus_per_node, server.workers = cfg.trainer.n_gpus_per_node, []
    server._disaggregation_role = "null"
    server._master_address, server._master_port, server._dp_rpc_port = "127.0.0.1", 29500, 29501
    server.profiler_controller = build_rollout_dist_profiler(0, 1, config=None, tool_config=None)
    captured = {}

    async def run_server(args):
        captured["args"] = args

    server.run_server = run_server
    asyncio.run(server.launch_server())
    return AsyncEngineArgs.from_cli_args(captured["args"]), server.config


def check_engine_args(overrides: list[str]) -> str:
    cfg = _compose(overrides)
    engine_args, rollout = engine_args_from_verl(cfg)
    assert engine_args.gpu_memory_utilization == rollout.gpu_memory_utilization
    assert engine_args.tensor_parallel_size == rollout.tensor_model_parallel_size
    assert engine_args.max_num_batched_tokens == rollout.max_num_batched_tokens
    assert engine_args.enable_sleep_mode == rollout.enable_sleep_mode
    assert engine_args.worker_extension_cls.startswith("verl.")
    engine_args.create_load_config()
    if os.path.isdir(engine_args.model):  # a local model: vLLM's whole engine config must build
        vllm_config = engine_args.create_engine_config()
        extra = (f"; VllmConfig built: max_model_len {vllm_config.model_config.max_model_len}, dtype "
                 f"{vllm_config.model_config.dtype}")
    elif engine_args.model in _UNREACHABLE:
        extra = f"; VllmConfig not built: {_UNREACHABLE[engine_args.model]}"
    else:
        try:  # a Hub id: needs the model's config.json (the HF cache, or Hub access)
            vllm_config = engine_args.create_engine_config()
            extra = f"; VllmConfig built: max_model_len {vllm_config.model_config.max_model_len}"
        except OSError as exc:  # offline (no Hub, not cached): say so, do not fail
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            _UNREACHABLE[engine_args.model] = f"{engine_args.model}'s config.json not readable here ({first})"
            extra = f"; VllmConfig not built: {_UNREACHABLE[engine_args.model]}"
    return (f"AsyncEngineArgs(model={engine_args.model}, tp={engine_args.tensor_parallel_size}, "
            f"gpu_memory_utilization={engine_args.gpu_memory_utilization}, max_num_batched_tokens="
            f"{engine_args.max_num_batched_tokens}, enable_sleep_mode={engine_args.enable_sleep_mode}, "
            f"cudagraph_mode={engine_args.compilation_config.cudagraph_mode}){extra}")


def check_sdpa_packing() -> str:
    """verl's remove-padding forward (packed row, attention_mask=None, use_cache=False, restarting positions) with
    SDPA gives each sequence the logits it has alone, in this transformers."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = Qwen2ForCausalLM._from_config(config, attn_implementation="sdpa", dtype=torch.float32).eval()
    lengths = (7, 12, 5)
    seqs = [torch.randint(0, 97, (1, n)) for n in lengths]
    with torch.no_grad():
        alone = torch.cat([model(input_ids=s, position_ids=torch.arange(s.shape[1])[None], use_cache=False).logits
                           for s in seqs], 1)
        packed = model(input_ids=torch.cat(seqs, 1), attention_mask=None, use_cache=False,
                       position_ids=torch.cat([torch.arange(n) for n in lengths])[None]).logits
    diff = (packed - alone).abs().max().item()
    assert diff < 1e-4, f"packed sequences attend to each other: max |logit diff| {diff:.3g}"
    return f"max |packed - alone| logit difference {diff:.2g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    print(_device_type_for_vllm(), flush=True)  # before anything of vLLM asks for its platform
    if not os.environ.get("SSPO_TINY_DIR"):  # model=tiny: built locally from a seed, so vLLM's config builds whole
        tiny = tempfile.mkdtemp(prefix="sspo-tiny-")
        subprocess.run([sys.executable, "-m", "sspo_verl.demo", "--setup-only"], cwd=tiny, check=True,
                       capture_output=True, timeout=600)
        os.environ["SSPO_TINY_DIR"] = os.path.join(tiny, "runs", "tiny")
    check("imports", check_imports)
    check("sdpa packed sequences", check_sdpa_packing)
    for overrides in gpu_presets():
        label = " ".join(overrides)
        check(f"preflight [{label}]", lambda o=overrides: check_preflight(o))
        check(f"vLLM engine args [{label}]", lambda o=overrides: check_engine_args(o))
    # the async presets on the default GPU setup: separate_async's NCCL checkpoint engine is registered only where
    # cupy imports (the gpu extra's verl[cupy-cu130]), which pre-flight checks
    for overrides in (["mode=colocate_async"],
                      ["mode=separate_async", "trainer.n_gpus_per_node=4", "actor_rollout_ref.rollout.n_gpus_per_node=4"]):
        check(f"preflight [{' '.join(overrides)}]", lambda o=overrides: check_preflight(o))
    failed = [name for name, ok, _ in RESULTS if not ok]
    print(f"{len(RESULTS) - len(failed)}/{len(RESULTS)} checks passed" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
