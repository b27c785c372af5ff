"""The GPU presets' attention (``attn_implementation: sdpa``) with verl's remove-padding input: sequences packed into
one row, ``attention_mask=None``, ``use_cache=False`` and position ids restarting at each sequence (what verl 0.9.1's
FSDP engine passes, ``verl/workers/engine/fsdp/transformer_impl.py``) give each sequence the logits it has alone.
transformers builds the per-sequence causal mask from the position ids only without a cache: with ``use_cache``
left on (a ``DynamicCache``) the packed sequences would attend to each other."""

from __future__ import annotations

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from tests.preflight.configs import config


def test_gpu_presets_attention_is_sdpa():
    for hardware in ("hardware=gpu_1x8", "hardware=gpu_nx8"):
        cfg = config([hardware, "trainer.nnodes=2"] if hardware.endswith("nx8") else [hardware])
        assert cfg.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
        assert cfg.actor_rollout_ref.model.use_remove_padding is True  # verl's default: the packed path below


def test_sdpa_keeps_packed_sequences_apart():
    torch.manual_seed(0)
    model_config = Qwen2Config(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = Qwen2ForCausalLM._from_config(model_config, attn_implementation="sdpa", dtype=torch.float32).eval()
    assert model.config._attn_implementation == "sdpa"
    lengths = (7, 12, 5)
    seqs = [torch.randint(0, 97, (1, n)) for n in lengths]
    with torch.no_grad():
        alone = torch.cat([model(input_ids=s, position_ids=torch.arange(s.shape[1])[None], use_cache=False).logits for s in seqs], 1)
        packed_ids = torch.cat(seqs, 1)
        positions = torch.cat([torch.arange(n) for n in lengths])[None]
        packed = model(input_ids=packed_ids, attention_mask=None, position_ids=positions, use_cache=False).logits
        # Without the per-sequence mask the later sequences attend to the earlier ones: the check can fail.
        unmasked = model(input_ids=packed_ids, attention_mask=None,
                         position_ids=torch.arange(sum(lengths))[None], use_cache=False).logits
    torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-5)
    assert (unmasked[:, lengths[0]:] - alone[:, lengths[0]:]).abs().max() > 1e-2
