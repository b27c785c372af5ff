"""Evaluation on the paper's math benchmarks (``sspo-eval``).

Public API:
    runner.run_eval           data → (merged) model → generation → scoring → results.json, table.md, samples/
    runner.rescore            re-score saved samples
    generation.generate       vLLM (GPU, imported lazily) or HF ``generate`` (CPU)
    model_source.resolve_model  HF dir or verl checkpoint (merged with ``python -m verl.model_merger``)
    decoding.DecodingConfig   greedy / sampled settings, validated and recorded
    pass_at_k.pass_at_k       unbiased pass@k (Chen et al. 2021), avg_at_n
    results.markdown_table    the paper-style table (five benchmarks, Avg., AIME25)
"""
