"""verl's V1 replay buffers (synchronous and asynchronous), polling every 0.1 s instead of every 2 s.

verl 0.9.1's V1 trainer waits for a step's rollouts by polling TransferQueue's metadata every
``poll_interval`` = 2 s (``verl.trainer.ppo.v1.replay_buffer.ReplayBuffer`` and its asynchronous subclass
``ReplayBufferAsync``; no config key sets it). On a GPU cluster a step takes minutes and 2 s is noise; on CPU
with the tiny model the whole rollout takes well under a second, so up to 2 s per step were spent asleep
(measured: ``timing_s/gen`` was 2.02 s or 4.03 s, one or two poll periods, while the rollout server's batches
took 0.1-0.6 s).

:class:`CPUReplayBuffer` (``trainer_mode=sync``) and :class:`CPUReplayBufferAsync` (the asynchronous modes, verl's
``ReplayBufferAsync``: off-policy version control, no synchronous refill) are those classes with a shorter
period, plugged in through verl's documented extension point ``trainer.v1.sampler.custom_sampler.{path,name}``
by ``hardware/cpu.yaml``; :func:`sspo_verl.cpu.launch.apply_to_config` picks the one of the run's trainer mode.
verl passes a custom sampler only the base constructor arguments (none of the DAPO group-filtering ones), so
with ``algorithm.filter_groups`` the launcher falls back to verl's own buffer.
"""

from __future__ import annotations

from sspo_verl.cpu import verl_internals

__all__ = ["POLL_INTERVAL_S", "CPUReplayBuffer", "CPUReplayBufferAsync"]

POLL_INTERVAL_S = 0.1


class CPUReplayBuffer(verl_internals.resolve("verl.trainer.ppo.v1.replay_buffer.ReplayBuffer")):
    """verl's synchronous ``ReplayBuffer`` with ``poll_interval`` = :data:`POLL_INTERVAL_S`."""

    def __init__(self, *args, poll_interval: float = POLL_INTERVAL_S, **kwargs):
        super().__init__(*args, poll_interval=poll_interval, **kwargs)


class CPUReplayBufferAsync(verl_internals.resolve("verl.trainer.ppo.v1.replay_buffer.ReplayBufferAsync")):
    """verl's ``ReplayBufferAsync`` (asynchronous modes) with ``poll_interval`` = :data:`POLL_INTERVAL_S`."""

    def __init__(self, *args, poll_interval: float = POLL_INTERVAL_S, **kwargs):
        super().__init__(*args, poll_interval=poll_interval, **kwargs)
