"""verl's V1 replay buffers with a 0.1 s poll, plugged in by hardware=cpu per trainer mode, dropped where they do not apply."""

from __future__ import annotations

import pytest

from sspo_verl import train
from sspo_verl.cpu import launch
from sspo_verl.cpu.replay_buffer import POLL_INTERVAL_S, CPUReplayBuffer, CPUReplayBufferAsync

pytestmark = pytest.mark.filterwarnings("ignore:.*engine is not available", "ignore:.*load_extern_type")


def test_is_verls_sync_buffer_with_a_short_poll():
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
    from verl.utils.import_utils import load_extern_type

    assert issubclass(CPUReplayBuffer, ReplayBuffer) and POLL_INTERVAL_S < 2.0
    # exactly how verl loads trainer.v1.sampler.custom_sampler, with the arguments it passes a custom sampler
    cls = load_extern_type(launch.REPLAY_BUFFER["path"], launch.REPLAY_BUFFER["name"])
    assert cls is CPUReplayBuffer
    buf = cls(
        trainer_mode="sync",
        trainer_config={},
        max_off_policy_threshold=None,
        max_off_policy_strategy="drop",
        sampler_kwargs={},
        refill_fn=None,
    )
    assert buf.poll_interval == POLL_INTERVAL_S and buf.filter_groups_metric is None


@pytest.fixture
def compose(monkeypatch, tmp_path):
    monkeypatch.setenv("SSPO_TINY_DIR", str(tmp_path))
    return lambda *o: train.compose(["hardware=cpu", "model=tiny", "rollout=hf", *o])


def test_hardware_cpu_selects_it(compose):
    cfg = compose()
    launch.apply_to_config(cfg)
    assert dict(cfg.trainer.v1.sampler.custom_sampler) == launch.REPLAY_BUFFER


def test_dapo_filtering_falls_back_to_verls_buffer(compose):
    cfg = compose("algorithm.filter_groups.enable=true")
    applied = launch.apply_to_config(cfg)
    assert cfg.trainer.v1.sampler.custom_sampler.path is None
    assert "trainer.v1.sampler.custom_sampler" in applied


@pytest.mark.parametrize("mode", ["colocate_async", "separate_async"])
def test_an_asynchronous_mode_gets_verls_async_buffer_with_a_short_poll(compose, mode):
    from verl.trainer.ppo.v1.replay_buffer import ReplayBufferAsync
    from verl.utils.import_utils import load_extern_type

    cfg = compose(f"mode={mode}")
    launch.apply_to_config(cfg)
    assert dict(cfg.trainer.v1.sampler.custom_sampler) == launch.REPLAY_BUFFER_ASYNC
    cls = load_extern_type(launch.REPLAY_BUFFER_ASYNC["path"], launch.REPLAY_BUFFER_ASYNC["name"])
    assert cls is CPUReplayBufferAsync and issubclass(cls, ReplayBufferAsync)
    buf = cls(trainer_mode=mode, trainer_config={}, max_off_policy_threshold=8, max_off_policy_strategy="drop",
              sampler_kwargs={}, refill_fn=None)
    assert buf.poll_interval == POLL_INTERVAL_S
