"""Prompt templates: how a question becomes verl's chat ``prompt`` column.

``qwen_boxed`` (default) is the Qwen2.5-Math evaluation template ``qwen-boxed`` (QwenLM/Qwen2.5-Math,
``evaluation/utils.py``, ``PROMPT_TEMPLATES["qwen-boxed"]``): the user turn is the question followed by
``"\\nPlease reason step by step, and put your final answer within \\\\boxed{}."``, under the system turn
``"You are a helpful assistant."``. SimpleRL-Zoo (hkust-nlp/simpleRL-reason) trains and evaluates Qwen2.5-Math
with this template. We write only the user turn by default: verl applies the tokenizer's chat template,
and Qwen2.5 tokenizers insert that same system turn when none is given; ``qwen_boxed_system`` writes it
explicitly for tokenizers that do not.

``qwen_math_system`` is Dr. GRPO's ``qwen_math`` template (sail-sg/understand-r1-zero,
``train_zero_math.py::apply_qwen_math_template``): the instruction as the system turn, the bare question as
the user turn.

The reward (:mod:`sspo_verl.reward.math_reward`) reads the last ``\\boxed{}``; every template here asks for it.
"""

from __future__ import annotations

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_DEFAULT_SYSTEM = "You are a helpful assistant."

TEMPLATES = ("qwen_boxed", "qwen_boxed_system", "qwen_math_system")
DEFAULT_TEMPLATE = "qwen_boxed"


def build_prompt(question: str, template: str = DEFAULT_TEMPLATE) -> list[dict[str, str]]:
    """Chat messages ``[{"role", "content"}, ...]`` for one question.

    Raises:
        ValueError: unknown template name.
    """
    if template == "qwen_boxed":
        return [{"role": "user", "content": f"{question}\n{BOXED_INSTRUCTION}"}]
    if template == "qwen_boxed_system":
        return [
            {"role": "system", "content": QWEN_DEFAULT_SYSTEM},
            {"role": "user", "content": f"{question}\n{BOXED_INSTRUCTION}"},
        ]
    if template == "qwen_math_system":
        return [{"role": "system", "content": BOXED_INSTRUCTION}, {"role": "user", "content": question}]
    raise ValueError(f"unknown prompt template {template!r}; choose one of {', '.join(TEMPLATES)}")
