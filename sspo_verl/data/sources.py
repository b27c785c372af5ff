"""The datasets ``sspo-data`` knows: where each lives on the Hugging Face Hub and how its rows map to
(question, answer).

Column names were checked against each source's loaders in public code (QwenLM/Qwen2.5-Math
``evaluation/parser.py::parse_ground_truth`` and ``parse_question``; DAPO-Math-17k users; dataset cards):

==============  =============================  =========  ======  ===========================================
name            default source (config)        split      role    columns used
==============  =============================  =========  ======  ===========================================
math_l35        DigitalLearningGmbH/MATH-       train      train   problem; solution (last \\boxed); level
                lighteval (default)                                "Level 3".."Level 5" kept; type
dapo_math_17k   BytedTsinghua-SIA/DAPO-Math-    train      train   verl rows: prompt[0].content minus DAPO's
                17k                                                "Solve the following ..." wrapper;
                                                                   reward_model.ground_truth. Also accepts
                                                                   open-r1/DAPO-Math-17k-Processed
                                                                   (prompt: str, solution). Deduplicated.
gsm8k           openai/gsm8k (main)            train      train   question; answer after "####", commas
                                                                   removed
aime24          HuggingFaceH4/aime_2024        train      eval    problem; answer (also Maxwell-Jia/AIME_2024
                                                                   Problem/Answer, math-ai/aime24 problem/
                                                                   solution holding the answer)
aime25          math-ai/aime25                 test       eval    problem; answer
amc23           math-ai/amc23                  test       eval    question; answer (numbers as text)
math500         HuggingFaceH4/MATH-500         test       eval    problem; answer
minerva_math    math-ai/minervamath            test       eval    question; answer (Qwen2.5-Math's
                                                                   minerva_math jsonl: problem; solution box)
olympiadbench   math-ai/olympiadbench          test       eval    question; final_answer (list; joined with
                                                                   ", "; $ stripped)
==============  =============================  =========  ======  ===========================================

Each source is pinned to a Hub commit (``revision``) where one could be verified from public records that cite it
(code and dataset cards that load that commit; checked 2026-12-06, without Hub access from here): gsm8k, MATH-500,
aime_2024, aime25, DAPO-Math-17k. MATH-lighteval, amc23, minervamath and olympiadbench have no verified commit
and are read at ``main``: the prepared file's source label records the commit that was read.

Eval sources share one generic mapping (keys lower-cased, question from ``problem``/``question``, answer
from ``answer``/``final_answer``, else the last ``\\boxed{}`` of ``solution``), so the common mirrors of each
benchmark work without code changes. :data:`DISPLAY` is each evaluation set's column title (the tiny task's
``tiny_eval`` too) in the tables of ``sspo-eval``, its sweeps and ``sspo-report``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sspo_verl.data.tiny_task import EVAL_SPLIT
from sspo_verl.reward.answer_extraction import last_boxed_answer

EVAL_BENCHMARKS = ("aime24", "amc23", "math500", "minerva_math", "olympiadbench")  # the paper's five
EXTRA_EVAL = ("aime25",)  # post-cutoff check, reported beside the five, not in their average
# The column title of each evaluation set in sspo-eval's, the sweep's and the report's tables.
DISPLAY = {
    "aime24": "AIME24",
    "amc23": "AMC23",
    "math500": "MATH-500",
    "minerva_math": "Minerva",
    "olympiadbench": "OlympiadBench",
    "aime25": "AIME25",
    EVAL_SPLIT: "tiny_eval",
}
TRAIN_SETS = ("math_l35", "dapo_math_17k", "gsm8k")

# DAPO-Math-17k wraps each question in this instruction (its "Answer:" format, not \boxed).
DAPO_PREFIX = (
    "Solve the following math problem step by step. The last line of your response should be of the form "
    "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
)
DAPO_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'


class RowError(ValueError):
    """A source row that cannot become a training/eval example; the message says why."""


@dataclass(frozen=True)
class Parsed:
    question: str
    answer: str
    level: int | None = None  # MATH difficulty 1..5, None when unknown
    subject: str = ""


@dataclass(frozen=True)
class SourceSpec:
    """One dataset: its default location and its row mapping."""

    name: str
    role: str  # "train" or "eval"
    hf_id: str
    hf_config: str | None
    hf_split: str
    parse_row: Callable[[dict], Parsed]
    levels: tuple[int, ...] | None = None  # keep only these MATH levels
    dedup: bool = False  # drop repeated questions (DAPO-Math-17k repeats each ~100 times)
    description: str = ""
    revision: str | None = None  # the Hub commit read and downloaded; None = main (not verified: module docstring)


def answer_text(value: Any) -> str:
    """Normalise an answer cell to text: ints stay ints (``204.0`` → ``204``), lists join with ", ",
    surrounding ``$`` and whitespace are stripped.

    Raises:
        RowError: a mapping (a dict answer has no single text).
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN: a missing cell in pandas-written files
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):  # str() would make the ground truth "{'value': 3}"
        raise RowError(f"the answer is a mapping ({value!r:.80}), not a value: map the source's answer field first")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        parts = [answer_text(v) for v in value]
        return ", ".join(p for p in parts if p)
    text = str(value).strip()
    if len(text) >= 2 and text.startswith("$") and text.endswith("$"):
        text = text.strip("$").strip()
    return text


def _lower_keys(row: dict) -> dict:
    return {str(k).lower(): v for k, v in row.items()}


def _first(row: dict, keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = row.get(key)
        if value is not None and answer_text(value) != "":
            return value
    return None


def _question(row: dict) -> str:
    value = _first(row, ("problem", "question"))
    if value is None:
        raise RowError(f"no question: expected a non-empty 'problem' or 'question' column, have {sorted(row)}")
    return str(value).strip()


def parse_generic(row: dict) -> Parsed:
    """Eval sets: question from problem/question; answer from answer/final_answer, else boxed solution."""
    row = _lower_keys(row)
    question = _question(row)
    value = _first(row, ("answer", "final_answer", "gt", "ground_truth"))
    answer = answer_text(value) if value is not None else ""
    if not answer and isinstance(row.get("solution"), str):
        solution = row["solution"].strip()
        # A full solution ends in \boxed{}; some mirrors (math-ai/aime24) keep only the answer in "solution".
        answer = last_boxed_answer(solution) or (answer_text(solution) if _looks_like_bare_answer(solution) else "")
    if not answer:
        raise RowError(
            f"no answer: expected 'answer', 'final_answer' or a \\boxed{{}} in 'solution', have {sorted(row)}"
        )
    level = _level(row.get("level"))
    return Parsed(question, answer, level, str(row.get("subject") or row.get("type") or ""))


def _looks_like_bare_answer(text: str) -> bool:
    """A short single-line "solution" that is just the answer (``204``, ``$\\frac{1}{2}$``), not a derivation."""
    return 0 < len(text) <= 64 and "\n" not in text and len(text.split()) <= 3


def _level(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        digits = value.replace("Level", "").strip()
        return int(digits) if digits.isdigit() else None
    return None


def parse_math(row: dict) -> Parsed:
    """MATH (hendrycks): problem, solution with the answer in its last \\boxed{}, level "Level N", type."""
    row = _lower_keys(row)
    question = _question(row)
    solution = row.get("solution")
    if not isinstance(solution, str):
        raise RowError(f"no 'solution' text column, have {sorted(row)}")
    answer = last_boxed_answer(solution)
    if not answer:
        raise RowError("solution has no complete \\boxed{} answer")
    return Parsed(question, answer, _level(row.get("level")), str(row.get("type") or row.get("subject") or ""))


def parse_gsm8k(row: dict) -> Parsed:
    """GSM8K: question; answer = rationale + "#### 72" (commas in numbers removed)."""
    row = _lower_keys(row)
    question = _question(row)
    raw = row.get("answer")
    if not isinstance(raw, str) or "####" not in raw:
        raise RowError("answer column has no '#### <number>' final answer")
    answer = raw.split("####")[-1].strip().replace(",", "")
    if not answer:
        raise RowError("empty answer after '####'")
    return Parsed(question, answer)


def parse_dapo(row: dict) -> Parsed:
    """DAPO-Math-17k in verl format (chat prompt + reward_model.ground_truth), or the open-r1 processed copy."""
    row = _lower_keys(row)
    prompt = row.get("prompt")
    reward = row.get("reward_model") if isinstance(row.get("reward_model"), dict) else {}
    if isinstance(prompt, str):  # open-r1/DAPO-Math-17k-Processed: prompt is the bare question
        question = prompt.strip()
        answer = answer_text(row.get("solution")) or answer_text(reward.get("ground_truth"))
    else:
        if prompt is None or len(prompt) == 0:
            raise RowError(f"no 'prompt' column, have {sorted(row)}")
        content = next((m.get("content", "") for m in prompt if m.get("role") == "user"), None)
        if not isinstance(content, str):
            raise RowError("prompt has no user message")
        if not content.startswith(DAPO_PREFIX):
            raise RowError("user message does not start with DAPO-Math-17k's instruction; is this DAPO-Math-17k?")
        question = content[len(DAPO_PREFIX) :]
        if question.endswith(DAPO_SUFFIX):
            question = question[: -len(DAPO_SUFFIX)]
        question = question.strip()
        answer = answer_text(reward.get("ground_truth"))
    if not question:
        raise RowError("empty question")
    if not answer:
        raise RowError("no reward_model.ground_truth (or solution) answer")
    return Parsed(question, answer)


SOURCES: dict[str, SourceSpec] = {
    spec.name: spec
    for spec in (
        SourceSpec("math_l35", "train", "DigitalLearningGmbH/MATH-lighteval", None, "train", parse_math,
                   levels=(3, 4, 5), description="MATH train, levels 3-5 (SimpleRL-Zoo / Dr. GRPO zero-RL set)"),
        SourceSpec("dapo_math_17k", "train", "BytedTsinghua-SIA/DAPO-Math-17k", None, "train", parse_dapo,
                   dedup=True, description="DAPO-Math-17k (integer answers), deduplicated",
                   revision="65877096c24ffa7abc4e4fa5edb95cf3413a5674"),
        SourceSpec("gsm8k", "train", "openai/gsm8k", "main", "train", parse_gsm8k, description="GSM8K train",
                   revision="cc7b047b6e5bb11b4f1af84efc572db110a51b3c"),
        SourceSpec("aime24", "eval", "HuggingFaceH4/aime_2024", None, "train", parse_generic,
                   description="AIME 2024 (30)", revision="2fe88a2f1091d5048c0f36abc874fb997b3dd99a"),
        SourceSpec("aime25", "eval", "math-ai/aime25", None, "test", parse_generic,
                   description="AIME 2025 (30), post-cutoff check",
                   revision="563bb8404243c5f09de6ec262f2db674fe5bce9b"),
        SourceSpec("amc23", "eval", "math-ai/amc23", None, "test", parse_generic, description="AMC 2023 (40)"),
        SourceSpec("math500", "eval", "HuggingFaceH4/MATH-500", None, "test", parse_generic,
                   description="MATH-500 (500)", revision="6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be"),
        SourceSpec("minerva_math", "eval", "math-ai/minervamath", None, "test", parse_generic,
                   description="Minerva Math (272)"),
        SourceSpec("olympiadbench", "eval", "math-ai/olympiadbench", None, "test", parse_generic,
                   description="OlympiadBench, English text-only maths (674)"),
    )
}


def get_source(name: str) -> SourceSpec:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(SOURCES)}") from None
