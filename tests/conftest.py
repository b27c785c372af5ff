"""Shared fixtures: a synthetic piece vocabulary, random micro-batches, the tiny model on disk, a copy of the
package's source tree."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# What `pip install .` reads, and what docker/Dockerfile copies into the image to install the package.
PACKAGE_SOURCES = ("setup.py", "README.md", "sspo_verl", "hydra_configs")

def pytest_collection_modifyitems(config, items):
    """``gpu`` tests need CUDA: without it they are skipped, with the reason in the summary."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (gpu marker)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # the marker, not the keyword (tests/gpu/ is one)
            item.add_marker(skip)


# A hand-made vocabulary that exercises every segmentation rule (spec §3). Index = token id.
SYNTH_PIECES = [
    "<|endoftext|>",  # 0  special (pad)
    "<|im_end|>",  # 1  special (EOS)
    "The",  # 2
    " answer",  # 3
    " is",  # 4
    " so",  # 5
    "x",  # 6
    ",",  # 7   ASCII delimiters
    ".",  # 8
    ";",  # 9
    ":",  # 10
    "!",  # 11
    "?",  # 12
    "，",  # 13  full-width delimiters
    "。",  # 14
    "；",  # 15
    "：",  # 16
    "！",  # 17
    "？",  # 18
    "、",  # 19
    "3",  # 20  digits
    "14",  # 21
    " 1",  # 22
    "000",  # 23
    "7",  # 24
    "\n",  # 25  newline pieces
    "ok\n",  # 26
    " \n\n",  # 27
    "end. ",  # 28  trailing space stripped -> ends with "."
    "wait,\t",  # 29  trailing tab stripped -> ends with ","
    "，所以",  # 30  delimiter merged into the start of a piece: not a boundary
    ",so",  # 31  same, ASCII
    " .",  # 32  guard candidates (strip == ".")
    ". ",  # 33
    " ,",  # 34
    "3.",  # 35  ends with "." but is not exactly "." -> boundary, never guarded
    "1,",  # 36
    "done?",  # 37
    "好。",  # 38
    "<|sep|>.",  # 39  special whose text ends with a delimiter: never a boundary
]
SYNTH_SPECIALS = (0, 1, 39)


@pytest.fixture(scope="session")
def synth_vocab():
    return SYNTH_PIECES, SYNTH_SPECIALS


def random_batch(seed: int, *, holes: bool = False, vocab_size: int = len(SYNTH_PIECES), dtype=torch.float64,
                 max_b: int = 6, max_t: int = 16, log_ratio_scale: float | None = None):
    """A random padded micro-batch: ids, mask, log-probs (leaf with grad), old log-probs, advantages, entropy.

    Rows have random lengths (0 included); with ``holes`` the mask also has interior zeros (multi-turn style).
    A few ids lie beyond the vocabulary (padded model vocab). Advantages are per-response (outcome) on most
    rows and per-token on some, so every clip regime occurs.
    """
    g = torch.Generator().manual_seed(seed)
    B = int(torch.randint(1, max_b + 1, (1,), generator=g))
    T = int(torch.randint(1, max_t + 1, (1,), generator=g))
    ids = torch.randint(0, vocab_size + 3, (B, T), generator=g)
    lengths = torch.randint(0, T + 1, (B,), generator=g)
    lengths[0] = max(int(lengths[0]), 1)  # at least one valid token in the batch
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    if holes:
        mask &= torch.rand(B, T, generator=g) > 0.2
        mask[0, 0] = True
    scale = log_ratio_scale if log_ratio_scale is not None else float(torch.tensor([0.02, 0.2, 0.8])[seed % 3])
    log_prob = (-torch.rand(B, T, generator=g) * 3).to(dtype)
    old_log_prob = log_prob + scale * torch.randn(B, T, generator=g, dtype=dtype)
    adv_row = torch.randn(B, 1, generator=g, dtype=dtype).expand(B, T).clone()
    adv_tok = torch.randn(B, T, generator=g, dtype=dtype)
    per_token_rows = torch.rand(B, 1, generator=g) < 0.3
    advantages = torch.where(per_token_rows, adv_tok, adv_row)
    entropy = (torch.rand(B, T, generator=g, dtype=dtype) * 2.0) ** 2
    weights = 0.5 + torch.rand(B, T, generator=g, dtype=dtype)
    return dict(ids=ids, mask=mask, log_prob=log_prob.requires_grad_(True), old_log_prob=old_log_prob,
                advantages=advantages, entropy=entropy, weights=weights)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The demo's tiny Qwen2 + tokenizer, built once per session from seed 0 (no downloads)."""
    from sspo_verl.demo.tiny_model import build_tiny_model

    out = tmp_path_factory.mktemp("tiny_model")
    return build_tiny_model(os.fspath(out), seed=0)


def copy_package_sources(src):
    """Copy :data:`PACKAGE_SOURCES` into the existing directory ``src``, without caches or build output."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in PACKAGE_SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            shutil.copy(REPO / name, src / name)
    return src


@pytest.fixture
def package_source(tmp_path):
    """``tmp_path/src``: a copy of :data:`PACKAGE_SOURCES`, to install from."""
    src = tmp_path / "src"
    src.mkdir()
    return copy_package_sources(src)
