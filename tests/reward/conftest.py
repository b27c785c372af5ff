"""Shared by the reward tests: one VerifierPool of two worker processes per module."""

import pytest

from sspo_verl.reward.verifier_pool import VerifierPool


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(num_procs=2) as p:
        yield p
