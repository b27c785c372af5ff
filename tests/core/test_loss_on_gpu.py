"""SSPO's core on CUDA: the float64 reference's values, gradients and metrics, and no host-device sync.

Skipped without a CUDA GPU (``gpu`` marker, see ``tests/conftest.py``).
"""

import math

import pytest
import torch

from sspo_verl.core.loss import SSPOParams, sspo_loss_matrix, sspo_metric_sums, sspo_metrics, sspo_metrics_from_sums
from sspo_verl.core.segmentation import (
    DEFAULT_DELIMITERS,
    GRANULARITIES,
    build_boundary_table,
    delimiters_for,
    segment_responses,
)
from tests.conftest import SYNTH_PIECES, SYNTH_SPECIALS, random_batch
from tests.cuda_sync import count_device_syncs
from tests.sspo_reference import ref_segments, ref_sspo_loss

pytestmark = pytest.mark.gpu
CUDA = "cuda"


def _table(granularity, device):
    if granularity not in ("subsentence", "sentence"):
        return None
    return build_boundary_table(SYNTH_PIECES, delimiters_for(granularity, DEFAULT_DELIMITERS), SYNTH_SPECIALS).to(device)


def _params(ratio_grad, entropy_clip):
    return SSPOParams(clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0, ratio_grad=ratio_grad,
                      entropy_clip=entropy_clip, entropy_alpha=1.3, entropy_scale_min=0.5, entropy_scale_max=2.0)


def _on(batch, device, dtype=None):
    out = {}
    for k, v in batch.items():
        v = v.detach().to(device)
        out[k] = v.to(dtype) if dtype is not None and v.is_floating_point() else v
    out["log_prob"].requires_grad_(True)
    return out


@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("ratio_grad", ["token", "segment"])
@pytest.mark.parametrize("entropy_clip", [False, True])
def test_cuda_float64_matches_reference(granularity, ratio_grad, entropy_clip):
    params = _params(ratio_grad, entropy_clip)
    for seed in range(4):
        cpu = random_batch(seed, holes=seed % 2 == 1, max_b=8, max_t=48)
        b = _on(cpu, CUDA)
        seg = segment_responses(b["ids"], b["mask"], granularity, _table(granularity, CUDA))
        mat, stats = sspo_loss_matrix(b["log_prob"], b["old_log_prob"], b["advantages"], seg, params,
                                      entropy=b["entropy"] if entropy_clip else None,
                                      rollout_is_weights=b["weights"] if seed == 2 else None)
        weight = torch.linspace(0.5, 1.5, mat.numel(), dtype=torch.float64).view_as(mat)
        (grad,) = torch.autograd.grad((mat * weight.to(CUDA)).sum(), b["log_prob"])

        lp = cpu["log_prob"].detach().clone().requires_grad_(True)
        ref_seg = ref_segments(cpu["ids"], cpu["mask"], SYNTH_PIECES, set(SYNTH_SPECIALS), granularity)
        _, ref_metrics, ref_mat = ref_sspo_loss(
            lp, cpu["old_log_prob"], cpu["advantages"], cpu["mask"], ref_seg, clip_low=0.2, clip_high=0.28,
            clip_c=3.0, ratio_grad=ratio_grad, entropy=cpu["entropy"] if entropy_clip else None, alpha=1.3,
            weights=cpu["weights"] if seed == 2 else None,
        )
        (ref_grad,) = torch.autograd.grad((ref_mat * weight).sum(), lp)
        assert mat.device == grad.device == b["log_prob"].device
        torch.testing.assert_close(mat.cpu(), ref_mat, rtol=1e-9, atol=1e-12, msg=f"seed {seed}")
        torch.testing.assert_close(grad.cpu(), ref_grad, rtol=1e-9, atol=1e-12, msg=f"seed {seed}")
        got = sspo_metrics(stats)
        for k, v in ref_metrics.items():
            assert math.isclose(got[k], v, rel_tol=1e-5, abs_tol=1e-6), (k, seed, got[k], v)


def test_cuda_float32_tracks_cpu_float64():
    """A micro-batch of up to 16 x 1024 in float32 on CUDA (verl's log-prob dtype) vs float64 on CPU."""
    cpu = random_batch(11, max_b=16, max_t=1024, log_ratio_scale=0.1)
    cpu = {k: (v.detach() if k != "log_prob" else v.detach().requires_grad_(True)) for k, v in cpu.items()}
    params = _params("token", True)
    results = {}
    for device, dt in (("cpu", torch.float64), (CUDA, torch.float32)):
        b = _on(cpu, device, dt)
        seg = segment_responses(b["ids"], b["mask"], "subsentence", _table("subsentence", device))
        mat, _ = sspo_loss_matrix(b["log_prob"], b["old_log_prob"], b["advantages"], seg, params, entropy=b["entropy"])
        loss = mat.sum() / b["mask"].sum()
        (grad,) = torch.autograd.grad(loss, b["log_prob"])
        results[device] = (loss.double().cpu(), grad.double().cpu())
    torch.testing.assert_close(results[CUDA][0], results["cpu"][0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(results[CUDA][1], results["cpu"][1], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("entropy_clip", [False, True])
def test_segmentation_loss_backward_and_metrics_do_not_sync(granularity, entropy_clip):
    """The whole training-path computation stays on the device; the metrics leave it in one ``.tolist()``."""
    b = _on(random_batch(5, holes=True, max_b=16, max_t=512), CUDA, torch.float32)
    table = _table(granularity, CUDA)
    params = _params("token", entropy_clip)
    torch.cuda.synchronize()
    with count_device_syncs() as on_device:
        seg = segment_responses(b["ids"], b["mask"], granularity, table)
        mat, stats = sspo_loss_matrix(b["log_prob"], b["old_log_prob"], b["advantages"], seg, params,
                                      entropy=b["entropy"] if entropy_clip else None)
        (mat.sum() / b["mask"].sum()).backward()
        sums = sspo_metric_sums(stats)
    with count_device_syncs() as to_host:
        values = list(sspo_metrics_from_sums(sums.tolist()).values())
    assert on_device.n == 0, f"{on_device.n} host-device syncs in segmentation + loss + backward + metrics"
    assert to_host.n == 1
    assert all(math.isfinite(v) for v in values) and torch.isfinite(b["log_prob"].grad).all()
