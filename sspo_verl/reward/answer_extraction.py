"""Final-answer extraction from model outputs: the content of the last ``\\boxed{...}``.

Pure Python, no math library: this runs in the caller (a verl reward thread) before anything is sent to a
verifier process, so it must be cheap and bounded on any input. ``str.rfind`` is linear C code, and the
brace scan stops after ``max_answer_chars`` characters, so a 100 MB string or ten thousand unbalanced
braces cost milliseconds, not minutes.

Conventions (those of the Qwen2.5-Math evaluation ``extract_answer`` and the zero-RL recipes that reuse
it: the answer is the *last* ``\\boxed``; nested braces are balanced; ``\\boxed 5`` without braces runs to
the next ``$``):
- ``\\boxed`` and ``\\fbox`` both count; the last occurrence of either wins.
- A last box that is unbalanced (truncated output) or longer than ``max_answer_chars`` means *no answer*:
  earlier boxes are not consulted, so a model cannot hedge with several answers.
"""

from __future__ import annotations

import re

BOX_COMMANDS = ("\\boxed", "\\fbox")
DEFAULT_MAX_ANSWER_CHARS = 1000

_BRACE_RE = re.compile(r"[{}]")
_SPACE_RE = re.compile(r"\s+")
# LaTeX spacing and sizing commands that never change a value; removed before the exact-match fast path.
# A letter after \left / \right / \displaystyle means another command (\leftarrow), which is kept.
_NOOP_LATEX_RE = re.compile(r"\\(?:left|right|displaystyle)(?![A-Za-z])|\\[!,;: ]")


def last_boxed_answer(text: str, max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS) -> str | None:
    """Return the content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, else ``None``.

    Args:
        text: a model response (any size).
        max_answer_chars: answers longer than this are treated as no answer (junk or an attack).

    Returns:
        The stripped content between the braces, or ``None`` if there is no box, the box is unbalanced,
        empty, or too long.
    """
    if not isinstance(text, str) or not text:
        return None
    start = -1
    command = ""
    for cmd in BOX_COMMANDS:
        pos = text.rfind(cmd)
        if pos > start:
            start, command = pos, cmd
    if start < 0:
        return None
    i = start + len(command)
    n = len(text)
    # Skip a little whitespace: "\boxed {5}" and "\boxed 5" both occur.
    while i < n and i - start - len(command) < 8 and text[i] in " \t":
        i += 1
    if i >= n:
        return None
    if text[i] != "{":
        # "\boxed 5$" form: up to the next "$" or line break.
        if text[i - 1] not in " \t":
            return None  # e.g. "\boxedx": not a box command
        stop = min(n, i + max_answer_chars + 1)
        tail = text[i:stop]
        for sep in ("$", "\n"):
            cut = tail.find(sep)
            if cut >= 0:
                tail = tail[:cut]
        tail = tail.strip()
        if not tail or len(tail) > max_answer_chars:
            return None
        return tail
    depth = 0
    end_limit = min(n, i + max_answer_chars + 2)  # opening brace + content + closing brace
    for match in _BRACE_RE.finditer(text, i, end_limit):
        depth += 1 if match.group() == "{" else -1
        if depth == 0:
            answer = text[i + 1 : match.start()].strip()
            return answer or None
    return None


def strip_percent(answer: str) -> str:
    """Drop one trailing percent sign (``10\\%`` → ``10``): MATH-style graders treat it as a unit.

    math-verify alone reads ``10\\%`` as 0.1, so a correct ``\\boxed{10}`` would score 0 against a
    ``10\\%`` ground truth; the Qwen2.5-Math grader (``strip_string``) removes the sign on both sides, as
    this does.
    """
    s = answer.rstrip()
    for sign in ("\\%", "%"):
        if s.endswith(sign):
            return s[: -len(sign)].rstrip()
    return s


def canonical_answer(answer: str) -> str:
    """A conservative canonical form for the exact-match fast path (never makes different values equal).

    Removes whitespace, ``$``, ``\\left``/``\\right`` and spacing commands, maps ``\\dfrac``/``\\tfrac`` to
    ``\\frac``, and drops one trailing period. Two answers with the same canonical form are equal;
    different canonical forms go to the symbolic verifier.
    """
    s = _NOOP_LATEX_RE.sub("", answer.replace("$", ""))
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _SPACE_RE.sub("", s)
    if s.endswith("."):
        s = s[:-1]
    return s
