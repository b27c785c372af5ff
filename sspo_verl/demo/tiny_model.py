"""A tiny random-weight Qwen2 causal LM and a byte-level BPE tokenizer, built locally from a seed.

No downloads: the tokenizer is trained on a small synthetic corpus of arithmetic text with the punctuation
SSPO segments on (``, . ; : ! ?``, full-width ``，。；：！？、``, newlines, decimals such as ``3.14`` and
thousands such as ``1,000``), so subsentences exist in the tiny model's outputs and the numeric guard has
something to guard. Same seed, same files.

    python -m sspo_verl.demo.tiny_model OUT_DIR [--seed 0] [--hidden 64] [--layers 2]
"""

from __future__ import annotations

import argparse
import os
import random

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tokenizer_corpus(seed: int = 0) -> list[str]:
    """Synthetic training text for the tokenizer: arithmetic with clause punctuation, reproducible."""
    rng = random.Random(seed)
    lines = []
    for _ in range(3000):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        x = rng.randint(1000, 99999)
        lines.append(f"What is {a} + {b}? First, take {a}. Then, add {b}; so the answer is {a + b}.")
        lines.append(f"We have {a}.{b} and {x:,}: the total is {a + b}! Answer: {a + b}")
        lines.append(f"计算 {a} + {b}，先写 {a}，再加 {b}；所以答案是 {a + b}。对吗？对！")
        lines.append(f"Step 1: {a} + {b} = {a + b}.\nStep 2: check it, done.\n#### {a + b}")
    lines += ["user", "assistant", "system", "You are a helpful assistant.", "\\boxed{12}", "3.14", "1,000"]
    return lines


def build_tokenizer(out_dir: str, seed: int = 0, vocab_size: int = 640):
    """Train a byte-level BPE tokenizer on :func:`tokenizer_corpus` and save it as an HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(seed), trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.save_pretrained(out_dir)
    return hf_tok


def build_tiny_model(
    out_dir: str, seed: int = 0, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 2
) -> str:
    """Write a tokenizer and a random-weight Qwen2 (fp32, tied embeddings) to ``out_dir``; return it.

    ``head_dim = hidden_size // num_heads``: the defaults give 2 query heads of 32 (1 key/value head) because
    vLLM's CPU attention supports head sizes of 32 and more (``sspo_verl.cpu.vllm_checks``), and ~115k
    parameters: a step of the real verl trainer on CPU takes seconds, with either rollout.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    os.makedirs(out_dir, exist_ok=True)
    hf_tok = build_tokenizer(out_dir, seed=seed)
    vocab = len(hf_tok)
    cfg = Qwen2Config(
        vocab_size=((vocab + 63) // 64) * 64,  # padded like real checkpoints: ids >= len(tokenizer) exist
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config = GenerationConfig(eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id)
    model.save_pretrained(out_dir)
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    args = parser.parse_args(argv)
    path = build_tiny_model(args.out_dir, seed=args.seed, hidden_size=args.hidden, num_layers=args.layers,
                            num_heads=args.heads)
    print(f"tiny model written to {path}")


if __name__ == "__main__":
    main()
