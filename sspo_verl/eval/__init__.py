"""Evaluation on the paper's math benchmarks and the tiny task's held-out split (``sspo-eval``).

Public API:
    runner.run_eval           data → (merged) model → generation → scoring → results.json, table.md, samples/
    runner.rescore            re-score saved samples
    generation.generate       vLLM (GPU or its CPU build, imported lazily) or HF ``generate``
    benchmarks                the benchmark names, their scorers and the command that writes each data file
    model_source.resolve_model  HF dir or verl checkpoint (merged with ``python -m verl.model_merger``)
    decoding.DecodingConfig   greedy / sampled settings, validated and recorded
    pass_at_k.pass_at_k       unbiased pass@k (Chen et al. 2021), avg_at_n
    results.markdown_table    the paper-style table (five benchmarks, Avg., AIME25; tiny_eval), rows named after runs
    model_source.training_run the run a checkpoint belongs to (name, algorithm, seed, step) from its resolved config
"""
