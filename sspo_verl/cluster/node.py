"""What a node says about itself: its address for the cluster, and whether it can run the trainer (the command, the
shared run directory, verl, the GPUs, the model and tokenizer)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from collections.abc import Mapping, Sequence

__all__ = ["head_ip", "model_problems", "node_name", "node_problems"]


def node_name() -> str:
    """The node's Slurm name (``SLURMD_NODENAME`` in a step), else its host name."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def _ipv4(addrs) -> list[str]:
    return [a.address for a in addrs if a.family == socket.AF_INET]


def head_ip(iface: str | None = None) -> str:
    """This node's IPv4 address for Ray, NCCL and Gloo.

    With ``iface``: that interface's first IPv4 address. Without: the address the host name resolves to, unless
    that is a loopback one (Debian maps the host name to 127.0.1.1), else the first non-loopback IPv4 address of
    the node's interfaces.

    Raises:
        LookupError: no such interface, or no usable address (the message names the knob to set).
    """
    import psutil

    interfaces = psutil.net_if_addrs()
    if iface:
        if iface not in interfaces:
            raise LookupError(f"NET_IFACE={iface}: no such interface on {node_name()} (it has {', '.join(interfaces)})")
        found = _ipv4(interfaces[iface])
        if not found:
            raise LookupError(f"NET_IFACE={iface}: the interface has no IPv4 address on {node_name()}")
        return found[0]
    try:
        resolved = [i[4][0] for i in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    except socket.gaierror:
        resolved = []
    for candidates in (resolved, [a for addrs in interfaces.values() for a in _ipv4(addrs)]):
        usable = [a for a in candidates if not ipaddress.ip_address(a).is_loopback]
        if usable:
            return usable[0]
    raise LookupError(f"no non-loopback IPv4 address on {node_name()}: set NET_IFACE=<interface> or HEAD_IP")


def _why_no_cuda() -> str:
    """``: <why torch cannot use CUDA here>`` (the pre-flight's diagnosis: CPU-only torch, driver too old for
    torch's CUDA with the minimum named), or ``""``."""
    from sspo_verl.preflight.cuda import cuda_problem
    from sspo_verl.preflight.gpu import query_gpus, torch_cuda_here

    try:
        gpus = query_gpus(os.environ, 20)
    except RuntimeError as exc:  # a hung nvidia-smi
        return f": {exc}"
    why = cuda_problem(torch_cuda_here(), gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
    return f": {why}" if why else ""


def node_problems(train_cmd: str, shared_file: str, want_gpus: int) -> list[str]:
    """Why this node cannot run its part of the job (empty: it can).

    Args:
        train_cmd: the trainer command, which must be on PATH.
        shared_file: a file the batch script just wrote in the run directory: visible only on shared storage.
        want_gpus: GPUs torch must see (0: do not ask torch).
    """
    problems = []
    if shutil.which(train_cmd) is None:
        problems.append(f"{train_cmd} is not on PATH (install sspo-verl on every node, or use the image)")
    if not os.path.exists(shared_file):
        problems.append(f"cannot see {shared_file}: RUNS_ROOT must be on a filesystem shared by all nodes")
    try:
        import verl  # noqa: F401  (loads the verl.plugins entry points and VERL_USE_EXTERNAL_MODULES)

        from sspo_verl.adapter.plugin import ensure_registered

        ensure_registered()
    except Exception as exc:  # every node's problem, not the first traceback
        problems.append(f"{type(exc).__name__}: {exc}")
    if want_gpus:
        try:
            import torch

            n = torch.cuda.device_count()
            if n < want_gpus:
                problems.append(f"torch sees {n} GPU(s), expected {want_gpus} "
                                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}){_why_no_cuda()}")
        except Exception as exc:
            problems.append(f"cannot count GPUs: {type(exc).__name__}: {exc}")
    return problems


def _hub_answers(repo_id: str, endpoint: str, timeout_s: float) -> str | None:
    """Why the Hub at ``endpoint`` does not serve ``repo_id`` within ``timeout_s`` (None: it does)."""
    from huggingface_hub import HfApi

    try:
        HfApi(endpoint=endpoint).model_info(repo_id, timeout=timeout_s)
    except Exception as exc:  # connection refused / timeout / 401 / 404: all mean workers cannot download it
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return f"{type(exc).__name__}: {first}"
    return None


def model_problems(paths: Mapping[str, str], timeout_s: float = 10) -> list[str]:
    """Model / tokenizer paths (config key -> value) this node cannot load: a local path must hold the model's
    ``config.json`` or the tokenizer files; a Hub id must be in this node's Hugging Face cache (``HF_HUB_CACHE`` /
    ``HF_HOME``), or, unless ``HF_HUB_OFFLINE=1``, the Hub (``HF_ENDPOINT``) must serve it within ``timeout_s``, as
    the workers' ``from_pretrained`` will read them. Remote paths (``hdfs://``, ``s3://``, ...) are verl's to copy
    and are not checked."""
    from sspo_verl.preflight.files import (
        MODEL_FILES,
        REMOTE_PREFIXES,
        TOKENIZER_FILES,
        hub_cache_dir,
        is_hub_id,
        local_model_dir,
    )

    problems, asked = [], {}
    for key, path in paths.items():
        if not path or path.startswith(REMOTE_PREFIXES):
            continue
        wanted = TOKENIZER_FILES if key.endswith("tokenizer_path") else MODEL_FILES
        found = local_model_dir(path)
        if found is not None:
            if not any(os.path.isfile(os.path.join(found, f)) for f in wanted):
                problems.append(f"{key}={path}: {found} has none of {list(wanted)} on this node")
            continue
        share = (f"download it once where every node sees it (HF_HOME=<shared dir> huggingface-cli download {path}, "
                 f"with HF_HOME exported to the job), or set {key} to a local path every node sees")
        if not is_hub_id(path):
            problems.append(f"{key}={path}: no such directory on this node: put the model on storage shared by all "
                            f"nodes (or the same path on each), or use a Hub id in a shared HF_HOME")
        elif os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
            problems.append(f"{key}={path}: not in this node's Hugging Face cache ({hub_cache_dir()}) and "
                            f"HF_HUB_OFFLINE=1: {share}")
        else:
            endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
            if path not in asked:
                asked[path] = _hub_answers(path, endpoint, timeout_s)
            if asked[path]:
                problems.append(f"{key}={path}: not in this node's Hugging Face cache ({hub_cache_dir()}) and the Hub "
                                f"at {endpoint} did not serve it within {timeout_s:g}s ({asked[path]}): {share}")
    return problems


def config_model_paths(overrides: Sequence[str]) -> dict[str, str]:
    """The model and tokenizer paths of ``sspo-train <overrides>``'s config, composed here as the trainer will
    compose it (interpolations resolved in this node's environment)."""
    from sspo_verl.preflight.context import Context
    from sspo_verl.preflight.files import model_path_keys
    from sspo_verl.train import compose

    config = compose(list(overrides))
    return model_path_keys(Context(config=config, report=None, env=os.environ, gpu_counter=None, cluster_probe=None))
