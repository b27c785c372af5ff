"""A verl custom reward for the live driver-metrics test: whole groups with equal rewards, by construction.

Prompts whose answer (a + b) is even score 1.0 for every response (a zero-variance group: verl's GRPO
advantage is 0 there); the others score the length of the decoded response, which varies within a group.
"""


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    if int(str(ground_truth).strip()) % 2 == 0:
        return 1.0
    return float(len(solution_str or ""))
