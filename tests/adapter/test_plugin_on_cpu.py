"""The verl.plugins entry point: registration in fresh processes and in the workers of a real Ray cluster."""

import os
import subprocess
import sys

import pytest

PROBE = """
import json, os
import verl
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY
import verl.workers.engine_workers as ew
print(json.dumps({"loss": "sspo" in POLICY_LOSS_REGISTRY, "adv": "sspo" in ADV_ESTIMATOR_REGISTRY,
                  "wrapped": "__sspo_verl_original__" in vars(ew.ppo_loss)}))
"""


def _run(code, **env):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_USE_EXTERNAL")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)


def test_entry_point_is_declared_and_loadable():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="verl.plugins") if ep.name == "sspo"]
    assert len(eps) == 1 and eps[0].value == "sspo_verl.adapter.plugin"


def test_a_fresh_process_that_imports_verl_has_sspo():
    out = _run(PROBE)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == '{"loss": true, "adv": true, "wrapped": true}'


def test_ensure_registered_names_what_is_missing_and_the_fix():
    import sspo_verl.adapter.microbatch as mb
    from sspo_verl.adapter.plugin import ensure_registered

    ensure_registered()
    mb.PPO_LOSS.uninstall()
    try:
        with pytest.raises(RuntimeError, match="verl.workers.utils.losses.ppo_loss.*pip install"):
            ensure_registered()
    finally:
        mb.PPO_LOSS.install()
    ensure_registered()


def test_external_modules_variable_registers_when_entry_points_are_off():
    out = _run(PROBE, VERL_USE_EXTERNAL_PLUGINS="none", VERL_USE_EXTERNAL_MODULES="sspo_verl.adapter.plugin")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == '{"loss": true, "adv": true, "wrapped": true}'


def test_plugin_errors_are_logged_at_error_level_not_swallowed():
    # break the registration inside the plugin: verl swallows entry-point errors at DEBUG, we must log ERROR
    code = (
        "import sys\n"
        "sys.modules['verl.workers.utils.losses'] = None\n"  # the patch target cannot be imported
        "import verl\n"
    )
    out = _run(code)
    assert "sspo-verl plugin failed to load" in out.stderr and "NOT registered" in out.stderr


@pytest.mark.slow
def test_every_ray_worker_sees_the_registrations_through_the_entry_point():
    import ray

    env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_USE_EXTERNAL")}
    assert "VERL_USE_EXTERNAL_MODULES" not in env
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"VERL_USE_EXTERNAL_MODULES": "", "VERL_USE_EXTERNAL_PLUGINS": "auto"}})
    try:

        @ray.remote(num_cpus=0)
        def probe():
            import os

            import verl  # noqa: F401
            import verl.workers.engine_workers as ew
            from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

            return (os.getpid(), "sspo" in POLICY_LOSS_REGISTRY, "sspo" in ADV_ESTIMATOR_REGISTRY,
                    "__sspo_verl_original__" in vars(ew.ppo_loss))

        @ray.remote(num_cpus=0)
        class Worker:
            def check(self):
                from sspo_verl.adapter.plugin import ensure_registered

                ensure_registered()
                return os.getpid()

        results = ray.get([probe.remote() for _ in range(2)], timeout=240)
        assert all(r[1:] == (True, True, True) for r in results)
        actor_pids = [ray.get(Worker.remote().check.remote(), timeout=240)]
        assert os.getpid() not in {r[0] for r in results} | set(actor_pids)  # really other processes

        # a worker where entry points are disabled: the registration is missing and ensure_registered says so
        @ray.remote(num_cpus=0, runtime_env={"env_vars": {"VERL_USE_EXTERNAL_PLUGINS": "none"}})
        def disabled():
            import verl  # noqa: F401
            from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

            return "sspo" in POLICY_LOSS_REGISTRY

        assert ray.get(disabled.remote(), timeout=240) is False
    finally:
        ray.shutdown()
