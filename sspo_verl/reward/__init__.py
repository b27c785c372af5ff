"""Math reward for verl with a real per-sample timeout.

Public API:
    math_reward.compute_score        verl ``reward.custom_reward_function`` entry
                                     (path ``pkg://sspo_verl.reward.math_reward``)
    math_reward.score_response       score one response (dict with score, pred, timeout flags)
    math_reward.score_many           score many responses concurrently (used by ``sspo-eval``)
    answer_extraction.last_boxed_answer   the last ``\\boxed{}`` content, bounded in time on any input
    verifier.is_equivalent           math-verify equivalence (no timeout: run it in a worker)
    verifier_pool.VerifierPool       worker processes, killed and replaced on timeout; works from any thread

Nothing is imported here, so ``import sspo_verl.reward`` stays cheap in worker processes.
"""
