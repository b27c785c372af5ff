"""``sspo-train``: verl's PPO trainer on sspo-verl's Hydra configs, with pre-flight checks before Ray starts.

Usage (``python -m sspo_verl.train`` is the same)::

    sspo-train                                          # SSPO, Qwen2.5-Math-1.5B, vLLM, 1 node × 8 GPUs
    sspo-train algorithm=gspo                           # one flag: grpo | gspo | gspo_wide | sspo
    sspo-train experiment=paper_qwen2.5_math_7b         # the paper's 7B run
    sspo-train -m algorithm=grpo,gspo,sspo seed=1,2,3   # 9 runs, one directory and name each
    sspo-train hardware=cpu model=tiny rollout=hf       # the real trainer on CPU (sspo_verl.cpu)
    sspo-train --cfg job                                # print the composed config, resolved
    sspo-train dry_run=true                             # compose + pre-flight + print; Ray never starts

Per job: compose (``hydra_configs/sspo_trainer.yaml`` over verl's ``ppo_trainer``) → for ``trainer.device=cpu``
the CPU backend's driver environment and config (:mod:`sspo_verl.cpu.launch`) → pre-flight
(:mod:`sspo_verl.preflight`; errors exit with status 2, nothing started) → the whole config resolved in the
driver (the ``sspo.*`` and ``hydra:`` resolvers exist only here) and saved as ``<run dir>/resolved_config.yaml``
when the attempt starts the run
→ the loggers' files: verl's file logger at ``<run dir>/metrics.jsonl``, TensorBoard at ``<run dir>/tensorboard``,
and verl's start-up dump of the resolved config at ``<run dir>/verl_config.yaml`` (:mod:`sspo_verl.adapter.config_dump`)
→ the attempt checked against the run dir (:mod:`sspo_verl.rundir`): a rerun whose training config differs from
the one the run started with is refused (exit 2, the differing keys listed); an attempt that starts over moves the
earlier attempt's checkpoints and logs to ``superseded/``; one that resumes renames the earlier log to
``metrics.<n>.jsonl`` (verl truncates it) and keeps ``resolved_config.yaml``, the record; a rerun of a finished run
(its checkpoint at ``trainer.total_training_steps``) trains nothing and exits 0 before Ray starts
→ verl's own entry point ``verl.trainer.main_ppo.main(config)`` (device detection, ``validate_config``,
``run_ppo``) → if it ends early (a Ray worker died, SIGTERM, Ctrl-C) one line saying why and which checkpoint
rerunning the same command resumes from → ``ray.shutdown()`` if this job started Ray, so the next job of a
multirun starts clean, and on CPU the ``/dev/shm`` segments the run's vLLM engine and weight sync left
(:func:`sspo_verl.cpu.shm.remove_after_run`).

Public API:
    main()                        the console script
    run(config)                   one job on a composed config (what the Hydra app calls)
    compose(overrides)            the composed config without running anything (tests, notebooks)
    register_resolvers()          ``sspo.div`` and ``sspo.abspath`` (idempotent; done on import)
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from sspo_verl.config_files import CONFIG_NAME, config_dir
from sspo_verl.known_warnings import silence_driver_platform_probe
from sspo_verl.preflight import Finding, PreflightError, run_preflight
from sspo_verl.rundir import METRICS_FILE, RECORD, TENSORBOARD_DIR, VERL_CONFIG

__all__ = ["compose", "main", "register_resolvers", "run"]

logger = logging.getLogger("sspo_verl.train")
if logger.level == logging.NOTSET:
    logger.setLevel(logging.INFO)

EXIT_PREFLIGHT = 2
_FILE_LOGGER_ENV = "VERL_FILE_LOGGER_PATH"
_stop_signal: Optional[int] = None  # the signal that stopped this run (set by _exit_on_sigterm)
_TENSORBOARD_ENV = "TENSORBOARD_DIR"
_VERL_CONFIG_ENV = "SSPO_VERL_CONFIG_PATH"  # sspo_verl.adapter.config_dump: where verl's config dump goes
# Run directories used by earlier jobs of the current sweep (a multirun): two jobs must never share one.
_RUN_DIRS: set[str] = set()
# Whether run() handed over to verl (the run dirs' state before the launch: sspo_verl.rundir.FOOTPRINTS).
_handed_over = False
_last_word: Optional[str] = None  # why a run ended early (run() logs it; main() says it again after Hydra's report)


def _div(numerator, denominator) -> int:
    num, den = int(numerator), int(denominator)
    if den <= 0 or num % den:
        raise ValueError(
            f"sspo.div: {num} is not divisible into {den} equal parts. With the algorithm presets this is "
            f"data.train_batch_size={num} / num_mini_batches={den}: make data.train_batch_size a multiple of "
            "num_mini_batches, or set actor_rollout_ref.actor.ppo_mini_batch_size yourself."
        )
    return num // den


def _abspath(path) -> str:
    return os.path.abspath(os.path.expanduser(str(path)))


def _readme() -> str:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    return str(readme) if readme.is_file() else "README.md of the sspo-verl source"


def register_resolvers() -> None:
    """Register the config's resolvers (idempotent): ``${sspo.div:a,b}`` = a / b, an exact integer division
    (else an error naming the keys), ``${sspo.abspath:p}`` = the absolute path of ``p`` with ``~`` expanded, and
    ``${sspo.readme:}`` = where the README is (``--help``)."""
    for name, fn in (("sspo.div", _div), ("sspo.abspath", _abspath), ("sspo.readme", _readme)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()


def compose(overrides: Sequence[str] = (), config_name: str = CONFIG_NAME) -> DictConfig:
    """Compose the training config as ``sspo-train <overrides>`` would, without running anything.

    The Hydra context (``${hydra:runtime.choices...}`` in ``trainer.experiment_name``) is set, so the result
    resolves; the ``hydra`` node itself is removed, as in a job. Not for use inside a running Hydra app.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()  # e.g. left initialized by an earlier sspo-train run in this process
    with initialize_config_dir(config_dir=config_dir(), version_base=None, job_name="sspo_train"):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def _run_dir(config: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        output_dir = HydraConfig.get().runtime.get("output_dir")
        if output_dir:
            return str(output_dir)
    return os.path.join(str(config.output_dir), str(config.trainer.project_name), str(config.trainer.experiment_name))


def _check_unique_run_dir(run_dir: str) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    if HydraConfig.get().job.get("num") == 0:  # the first job of a sweep (the process may run several sweeps)
        _RUN_DIRS.clear()
    if run_dir in _RUN_DIRS:
        raise PreflightError(
            [
                Finding(
                    "error",
                    "multirun",
                    f"two jobs of this sweep share the run directory {run_dir} (trainer.experiment_name="
                    "<algorithm>-<model>-seed<seed> does not name what you sweep): they would overwrite each other's "
                    "checkpoints and logs. Put the swept key into the name, e.g. "
                    "'trainer.experiment_name=${hydra:runtime.choices.algorithm}-lr${actor_rollout_ref.actor.optim.lr}"
                    "-seed${seed}'.",
                )
            ]
        )
    _RUN_DIRS.add(run_dir)


def _worker_env(config: DictConfig, key: str, value: str) -> None:
    """Add an environment variable for every Ray worker (``ray_kwargs.ray_init.runtime_env.env_vars``)."""
    with open_dict(config):
        ray_init = config.ray_kwargs.ray_init
        if ray_init.get("runtime_env") is None:
            ray_init.runtime_env = {}
        if ray_init.runtime_env.get("env_vars") is None:
            ray_init.runtime_env.env_vars = {}
        ray_init.runtime_env.env_vars[key] = value


def _cpu_backend(config: DictConfig, dry_run: bool) -> None:
    """``trainer.device=cpu``: the CPU backend's driver environment (``VERL_PLATFORM=cpu`` before verl's trainer
    is imported) and its Ray / worker-environment settings, checked. A dry run only checks and fills the config."""
    try:
        from sspo_verl.cpu.launch import CPUConfigError, apply_to_config, prepare_driver
    except ImportError as exc:
        raise PreflightError(
            [Finding("error", "cpu", f"trainer.device=cpu needs the CPU backend (sspo_verl.cpu.launch): {exc}")]
        ) from exc
    if not dry_run:
        prepare_driver()
    try:
        applied = apply_to_config(config)
    except CPUConfigError as exc:
        raise PreflightError([Finding("error", "cpu", str(exc))]) from exc
    except (OmegaConfBaseException, TypeError, ValueError):
        run_preflight(config)  # a value it cannot read (text for a number, ...): the schema check names the key
        raise
    for key, value in applied.items():
        logger.info("sspo-train: CPU backend set %s=%s", key, value)


def _logger_env(config: DictConfig, key: str) -> Optional[str]:
    """Where a verl logger writes: the workers' environment in the config, else this process's."""
    env_vars = ((config.ray_kwargs.ray_init.get("runtime_env") or {}).get("env_vars")) or {}
    value = env_vars.get(key) or os.environ.get(key)
    return str(value) if value else None


def _resume_from(config: DictConfig) -> Optional[str]:
    """The checkpoint (``.../global_step_<n>``) verl will load, by its own rule (``resume_mode``, the
    latest-checkpoint tracker, ``resume_from_path``); None when it starts from scratch."""
    mode = str(config.trainer.get("resume_mode", "auto"))
    if mode == "disable":
        return None
    if mode == "resume_path":
        return str(config.trainer.get("resume_from_path"))
    from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

    return find_latest_ckpt_path(os.path.abspath(str(config.trainer.default_local_dir)))


def _finished_at(config: DictConfig) -> Optional[int]:
    """The step of the checkpoint verl would resume from when it is at or past ``trainer.total_training_steps``
    (the run is finished), else None. verl 0.9.1's loop counts on from the loaded step and ends only after a
    step, so resuming a finished run would train (and save) one step past the end, each time it is rerun.
    With ``total_training_steps`` unset (epochs × batches) verl's epoch loop is empty then: not checked here."""
    total = config.trainer.get("total_training_steps")
    path = _resume_from(config)
    if total is None or path is None:
        return None
    step = os.path.basename(os.path.normpath(path)).rsplit("global_step_", 1)[-1]
    return int(step) if step.isdigit() and int(step) >= int(total) else None


def _ended_early(exc: BaseException, config: DictConfig, first_error=None) -> str:
    """One line on why a run ended before its last step and where rerunning the same command goes on from.

    ``first_error``: the earliest error a Ray process printed before the failure
    (:class:`sspo_verl.root_cause.ProcessError`); named as the cause when the exception is not itself a dead
    worker, a signal or Ctrl-C (e.g. verl's replay buffer finding no trajectories after the rollout engine died).
    """
    text = str(exc)
    dead = re.search(r"class_name: (\S+)\s+actor_id: \S+\s+pid: (\d+)", text)
    cause = getattr(exc, "cause", None)  # Ray's RayTaskError: the exception the Ray process raised
    shown = cause if isinstance(cause, BaseException) else exc
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(shown)).splitlines() if line.strip()]
    raised = f"{type(shown).__name__}: {lines[0][:200] if lines else ''}"
    if dead:
        why = f"the Ray worker {dead.group(1).rsplit('.', 1)[-1]} (pid {dead.group(2)}) died"
    elif _stop_signal is not None:  # _exit_on_sigterm (Ray turns its SystemExit into SystemExit(1) in ray.get)
        why = f"stopped by {signal.Signals(_stop_signal).name}"
    elif isinstance(exc, KeyboardInterrupt):
        why = "interrupted"
    elif first_error is not None and first_error.error not in text:
        why = f"{first_error} came first; the error raised after it ({raised}) follows from it"
    elif first_error is not None:
        why = str(first_error)
    else:
        why = raised
    mode = str(config.trainer.get("resume_mode", "auto"))
    checkpoint = _resume_from(config)
    if mode == "auto":
        then = (f"rerunning the same command resumes from {checkpoint}" if checkpoint else
                f"no checkpoint written yet (trainer.save_freq={config.trainer.get('save_freq')}): a rerun starts over")
    elif mode == "disable":
        then = "with trainer.resume_mode=disable a rerun starts over (this attempt moves to superseded/)"
    else:
        then = f"a rerun resumes from {checkpoint} again (trainer.resume_mode=auto: from the latest checkpoint)"
    return f"the run ended early: {why}; {then}."


def _prepare_attempt(
    config: DictConfig, run_dir: str, logger_backends: list, dry_run: bool, *, finished: bool = False
) -> bool:
    """Check this attempt against the run dir's record and make room for it (:mod:`sspo_verl.rundir`); returns
    whether the run dir's record is to be (re)written, i.e. the attempt starts a run there."""
    from sspo_verl.rundir import RerunRefused, prepare_attempt

    metrics_path = _logger_env(config, _FILE_LOGGER_ENV) if "file" in logger_backends else None
    tensorboard_dir = _logger_env(config, _TENSORBOARD_ENV) if "tensorboard" in logger_backends else None
    try:
        starts, moves = prepare_attempt(
            run_dir,
            OmegaConf.to_container(config, resolve=True),
            checkpoint_dir=os.path.abspath(str(config.trainer.default_local_dir)),
            resumes=_resume_from(config) is not None,
            metrics_path=metrics_path,
            tensorboard_dir=tensorboard_dir,
            on_config_change=str(config.get("on_config_change", "refuse")),
            finished=finished,
            dry_run=dry_run,
        )
    except (RerunRefused, ValueError) as exc:
        raise PreflightError([Finding("error", "rerun", str(exc))]) from None
    for source, target in moves:
        logger.info("sspo-train: %s: %s -> %s", "new attempt" if starts else "resumed run", source, target)
    return starts


def _summary(config: DictConfig, run_dir: str) -> str:
    actor = config.actor_rollout_ref.actor
    preset = config.get("algorithm_preset") or {}
    return (
        f"algorithm={preset.get('name', '?')} loss_mode={actor.policy_loss.loss_mode} "
        f"adv_estimator={config.algorithm.adv_estimator} loss_agg_mode={actor.loss_agg_mode} "
        f"clip={actor.clip_ratio_low}/{actor.clip_ratio_high} train_batch_size={config.data.train_batch_size} "
        f"ppo_mini_batch_size={actor.ppo_mini_batch_size} n={config.actor_rollout_ref.rollout.n} seed={config.seed} "
        f"model={config.actor_rollout_ref.model.path} device={config.trainer.device} "
        f"nodes={config.trainer.nnodes}x{config.trainer.n_gpus_per_node} run_dir={run_dir}"
    )


def run(config: DictConfig) -> Optional[DictConfig]:
    """Run one training job on a composed config (see the module docstring for the steps).

    Returns:
        The final, resolved config for a dry run (``dry_run=true``); None after training.

    Raises:
        PreflightError: the config cannot run (nothing was started).
    """
    dry_run = bool(config.get("dry_run", False))
    if config.trainer.device == "cpu":
        _cpu_backend(config, dry_run)
    run_preflight(config)
    run_dir = _run_dir(config)
    _check_unique_run_dir(run_dir)
    logger_backends = config.trainer.get("logger") or []
    logger_backends = [logger_backends] if isinstance(logger_backends, str) else list(logger_backends)
    if "file" in logger_backends and _FILE_LOGGER_ENV not in os.environ:
        _worker_env(config, _FILE_LOGGER_ENV, os.path.join(run_dir, METRICS_FILE))
    if "tensorboard" in logger_backends and _TENSORBOARD_ENV not in os.environ:
        _worker_env(config, _TENSORBOARD_ENV, os.path.join(run_dir, TENSORBOARD_DIR))
    if _VERL_CONFIG_ENV not in os.environ:  # verl's ~1,000-line start-up dump of the config: to a file instead
        _worker_env(config, _VERL_CONFIG_ENV, os.path.join(run_dir, VERL_CONFIG))
    OmegaConf.resolve(config)  # here, where the sspo.* and hydra: resolvers exist; verl's workers never see them
    os.makedirs(run_dir, exist_ok=True)
    finished_at = _finished_at(config)
    starts = _prepare_attempt(config, run_dir, logger_backends, dry_run, finished=finished_at is not None)
    if starts:
        OmegaConf.save(config, os.path.join(run_dir, RECORD))  # the config this run started with
    logger.info("sspo-train: %s", _summary(config, run_dir))
    finished = finished_at is not None and not starts
    if finished:
        logger.info(
            "sspo-train: %s is finished: its checkpoint global_step_%d is at trainer.total_training_steps=%s. "
            "Nothing to train; nothing changed. To train on, raise trainer.total_training_steps; for another run, "
            "give it another trainer.experiment_name.", run_dir, finished_at, config.trainer.total_training_steps,
        )
    if dry_run:
        print(OmegaConf.to_yaml(config), end="")
        print(f"sspo-train dry run: {_summary(config, run_dir)}{' (finished: nothing to train)' if finished else ''}")
        return config
    if finished:
        return None

    import ray
    from verl.trainer.main_ppo import main as verl_main  # after the CPU backend's environment is in place

    global _stop_signal, _handed_over, _last_word
    _stop_signal = None
    _handed_over = True  # from here on the run dir keeps this launch's record and log
    from sspo_verl.root_cause import ErrorWatch

    started_ray, started_at = not ray.is_initialized(), time.time()
    watch = ErrorWatch()
    watch.install()  # the errors Ray's processes print, for the note below
    try:
        with _sigterm_kept_over(ray):
            verl_main(config)  # hydra.main passes a given config straight to verl's task function
    except BaseException as exc:  # a dead worker, SIGTERM's SystemExit, Ctrl-C: say where a rerun goes on from
        try:
            _last_word = _ended_early(exc, config, watch.first_cause())
            logger.error("sspo-train: %s", _last_word)
        except Exception:  # noqa: BLE001 -- the note must never hide the run's own error
            pass
        if _stop_signal is not None:
            raise SystemExit(128 + _stop_signal) from exc  # the shell's convention, whatever Ray made of it
        raise
    finally:
        watch.uninstall()
        if started_ray and ray.is_initialized():
            ray.shutdown()
        if started_ray and os.environ.get("VERL_PLATFORM") == "cpu":
            from sspo_verl.cpu import shm

            shm.remove_after_run(started_at)  # what the run's vLLM engine and weight sync left in /dev/shm
    return None


@contextlib.contextmanager
def _sigterm_kept_over(ray_module):
    """Keep this process's SIGTERM handler across ``ray.init``: Ray's replaces it in the driver (``sys.exit(15)``,
    which no ``finally`` could tell from any other exit), and verl calls ``ray.init`` inside ``verl_main``."""
    real_init = ray_module.init

    def init(*args, **kwargs):
        handler = signal.getsignal(signal.SIGTERM)
        try:
            return real_init(*args, **kwargs)
        finally:
            if threading.current_thread() is threading.main_thread() and handler is not None:
                signal.signal(signal.SIGTERM, handler)

    ray_module.init = init
    try:
        yield
    finally:
        ray_module.init = real_init


class LaunchFootprint(Callback):
    """Hydra callback (``hydra.callbacks`` in ``sspo_trainer.yaml``): the run dirs' :class:`~sspo_verl.rundir.Footprint`
    before Hydra creates them and writes its launch record and log file there, so that a refused launch, or the
    rerun of a finished run, leaves them as they were (:func:`_take_back`; a dry run keeps its record)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        from hydra.core.hydra_config import HydraConfig

        from sspo_verl.rundir import FOOTPRINTS, Footprint

        HydraConfig.instance().set_config(config)  # for ${hydra:...} in the run dir; Hydra's job set-up does the same
        FOOTPRINTS.clear()
        FOOTPRINTS[os.path.abspath(str(config.hydra.run.dir))] = Footprint.before(str(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from hydra.core.hydra_config import HydraConfig

        from sspo_verl.rundir import FOOTPRINTS, Footprint

        HydraConfig.instance().set_config(config)
        FOOTPRINTS.clear()
        sweep_dir = os.path.abspath(str(config.hydra.sweep.dir))
        FOOTPRINTS[sweep_dir] = Footprint.before(sweep_dir)  # the job dirs not in it are this sweep's
        if os.path.isdir(sweep_dir):
            for entry in os.scandir(sweep_dir):
                if entry.is_dir(follow_symlinks=False):
                    FOOTPRINTS[entry.path] = Footprint.before(entry.path)


def _take_back(run_dir: str) -> None:
    """Close this job's log files in ``run_dir``; undo what Hydra's job set-up wrote there (the run trains nothing)."""
    from sspo_verl.rundir import FOOTPRINTS, Footprint

    run_dir = os.path.abspath(run_dir)
    footprint = FOOTPRINTS.get(run_dir)
    if footprint is None:
        if os.path.dirname(run_dir) not in FOOTPRINTS:
            return  # not a launch the callback saw (e.g. run() called directly)
        footprint = Footprint(run_dir, run_dir, None, ())  # a sweep's job dir that did not exist before the sweep
    root = logging.getLogger()
    log_files = []
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) and os.path.dirname(handler.baseFilename) == run_dir:
            root.removeHandler(handler)
            handler.close()
            log_files.append(handler.baseFilename)
    footprint.undo(log_files)


@hydra.main(config_path=config_dir(), config_name=CONFIG_NAME, version_base=None)
def _hydra_app(config: DictConfig) -> None:
    global _handed_over
    _handed_over = False
    try:
        result = run(config)
    except PreflightError as exc:
        _take_back(_run_dir(config))
        print(str(exc), file=sys.stderr, flush=True)
        raise SystemExit(EXIT_PREFLIGHT) from None
    except BaseException:
        if not _handed_over:  # bad input found past pre-flight (e.g. a resolver's error): nothing ran either
            _take_back(_run_dir(config))
        raise
    if result is None and not _handed_over:  # a finished run: nothing trained, nothing changed
        _take_back(_run_dir(config))


def _with_resolve(argv: list[str]) -> list[str]:
    """``--cfg``/``-c`` prints the config; sspo-train prints it resolved (adds Hydra's ``--resolve``)."""
    asks_cfg = any(a in ("--cfg", "-c") or a.startswith("--cfg=") for a in argv)
    if asks_cfg and "--resolve" not in argv:
        return [*argv, "--resolve"]
    return argv


def _exit_on_sigterm(signum, _frame) -> None:
    """SIGTERM (Slurm's preemption, ``kill``, a job scheduler) ends sspo-train like Ctrl-C: ``SystemExit`` unwinds
    through :func:`run`'s ``finally``, which shuts down the Ray this job started (its workers with it), and the
    process exits with 128 + the signal. verl writes a checkpoint step before it moves its tracker to it, so a rerun
    resumes from the last complete one."""
    global _stop_signal
    _stop_signal = signum
    raise SystemExit(128 + signum)


def main() -> None:
    """``sspo-train``: a Hydra application (all of Hydra's flags work: ``-m``, ``--cfg``, ``--info``, ...)."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    silence_driver_platform_probe()  # composing the config resolves verl's platform before the device is known
    sys.argv = [sys.argv[0], *_with_resolve(sys.argv[1:])]
    global _last_word
    _last_word = None
    try:
        _hydra_app()
    except SystemExit as exc:
        if _last_word:  # the last word, after Hydra's report of the (often secondary) error that reached the driver
            logger.error("sspo-train: %s", _last_word)
        if _stop_signal is None:
            raise
        # Stopped by a signal, Ray already shut down (run's finally): exit now with 128 + the signal, without the
        # interpreter's teardown, where threads Ray's core worker left may abort the process (exit -6 seen).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.code if isinstance(exc.code, int) else 128 + _stop_signal)


if __name__ == "__main__":
    main()
