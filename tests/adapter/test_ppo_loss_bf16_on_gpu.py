"""SSPO through verl's real ``ppo_loss`` on CUDA under bf16 autocast against the float64 reference: the CPU test's
checks (tests/adapter/test_ppo_loss_bf16_on_cpu.py, whose docstring gives the tolerances) on the GPU.

Skipped without a CUDA GPU (``gpu`` marker, see ``tests/conftest.py``).
"""

import pytest

from tests.adapter.test_policy_loss_on_cpu import vocab  # noqa: F401
from tests.adapter.test_ppo_loss_bf16_on_cpu import (
    GRANULARITY_CASES,
    bf16_against_reference,
    bf16_token_granularity_equals_vanilla,
)

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("granularity,ratio_grad", GRANULARITY_CASES)
def test_bf16_log_probs_on_cuda_give_the_float64_reference(vocab, granularity, ratio_grad):  # noqa: F811
    errors = bf16_against_reference(vocab, granularity, ratio_grad, device="cuda")
    print(f"cuda bf16 {granularity}/{ratio_grad}: {errors}")


def test_bf16_token_granularity_on_cuda_equals_verl_vanilla(vocab):  # noqa: F811
    bf16_token_granularity_equals_vanilla(vocab, device="cuda")
