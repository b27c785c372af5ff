"""The real Slurm cluster of slurm_cluster.py as pytest fixtures."""

from __future__ import annotations

import os

import pytest

from tests.recipes.slurm_cluster import SlurmCluster, unavailable


def _cluster():
    reason = unavailable()
    if reason:
        pytest.skip(f"real Slurm cluster: {reason}")
    return SlurmCluster(2)


@pytest.fixture(scope="session")
def slurm_cluster():
    """One 2-node cluster for the jobs that leave it as they found it (they run one after another)."""
    with _cluster() as cluster:
        yield cluster


@pytest.fixture
def fresh_slurm_cluster():
    """A 2-node cluster of its own, for a test that kills, stops or rewires a node (~2 s to start and stop)."""
    with _cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def slurm_tiny_dir(slurm_cluster, tiny_model_dir):
    """The tiny model and 64 training rows where every node of the shared cluster sees them."""
    import shutil

    from sspo_verl.data.tiny_task import write_dataset

    root = slurm_cluster.base / "tiny"
    shutil.copytree(tiny_model_dir, root / "model")
    write_dataset(os.fspath(root / "data"), n_train=64, n_val=8, seed=0)
    return root
